package watch

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A held lock shows on the page, /api/pools and /metrics, and is kept; a
// reaped lock of a pool with reap_to goes to the quarantine.
func TestHoldsAndQuarantineOnThePageAPIAndMetrics(t *testing.T) {
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws", "aws-dirty"}, Start: time.Now().Add(-10 * time.Hour), Ops: staleLocks(2)}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	_, err = reaper.Hold(context.Background(), repo, reaper.Config{}, "aws", "env-2", 2*time.Hour, reaper.Person{By: "ann", Reason: "debugging"})
	repo.Close()
	if err != nil {
		t.Fatal(err)
	}
	cfg := config(t, dir, time.Hour)
	cfg.Repos[0].ReapTo = map[string]string{"aws": "aws-dirty"}
	d := start(t, cfg, Options{})
	d.waitCycles(t, "locks", 1)

	if !exists(t, dir, "aws-dirty/unclaimed/env-1") || !exists(t, dir, "aws/claimed/env-2") {
		t.Errorf("after a cycle: %s", testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "main"))
	}
	_, m := d.get(t, "/metrics")
	for _, want := range []string{`poolboy_locks_on_hold{pool="aws",repo="locks"} 1`, `poolboy_locks_on_hold{pool="aws-dirty",repo="locks"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	_, api := d.get(t, "/api/pools")
	for _, want := range []string{`"on_hold": 1`, `"reap_to": "aws-dirty"`, `"verdict": "on-hold"`, `"by": "ann"`} {
		if !strings.Contains(api, want) {
			t.Errorf("/api/pools lacks %s:\n%s", want, api)
		}
	}
	_, page := d.get(t, "/")
	for _, want := range []string{`<b>1</b> on hold`, `reaps to <b>aws-dirty</b>`, `<tr class="v-on-hold">`, "by ann: debugging"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}
