package liveness_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
)

func client(t *testing.T, fc *fakeconcourse.Server) *concourse.Client {
	t.Helper()
	fc.AddUser("reaper", "reaper-pw", "main")
	c, err := concourse.New(concourse.Config{URL: fc.URL, Username: "reaper", Password: "reaper-pw"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func owner(msg string) commitmsg.Owner { return commitmsg.Parse(msg).Owner }

func TestEvidence(t *testing.T) {
	fc := fakeconcourse.New(t)
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "1", Status: "started"})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "2", Status: "aborted"})
	// Build 3 put claim c3 to resource "locks"; build 4 took it on and is running.
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "3", Status: "succeeded",
		Outputs: []fakeconcourse.Version{{Resource: "locks", Ref: "c3"}}})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "next", Name: "1", Status: "started",
		Inputs: []fakeconcourse.Version{{Resource: "locks", Ref: "c3"}}})
	// Build 5 put c5, its consumer is done: nothing holds the lock any more.
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "5", Status: "failed",
		Outputs: []fakeconcourse.Version{{Resource: "locks", Ref: "c5"}}})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "next", Name: "2", Status: "succeeded",
		Inputs: []fakeconcourse.Version{{Resource: "locks", Ref: "c5"}}})
	inst := fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Vars: map[string]any{"env": "stage/eu"}, Job: "run", Name: "7", Status: "errored"})
	oneOff := fc.AddBuild(fakeconcourse.Build{Team: "main", Status: "failed"})

	w := liveness.New(liveness.Options{}, liveness.Source{Client: client(t, fc), URL: fc.URL})
	claims := []liveness.Claim{
		{Commit: "c1", Owner: owner("main/p/run build 1 claiming: a")},
		{Commit: "c2", Owner: owner("p/run build 2 claiming: b")}, // pre-team: the default team
		{Commit: "c3", Owner: owner("main/p/run build 3 claiming: c")},
		{Commit: "c5", Owner: owner("main/p/run build 5 claiming: d")},
		{Commit: "c6", Owner: owner("main/p/run build 99 claiming: e")},
		{Commit: "c7", Owner: owner(`main/p/{"env":"stage/eu"}/run build 7 claiming: f`)},
		{Commit: "c8", Owner: owner("claiming: g\nBuild URL: " + fc.URL + "/builds/" + itoa(oneOff))},
		{Commit: "c9", Owner: owner("claiming: h")},
	}
	got := w.Evidence(context.Background(), claims)
	check := func(commit, status string, notFound bool, handoff string) {
		t.Helper()
		ev := got[commit]
		if ev == nil {
			t.Fatalf("%s: no evidence", commit)
		}
		if ev.Status != status || ev.NotFound != notFound || ev.HandedOffTo != handoff || ev.Err != "" {
			t.Errorf("%s: %+v, want status %q notFound %v handoff %q", commit, ev, status, notFound, handoff)
		}
	}
	check("c1", "started", false, "")
	check("c2", "aborted", false, "")
	check("c3", "succeeded", false, "main/p/next #1")
	check("c5", "failed", false, "")
	check("c6", "", true, "")
	check("c7", "errored", false, "")
	check("c8", "failed", false, "")
	if got["c8"].URL != fc.URL+"/builds/"+itoa(oneOff) || got["c7"].URL != fc.URL+"/builds/"+itoa(inst) {
		t.Errorf("build pages: %q %q", got["c8"].URL, got["c7"].URL)
	}
	if _, ok := got["c9"]; ok {
		t.Error("a claim naming no build got evidence")
	}
}

func TestOneLookupPerBuild(t *testing.T) {
	fc := fakeconcourse.New(t)
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "4", Status: "failed",
		Outputs: []fakeconcourse.Version{{Resource: "locks", Ref: "a"}, {Resource: "locks", Ref: "b"}}})
	w := liveness.New(liveness.Options{}, liveness.Source{Client: client(t, fc)})
	// One job, several locks (several put steps): one build lookup, one resources lookup.
	var claims []liveness.Claim
	for _, c := range []string{"a", "b", "c"} {
		claims = append(claims, liveness.Claim{Commit: c, Owner: owner("main/p/run build 4 claiming: " + c)})
	}
	got := w.Evidence(context.Background(), claims)
	w.Evidence(context.Background(), claims) // a second evaluation in the same run asks nothing new
	if len(got) != 3 || got["c"].Status != "failed" {
		t.Fatalf("evidence: %v", got)
	}
	count := map[string]int{}
	for _, r := range fc.Requests() {
		count[r.Path]++
	}
	if n := count["/api/v1/teams/main/pipelines/p/jobs/run/builds/4"]; n != 1 {
		t.Errorf("build looked up %d times, want 1: %v", n, count)
	}
	for path, n := range count {
		if strings.HasSuffix(path, "/resources") && n != 1 {
			t.Errorf("%s asked %d times", path, n)
		}
	}
	if fc.TokensIssued() != 1 {
		t.Errorf("tokens issued: %d, want 1", fc.TokensIssued())
	}
}

// countingClient records how many requests are in flight at once.
type countingClient struct {
	liveness.Client
	mu            sync.Mutex
	now, maxInAir int
}

func (c *countingClient) JobBuild(ctx context.Context, p concourse.Pipeline, job, name string) (*concourse.Build, error) {
	c.mu.Lock()
	c.now++
	c.maxInAir = max(c.maxInAir, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	return c.Client.JobBuild(ctx, p, job, name)
}

func TestConcurrencyIsBounded(t *testing.T) {
	fc := fakeconcourse.New(t)
	var claims []liveness.Claim
	for i := 1; i <= 12; i++ {
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: itoa(i), Status: "started"})
		claims = append(claims, liveness.Claim{Commit: "c" + itoa(i), Owner: owner("main/p/run build " + itoa(i) + " claiming: l")})
	}
	// Slow answers make the lookups overlap, so the bound is really exercised.
	fc.SetFault(fakeconcourse.Fault{Delay: 30 * time.Millisecond})
	cc := &countingClient{Client: client(t, fc)}
	got := liveness.New(liveness.Options{Concurrency: 3}, liveness.Source{Client: cc}).Evidence(context.Background(), claims)
	if len(got) != 12 {
		t.Fatalf("evidence for %d claims", len(got))
	}
	if cc.maxInAir != 3 {
		t.Errorf("at most %d lookups at once, want exactly the bound 3", cc.maxInAir)
	}
}

// A Concourse that never answers costs the run its deadline, not more, and every
// claim comes back as an error: never as evidence of death.
func TestDeadlineBoundsADeadConcourse(t *testing.T) {
	fc := fakeconcourse.New(t)
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "1", Status: "aborted"})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "2", Status: "aborted"})
	c := client(t, fc)
	fc.SetFault(fakeconcourse.Fault{Delay: time.Hour})
	w := liveness.New(liveness.Options{Deadline: 200 * time.Millisecond, Concurrency: 1}, liveness.Source{Client: c})
	got := w.Evidence(context.Background(), []liveness.Claim{
		{Commit: "a", Owner: owner("main/p/run build 1 claiming: a")},
		{Commit: "b", Owner: owner("main/p/run build 2 claiming: b")},
	})
	for _, commit := range []string{"a", "b"} {
		ev := got[commit]
		if ev == nil || ev.Err == "" || ev.Status != "" || ev.NotFound {
			t.Errorf("%s: %+v, want an error and no status", commit, ev)
		}
		v := policy.Decide(policy.Input{Now: time.Now(), ClaimFound: true, ClaimedAt: time.Now().Add(-time.Minute), Timeout: time.Hour, Build: ev})
		if v.Reap() || v.Warning == "" {
			t.Errorf("%s: a dead Concourse decided %+v", commit, v)
		}
	}
}

func TestErrorsAreNotEvidence(t *testing.T) {
	for name, fault := range map[string]fakeconcourse.Fault{
		"500":     {Status: 500},
		"garbage": {Status: 200, Body: "{garbage"},
		"403":     {Status: 403},
	} {
		t.Run(name, func(t *testing.T) {
			fc := fakeconcourse.New(t)
			fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "run", Name: "1", Status: "aborted"})
			c := client(t, fc)
			fc.SetFault(fault)
			ev := liveness.New(liveness.Options{}, liveness.Source{Client: c}).Evidence(context.Background(),
				[]liveness.Claim{{Commit: "a", Owner: owner("main/p/run build 1 claiming: a")}})["a"]
			if ev == nil || ev.Err == "" || ev.Status != "" || ev.NotFound {
				t.Fatalf("%+v, want an error and no status", ev)
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func src(t *testing.T, fc *fakeconcourse.Server) liveness.Source {
	return liveness.Source{Client: client(t, fc), URL: fc.URL}
}

func evidence(t *testing.T, c liveness.Claim, srcs ...liveness.Source) *policy.Build {
	t.Helper()
	ev := liveness.New(liveness.Options{}, srcs...).Evidence(context.Background(), []liveness.Claim{c})[c.Commit]
	if ev == nil {
		t.Fatal("no evidence")
	}
	return ev
}

// Issue 10.3: evidence is about the claim's own build or it is none.
func TestEvidenceMustBeAboutTheClaimsBuild(t *testing.T) {
	claimedAt := time.Now().Add(-2 * time.Hour)
	t.Run("pipeline re-created: same name, another build id", func(t *testing.T) {
		fc := fakeconcourse.New(t)
		old := fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed"})
		fc.DeletePipeline("main", "p", nil)
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "started"})
		msg := "main/p/j build 1 claiming: a\n\nBuild URL: " + fc.URL + "/teams/main/pipelines/p/jobs/j/builds/1\n\nPoolboy-Build-Id: " + itoa(old) + "\n"
		ev := evidence(t, liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner(msg)}, src(t, fc))
		if ev.Foreign == "" || ev.Status != "" || !strings.Contains(ev.Foreign, "build id "+itoa(old)) {
			t.Errorf("%+v: want foreign evidence naming the recorded id", ev)
		}
	})
	// The claim's time is the worker's clock: times outside the build's may
	// keep, never free early (see TestClaimTimesNeverMakeARunningBuildForeign).
	t.Run("started after the claim: keep only", func(t *testing.T) {
		fc := fakeconcourse.New(t)
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "started", StartTime: time.Now()})
		ev := evidence(t, liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner("main/p/j build 1 claiming: a")}, src(t, fc))
		if ev.Foreign != "" || !strings.Contains(ev.KeepOnly, "after the claim") {
			t.Errorf("%+v: want keep-only", ev)
		}
	})
	t.Run("ended before the claim: keep only", func(t *testing.T) {
		fc := fakeconcourse.New(t)
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed",
			StartTime: claimedAt.Add(-time.Hour), EndTime: claimedAt.Add(-liveness.ClockSkew - time.Minute)})
		ev := evidence(t, liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner("main/p/j build 1 claiming: a")}, src(t, fc))
		if ev.Foreign != "" || !strings.Contains(ev.KeepOnly, "before the claim") {
			t.Errorf("%+v: want keep-only", ev)
		}
	})
	t.Run("within the clock-skew margin: its own", func(t *testing.T) {
		fc := fakeconcourse.New(t)
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed",
			StartTime: claimedAt.Add(liveness.ClockSkew - time.Minute), EndTime: claimedAt.Add(time.Hour)})
		ev := evidence(t, liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner("main/p/j build 1 claiming: a")}, src(t, fc))
		if ev.Foreign != "" || ev.KeepOnly != "" || ev.Status != "failed" {
			t.Errorf("%+v: want its own failed build", ev)
		}
	})
	t.Run("Build URL of a Concourse not configured", func(t *testing.T) {
		prod := fakeconcourse.New(t)
		prod.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed"})
		msg := "claiming: a\nBuild URL: http://staging.example.com:8080/teams/main/pipelines/p/jobs/j/builds/1"
		ev := evidence(t, liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner(msg)}, src(t, prod))
		if ev.Foreign == "" || !strings.Contains(ev.Foreign, "http://staging.example.com:8080") || ev.Status != "" {
			t.Errorf("%+v: want foreign, naming staging", ev)
		}
	})
	t.Run("several Concourses: the Build URL's decides", func(t *testing.T) {
		prod := fakeconcourse.New(t)
		staging := fakeconcourse.New(t, fakeconcourse.WithExternalURL("https://staging.example.com/ci"))
		prod.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed"})
		staging.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "started"})
		msg := "claiming: a\nBuild URL: https://STAGING.example.com:443/ci/teams/main/pipelines/p/jobs/j/builds/1"
		ev := evidence(t, liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner(msg)}, src(t, prod), src(t, staging))
		if ev.Status != "started" || ev.Foreign != "" || !strings.HasPrefix(ev.URL, staging.URL+"/builds/") {
			t.Errorf("%+v: want staging's running build", ev)
		}
	})
	t.Run("several Concourses, no Build URL: keep only", func(t *testing.T) {
		a, b := fakeconcourse.New(t), fakeconcourse.New(t)
		a.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed"})
		b.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "started"})
		c := liveness.Claim{Commit: "c1", Time: claimedAt, Owner: owner("main/p/j build 1 claiming: a")}
		if ev := evidence(t, c, src(t, a), src(t, b)); ev.Status != "started" {
			t.Errorf("%+v: any Concourse's running build keeps it", ev)
		}
		b.SetStatus(b.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "2", Status: "started"}), "aborted")
		a.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "2", Status: "failed"})
		c.Owner = owner("main/p/j build 2 claiming: a")
		if ev := evidence(t, c, src(t, a), src(t, b)); ev.KeepOnly == "" {
			t.Errorf("%+v: a dead status from one of several may not free it early", ev)
		}
	})
	t.Run("no team: the default team's evidence keeps only", func(t *testing.T) {
		fc := fakeconcourse.New(t)
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "failed"})
		fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "2", Status: "started"})
		if ev := evidence(t, liveness.Claim{Commit: "c1", Owner: owner("p/j build 1 claiming: a")}, src(t, fc)); ev.KeepOnly == "" || ev.Status != "failed" {
			t.Errorf("%+v: want keep-only", ev)
		}
		if ev := evidence(t, liveness.Claim{Commit: "c2", Owner: owner("p/j build 2 claiming: a")}, src(t, fc)); ev.Status != "started" {
			t.Errorf("%+v: a running build of the default team keeps it", ev)
		}
	})
}

// Issue 16.1: deploy2 claims with put: claim-env, resource: env; test2 takes it
// with get: env, passed: [deploy2] and is running.
func TestHandOffFromARenamedPutStep(t *testing.T) {
	fc := fakeconcourse.New(t)
	const sha = "4444444444444444444444444444444444444444"
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "deploy2", Name: "1", Status: "succeeded",
		Outputs: []fakeconcourse.Version{{Resource: "env", Ref: sha}}, PutSteps: map[string]string{"env": "claim-env"}})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "test2", Name: "1", Status: "started",
		Inputs: []fakeconcourse.Version{{Resource: "env", Ref: sha}}})
	ev := evidence(t, liveness.Claim{Commit: sha, Owner: owner("main/p/deploy2 build 1 claiming: a")}, src(t, fc))
	if ev.HandedOffTo != "main/p/test2 #1" || ev.Err != "" {
		t.Errorf("%+v: want handed off to main/p/test2 #1", ev)
	}
}

// notFoundVersions answers every version lookup 404, as for a version that
// should exist (the put made it) but cannot be found.
type notFoundVersions struct{ liveness.Client }

func (notFoundVersions) VersionID(context.Context, concourse.Pipeline, string, string) (int, error) {
	return 0, &concourse.StatusError{Code: 404, Method: "GET", Path: "/versions"}
}

func TestAFailedHandOffLookupIsNoEvidence(t *testing.T) {
	fc := fakeconcourse.New(t)
	const sha = "5555555555555555555555555555555555555555"
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "deploy", Name: "1", Status: "failed",
		Outputs: []fakeconcourse.Version{{Resource: "env", Ref: sha}}})
	c := liveness.Claim{Commit: sha, Owner: owner("main/p/deploy build 1 claiming: a")}
	if ev := evidence(t, c, liveness.Source{Client: notFoundVersions{client(t, fc)}}); ev.Err == "" {
		t.Errorf("%+v: a 404 for the put's own version must be an error, not 'no consumer'", ev)
	}
	fc.SetFault(fakeconcourse.Fault{Status: 500})
	if ev := evidence(t, c, src(t, fc)); ev.Err == "" {
		t.Errorf("%+v: want an error", ev)
	}
}

// A worker's clock is not the web node's: a claim time outside its build's
// times says the answer may be about another build of that name, never that
// it is. The claim's own build (the recorded id on the Concourse its Build URL
// names) counts whatever the claim's time; without both, the answer may keep
// the lock but not free it early.
func TestClaimTimesNeverMakeARunningBuildForeign(t *testing.T) {
	now := time.Now()
	slow := now.Add(-135 * time.Minute) // the worker's clock, 2h slow
	fc := fakeconcourse.New(t)
	id := fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "3", Status: "started", StartTime: now.Add(-20 * time.Minute)})
	early := fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "4", Status: "failed",
		StartTime: now.Add(-3 * time.Hour), EndTime: now.Add(-150 * time.Minute)})
	url := func(n string) string { return fc.ExternalURL + "/teams/main/pipelines/p/jobs/j/builds/" + n }
	own := func(n string, id int) string {
		return "main/p/j build " + n + " claiming: a\n\nBuild URL: " + url(n) + "\n\nPoolboy-Build-Id: " + itoa(id) + "\n"
	}
	cases := []struct {
		name, msg, status string
		at                time.Time
		keepOnly          bool // else a warning only
		state             policy.State
	}{
		{"own build, started after the claim", own("3", id), "started", slow, false, policy.Alive},
		{"own build, ended before the claim: its failure frees it", own("4", early), "failed", now.Add(-time.Minute), false, policy.Stale},
		{"no id, started after the claim", "claiming: a\nBuild URL: " + url("3"), "started", slow, true, policy.Alive},
		{"no Build URL, started after the claim", "main/p/j build 3 claiming: a", "started", slow, true, policy.Alive},
		{"no id, ended before the claim: not freed early", "main/p/j build 4 claiming: a", "failed", now.Add(-time.Minute), true, policy.Held},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := evidence(t, liveness.Claim{Commit: "c1", Time: c.at, Owner: owner(c.msg)}, src(t, fc))
			if ev.Foreign != "" || ev.Err != "" || ev.Status != c.status {
				t.Fatalf("%+v: want the build's own status %s, not foreign", ev, c.status)
			}
			if got := ev.KeepOnly != ""; got != c.keepOnly {
				t.Errorf("%+v: keep-only %v, want %v", ev, got, c.keepOnly)
			}
			if !c.keepOnly && !strings.Contains(ev.Warning, "the claim (") {
				t.Errorf("%+v: want the times in a warning", ev)
			}
			v := policy.Decide(policy.Input{Now: now, ClaimFound: true, ClaimedAt: c.at, Timeout: time.Hour, Build: ev})
			if v.State != c.state {
				t.Errorf("verdict %+v, want %s", v, c.state)
			}
		})
	}
}

// Prod and staging share the lock repository; staging's main/p/j #3 claimed
// env-1 (no Build URL) while prod's #3 put another commit of the pool and
// failed. Concourse recorded prod's put, and it is not this claim: prod's #3
// may not be the build that wrote it, so its failure may not free it early. A
// build that died after its put pushed the claim has no output recorded at
// all, and its end still frees the lock at once.
func TestABuildThatPutAnotherCommitMayNotFreeTheClaim(t *testing.T) {
	const claim, other = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	now := time.Now()
	fc := fakeconcourse.New(t)
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "3", Status: "failed",
		Outputs: []fakeconcourse.Version{{Resource: "env", Ref: other}}, PutSteps: map[string]string{"env": "claim-env"}})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "4", Status: "aborted"})
	fc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "5", Status: "errored",
		Outputs: []fakeconcourse.Version{{Resource: "env", Ref: other}, {Resource: "env2", Ref: claim}}})
	cases := []struct {
		name, build string
		keepOnly    bool
		state       policy.State
	}{
		{"its put recorded another commit", "3", true, policy.Held},
		{"no put recorded: died after pushing", "4", false, policy.Stale},
		{"the claim among its puts", "5", false, policy.Stale},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := now.Add(-10 * time.Minute)
			ev := evidence(t, liveness.Claim{Commit: claim, Time: at, Owner: owner("main/p/j build " + c.build + " claiming: env-1")}, src(t, fc))
			if ev.Err != "" || ev.Foreign != "" {
				t.Fatalf("%+v: want evidence", ev)
			}
			if got := ev.KeepOnly != ""; got != c.keepOnly {
				t.Errorf("%+v: keep-only %v, want %v", ev, got, c.keepOnly)
			}
			if c.keepOnly && !strings.Contains(ev.KeepOnly, "claim-env") {
				t.Errorf("%+v: want the put step named", ev)
			}
			v := policy.Decide(policy.Input{Now: now, ClaimFound: true, ClaimedAt: at, Timeout: time.Hour, Build: ev})
			if v.State != c.state {
				t.Errorf("verdict %+v, want %s", v, c.state)
			}
		})
	}
}

// A message whose first line and Build URL name different builds does not say
// whose claim it is: whichever build poolboy asks about may keep the lock, none
// may free it early.
func TestAClaimNamingTwoBuildsIsKeepOnly(t *testing.T) {
	now := time.Now()
	prod := fakeconcourse.New(t)
	prod.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "3", Status: "failed"})
	msg := "main/p/j build 3 claiming: env-1\nBuild URL: http://staging.example.com/teams/main/pipelines/p/jobs/j/builds/4"
	at := now.Add(-10 * time.Minute)
	ev := evidence(t, liveness.Claim{Commit: "c1", Time: at, Owner: owner(msg)}, src(t, prod))
	if ev.KeepOnly == "" || !strings.Contains(ev.KeepOnly, "staging.example.com") {
		t.Errorf("%+v: want keep-only naming both builds", ev)
	}
	if v := policy.Decide(policy.Input{Now: now, ClaimFound: true, ClaimedAt: at, Timeout: time.Hour, Build: ev}); v.Reap() {
		t.Errorf("freed early: %+v", v)
	}
}
