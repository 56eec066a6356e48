package doctor_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/doctor"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// One claim commit took gpu/g-1 and licences/l-1 together 2h ago (one holding).
// gpu's timeout is 1h, licences' 3h: clean keeps both ("claimed together with ...
// which is kept"). A bad merge leaves g-1 in gpu/unclaimed/ too. doctor says the
// claim "has no live holder" and removes the claimed copy, while clean says the
// same claim is held.
func TestFixLeavesAClaimOfSeveralLocksToAPerson(t *testing.T) {
	testenv.RequireCommand(t, "git")
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"gpu", "licences"}, Start: now.Add(-10 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "gpu", Lock: "g-1", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Add, Pool: "licences", Lock: "l-1", At: now.Add(-9 * time.Hour)},
	}}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	url := "file://" + dir
	c := testenv.NewClone(t, url, "main")
	testenv.Git(t, c.Dir, "mv", "gpu/unclaimed/g-1", "gpu/claimed/g-1")
	testenv.Git(t, c.Dir, "mv", "licences/unclaimed/l-1", "licences/claimed/l-1")
	at := fmt.Sprintf("GIT_COMMITTER_DATE=%d +0000", now.Add(-2*time.Hour).Unix())
	msg := "main/deploy/test build 7 claiming: g-1 (+1 more)\n\nPoolboy-Build-Id: 77\n" +
		commitmsg.LockSetKey + ": gpu/g-1\n" + commitmsg.LockSetKey + ": licences/l-1\n"
	testenv.GitEnv(t, c.Dir, []string{at}, "commit", "-q", "-m", msg)
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/main")

	timeouts := policy.Timeouts{"gpu": time.Hour, "licences": 3 * time.Hour}
	st, err := reaper.Status(context.Background(), open(t, url), reaper.Config{Timeouts: timeouts})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Pools {
		for _, l := range p.Locks {
			t.Logf("clean says %s/%s: %s (%s)", p.Name, l.Name, l.Verdict.State, l.Verdict.Reason)
		}
	}
	edit(t, c, "bad merge", func(d string) { copyFile(t, d, "gpu/claimed/g-1", "gpu/unclaimed/g-1") })
	before := remoteHead(t, c)
	res, err := doctor.Fix(context.Background(), open(t, url), config(timeouts))
	if err != nil {
		t.Fatal(err)
	}
	if f := find(t, res, "gpu/claimed/g-1"); f.Fixed != "" || remoteHead(t, c) != before {
		t.Errorf("doctor freed g-1 of a holding clean keeps: %s", f.Repair)
	}
}
