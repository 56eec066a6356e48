package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poolboy-ci/poolboy/internal/metrics"
	"github.com/poolboy-ci/poolboy/internal/redact"
	"github.com/poolboy-ci/poolboy/internal/report"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// pushAfter returns the function status and clean defer to push the run's metrics
// to --pushgateway-url: *doc is the run's report (nil if the run failed before
// one), *runErr its outcome. A push failure is a one-line warning on stderr and
// never changes the exit status; bad usage pushes nothing (nothing is contacted).
func (o *options) pushAfter(ctx context.Context, stderr io.Writer, start time.Time, doc **report.Doc, runErr *error) func() {
	return func() {
		var u usageError
		if o.pushURL == "" || errors.As(*runErr, &u) {
			return
		}
		repo := repoLabel(o.repo, o.password)
		reg := prometheus.NewRegistry()
		m := metrics.NewPoolMetrics(reg, nil)
		outcome := metrics.Outcome(*runErr)
		if *runErr == nil && *doc == nil {
			outcome = "error" // cannot happen: a run without error has a report
		}
		if outcome == "success" {
			d := afterClean(**doc)
			m.Observe(repo, d)
			if c := d.Clean; c != nil && !c.DryRun {
				for _, f := range c.Freed {
					m.Reaped(repo, f.Pool, f.Rule)
				}
			}
		}
		m.CycleDone(repo, start, time.Now(), outcome)
		// A success replaces the whole group; a failure replaces only the run's
		// outcome and duration, so the pools as the last successful run saw them
		// (and its last success time) stay, as on the daemon's /metrics.
		err := metrics.PushPool(context.WithoutCancel(ctx), o.pushURL, repo, reg, outcome == "success")
		if err != nil {
			fmt.Fprintf(stderr, "poolboy: warning: metrics not pushed: %s\n", term.Line(err.Error()))
		}
	}
}

// afterClean is doc's pools as a clean run left them: the locks it freed (not on
// a dry run) moved from claimed to unclaimed (their quarantine's, for a pool with
// reap_to).
func afterClean(doc report.Doc) report.Doc {
	if doc.Clean == nil || doc.Clean.DryRun || len(doc.Clean.Freed) == 0 {
		return doc
	}
	freed := map[[2]string]bool{}
	for _, f := range doc.Clean.Freed {
		freed[[2]string{f.Pool, f.Lock}] = true
	}
	arrived := map[string]int{} // pool -> locks freed into its unclaimed/
	pools := make([]report.Pool, 0, len(doc.Pools))
	for _, p := range doc.Pools {
		var locks []report.Lock
		for _, l := range p.Locks {
			if !freed[[2]string{p.Name, l.Name}] {
				locks = append(locks, l)
				continue
			}
			p.Claimed--
			to := p.Name
			if p.ReapTo != "" {
				to = p.ReapTo
			}
			arrived[to]++
			if l.Verdict == "stale" && p.Stale > 0 {
				p.Stale--
			}
		}
		p.Locks = locks
		pools = append(pools, p)
	}
	for i := range pools {
		pools[i].Unclaimed += arrived[pools[i].Name]
	}
	doc.Pools = pools
	return doc
}

// repoLabel is the repo label of the pushed metrics: the repository URL without
// its user information (a token or password may be in it) nor password. (The
// daemon labels with each repo's configured name; a one-shot run has none.)
func repoLabel(repo, password string) string {
	s := strings.TrimSpace(repo)
	if u := redact.SplitURL(s); u.Scheme != "" {
		s = u.WithoutUserinfo()
	}
	return redact.New(password).String(s)
}
