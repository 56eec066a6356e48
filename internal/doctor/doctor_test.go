package doctor_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/doctor"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

const (
	oldClaim   = "main/deploy/test build 1 claiming: env-1" // 5h ago
	freshClaim = "main/deploy/test build 2 claiming: env-2" // 10m ago
)

// remote builds pool aws (env-1 claimed 5h ago, env-2 claimed 10m ago, env-3 and
// env-4 free) and gpu (gpu-a free), and a clone in which a test breaks it by hand,
// as people do.
func remote(t *testing.T) (url string, person *testenv.Clone) {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws", "gpu"}, Start: ago(10 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: ago(9 * time.Hour), Content: "one"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: ago(9 * time.Hour), Content: "two"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-3", At: ago(9 * time.Hour), Content: "three"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: ago(9 * time.Hour), Content: "four"},
		{Kind: fixture.Add, Pool: "gpu", Lock: "gpu-a", At: ago(9 * time.Hour), Content: "a"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: ago(5 * time.Hour), Message: oldClaim},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: ago(10 * time.Minute), Message: freshClaim},
	}}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	url = "file://" + dir
	return url, testenv.NewClone(t, url, "main")
}

// edit runs shell-free edits in the person's clone, commits them with msg and pushes.
func edit(t *testing.T, c *testenv.Clone, msg string, f func(dir string)) string {
	t.Helper()
	testenv.Git(t, c.Dir, "pull", "-q", "--ff-only", "origin", "main")
	f(c.Dir)
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", msg)
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
	return testenv.Git(t, c.Dir, "rev-parse", "HEAD")
}

func copyFile(t *testing.T, dir, from, to string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, from))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, to, string(b))
}

func write(t *testing.T, dir, path, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, dir, path string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(path))); err != nil {
		t.Fatal(err)
	}
}

func open(t *testing.T, url string) *gitx.Repo {
	t.Helper()
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return repo
}

func config(timeouts policy.Timeouts) doctor.Config {
	return doctor.Config{Timeouts: timeouts, Backoff: func(int) time.Duration { return 0 }}
}

// files lists the remote's paths at its head.
func files(t *testing.T, c *testenv.Clone) map[string]bool {
	t.Helper()
	testenv.Git(t, c.Dir, "fetch", "-q", "origin")
	set := map[string]bool{}
	for _, p := range strings.Split(testenv.Git(t, c.Dir, "ls-tree", "-r", "--name-only", "origin/main"), "\n") {
		set[p] = true
	}
	return set
}

// count is the number of commits from..to of the remote.
func count(t *testing.T, c *testenv.Clone, from, to string) string {
	t.Helper()
	testenv.Git(t, c.Dir, "fetch", "-q", "origin")
	return testenv.Git(t, c.Dir, "rev-list", "--count", from+".."+to)
}

func remoteHead(t *testing.T, c *testenv.Clone) string {
	t.Helper()
	return c.RemoteHead(t)
}

// fixTwice runs Fix, then Check on a fresh mirror: the second run must find nothing
// (--fix is idempotent), and must push nothing.
func fixTwice(t *testing.T, url string, person *testenv.Clone, cfg doctor.Config) *doctor.Result {
	t.Helper()
	res, err := doctor.Fix(context.Background(), open(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	head := remoteHead(t, person)
	again, err := doctor.Fix(context.Background(), open(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Findings) != 0 || again.Attempts != 0 {
		t.Errorf("a second --fix found %+v (%d pushes), want nothing", again.Findings, again.Attempts)
	}
	if remoteHead(t, person) != head {
		t.Error("a second --fix pushed")
	}
	return res
}

// find returns the finding about path.
func find(t *testing.T, res *doctor.Result, path string) doctor.Finding {
	t.Helper()
	for _, f := range res.Findings {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no finding about %s in %+v", path, res.Findings)
	return doctor.Finding{}
}

// commitMsg is the full message of a commit of the remote.
func commitMsg(t *testing.T, c *testenv.Clone, commit string) string {
	t.Helper()
	return testenv.Git(t, c.Dir, "log", "-1", "--format=%B", commit)
}

func TestHealthyRepositoryHasNoProblems(t *testing.T) {
	t.Parallel()
	url, person := remote(t)
	before := remoteHead(t, person)
	res, err := doctor.Fix(context.Background(), open(t, url), config(policy.Timeouts{"aws": time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 0 || res.Left() != 0 || remoteHead(t, person) != before {
		t.Errorf("findings %+v on a healthy repository", res.Findings)
	}
}

// Issue 17.2: a lock in both states whose claimed copy is past the pool's
// timeout has no live holder: --fix removes the claimed copy, in one commit
// saying why, and the history names the commit that made the copy.
func TestFixBothStatesPastTimeout(t *testing.T) {
	t.Parallel()
	url, person := remote(t)
	culprit := edit(t, person, "put env-1 back by hand", func(dir string) { copyFile(t, dir, "aws/claimed/env-1", "aws/unclaimed/env-1") })
	before := remoteHead(t, person)

	res := fixTwice(t, url, person, config(policy.Timeouts{"aws": time.Hour}))
	f := find(t, res, "aws/claimed/env-1")
	if f.Fixed == "" || !strings.Contains(f.Repair, "longer than the pool's 1h timeout") {
		t.Fatalf("finding %+v, want the claimed copy removed for its timeout", f)
	}
	var sawCulprit bool
	for _, c := range f.History {
		sawCulprit = sawCulprit || (c.Commit == culprit && c.Path == "aws/unclaimed/env-1")
	}
	if !sawCulprit {
		t.Errorf("history %+v does not name %s, which made the free copy", f.History, culprit)
	}
	if n := count(t, person, before, f.Fixed); n != "1" {
		t.Errorf("%s commits, want 1", n)
	}
	msg := commitMsg(t, person, f.Fixed)
	for _, want := range []string{"unclaiming: env-1\n", "no live holder", "Poolboy-Doctor: both-states"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	got := files(t, person)
	if got["aws/claimed/env-1"] || !got["aws/unclaimed/env-1"] {
		t.Errorf("after --fix: %v, want env-1 only in unclaimed/", got)
	}
}

// Issue 17.2: the claimed copy is 10 minutes old, within the timeout. Without
// evidence nobody can say it is not held: left alone. With Concourse saying its
// build failed, it has no live holder: repaired. With its build running: left.
func TestBothStatesNeedsEvidence(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (string, *testenv.Clone) {
		url, person := remote(t)
		edit(t, person, "copy env-2 by hand", func(dir string) { copyFile(t, dir, "aws/claimed/env-2", "aws/unclaimed/env-2") })
		return url, person
	}
	witness := func(t *testing.T, status string) doctor.Witness {
		cc := fakeconcourse.New(t)
		cc.AddUser("doctor", "doctor-pw", "main")
		cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "2", Status: status})
		w, err := liveness.Connect([]concourse.Target{{URL: cc.URL, Username: "doctor", Password: "doctor-pw"}}, liveness.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Run("no evidence: ambiguous, nothing pushed", func(t *testing.T) {
		t.Parallel()
		url, person := setup(t)
		before := remoteHead(t, person)
		res, err := doctor.Fix(context.Background(), open(t, url), config(policy.Timeouts{"aws": time.Hour}))
		if err != nil {
			t.Fatal(err)
		}
		f := find(t, res, "aws/claimed/env-2")
		if f.Fixed != "" || f.Repair != "" || !strings.Contains(f.Ambiguous, "may still be held") || res.Left() != 1 {
			t.Errorf("finding %+v, want it left for a person", f)
		}
		if !strings.Contains(strings.Join(f.Commands, "\n"), "git rm -q -- 'aws/unclaimed/env-2'") {
			t.Errorf("commands %q do not resolve it", f.Commands)
		}
		if remoteHead(t, person) != before {
			t.Error("an ambiguous problem was repaired")
		}
	})
	t.Run("build failed: repaired", func(t *testing.T) {
		t.Parallel()
		url, person := setup(t)
		cfg := config(policy.Timeouts{"aws": time.Hour})
		cfg.Witness = witness(t, "failed")
		f := find(t, fixTwice(t, url, person, cfg), "aws/claimed/env-2")
		if f.Fixed == "" || !strings.Contains(f.Repair, "failed") {
			t.Fatalf("finding %+v, want repaired on the build's failure", f)
		}
		if got := files(t, person); got["aws/claimed/env-2"] || !got["aws/unclaimed/env-2"] {
			t.Errorf("after --fix: %v", got)
		}
	})
	t.Run("build running, past the timeout: left", func(t *testing.T) {
		t.Parallel()
		url, person := setup(t)
		before := remoteHead(t, person)
		cfg := config(policy.Timeouts{"aws": time.Minute})
		cfg.Witness = witness(t, "started")
		res, err := doctor.Fix(context.Background(), open(t, url), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if f := find(t, res, "aws/claimed/env-2"); f.Fixed != "" || f.Ambiguous == "" {
			t.Errorf("finding %+v, want a running build's claim left alone", f)
		}
		if remoteHead(t, person) != before {
			t.Error("a running build's claimed copy was removed")
		}
	})
}

// Issue 17.2: the copies differ: which content is the lock's is for a person.
func TestBothStatesWithDifferentContentIsLeft(t *testing.T) {
	t.Parallel()
	url, person := remote(t)
	edit(t, person, "env-1 by hand", func(dir string) { write(t, dir, "aws/unclaimed/env-1", "other") })
	before := remoteHead(t, person)
	res, err := doctor.Fix(context.Background(), open(t, url), config(policy.Timeouts{"aws": time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if f := find(t, res, "aws/claimed/env-1"); f.Fixed != "" || !strings.Contains(f.Ambiguous, "differ") {
		t.Errorf("finding %+v, want left: the copies differ", f)
	}
	if remoteHead(t, person) != before {
		t.Error("pushed")
	}
}

// Issue 17.2: a missing .gitkeep, and a pool that lost its claimed/ (its last
// lock and .gitkeep left it): each added back in its own commit; the history
// names the commit that removed it.
func TestFixMissingGitkeepAndDirectory(t *testing.T) {
	t.Parallel()
	url, person := remote(t)
	culprit := edit(t, person, "tidy up", func(dir string) {
		remove(t, dir, "aws/unclaimed/.gitkeep")
		remove(t, dir, "gpu/claimed")
	})
	before := remoteHead(t, person)
	res := fixTwice(t, url, person, config(nil))
	keep, dir := find(t, res, "aws/unclaimed/.gitkeep"), find(t, res, "gpu/claimed")
	for _, f := range []doctor.Finding{keep, dir} {
		if f.Fixed == "" {
			t.Errorf("%s not repaired: %+v", f.Path, f)
		}
		if len(f.History) == 0 || f.History[0].Commit != culprit {
			t.Errorf("%s: history %+v, want %s", f.Path, f.History, culprit)
		}
	}
	if n := count(t, person, before, "origin/main"); n != "2" {
		t.Errorf("%s commits, want one per repair (2)", n)
	}
	got := files(t, person)
	if !got["aws/unclaimed/.gitkeep"] || !got["gpu/claimed/.gitkeep"] {
		t.Errorf("after --fix: %v", got)
	}
	if msg := commitMsg(t, person, dir.Fixed); !strings.Contains(msg, "Poolboy-Doctor: missing-claimed") {
		t.Errorf("commit message:\n%s", msg)
	}
}

// Issue 17.2: ambiguous problems are listed with the commit that made them and
// the commands that resolve them, and nothing is pushed: a top-level directory
// with neither claimed/ nor unclaimed/ (maybe not a pool), a symlink where a lock
// should be, and a lock claimed on two branches that were merged.
func TestAmbiguousProblemsAreLeft(t *testing.T) {
	t.Parallel()
	url, person := remote(t)
	edit(t, person, "add docs", func(dir string) { write(t, dir, "docs/README", "not a pool") })
	edit(t, person, "a link", func(dir string) {
		if err := os.Symlink("/etc/passwd", filepath.Join(dir, "gpu/unclaimed/gpu-b")); err != nil {
			t.Fatal(err)
		}
	})
	// env-3 is claimed on the branch and, independently, in another clone; merged.
	other := testenv.NewClone(t, url, "main")
	edit(t, person, "main/deploy/test build 7 claiming: env-3", func(dir string) {
		testenv.Git(t, dir, "mv", "aws/unclaimed/env-3", "aws/claimed/env-3")
	})
	testenv.Git(t, other.Dir, "mv", "aws/unclaimed/env-3", "aws/claimed/env-3")
	testenv.Git(t, other.Dir, "commit", "-q", "-m", "main/other/job build 3 claiming: env-3")
	testenv.Git(t, other.Dir, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
	testenv.Git(t, other.Dir, "push", "-q", "origin", "HEAD:main")
	before := remoteHead(t, person)

	res, err := doctor.Fix(context.Background(), open(t, url), config(policy.Timeouts{"aws": time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if remoteHead(t, person) != before || res.Attempts != 0 {
		t.Fatal("ambiguous problems were repaired")
	}
	if res.Left() != 3 || len(res.Findings) != 3 {
		t.Errorf("findings %+v, want 3 left", res.Findings)
	}
	conflict := find(t, res, "aws/claimed/env-3")
	if len(conflict.History) != 2 || !strings.Contains(conflict.Problem, "independently") {
		t.Errorf("conflict %+v, want both claims in its history", conflict)
	}
	for _, f := range res.Findings {
		if f.Ambiguous == "" || len(f.Commands) == 0 || len(f.History) == 0 {
			t.Errorf("%s: %+v, want why, history and commands", f.Path, f)
		}
	}
	if f := find(t, res, "docs"); !strings.Contains(strings.Join(f.Commands, "\n"), "touch -- 'docs/claimed/.gitkeep'") {
		t.Errorf("docs commands: %q", f.Commands)
	}
}

// racingRepo lets another user of the lock repository push between the doctor's
// fetch and its push.
type racingRepo struct {
	*gitx.Repo
	beforePush func(attempt int)
	pushes     int
}

func (r *racingRepo) Push(ctx context.Context, commit string) error {
	r.pushes++
	r.beforePush(r.pushes)
	return r.Repo.Push(ctx, commit)
}

// Issue 17.2: a lost race is decided again on the new state. While the doctor
// repairs a .gitkeep and a lock in both states, a person fixes the lock by hand
// (removing the free copy) and pushes first: the doctor repairs only the
// .gitkeep, and the lock stays as the person left it.
func TestFixLostRaceDecidesAgain(t *testing.T) {
	t.Parallel()
	url, person := remote(t)
	edit(t, person, "break it", func(dir string) {
		copyFile(t, dir, "aws/claimed/env-1", "aws/unclaimed/env-1")
		remove(t, dir, "aws/claimed/.gitkeep")
	})
	var byHand string
	repo := &racingRepo{Repo: open(t, url), beforePush: func(attempt int) {
		if attempt == 1 {
			byHand = edit(t, person, "env-1 is held: drop the free copy", func(dir string) { remove(t, dir, "aws/unclaimed/env-1") })
		}
	}}
	res, err := doctor.Fix(context.Background(), repo, config(policy.Timeouts{"aws": time.Hour}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 || repo.pushes != 2 {
		t.Errorf("attempts %d, pushes %d; want 2 (one lost race)", res.Attempts, repo.pushes)
	}
	if len(res.Findings) != 1 || res.Findings[0].Path != "aws/claimed/.gitkeep" || res.Findings[0].Fixed == "" {
		t.Fatalf("findings %+v, want only the .gitkeep, repaired", res.Findings)
	}
	if n := count(t, person, byHand, res.Findings[0].Fixed); n != "1" {
		t.Errorf("the repair is %s commits after the person's, want 1 (built on it)", n)
	}
	if parent := testenv.Git(t, person.Dir, "rev-parse", res.Findings[0].Fixed+"^"); parent != byHand {
		t.Errorf("the repair was built on %s, want the person's %s", parent, byHand)
	}
	got := files(t, person)
	if !got["aws/claimed/env-1"] || got["aws/unclaimed/env-1"] || !got["aws/claimed/.gitkeep"] {
		t.Errorf("after the race: %v", got)
	}
}
