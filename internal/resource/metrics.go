package resource

import (
	"context"
	"fmt"
	"time"

	"github.com/poolboy-ci/poolboy/internal/metrics"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/redact"
)

// metricsOps are the fork's operation label values.
var metricsOps = map[string]string{
	"acquire": metrics.OpAcquire, "claim": metrics.OpClaim, "release": metrics.OpRelease,
	"add": metrics.OpAdd, "add_claimed": metrics.OpAddClaimed, "remove": metrics.OpRemove,
	"update": metrics.OpUpdate, "check": metrics.OpCheck, "check_unclaimed": metrics.OpCheckUnclaimed,
	"reap": metrics.OpReap,
}

// metricsTimeout bounds a push to the gateway: metrics never hold up a put long.
const metricsTimeout = 10 * time.Second

// pushMetrics reports the put. A failure is a warning, never a failed put: the
// lock operation has already happened.
func (o *outRun) pushMetrics(ctx context.Context, start time.Time, ans *answer) {
	gateway := o.src.PrometheusPushGateway
	if gateway == "" {
		return
	}
	m := metrics.Measurement{Pool: o.src.Pool, Branch: o.src.Branch, Operation: metricsOps[o.op], Duration: time.Since(start)}
	if o.q != nil { // an acquire or claim through the queue
		m.Queued = true
		if !o.q.since.IsZero() {
			m.QueueWait = time.Since(o.q.since)
		}
	}
	if snap, err := pool.Read(ctx, o.repo, ans.Version.Ref); err == nil {
		if p := snap.Pool(o.src.Pool); p != nil {
			m.Available, m.Claimed = len(p.Unclaimed), len(p.Claimed)
		}
	}
	pctx, cancel := context.WithTimeout(ctx, metricsTimeout)
	defer cancel()
	if err := metrics.Push(pctx, gateway, m); err != nil {
		fmt.Fprintf(o.log, "warning: could not push metrics to %s: %v\n", redact.URL(gateway), err)
	}
}
