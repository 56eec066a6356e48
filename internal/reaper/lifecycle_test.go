package reaper_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

var ann = reaper.Person{By: "ann", Reason: "debugging the environment"}

func lockOf(t *testing.T, rep *reaper.Report, poolName, lock string) reaper.LockReport {
	t.Helper()
	for _, p := range rep.Pools {
		for _, l := range p.Locks {
			if p.Name == poolName && l.Name == lock {
				return l
			}
		}
	}
	t.Fatalf("%s/%s is not claimed in the report", poolName, lock)
	return reaper.LockReport{}
}

// A hold keeps a stale lock through clean, says so in the report, and once it
// has expired the next clean frees the lock and deletes the hold file in the
// same commit.
func TestHoldSurvivesCleanAndExpires(t *testing.T) {
	url, now := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := open(t, url)
	cfg := config()
	cfg.Now = func() time.Time { return now }
	done, err := reaper.Hold(context.Background(), repo, cfg, "aws", "env-1", 2*time.Hour, ann)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, other.Dir, "fetch", "-q", "origin")
	hold := testenv.Git(t, other.Dir, "show", done.Commit+":"+holds.Path("aws", "env-1"))
	if !strings.Contains(hold, `"claim_commit": "`+done.Lock.ClaimCommit+`"`) || !strings.Contains(hold, `"reason": "debugging the environment"`) {
		t.Errorf("hold file:\n%s", hold)
	}

	res, err := reaper.Clean(context.Background(), repo, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-2" {
		t.Fatalf("freed %s, want only env-2 (env-1 is held)", got)
	}
	l := lockOf(t, res.Report, "aws", "env-1")
	if l.Verdict.State != policy.OnHold || !strings.Contains(l.Verdict.Reason, "by ann: debugging the environment") || l.Hold == nil {
		t.Errorf("env-1: %+v", l.Verdict)
	}
	if s := state(t, other); !s["aws/claimed/env-1"] || !s[holds.Path("aws", "env-1")] {
		t.Errorf("env-1 and its hold must stay: %v", s)
	}

	cfg.Now = func() time.Time { return now.Add(3 * time.Hour) }
	res, err = reaper.Clean(context.Background(), repo, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1,env-3" {
		t.Fatalf("freed %s after the hold expired, want env-1,env-3", got)
	}
	s := state(t, other)
	if !s["aws/unclaimed/env-1"] || s[holds.Path("aws", "env-1")] {
		t.Errorf("env-1 free and its hold file gone: %v", s)
	}
	msg := testenv.Git(t, other.Dir, "log", "-1", "--format=%B", "origin/main", "--", "aws/unclaimed/env-1")
	if !strings.Contains(msg, "the hold by ann: debugging the environment expired 1h ago") {
		t.Errorf("the reap does not say the hold expired:\n%s", msg)
	}
	// The free of env-1 also deleted the hold: one commit.
	if files := testenv.Git(t, other.Dir, "show", "--name-only", "--format=", "origin/main~1"); !strings.Contains(files, holds.Path("aws", "env-1")) {
		t.Errorf("env-1's free changed %s", files)
	}
}

// A hold keeps the claim it was taken on, not the next claim of the same lock.
func TestHoldKeepsOnlyItsClaim(t *testing.T) {
	url, now := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := open(t, url)
	cfg := config()
	if _, err := reaper.Hold(context.Background(), repo, cfg, "aws", "env-1", time.Hour, ann); err != nil {
		t.Fatal(err)
	}
	other.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "main/deploy/test build 1 unclaiming: env-1")
	old := "GIT_COMMITTER_DATE=" + now.Add(-4*time.Hour).Format(time.RFC3339)
	other.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "main/deploy/test build 7 claiming: env-1", old)
	if _, err := repo.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := reaper.Clean(context.Background(), repo, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1,env-2" {
		t.Fatalf("freed %s, want env-1 (its hold was on the old claim) and env-2", got)
	}
	if s := state(t, other); s[holds.Path("aws", "env-1")] {
		t.Errorf("the old hold file is left: %v", s)
	}
}

// Bad targets are refused in one line and push nothing.
func TestPersonRefusals(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	before := other.RemoteHead(t)
	repo := open(t, url)
	cases := []struct {
		name, pool, lock, want string
		do                     string
	}{
		{"hold free lock", "aws", "env-4", "aws/env-4 is not claimed", "hold"},
		{"hold unknown lock", "aws", "env-9", "pool aws has no lock env-9", "hold"},
		{"hold unknown pool", "gcp", "env-1", `unknown pool "gcp" (pools in the repository: aws)`, "hold"},
		{"unhold lock not held", "aws", "env-1", "aws/env-1 is not held", "unhold"},
		{"release free lock", "aws", "env-4", "aws/env-4 is not claimed", "release"},
		{"release unknown lock", "aws", "nope", "pool aws has no lock nope", "release"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			switch c.do {
			case "hold":
				_, err = reaper.Hold(context.Background(), repo, config(), c.pool, c.lock, time.Hour, ann)
			case "unhold":
				_, err = reaper.Unhold(context.Background(), repo, config(), c.pool, c.lock, ann)
			case "release":
				_, err = reaper.Release(context.Background(), repo, config(), c.pool, c.lock, ann)
			}
			if err == nil || err.Error() != c.want {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if head := other.RemoteHead(t); head != before {
				t.Errorf("pushed %s", head)
			}
		})
	}
}

// A person's release: one commit saying who and why, the lock free, its hold gone.
func TestReleaseByAPerson(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := open(t, url)
	if _, err := reaper.Hold(context.Background(), repo, config(), "aws", "env-3", time.Hour, ann); err != nil {
		t.Fatal(err)
	}
	before := other.RemoteHead(t)
	done, err := reaper.Release(context.Background(), repo, config(), "aws", "env-3", reaper.Person{By: "bob <bob@example.com>", Reason: "env rebuilt"})
	if err != nil {
		t.Fatal(err)
	}
	s := state(t, other)
	if n := testenv.Git(t, other.Dir, "rev-list", "--count", before+"..origin/main"); n != "1" {
		t.Errorf("%s commits, want 1", n)
	}
	if !s["aws/unclaimed/env-3"] || s["aws/claimed/env-3"] || s[holds.Path("aws", "env-3")] {
		t.Errorf("after release: %v", s)
	}
	msg := testenv.Git(t, other.Dir, "log", "-1", "--format=%B", done.Commit)
	for _, want := range []string{"unclaiming: env-3\n", "released by hand by bob <bob@example.com>: env rebuilt", "Poolboy-Rule: manual",
		"Poolboy-Released-By: bob <bob@example.com>", "Poolboy-Reason: env rebuilt", "Poolboy-Claim-Commit: " + done.Lock.ClaimCommit} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}

// A release that loses the race to a release and claim again refuses: the
// person asked about the old claim, and the new holder keeps the lock.
func TestReleaseRaceReclaimedIsRefused(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := &racingRepo{Repo: open(t, url)}
	repo.beforePush = func(attempt int) {
		if attempt == 1 {
			other.Move(t, "aws/claimed/env-3", "aws/unclaimed/env-3", "main/deploy/test build 3 unclaiming: env-3")
			other.Move(t, "aws/unclaimed/env-3", "aws/claimed/env-3", "main/deploy/test build 9 claiming: env-3")
		}
	}
	_, err := reaper.Release(context.Background(), repo, config(), "aws", "env-3", ann)
	var refused *reaper.RefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "released and claimed again meanwhile (now by main/deploy/test #9)") {
		t.Fatalf("err = %v", err)
	}
	if last := testenv.Git(t, other.Dir, "log", "-1", "--format=%s", "origin/main"); last != "main/deploy/test build 9 claiming: env-3" {
		t.Errorf("last commit %q", last)
	}
}

// A person cannot release a lock whose build Concourse says is running.
func TestReleaseRefusesALiveBuild(t *testing.T) {
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
	before := testenv.Git(t, dir, "rev-parse", "main")
	_, err = reaper.Release(context.Background(), open(t, "file://"+dir), cfg, "aws", "env-1", ann)
	if err == nil || !strings.Contains(err.Error(), "aws/env-1 not released: main/deploy/test #12 is started") {
		t.Fatalf("err = %v", err)
	}
	if after := testenv.Git(t, dir, "rev-parse", "main"); after != before {
		t.Errorf("pushed %s", after)
	}
}

// dirtyRepo is lockRepo with a quarantine pool aws-dirty.
func dirtyRepo(t *testing.T, dirty ...fixture.Op) string {
	t.Helper()
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	dir := filepath.Join(t.TempDir(), "locks.git")
	ops := []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: ago(9 * time.Hour), Content: "one"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: ago(9 * time.Hour), Content: "two"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: ago(5 * time.Hour), Message: "main/deploy/test build 1 claiming: env-1"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: ago(3 * time.Hour), Message: "main/deploy/test build 2 claiming: env-2"},
	}
	err := fixture.Build(context.Background(), dir, fixture.Spec{Branch: "main", Pools: []string{"aws", "aws-dirty"}, Start: ago(10 * time.Hour), Ops: append(ops, dirty...)})
	if err != nil {
		t.Fatal(err)
	}
	return "file://" + dir
}

// Reaped locks of a pool with a quarantine go to the quarantine's unclaimed/,
// one commit each, content unchanged.
func TestCleanReapsToQuarantine(t *testing.T) {
	url := dirtyRepo(t)
	other := testenv.NewClone(t, url, "main")
	cfg := config()
	cfg.ReapTo = map[string]string{"aws": "aws-dirty"}
	res, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1,env-2" {
		t.Fatalf("freed %s", got)
	}
	s := state(t, other)
	if len(s) != 2 || !s["aws-dirty/unclaimed/env-1"] || !s["aws-dirty/unclaimed/env-2"] {
		t.Errorf("after the reap: %v", s)
	}
	if c := testenv.Git(t, other.Dir, "cat-file", "-p", "origin/main:aws-dirty/unclaimed/env-1"); c != "one" {
		t.Errorf("content %q", c)
	}
	msg := testenv.Git(t, other.Dir, "log", "-1", "--format=%B", "origin/main")
	if !strings.HasPrefix(msg, "unclaiming: env-2\n\npoolboy moved this lock to pool aws-dirty, to be cleaned: held 3h") ||
		!strings.Contains(msg, "Poolboy-Reaped-To: aws-dirty\n") {
		t.Errorf("message:\n%s", msg)
	}
}

// A lock whose name the quarantine has already is broken, never moved: a move
// would make two locks of one name.
func TestCleanReapToConflictIsBroken(t *testing.T) {
	url := dirtyRepo(t, fixture.Op{Kind: fixture.Add, Pool: "aws-dirty", Lock: "env-1", At: time.Now().Add(-time.Hour), Content: "other"})
	other := testenv.NewClone(t, url, "main")
	cfg := config()
	cfg.ReapTo = map[string]string{"aws": "aws-dirty"}
	res, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-2" {
		t.Fatalf("freed %s, want only env-2", got)
	}
	if l := lockOf(t, res.Report, "aws", "env-1"); l.Verdict.State != policy.Broken || !strings.Contains(l.Verdict.Reason, "pool aws-dirty, where its reaps go, already has a lock env-1") {
		t.Errorf("env-1: %+v", l.Verdict)
	}
	if s := state(t, other); !s["aws/claimed/env-1"] || !s["aws-dirty/unclaimed/env-1"] {
		t.Errorf("after the reap: %v", s)
	}
}

// A quarantine the repository does not have is an error before anything moves.
func TestReapToUnknownPool(t *testing.T) {
	url := dirtyRepo(t)
	cfg := config()
	cfg.ReapTo = map[string]string{"aws": "aws-quarantine"}
	_, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
	var unknown *reaper.UnknownPoolError
	if !errors.As(err, &unknown) || unknown.Pool != "aws-quarantine" {
		t.Fatalf("err = %v", err)
	}
}

// Two pools reaping to one quarantine (which CheckReapTo refuses, but Config may
// still say) each with a stale lock env-1: one goes, the other is broken and stays
// claimed; no lock is lost by two becoming one file.
func TestCleanSharedQuarantineNeverMergesTwoLocks(t *testing.T) {
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	dir := filepath.Join(t.TempDir(), "locks.git")
	ops := []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: ago(9 * time.Hour), Content: "aws"},
		{Kind: fixture.Add, Pool: "gcp", Lock: "env-1", At: ago(9 * time.Hour), Content: "gcp"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: ago(5 * time.Hour), Message: "main/deploy/test build 1 claiming: env-1"},
		{Kind: fixture.Claim, Pool: "gcp", Lock: "env-1", At: ago(5 * time.Hour), Message: "main/deploy/test build 2 claiming: env-1"},
	}
	if err := fixture.Build(context.Background(), dir, fixture.Spec{Branch: "main", Pools: []string{"aws", "gcp", "dirty"}, Start: ago(10 * time.Hour), Ops: ops}); err != nil {
		t.Fatal(err)
	}
	url := "file://" + dir
	other := testenv.NewClone(t, url, "main")
	cfg := config()
	cfg.Timeouts = policy.Timeouts{"aws": time.Hour, "gcp": time.Hour}
	cfg.ReapTo = map[string]string{"aws": "dirty", "gcp": "dirty"}
	res, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Freed); n != 1 {
		t.Fatalf("freed %d locks, want 1", n)
	}
	s := state(t, other)
	if !s["dirty/unclaimed/env-1"] || s["aws/claimed/env-1"] == s["gcp/claimed/env-1"] {
		t.Errorf("after the reap: %v, want dirty/unclaimed/env-1 and one of aws, gcp still claimed", s)
	}
	kept := "gcp"
	if s["aws/claimed/env-1"] {
		kept = "aws"
	}
	if l := lockOf(t, res.Report, kept, "env-1"); l.Verdict.State != policy.Broken || !strings.Contains(l.Verdict.Reason, "to quarantine dirty") {
		t.Errorf("%s/env-1: %+v", kept, l.Verdict)
	}
}
