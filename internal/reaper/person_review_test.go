package reaper_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// README: release "refuses, pushing nothing: ... one whose build Concourse says is
// running". A hold on the lock must not change that.
func TestReleaseRefusesAHeldLockWhoseBuildIsRunning(t *testing.T) {
	testenv.RequireCommand(t, "git")
	cc := fakeconcourse.New(t)
	cc.AddUser("reaper", "reaper-pw", "main")
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "12", Status: "started"})
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "locks.git")
	err := fixture.Build(context.Background(), dir, fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: now.Add(-2 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-time.Hour), Content: "one"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute), Message: "main/deploy/test build 12 claiming: env-1"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := liveness.Connect([]concourse.Target{{URL: cc.URL, Username: "reaper", Password: "reaper-pw"}}, liveness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config()
	cfg.Witness = w
	repo := open(t, "file://"+dir)
	if _, err := reaper.Hold(context.Background(), repo, cfg, "aws", "env-1", time.Hour, ann); err != nil {
		t.Fatal(err)
	}
	before := testenv.Git(t, dir, "rev-parse", "main")
	_, err = reaper.Release(context.Background(), repo, cfg, "aws", "env-1", ann)
	if err == nil || !strings.Contains(err.Error(), "is started") {
		t.Errorf("err = %v, want a refusal: build 12 is running", err)
	}
	if after := testenv.Git(t, dir, "rev-parse", "main"); after != before {
		t.Errorf("released a running build's lock: pushed %s", after)
	}
}

// heldThenChanged holds aws/env-1, then another clone changes the lock (edit, in
// its work tree, then commit msg) and pushes; repo has fetched it.
func heldThenChanged(t *testing.T, msg string, edit func(dir string)) (repo *gitx.Repo, other *testenv.Clone) {
	t.Helper()
	url, _ := lockRepo(t)
	other = testenv.NewClone(t, url, "main")
	repo = open(t, url)
	if _, err := reaper.Hold(context.Background(), repo, config(), "aws", "env-1", time.Hour, ann); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, other.Dir, "pull", "-q", "--ff-only", "origin", "main")
	testenv.Git(t, other.Dir, "rm", "-q", "aws/claimed/env-1")
	edit(other.Dir)
	testenv.Git(t, other.Dir, "add", "-A")
	testenv.Git(t, other.Dir, "commit", "-q", "-m", msg)
	testenv.Git(t, other.Dir, "push", "-q", "origin", "HEAD:main")
	if _, err := repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	return repo, other
}

// env-1 is removed from the pool (the upstream resource's "removing: env-1"),
// leaving its hold file behind. hold and release must refuse: the lock is not
// claimed (it does not exist).
func TestHoldAndReleaseRefuseALockGoneWithItsHoldFileLeft(t *testing.T) {
	for _, do := range []string{"hold", "release"} {
		t.Run(do, func(t *testing.T) {
			repo, other := heldThenChanged(t, "removing: env-1", func(string) {})
			before := other.RemoteHead(t)
			var err error
			if do == "hold" {
				_, err = reaper.Hold(context.Background(), repo, config(), "aws", "env-1", time.Hour, ann)
			} else {
				_, err = reaper.Release(context.Background(), repo, config(), "aws", "env-1", ann)
			}
			var refused *reaper.RefusedError
			if !errors.As(err, &refused) {
				t.Errorf("want a RefusedError (lock not claimed), got %v", err)
			}
			if after := other.RemoteHead(t); after != before {
				testenv.Git(t, other.Dir, "fetch", "-q", "origin")
				t.Errorf("pushed %s:\n%s", after, testenv.Git(t, other.Dir, "show", after))
			}
		})
	}
}

// aws/claimed/env-1 becomes a symlink (an integrity problem) after it was held:
// README: hold "refuses ... one with an integrity problem".
func TestHoldRefusesASymlinkLockWithAHoldFile(t *testing.T) {
	repo, other := heldThenChanged(t, "symlink", func(dir string) {
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "aws/claimed/env-1")); err != nil {
			t.Fatal(err)
		}
	})
	before := other.RemoteHead(t)
	_, err := reaper.Hold(context.Background(), repo, config(), "aws", "env-1", time.Hour, ann)
	var refused *reaper.RefusedError
	if !errors.As(err, &refused) {
		t.Errorf("want a RefusedError (integrity problem), got %v", err)
	}
	if after := other.RemoteHead(t); after != before {
		t.Errorf("pushed a hold on a symlink lock: %s", after)
	}
}
