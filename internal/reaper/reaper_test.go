package reaper_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// racingRepo lets another user of the lock repository push between poolboy's fetch
// and its push: the moment a real race happens.
type racingRepo struct {
	*gitx.Repo
	beforePush func(attempt int)
	pushes     int
}

func (r *racingRepo) Push(ctx context.Context, commit string) error {
	r.pushes++
	if r.beforePush != nil {
		r.beforePush(r.pushes)
	}
	return r.Repo.Push(ctx, commit)
}

// lockRepo builds a remote with pool aws: env-1 claimed 5h ago, env-2 claimed 3h
// ago (both stale at 1h), env-3 claimed 10m ago (held), env-4 free.
func lockRepo(t *testing.T) (url string, now time.Time) {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now = time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: ago(10 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: ago(9 * time.Hour), Content: "one"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: ago(9 * time.Hour), Content: "two"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-3", At: ago(9 * time.Hour), Content: "three"},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: ago(9 * time.Hour), Content: "four"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: ago(5 * time.Hour), Message: "main/deploy/test build 1 claiming: env-1"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: ago(3 * time.Hour), Message: "main/deploy/test build 2 claiming: env-2"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: ago(10 * time.Minute), Message: "main/deploy/test build 3 claiming: env-3"},
	}}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir, now
}

func open(t testing.TB, url string) *gitx.Repo {
	t.Helper()
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	return repo
}

func config() reaper.Config {
	return reaper.Config{
		Timeouts: policy.Timeouts{"aws": time.Hour},
		Backoff:  func(int) time.Duration { return 0 },
	}
}

// configs are config() without and with an index of the claims kept in memory.
func configs() map[string]reaper.Config {
	indexed := config()
	indexed.Index = claims.OpenIndex("")
	return map[string]reaper.Config{"walk": config(), "index": indexed}
}

// state lists "pool/state/lock" paths at the remote's head.
func state(t *testing.T, c *testenv.Clone) map[string]bool {
	t.Helper()
	testenv.Git(t, c.Dir, "fetch", "-q", "origin")
	out := testenv.Git(t, c.Dir, "ls-tree", "-r", "--name-only", "origin/main")
	set := map[string]bool{}
	for _, p := range strings.Split(out, "\n") {
		if !strings.HasSuffix(p, ".gitkeep") {
			set[p] = true
		}
	}
	return set
}

func freedNames(res *reaper.Result) []string {
	var names []string
	for _, f := range res.Freed {
		names = append(names, f.Name)
	}
	return names
}

func TestCleanFreesStaleLocksOneCommitEach(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	before := other.RemoteHead(t)

	res, err := reaper.Clean(context.Background(), open(t, url), config(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1,env-2" {
		t.Fatalf("freed %s, want env-1,env-2", got)
	}
	s := state(t, other)
	for _, p := range []string{"aws/unclaimed/env-1", "aws/unclaimed/env-2", "aws/claimed/env-3", "aws/unclaimed/env-4"} {
		if !s[p] {
			t.Errorf("want %s, have %v", p, s)
		}
	}
	if len(s) != 4 {
		t.Errorf("want exactly 4 locks, have %v", s)
	}
	subjects := testenv.Git(t, other.Dir, "log", "--format=%s", before+"..origin/main")
	if subjects != "unclaiming: env-2\nunclaiming: env-1" {
		t.Errorf("commits since the old head:\n%s", subjects)
	}
	testenv.Git(t, other.Dir, "merge-base", "--is-ancestor", before, "origin/main")
	if c := testenv.Git(t, other.Dir, "cat-file", "-p", "origin/main:aws/unclaimed/env-1"); c != "one" {
		t.Errorf("content of env-1 changed to %q", c)
	}
}

// The race the issue names: between poolboy's fetch and its push, another clone
// releases a stale lock and claims it again. The push is rejected; poolboy must
// decide again from the new state and must not free the fresh claim.
// With an index of the claims (as watch and a cached clone use), the new claim
// comes from the commits since the index's head, never from the index.
func TestCleanRaceReclaimedLockIsKept(t *testing.T) {
	for name, cfg := range configs() {
		t.Run(name, func(t *testing.T) { testCleanRaceReclaimedLockIsKept(t, cfg) })
	}
}

func testCleanRaceReclaimedLockIsKept(t *testing.T, cfg reaper.Config) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := &racingRepo{Repo: open(t, url)}
	repo.beforePush = func(attempt int) {
		if attempt == 1 {
			other.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "main/deploy/test build 1 unclaiming: env-1")
			other.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "main/deploy/test build 9 claiming: env-1")
		}
	}
	res, err := reaper.Clean(context.Background(), repo, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 2 {
		t.Errorf("attempts = %d, want 2 (one lost race)", res.Attempts)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-2" {
		t.Fatalf("freed %s, want only env-2", got)
	}
	s := state(t, other)
	if !s["aws/claimed/env-1"] || s["aws/unclaimed/env-1"] {
		t.Errorf("re-claimed env-1 must stay claimed: %v", s)
	}
	last := testenv.Git(t, other.Dir, "log", "-1", "--format=%s", "origin/main", "--", "aws/claimed/env-1")
	if last != "main/deploy/test build 9 claiming: env-1" {
		t.Errorf("last change to env-1 is %q", last)
	}
	for _, l := range res.Report.Pools[0].Locks {
		if l.Name == "env-1" && (l.Verdict.State != policy.Held || l.Owner.Build != "9") {
			t.Errorf("env-1 decided on stale evidence: %+v", l)
		}
	}
}

// Released meanwhile: the lock is free already, so poolboy must not free it again
// (which would duplicate or clobber it) and must still free the others.
func TestCleanRaceReleasedLockIsNotFreedTwice(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := &racingRepo{Repo: open(t, url)}
	repo.beforePush = func(attempt int) {
		if attempt == 1 {
			other.Move(t, "aws/claimed/env-2", "aws/unclaimed/env-2", "main/deploy/test build 2 unclaiming: env-2")
		}
	}
	res, err := reaper.Clean(context.Background(), repo, config(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1" {
		t.Fatalf("freed %s, want only env-1", got)
	}
	n := testenv.Git(t, other.Dir, "log", "--format=%s", "origin/main", "--grep=unclaiming: env-2")
	if n != "main/deploy/test build 2 unclaiming: env-2" {
		t.Errorf("env-2 released by: %q", n)
	}
}

// Someone always pushes first: bounded attempts, then a clear error, nothing pushed.
func TestCleanGivesUpAfterMaxAttempts(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	repo := &racingRepo{Repo: open(t, url)}
	repo.beforePush = func(attempt int) {
		// Churn a fresh lock so the stale ones stay stale but the branch moves.
		from, to := "aws/unclaimed/env-4", "aws/claimed/env-4"
		if attempt%2 == 0 {
			from, to = to, from
		}
		other.Move(t, from, to, "churn")
	}
	cfg := config()
	cfg.MaxAttempts = 3
	_, err := reaper.Clean(context.Background(), repo, cfg, false)
	if !errors.Is(err, gitx.ErrRejected) || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if repo.pushes != 3 {
		t.Errorf("pushes = %d, want 3", repo.pushes)
	}
	if n := testenv.Git(t, other.Dir, "log", "--format=%s", "origin/main", "--author=poolboy"); n != "" {
		t.Errorf("poolboy pushed: %q", n)
	}
}

func TestCleanDryRunPushesNothing(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	before := other.RemoteHead(t)
	repo := &racingRepo{Repo: open(t, url)}
	res, err := reaper.Clean(context.Background(), repo, config(), true)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1,env-2" || !res.DryRun {
		t.Fatalf("dry run planned %s", got)
	}
	if repo.pushes != 0 || other.RemoteHead(t) != before {
		t.Errorf("dry run pushed")
	}
}

func TestUnknownPoolListsExisting(t *testing.T) {
	url, _ := lockRepo(t)
	cfg := config()
	cfg.Timeouts["gpu"] = time.Hour
	_, err := reaper.Status(context.Background(), open(t, url), cfg)
	var unknown *reaper.UnknownPoolError
	if !errors.As(err, &unknown) || unknown.Pool != "gpu" || err.Error() != `unknown pool "gpu" (pools in the repository: aws)` {
		t.Fatalf("err = %v", err)
	}
}

// A shallow mirror is deepened until every claim is found: the ancient claim's age
// must come from its real claim commit, not the shallow boundary.
func TestStatusDeepensShallowClone(t *testing.T) {
	testenv.RequireCommand(t, "git")
	now := time.Now()
	spec, err := fixture.Synthetic(2, 5, 4, 2, 400, now)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: "file://" + dir, Depth: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	rep, err := reaper.Status(context.Background(), repo, reaper.Config{Timeouts: policy.Timeouts{}})
	if err != nil {
		t.Fatal(err)
	}
	var ancient int
	for _, p := range rep.Pools {
		for _, l := range p.Locks {
			if l.ClaimCommit == "" {
				t.Errorf("%s/%s: claim not found", p.Name, l.Name)
			}
			want := testenv.Git(t, dir, "log", "-1", "--format=%H", "--diff-filter=A", "main", "--", p.Name+"/claimed/"+l.Name)
			if l.ClaimCommit != want {
				t.Errorf("%s/%s: claim %s, want %s", p.Name, l.Name, l.ClaimCommit, want)
			}
			if l.Owner.Pipeline == "ancient" {
				ancient++
			}
		}
	}
	if ancient != 2 {
		t.Errorf("found %d ancient claims, want 2", ancient)
	}
}

// People edit lock repositories with plain git: a person's `git pull` merges their
// old side (where env-1 still shows its 5-hour-old claim) as the first parent, while
// on the branch env-1 was released and claimed again a minute ago. clean must judge
// the new claim (held), not the old one (stale); and a lock claimed on two merged
// branches is broken, never freed.
func TestCleanMergedHistory(t *testing.T) {
	url, now := lockRepo(t)
	person := testenv.NewClone(t, url, "main")
	testenv.Git(t, person.Dir, "commit", "-q", "--allow-empty", "-m", "a person's notes")

	ci := testenv.NewClone(t, url, "main")
	recent := []string{"GIT_COMMITTER_DATE=" + now.Add(-time.Minute).Format(time.RFC3339)}
	ci.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "main/deploy/test build 1 unclaiming: env-1", recent...)
	ci.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "main/deploy/test build 9 claiming: env-1", recent...)
	// env-4 is claimed on the branch and, independently, in the person's clone.
	ci.Move(t, "aws/unclaimed/env-4", "aws/claimed/env-4", "main/deploy/test build 10 claiming: env-4", recent...)
	testenv.Git(t, person.Dir, "mv", "aws/unclaimed/env-4", "aws/claimed/env-4")
	testenv.GitEnv(t, person.Dir, recent, "commit", "-q", "-m", "main/other/job build 3 claiming: env-4")
	testenv.Git(t, person.Dir, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
	testenv.Git(t, person.Dir, "push", "-q", "origin", "HEAD:main")

	res, err := reaper.Clean(context.Background(), open(t, url), config(), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-2" {
		t.Errorf("freed %q, want only env-2 (stale on linear history)", got)
	}
	verdicts := map[string]string{}
	for _, l := range res.Report.Pools[0].Locks {
		verdicts[l.Name] = string(l.Verdict.State) + " " + l.Owner.String()
	}
	if v := verdicts["env-1"]; v != "held main/deploy/test #9" {
		t.Errorf("env-1: %q, want held by build 9 (the claim made after the release)", v)
	}
	if v := verdicts["env-4"]; !strings.HasPrefix(v, "broken") {
		t.Errorf("env-4: %q, want broken (two standing claims)", v)
	}
	after := state(t, person)
	if !after["aws/claimed/env-1"] || !after["aws/claimed/env-4"] || after["aws/claimed/env-2"] {
		t.Errorf("state after clean: %v", after)
	}
}

// A pool missing unclaimed/ can move none of its locks: they are broken, as the
// pool is, never stale (a stale count that clean can never bring down would be a
// false alarm forever).
func TestLocksOfAnUnusablePoolAreBroken(t *testing.T) {
	url, _ := lockRepo(t)
	c := testenv.NewClone(t, url, "main")
	testenv.Git(t, c.Dir, "rm", "-q", "-r", "aws/unclaimed")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "a person deleted unclaimed/")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")

	res, err := reaper.Clean(context.Background(), open(t, url), config(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Freed) != 0 {
		t.Errorf("freed %v from a pool without unclaimed/", freedNames(res))
	}
	p := res.Report.Pools[0]
	if p.Stale != 0 {
		t.Errorf("pool reports %d stale locks, want 0", p.Stale)
	}
	for _, l := range p.Locks {
		if l.Verdict.State != policy.Broken || !strings.Contains(l.Verdict.Reason, "unclaimed") {
			t.Errorf("%s: %s (%s), want broken because unclaimed/ is missing", l.Name, l.Verdict.State, l.Verdict.Reason)
		}
	}
}

// lostAnswer is a mirror whose push reaches the remote but whose answer is lost,
// as when a proxy cuts the connection after the remote took the pack.
type lostAnswer struct{ *gitx.Repo }

func (r lostAnswer) Push(ctx context.Context, commit string) error {
	if err := r.Repo.Push(ctx, commit); err != nil {
		return err
	}
	return errors.New("git push: fatal: the remote end hung up unexpectedly")
}

// A reap whose push landed but whose answer was lost is done: the remote's history
// says so. (It was an error, and the frees were missing from metrics and reports.)
func TestCleanPushLandedButItsAnswerWasLost(t *testing.T) {
	url, _ := lockRepo(t)
	res, err := reaper.Clean(context.Background(), lostAnswer{open(t, url)}, config(), false)
	if err != nil {
		t.Fatalf("clean: %v", err)
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1,env-2" || res.Attempts != 1 {
		t.Errorf("freed %q in %d attempts, want env-1,env-2 in 1", got, res.Attempts)
	}
	after := state(t, testenv.NewClone(t, url, "main"))
	if !after["aws/unclaimed/env-1"] || !after["aws/unclaimed/env-2"] || !after["aws/claimed/env-3"] {
		t.Errorf("remote after clean: %v", after)
	}
}

// massRepo is pool big with n locks, all claimed 5 hours ago: stale at 1h.
func massRepo(t testing.TB, n int) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	spec := fixture.Spec{Branch: "main", Pools: []string{"big"}, Start: now.Add(-10 * time.Hour)}
	for i := range n {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.AddClaimed, Pool: "big", Lock: fmt.Sprintf("env-%d", i),
			At: now.Add(-5 * time.Hour), Content: fmt.Sprint(i)})
	}
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	return "file://" + dir
}

// bigPushLoses is a mirror where someone else always pushes first when poolboy
// pushes more than max commits at once: a busy repository, where only a batch small
// enough to be built and pushed between other people's pushes can land.
type bigPushLoses struct {
	*gitx.Repo
	t      *testing.T
	other  *testenv.Clone
	max    int
	pushes []int // commits in each push
}

func (r *bigPushLoses) Push(ctx context.Context, commit string) error {
	head, err := r.Head(ctx) // the mirror's idea of the remote branch
	if err != nil {
		return err
	}
	out, err := r.Output(ctx, "rev-list", "--count", head+".."+commit)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	r.pushes = append(r.pushes, n)
	if n > r.max {
		testenv.Git(r.t, r.other.Dir, "pull", "-q", "--ff-only", "origin", "main")
		testenv.Git(r.t, r.other.Dir, "commit", "-q", "--allow-empty", "-m", "unrelated")
		testenv.Git(r.t, r.other.Dir, "push", "-q", "origin", "HEAD:main")
	}
	return r.Repo.Push(ctx, commit)
}

// After an outage many locks are stale at once while others keep pushing. The frees
// land in batches, each decided again on the new state, and a lost race halves the
// batch: every lock is freed exactly once. (All at once, every push lost, and clean
// gave up having freed none.)
func TestCleanMassReapLandsInBatches(t *testing.T) {
	for name, cfg := range configs() {
		t.Run(name, func(t *testing.T) { testCleanMassReapLandsInBatches(t, cfg) })
	}
}

func testCleanMassReapLandsInBatches(t *testing.T, cfg reaper.Config) {
	const n = 40
	url := massRepo(t, n)
	other := testenv.NewClone(t, url, "main")
	repo := &bigPushLoses{Repo: open(t, url), t: t, other: other, max: 8}
	cfg.Timeouts = policy.Timeouts{"big": time.Hour}
	res, err := reaper.Clean(context.Background(), repo, cfg, false)
	if err != nil {
		t.Fatalf("clean: %v (pushes of %v commits)", err, repo.pushes)
	}
	seen := map[string]bool{}
	for _, f := range res.Freed {
		if seen[f.Name] {
			t.Errorf("%s freed twice", f.Name)
		}
		seen[f.Name] = true
	}
	if len(seen) != n {
		t.Errorf("freed %d locks, want %d (pushes of %v commits)", len(seen), n, repo.pushes)
	}
	s := state(t, other)
	for i := range n {
		if l := fmt.Sprintf("env-%d", i); !s["big/unclaimed/"+l] || s["big/claimed/"+l] {
			t.Errorf("%s is not free on the remote", l)
		}
	}
	if got := testenv.Git(t, other.Dir, "rev-list", "--count", "--author=poolboy", "origin/main"); got != fmt.Sprint(n) {
		t.Errorf("%s commits by poolboy on the remote, want %d (one per lock)", got, n)
	}
}

// A reap commit is poolboy's, not the reaped build's: no reader of pool history may
// take the claim's Build URL or Concourse's evidence in it for the commit's owner.
func TestReapCommitNamesNoOwnerBuild(t *testing.T) {
	testenv.RequireCommand(t, "git")
	cc := fakeconcourse.New(t)
	cc.AddUser("reaper", "reaper-pw", "main")
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "12", Status: "failed"})
	now := time.Now()
	buildURL := cc.ExternalURL + "/teams/main/pipelines/deploy/jobs/test/builds/12"
	dir := filepath.Join(t.TempDir(), "locks.git")
	err := fixture.Build(context.Background(), dir, fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: now.Add(-2 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-time.Hour), Content: "one"},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute), Message: "claiming: env-1\nBuild URL: " + buildURL},
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
	res, err := reaper.Clean(context.Background(), open(t, "file://"+dir), cfg, false)
	if err != nil || len(res.Freed) != 1 {
		t.Fatalf("clean: %v, freed %v", err, freedNames(res))
	}
	msg := testenv.Git(t, dir, "log", "-1", "--format=%B", "main")
	if !strings.Contains(msg, "Poolboy-Rule: build-failed") || !strings.Contains(msg, "Poolboy-Build-URL: "+cc.ExternalURL+"/") {
		t.Fatalf("the reap does not carry the evidence:\n%s", msg)
	}
	if o := commitmsg.Parse(msg).Owner; o.Known() || o.URL != "" || o.Server != "" {
		t.Errorf("the reap commit is attributed to %+v:\n%s", o, msg)
	}
}

// multiRepo has pools gpu (g-1) and licences (l-1, l-2), and one commit, 2h ago,
// that claimed g-1 and l-1 at once, as the resource's acquire with `with` does;
// more are done before that commit.
func multiRepo(t *testing.T, more ...fixture.Op) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"gpu", "hpc", "licences"}, Start: now.Add(-10 * time.Hour), Ops: append([]fixture.Op{
		{Kind: fixture.Add, Pool: "gpu", Lock: "g-1", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Add, Pool: "licences", Lock: "l-1", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Add, Pool: "licences", Lock: "l-2", At: now.Add(-9 * time.Hour)},
	}, more...)}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	c := testenv.NewClone(t, "file://"+dir, "main")
	testenv.Git(t, c.Dir, "mv", "gpu/unclaimed/g-1", "gpu/claimed/g-1")
	testenv.Git(t, c.Dir, "mv", "licences/unclaimed/l-1", "licences/claimed/l-1")
	at := fmt.Sprintf("GIT_COMMITTER_DATE=%d +0000", now.Add(-2*time.Hour).Unix())
	msg := "main/deploy/test build 7 claiming: g-1 (+1 more)\n\nPoolboy-Build-Id: 77\n" +
		commitmsg.LockSetKey + ": gpu/g-1\n" + commitmsg.LockSetKey + ": licences/l-1\n"
	testenv.GitEnv(t, c.Dir, []string{at}, "commit", "-q", "-m", msg)
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/main")
	return "file://" + dir
}

// The locks of one multi-lock claim are one holding: the same claim commit, the
// same build, and one verdict, even where their pools' timeouts would part them.
func TestMultiLockClaimIsOneHolding(t *testing.T) {
	cases := []struct {
		name     string
		timeouts policy.Timeouts
		freed    string
		state    policy.State
	}{
		{"both pools say stale: both freed", policy.Timeouts{"gpu": time.Hour, "licences": time.Hour}, "g-1,l-1", policy.Stale},
		{"one pool's timeout is longer: both kept", policy.Timeouts{"gpu": time.Hour, "licences": 4 * time.Hour}, "", policy.Held},
		{"one pool has no timeout: both kept", policy.Timeouts{"gpu": time.Hour}, "", policy.Unwatched},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url := multiRepo(t)
			cfg := config()
			cfg.Timeouts = c.timeouts
			res, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(freedNames(res), ","); got != c.freed {
				t.Errorf("freed %q, want %q", got, c.freed)
			}
			if len(res.Freed) > 0 {
				for _, f := range res.Freed {
					if f.Verdict.State != c.state || f.Owner.String() != "main/deploy/test #7" {
						t.Errorf("freed %s: %s by %s", f.Name, f.Verdict.State, f.Owner)
					}
				}
				return
			}
			var claim string
			for _, p := range res.Report.Pools {
				for _, l := range p.Locks {
					if l.Verdict.State != c.state || l.Owner.String() != "main/deploy/test #7" || l.Owner.ID != "77" {
						t.Errorf("%s/%s: %s (%s) by %s, want %s by main/deploy/test #7", p.Name, l.Name, l.Verdict.State, l.Verdict.Reason, l.Owner, c.state)
					}
					if claim != "" && l.ClaimCommit != claim {
						t.Errorf("%s/%s has claim %s, the other %s", p.Name, l.Name, l.ClaimCommit, claim)
					}
					claim = l.ClaimCommit
				}
				if p.Stale != 0 {
					t.Errorf("pool %s counts %d stale", p.Name, p.Stale)
				}
			}
		})
	}
}

// The frees of one holding land in one push, also when a lost race halves the
// batch and another stale lock sits between them in the pools' order.
func TestMultiLockHoldingIsFreedInOnePush(t *testing.T) {
	now := time.Now()
	url := multiRepo(t, fixture.Op{Kind: fixture.Add, Pool: "hpc", Lock: "h-1", At: now.Add(-9 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "hpc", Lock: "h-1", At: now.Add(-3 * time.Hour), Message: "main/deploy/test build 5 claiming: h-1"})
	other := testenv.NewClone(t, url, "main")
	repo := &racingRepo{Repo: open(t, url)}
	repo.beforePush = func(attempt int) {
		if attempt == 1 {
			other.Move(t, "licences/unclaimed/l-2", "licences/claimed/l-2", "main/deploy/test build 8 claiming: l-2")
		}
	}
	cfg := config()
	cfg.Timeouts = policy.Timeouts{"gpu": time.Hour, "hpc": time.Hour, "licences": time.Hour}
	res, err := reaper.Clean(context.Background(), repo, cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	// The lost race halves the batch to one: the holding's two frees go in the
	// next push whole, h-1's in the one after.
	if got := strings.Join(freedNames(res), ","); got != "g-1,l-1,h-1" || repo.pushes != 3 {
		t.Errorf("freed %s in %d pushes; want g-1,l-1 together, then h-1", got, repo.pushes)
	}
}
