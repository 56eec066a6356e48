package doctor_test

import (
	"context"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/doctor"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// A person holds env-1 (claimed 5h ago, past aws's 1h timeout) on purpose; then a
// bad merge leaves a copy of it in unclaimed/ too. clean would say "on-hold", not
// stale: doctor --fix must not free the held claim.
func TestFixKeepsAHeldClaimOfALockInBothStates(t *testing.T) {
	url, person := remote(t)
	rcfg := reaper.Config{Timeouts: policy.Timeouts{"aws": time.Hour}, Backoff: func(int) time.Duration { return 0 }}
	if _, err := reaper.Hold(context.Background(), open(t, url), rcfg, "aws", "env-1", 4*time.Hour, reaper.Person{By: "ann", Reason: "debugging"}); err != nil {
		t.Fatal(err)
	}
	edit(t, person, "oops", func(dir string) { copyFile(t, dir, "aws/claimed/env-1", "aws/unclaimed/env-1") })
	before := remoteHead(t, person)
	res, err := doctor.Fix(context.Background(), open(t, url), config(policy.Timeouts{"aws": time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	f := find(t, res, "aws/claimed/env-1")
	if f.Fixed != "" || remoteHead(t, person) != before {
		t.Errorf("doctor removed the claimed copy of a lock held until later by ann: %s", f.Repair)
	}
	if !files(t, person)[holds.Path("aws", "env-1")] {
		t.Log("hold file left behind")
	}
}

// aws/claimed/.gitkeep is a directory with a file in it (not a lock: its name
// starts with '.'). doctor reports "missing .gitkeep" and its "add (empty; never a
// lock)" replaces the directory, deleting what it held.
func TestFixNeverWritesAGitkeepOverADirectory(t *testing.T) {
	url, person := remote(t)
	edit(t, person, "notes", func(dir string) {
		remove(t, dir, "aws/claimed/.gitkeep")
		write(t, dir, "aws/claimed/.gitkeep/notes.txt", "important notes")
	})
	res, err := doctor.Fix(context.Background(), open(t, url), config(policy.Timeouts{"aws": time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Findings {
		t.Logf("finding %s: %s fixed=%s", f.Path, f.Problem, f.Fixed)
	}
	if !files(t, person)["aws/claimed/.gitkeep/notes.txt"] {
		t.Errorf("doctor --fix deleted aws/claimed/.gitkeep/notes.txt")
	}
}
