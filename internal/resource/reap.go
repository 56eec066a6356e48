package resource

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// witness asks the Concourses of the source (concourse_url, concourse_targets);
// nil when none is configured.
func (o *outRun) witness(opts liveness.Options) (*liveness.Witness, error) {
	targets := o.src.concourseTargets()
	if len(targets) == 0 {
		return nil, nil
	}
	w, err := liveness.Connect(targets, opts)
	if err != nil {
		return nil, fmt.Errorf("invalid payload: %w", err)
	}
	return w, nil
}

// reap runs the pool boy's clean on this pool only: stale locks (by
// source.stale_timeout, and by Concourse's word on their builds when
// source.concourse_url is set) are freed, one commit each. The answer is the
// resulting head; lock_name lists the freed locks, comma-separated.
func (o *outRun) reap(ctx context.Context) (*answer, error) {
	log := slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := reaper.Config{
		Timeouts:      policy.Timeouts{o.src.Pool: time.Duration(o.src.StaleTimeout)},
		ReapSucceeded: map[string]bool{o.src.Pool: o.src.ReapOnSuccess},
		Log:           log,
	}
	to := ""
	if o.src.ReapTo != "" {
		cfg.ReapTo = map[string]string{o.src.Pool: o.src.ReapTo}
		to = " to pool " + o.src.ReapTo
	}
	w, err := o.witness(liveness.Options{Log: log})
	if err != nil {
		return nil, err
	}
	if w != nil {
		// Only a non-nil Witness goes into the interface: a nil pointer in it would
		// look like a configured Concourse.
		cfg.Witness = w
	}
	head, err := o.repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := pool.Read(ctx, o.repo, head)
	if err != nil {
		return nil, err
	}
	if _, err := poolIn(snap, o.src.Pool, o.src.Branch); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.log, "reaping stale locks of pool: %s%s (stale after %s)\n", o.src.Pool, to, policy.Human(time.Duration(o.src.StaleTimeout)))
	res, err := reaper.Clean(ctx, o.repo, cfg, false)
	var freed []string
	if res != nil { // also when Clean gave up: the batches that landed are freed
		for _, f := range res.Freed {
			freed = append(freed, f.Name)
			fmt.Fprintf(o.log, "freed lock %s: %s (%s)\n", f.Name, oneLine(f.Verdict.Reason), f.Commit)
		}
		for _, d := range res.Tickets {
			fmt.Fprintf(o.log, "deleted queue ticket %s of %s: %s (%s)\n", d.Ticket.ID, oneLine(d.Ticket.Holder.Owner().String()), oneLine(d.Verdict.Reason), d.Commit)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(freed) == 0 {
		fmt.Fprintf(o.log, "no stale lock in pool %s\n", o.src.Pool)
	}
	if head, err = o.repo.Head(ctx); err != nil {
		return nil, err
	}
	return o.answer(head, strings.Join(freed, ",")), nil
}
