package reaper_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// BenchmarkMassReapBusyRepo is issue #15's mass reap: 600 stale locks in one pool,
// and another user pushing an unrelated commit as clean starts and every 3 s after,
// for as long as clean runs.
// It reports the wall time until every lock is freed (once each), the pushes clean
// tried, and the other user's pushes that landed meanwhile and that lost a race.
func BenchmarkMassReapBusyRepo(b *testing.B) {
	const n = 600
	git := testenv.RequireCommand(b, "git")
	var took time.Duration
	var attempts, others, othersLost int
	for range b.N {
		b.StopTimer()
		url := massRepo(b, n)
		other := testenv.NewClone(b, url, "main")
		repo := open(b, url)
		cfg := config()
		cfg.Timeouts = policy.Timeouts{"big": time.Hour}
		cfg.Backoff = reaper.Backoff
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		landed, lost := 0, 0
		go func() {
			defer wg.Done()
			tick := time.NewTicker(3 * time.Second)
			defer tick.Stop()
			run := func(args ...string) error {
				cmd := exec.Command(git, args...)
				cmd.Dir = other.Dir
				cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=other", "GIT_AUTHOR_EMAIL=o@example.com",
					"GIT_COMMITTER_NAME=other", "GIT_COMMITTER_EMAIL=o@example.com")
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("git %s: %w: %s", args[0], err, out)
				}
				return nil
			}
			for first := true; ; first = false {
				if !first {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
				// A lost race (poolboy pushed first) is retried at the next tick.
				err := run("fetch", "-q", "origin")
				for _, args := range [][]string{{"reset", "-q", "--hard", "origin/main"}, {"commit", "-q", "--allow-empty", "-m", "unrelated"}, {"push", "-q", "origin", "HEAD:main"}} {
					if err == nil {
						err = run(args...)
					}
				}
				if err != nil {
					lost++
					continue
				}
				landed++
			}
		}()
		b.StartTimer()
		start := time.Now()
		res, err := reaper.Clean(context.Background(), repo, cfg, false)
		took += time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatalf("clean: %v", err)
		}
		seen := map[string]bool{}
		for _, f := range res.Freed {
			if seen[f.Name] {
				b.Fatalf("%s freed twice", f.Name)
			}
			seen[f.Name] = true
		}
		if len(seen) != n {
			b.Fatalf("freed %d locks, want %d", len(seen), n)
		}
		testenv.Git(b, other.Dir, "fetch", "-q", "origin")
		if got := testenv.Git(b, other.Dir, "ls-tree", "--name-only", "origin/main", "big/claimed/"); strings.TrimSpace(got) != "big/claimed/.gitkeep" {
			b.Fatalf("claimed at the end: %s", got)
		}
		attempts += res.Attempts
		others += landed
		othersLost += lost
		b.StartTimer()
	}
	b.ReportMetric(took.Seconds()/float64(b.N), "clean-s/op")
	b.ReportMetric(float64(attempts)/float64(b.N), "pushes/op")
	b.ReportMetric(float64(others)/float64(b.N), "other-pushes/op")
	b.ReportMetric(float64(othersLost)/float64(b.N), "other-lost/op")
}
