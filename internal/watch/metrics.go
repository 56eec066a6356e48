package watch

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	poolmetrics "github.com/poolboy-ci/poolboy/internal/metrics"
)

// metrics are the daemon's Prometheus metrics, in a registry of their own: the
// poolboy_* families (shared with the one-shot runs' push) plus Go and process.
type metrics struct {
	reg *prometheus.Registry
	*poolmetrics.PoolMetrics
}

func newMetrics(d *Daemon) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg, PoolMetrics: poolmetrics.NewPoolMetrics(reg, d.now)}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func outcome(err error) string { return poolmetrics.Outcome(err) }

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
	r.d.metrics.GitOps.WithLabelValues(kind, outcome(err)).Inc()
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

// meteredConcourse counts the lookups the liveness witness makes, and keeps
// the daemon's idea of Concourse's health.
type meteredConcourse struct {
	c liveness.Client
	d *Daemon
	h *ccHealth // this Concourse's
}

func count[T any](c meteredConcourse, v T, err error) (T, error) {
	c.d.metrics.CCRequests.WithLabelValues(outcome(err)).Inc()
	c.h.record(c.d.now(), err)
	return v, err
}

func (c meteredConcourse) JobBuild(ctx context.Context, p concourse.Pipeline, job, name string) (*concourse.Build, error) {
	v, err := c.c.JobBuild(ctx, p, job, name)
	return count(c, v, err)
}

func (c meteredConcourse) Info(ctx context.Context) (*concourse.Info, error) {
	v, err := c.c.Info(ctx)
	return count(c, v, err)
}

func (c meteredConcourse) PutResources(ctx context.Context, id int) (map[string]string, error) {
	v, err := c.c.PutResources(ctx, id)
	return count(c, v, err)
}

func (c meteredConcourse) Build(ctx context.Context, id int) (*concourse.Build, error) {
	v, err := c.c.Build(ctx, id)
	return count(c, v, err)
}

func (c meteredConcourse) BuildResources(ctx context.Context, id int) (*concourse.BuildResources, error) {
	v, err := c.c.BuildResources(ctx, id)
	return count(c, v, err)
}

func (c meteredConcourse) VersionID(ctx context.Context, p concourse.Pipeline, resource, ref string) (int, error) {
	v, err := c.c.VersionID(ctx, p, resource, ref)
	return count(c, v, err)
}

func (c meteredConcourse) InputTo(ctx context.Context, p concourse.Pipeline, resource string, versionID int) ([]concourse.Build, error) {
	v, err := c.c.InputTo(ctx, p, resource, versionID)
	return count(c, v, err)
}
