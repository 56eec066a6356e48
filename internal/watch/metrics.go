package watch

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/gitx"
)

// metrics are the daemon's Prometheus metrics, in a registry of their own.
type metrics struct {
	reg         *prometheus.Registry
	reaps       *prometheus.CounterVec
	cycles      *prometheus.CounterVec
	cycleTime   *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	ccRequests  *prometheus.CounterVec
	gitOps      *prometheus.CounterVec
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		reaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_reaps_total", Help: "Locks freed, by the rule that decided.",
		}, []string{"repo", "pool", "rule"}),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_cycles_total", Help: "Reap cycles run, by outcome (success or error).",
		}, []string{"repo", "outcome"}),
		cycleTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "poolboy_cycle_duration_seconds", Help: "Time a reap cycle took (fetch, decide, push).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"repo"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poolboy_last_successful_cycle_timestamp_seconds", Help: "Unix time the last successful cycle ended.",
		}, []string{"repo"}),
		ccRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_concourse_requests_total",
			Help: "Concourse API lookups (build, build resources, version, input_to), by outcome: success, not_found or error.",
		}, []string{"outcome"}),
		gitOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "poolboy_git_operations_total",
			Help: "Git network operations (open = clone or reuse of the cache, fetch, deepen, push), by outcome: success, rejected (push lost a race) or error.",
		}, []string{"kind", "outcome"}),
	}
	m.reg.MustRegister(m.reaps, m.cycles, m.cycleTime, m.lastSuccess, m.ccRequests, m.gitOps,
		&poolCollector{d: d},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	locksDesc = prometheus.NewDesc("poolboy_locks",
		"Locks in each pool at the last successful cycle, by state (claimed or unclaimed).", []string{"repo", "pool", "state"}, nil)
	staleDesc = prometheus.NewDesc("poolboy_stale_locks",
		"Claimed locks judged stale at the last successful cycle and not freed (yet).", []string{"repo", "pool"}, nil)
	ageDesc = prometheus.NewDesc("poolboy_lock_claim_age_seconds",
		"How long each held lock has been claimed, now (from its claim commit).", []string{"repo", "pool", "lock"}, nil)
	timeoutDesc = prometheus.NewDesc("poolboy_pool_timeout_seconds",
		"Each watched pool's stale timeout.", []string{"repo", "pool"}, nil)
)

// poolCollector reports the pools as the last successful cycle of each repo saw
// them, so a lock or pool that is gone leaves no series behind.
type poolCollector struct{ d *Daemon }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- locksDesc
	ch <- staleDesc
	ch <- ageDesc
	ch <- timeoutDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.d.now()
	for _, w := range c.d.workers {
		st := w.snapshot()
		if st.Report == nil {
			continue
		}
		for _, p := range st.Report.Pools {
			ch <- prometheus.MustNewConstMetric(locksDesc, prometheus.GaugeValue, float64(p.Claimed), w.cfg.Name, p.Name, "claimed")
			ch <- prometheus.MustNewConstMetric(locksDesc, prometheus.GaugeValue, float64(p.Unclaimed), w.cfg.Name, p.Name, "unclaimed")
			ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, float64(p.Stale), w.cfg.Name, p.Name)
			if p.TimeoutSeconds != nil {
				ch <- prometheus.MustNewConstMetric(timeoutDesc, prometheus.GaugeValue, float64(*p.TimeoutSeconds), w.cfg.Name, p.Name)
			}
			for _, l := range p.Locks {
				if l.ClaimedAt == nil {
					continue
				}
				ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(*l.ClaimedAt).Seconds(), w.cfg.Name, p.Name, l.Name)
			}
		}
	}
}

func outcome(err error) string {
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

// meteredRepo is the clone as the reaper sees it, counting network operations.
type meteredRepo struct {
	*gitx.Repo
	d *Daemon
}

func (r meteredRepo) op(ctx context.Context, kind string, fn func() error) error {
	if r.d.opts.beforeGit != nil {
		r.d.opts.beforeGit(ctx, kind)
	}
	err := fn()
	r.d.metrics.gitOps.WithLabelValues(kind, outcome(err)).Inc()
	return err
}

func (r meteredRepo) Fetch(ctx context.Context) (head string, err error) {
	err = r.op(ctx, "fetch", func() error { head, err = r.Repo.Fetch(ctx); return err })
	return head, err
}

func (r meteredRepo) Deepen(ctx context.Context) error {
	return r.op(ctx, "deepen", func() error { return r.Repo.Deepen(ctx) })
}

func (r meteredRepo) Push(ctx context.Context, commit string) error {
	return r.op(ctx, "push", func() error { return r.Repo.Push(ctx, commit) })
}

// meteredConcourse counts the lookups the liveness witness makes.
type meteredConcourse struct {
	c *concourse.Client
	m *metrics
}

func count[T any](m *metrics, v T, err error) (T, error) {
	m.ccRequests.WithLabelValues(outcome(err)).Inc()
	return v, err
}

func (c meteredConcourse) JobBuild(ctx context.Context, p concourse.Pipeline, job, name string) (*concourse.Build, error) {
	v, err := c.c.JobBuild(ctx, p, job, name)
	return count(c.m, v, err)
}

func (c meteredConcourse) Build(ctx context.Context, id int) (*concourse.Build, error) {
	v, err := c.c.Build(ctx, id)
	return count(c.m, v, err)
}

func (c meteredConcourse) BuildResources(ctx context.Context, id int) (*concourse.BuildResources, error) {
	v, err := c.c.BuildResources(ctx, id)
	return count(c.m, v, err)
}

func (c meteredConcourse) VersionID(ctx context.Context, p concourse.Pipeline, resource, ref string) (int, error) {
	v, err := c.c.VersionID(ctx, p, resource, ref)
	return count(c.m, v, err)
}

func (c meteredConcourse) InputTo(ctx context.Context, p concourse.Pipeline, resource string, versionID int) ([]concourse.Build, error) {
	v, err := c.c.InputTo(ctx, p, resource, versionID)
	return count(c.m, v, err)
}

// sinceUnix is t as Prometheus timestamps are: seconds, fractional.
func sinceUnix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
