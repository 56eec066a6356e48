package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/poolboy-ci/poolboy/internal/report"
)

// gathered is every sample of reg's family name, by its pool label.
func gathered(t *testing.T, reg *prometheus.Registry, name string) map[string]*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.Metric{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "pool" {
					out[l.GetValue()] = m
				}
			}
		}
	}
	return out
}

func queueDoc(at time.Time, pools map[string][]report.Ticket) report.Doc {
	d := report.Doc{GeneratedAt: at}
	for _, name := range []string{"aws", "gpu", "bad\xffname\n"} {
		d.Pools = append(d.Pools, report.Pool{Name: name, Queue: pools[name]})
	}
	return d
}

func waiting(id string, pos int, enqueued time.Time) report.Ticket {
	return report.Ticket{ID: id, Position: &pos, Enqueued: enqueued}
}

// Issue 13: poolboy_queue_length is each pool's waiting tickets (expired ones not
// counted); poolboy_queue_wait_seconds observes each ticket that was waiting at
// one observed doc and is gone at the next, from its enqueue time to the next
// doc; a ticket seen expired before it went is not a wait that ended. Pool names
// that are not valid UTF-8 do not fail the scrape.
func TestPoolMetricsQueue(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	m := NewPoolMetrics(reg, func() time.Time { return t0 })
	expired := report.Ticket{ID: "old", Enqueued: t0.Add(-time.Hour), Expired: true}
	m.Observe("locks", queueDoc(t0, map[string][]report.Ticket{
		"aws":           {waiting("a", 1, t0.Add(-50*time.Second)), waiting("b", 2, t0.Add(-20*time.Second)), expired},
		"bad\xffname\n": {waiting("c", 1, t0.Add(-10*time.Second))},
	}))
	lengths := gathered(t, reg, "poolboy_queue_length")
	for pool, want := range map[string]float64{"aws": 2, "gpu": 0, "bad\\xffname\\n": 1} {
		if g, ok := lengths[pool]; !ok || g.GetGauge().GetValue() != want {
			t.Errorf("poolboy_queue_length{pool=%q} = %v, want %v (all: %v)", pool, g, want, lengths)
		}
	}
	if h := gathered(t, reg, QueueWaitName); len(h) != 0 {
		t.Errorf("waits observed from the first doc alone: %v", h)
	}

	// 30s later: a was served, old went, c too; b waits on.
	t1 := t0.Add(30 * time.Second)
	m.Observe("locks", queueDoc(t1, map[string][]report.Ticket{
		"aws": {waiting("b", 1, t0.Add(-20*time.Second))},
	}))
	waits := gathered(t, reg, QueueWaitName)
	if h := waits["aws"].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 80 {
		t.Errorf("aws waits: %v, want one of 80s (a: enqueued 50s before the first doc, gone 30s later)", h)
	}
	if h := waits["bad\\xffname\\n"].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 40 {
		t.Errorf("escaped pool's waits: %v, want one of 40s", h)
	}
	if g := gathered(t, reg, "poolboy_queue_length")["aws"]; g.GetGauge().GetValue() != 1 {
		t.Errorf("aws length %v after a was served, want 1", g)
	}

	// The same doc again: nothing more ended.
	m.Observe("locks", queueDoc(t1, map[string][]report.Ticket{
		"aws": {waiting("b", 1, t0.Add(-20*time.Second))},
	}))
	if h := gathered(t, reg, QueueWaitName)["aws"].GetHistogram(); h.GetSampleCount() != 1 {
		t.Errorf("aws waits %v after an unchanged doc, want still 1", h)
	}
}
