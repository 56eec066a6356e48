package resource

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// TestConcurrentAcquiresNeverShareALock runs 8 builds at once on a pool of 3
// locks, each acquiring, fetching its lock as Concourse would, and releasing it.
// Every build must get a lock, and the history must show each lock claimed only
// while free and released by the build that claimed it.
func TestConcurrentAcquiresNeverShareALock(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"},
		lock{pool: "aws", name: "env-1"}, lock{pool: "aws", name: "env-2"}, lock{pool: "aws", name: "env-3"})
	start := head(t, bare)
	const builds = 8
	var wg sync.WaitGroup
	errs := make([]error, builds)
	var mu sync.Mutex
	races, waits := 0, 0
	for i := range builds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := map[string]string{"BUILD_ID": fmt.Sprint(100 + i), "BUILD_NAME": fmt.Sprint(i), "BUILD_TEAM_NAME": "main",
				"BUILD_PIPELINE_NAME": "ci", "BUILD_JOB_NAME": "test"}
			dir := t.TempDir()
			s := src(fileURL(bare))
			acq, err := out(t, context.Background(), dir, s, map[string]any{"acquire": true}, env, nil)
			if err != nil {
				errs[i] = fmt.Errorf("acquire: %v\n%s", err, acq.log)
				return
			}
			mu.Lock()
			races += strings.Count(acq.log, "someone else pushed first")
			waits += strings.Count(acq.log, "no lock available")
			mu.Unlock()
			if _, err := in(t, dir+"/lock", s, acq.Version.Ref, nil); err != nil {
				errs[i] = fmt.Errorf("in: %v", err)
				return
			}
			if rel, err := out(t, context.Background(), dir, s, map[string]any{"release": "lock"}, env, nil); err != nil {
				errs[i] = fmt.Errorf("release: %v\n%s", err, rel.log)
			}
		}()
	}
	wg.Wait()
	t.Logf("acquires lost %d push races and waited %d times", races, waits)
	for i, err := range errs {
		if err != nil {
			t.Errorf("build %d: %v", i, err)
		}
	}

	if merges := testenv.Git(t, bare, "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("history has merges: %s", merges)
	}
	commits := strings.Fields(testenv.Git(t, bare, "rev-list", "--reverse", start+"..main"))
	holder := map[string]string{} // lock -> build holding it
	ops := 0
	for _, c := range commits {
		msg := message(t, bare, c)
		if strings.Contains(msg, "queueing: aws\n") || strings.Contains(msg, "renewing queue ticket: aws\n") {
			if files := testenv.Git(t, bare, "diff-tree", "--no-commit-id", "--name-only", "-r", c); !strings.HasPrefix(files, ".poolboy-queue/aws/") || strings.Contains(files, "\n") {
				t.Errorf("%s: a queue commit changed %q", c, files)
			}
			continue
		}
		ops++
		m := commitmsg.Parse(msg)
		build := m.Owner.Build
		switch m.Op {
		case commitmsg.OpClaim:
			if h, held := holder[m.Lock]; held {
				t.Errorf("%s: build %s claims %s, held by build %s", c, build, m.Lock, h)
			}
			holder[m.Lock] = build
		case commitmsg.OpUnclaim:
			if h := holder[m.Lock]; h != build {
				t.Errorf("%s: build %s releases %s, held by build %q", c, build, m.Lock, h)
			}
			delete(holder, m.Lock)
		default:
			t.Errorf("%s: unexpected commit %+v", c, m)
		}
	}
	if len(holder) != 0 {
		t.Errorf("still held at the end: %v", holder)
	}
	if ops != 2*builds {
		t.Errorf("%d lock commits, want %d (a claim and a release per build)", ops, 2*builds)
	}
	wantTree(t, bare, "aws/unclaimed/env-1", "aws/unclaimed/env-2", "aws/unclaimed/env-3")
}
