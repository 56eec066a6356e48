package metrics

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/report"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// PoolMetrics are poolboy's own metric families (poolboy_*), shared by the watch
// daemon (served on /metrics) and the one-shot status and clean runs (pushed to a
// Pushgateway), so both expose the same names, types and labels.
type PoolMetrics struct {
	Reaps       *prometheus.CounterVec   // poolboy_reaps_total{repo,pool,rule}
	Cycles      *prometheus.CounterVec   // poolboy_cycles_total{repo,outcome}
	CycleTime   *prometheus.HistogramVec // poolboy_cycle_duration_seconds{repo}
	LastSuccess *prometheus.GaugeVec     // poolboy_last_successful_cycle_timestamp_seconds{repo}
	CCRequests  *prometheus.CounterVec   // poolboy_concourse_requests_total{outcome}
	GitOps      *prometheus.CounterVec   // poolboy_git_operations_total{kind,outcome}
	QueueWait   *prometheus.HistogramVec // poolboy_queue_wait_seconds{repo,pool}

	now  func() time.Time
	mu   sync.Mutex
	docs map[string]report.Doc // per repo label: the last observed report
}

// NewPoolMetrics creates the families and registers them with reg. now is the clock
// the claim ages are computed with at collection time (nil: time.Now).
func NewPoolMetrics(reg prometheus.Registerer, now func() time.Time) *PoolMetrics {
	if now == nil {
		now = time.Now
	}
	m := &PoolMetrics{
		Reaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_reaps_total", Help: "Locks freed, by the rule that decided.",
		}, []string{"repo", "pool", "rule"}),
		Cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_cycles_total", Help: "Reap cycles run, by outcome (success or error).",
		}, []string{"repo", "outcome"}),
		CycleTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "poolboy_cycle_duration_seconds", Help: "Time a reap cycle took (fetch, decide, push).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"repo"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poolboy_last_successful_cycle_timestamp_seconds", Help: "Unix time the last successful cycle ended.",
		}, []string{"repo"}),
		CCRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_concourse_requests_total",
			Help: "Concourse API lookups (build, build resources, version, input_to), by outcome: success, not_found or error.",
		}, []string{"outcome"}),
		GitOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_git_operations_total",
			Help: "Git network operations (open = clone or reuse of the cache, fetch, deepen, push), by outcome: success, rejected (push lost a race) or error.",
		}, []string{"kind", "outcome"}),
		QueueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    QueueWaitName,
			Help:    "How long tickets waited in a pool's queue, observed when a ticket live at one cycle is gone at the next (granted or withdrawn): from its enqueue time to that next cycle.",
			Buckets: QueueWaitBuckets,
		}, []string{"repo", "pool"}),
		now:  now,
		docs: map[string]report.Doc{},
	}
	reg.MustRegister(m.Reaps, m.Cycles, m.CycleTime, m.LastSuccess, m.CCRequests, m.GitOps, m.QueueWait, poolCollector{m})
	return m
}

// Observe records doc as repo's pools now: poolboy_locks, poolboy_stale_locks,
// poolboy_locks_on_hold, poolboy_lock_claim_age_seconds,
// poolboy_pool_timeout_seconds and poolboy_queue_length follow the last doc
// observed for each repo, so a lock or pool that is gone leaves no series. Each
// ticket that was waiting in the doc observed before and is gone from doc is one
// observation of poolboy_queue_wait_seconds: its wait ended between the two (a
// ticket seen expired is a waiter that gave up without a word, and is not counted).
func (m *PoolMetrics) Observe(repo string, doc report.Doc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, ok := m.docs[repo]; ok {
		for pool, waited := range leftQueue(prev, doc) {
			for _, d := range waited {
				m.QueueWait.WithLabelValues(repo, term.Escape(pool)).Observe(d.Seconds())
			}
		}
	}
	m.docs[repo] = doc
}

// leftQueue is, by pool, how long each ticket waiting in prev and gone from next
// had waited by next.
func leftQueue(prev, next report.Doc) map[string][]time.Duration {
	still := map[string]bool{}
	for _, p := range next.Pools {
		for _, t := range p.Queue {
			still[p.Name+"\x00"+t.ID] = true
		}
	}
	left := map[string][]time.Duration{}
	for _, p := range prev.Pools {
		for _, t := range p.Queue {
			if t.Position != nil && !still[p.Name+"\x00"+t.ID] {
				left[p.Name] = append(left[p.Name], max(next.GeneratedAt.Sub(t.Enqueued), 0))
			}
		}
	}
	return left
}

// Reaped counts one lock freed in repo's pool by rule.
func (m *PoolMetrics) Reaped(repo, pool, rule string) {
	m.Reaps.WithLabelValues(repo, term.Escape(pool), rule).Inc()
}

// CycleDone records one cycle (a daemon cycle, or a whole one-shot run) of repo
// from start to end with outcome (see Outcome); a success also sets the last
// successful cycle time.
func (m *PoolMetrics) CycleDone(repo string, start, end time.Time, outcome string) {
	m.CycleTime.WithLabelValues(repo).Observe(end.Sub(start).Seconds())
	m.Cycles.WithLabelValues(repo, outcome).Inc()
	if outcome == "success" {
		m.LastSuccess.WithLabelValues(repo).Set(float64(end.UnixNano()) / 1e9)
	}
}

// Outcome is the outcome label of an operation that returned err: success,
// rejected (a push lost a race), not_found (Concourse) or error.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "success"
	case errors.Is(err, gitx.ErrRejected):
		return "rejected"
	case errors.Is(err, concourse.ErrNotFound):
		return "not_found"
	}
	return "error"
}

var (
	locksDesc = prometheus.NewDesc("poolboy_locks",
		"Locks in each pool at the last successful cycle, by state (claimed or unclaimed).", []string{"repo", "pool", "state"}, nil)
	staleDesc = prometheus.NewDesc("poolboy_stale_locks",
		"Claimed locks judged stale at the last successful cycle and not freed (yet).", []string{"repo", "pool"}, nil)
	ageDesc = prometheus.NewDesc("poolboy_lock_claim_age_seconds",
		"How long each held lock has been claimed, now (from its claim commit).", []string{"repo", "pool", "lock"}, nil)
	onHoldDesc = prometheus.NewDesc("poolboy_locks_on_hold",
		"Claimed locks kept on purpose by a hold (poolboy hold) that had not expired at the last successful cycle.", []string{"repo", "pool"}, nil)
	timeoutDesc = prometheus.NewDesc("poolboy_pool_timeout_seconds",
		"Each watched pool's stale timeout.", []string{"repo", "pool"}, nil)
	queueDesc = prometheus.NewDesc("poolboy_queue_length",
		"Tickets waiting in each pool's queue at the last successful cycle (expired ones not counted).", []string{"repo", "pool"}, nil)
)

// poolCollector reports the pools as the last observed doc of each repo shows them.
type poolCollector struct{ m *PoolMetrics }

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- locksDesc
	ch <- staleDesc
	ch <- onHoldDesc
	ch <- ageDesc
	ch <- timeoutDesc
	ch <- queueDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.now()
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	for repo, doc := range c.m.docs {
		seen := map[string]bool{}
		for _, p := range doc.Pools {
			// Pool names come from the repository: one that is not UTF-8 must not
			// fail the whole scrape, nor may two whose labels are the same (a
			// duplicate series fails it too). Both are integrity problems, reported
			// in the status; the first keeps the label.
			pool := term.Escape(p.Name)
			if seen[pool] {
				continue
			}
			seen[pool] = true
			ch <- prometheus.MustNewConstMetric(locksDesc, prometheus.GaugeValue, float64(p.Claimed), repo, pool, "claimed")
			ch <- prometheus.MustNewConstMetric(locksDesc, prometheus.GaugeValue, float64(p.Unclaimed), repo, pool, "unclaimed")
			ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, float64(p.Stale), repo, pool)
			waiting := 0
			for _, t := range p.Queue {
				if t.Position != nil {
					waiting++
				}
			}
			ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(waiting), repo, pool)
			ch <- prometheus.MustNewConstMetric(onHoldDesc, prometheus.GaugeValue, float64(p.OnHold), repo, pool)
			if p.TimeoutSeconds != nil {
				ch <- prometheus.MustNewConstMetric(timeoutDesc, prometheus.GaugeValue, float64(*p.TimeoutSeconds), repo, pool)
			}
			for _, l := range p.Locks {
				if l.ClaimedAt == nil {
					continue
				}
				ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(*l.ClaimedAt).Seconds(), repo, pool, term.Escape(l.Name))
			}
		}
	}
}

// PoolJob is the Pushgateway job of the one-shot status and clean runs.
const PoolJob = "poolboy"

// PushPool sends what g gathers to the Pushgateway at gatewayURL (as for Push:
// user information becomes basic auth and never appears in an error), to the group
// job="poolboy", repo=repo (the repo label of g's metrics is left to the group). replace uses PUT, which replaces the whole group;
// otherwise POST replaces only the families g has, leaving the others (e.g. the
// pools as the last successful run saw them) in place. It gives up after Timeout.
func PushPool(ctx context.Context, gatewayURL, repo string, g prometheus.Gatherer, replace bool) error {
	base, user, pass, err := parseGateway(gatewayURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	// The grouping key carries the repo label: the pushed metrics must not (the
	// Pushgateway adds it to each of them).
	strip := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := g.Gather()
		for _, mf := range mfs {
			for _, m := range mf.Metric {
				m.Label = slices.DeleteFunc(m.Label, func(l *dto.LabelPair) bool {
					return l.GetName() == "repo" && l.GetValue() == repo
				})
			}
		}
		return mfs, err
	})
	p := push.New(base, PoolJob).Gatherer(strip).Client(&http.Client{Timeout: pushTimeout}).Grouping("repo", repo)
	if user != nil {
		p = p.BasicAuth(user.Username(), pass)
	}
	if replace {
		err = p.PushContext(ctx)
	} else {
		err = p.AddContext(ctx)
	}
	if err != nil {
		return newError(base, pass, err)
	}
	return nil
}
