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

	w := liveness.New(client(t, fc), liveness.Options{WebURL: fc.URL})
	claims := []liveness.Claim{
		{Commit: "c1", Owner: owner("main/p/run build 1 claiming: a")},
		{Commit: "c2", Owner: owner("p/run build 2 claiming: b")}, // pre-team: the default team
		{Commit: "c3", Owner: owner("main/p/run build 3 claiming: c")},
		{Commit: "c5", Owner: owner("main/p/run build 5 claiming: d")},
		{Commit: "c6", Owner: owner("main/p/run build 99 claiming: e")},
		{Commit: "c7", Owner: owner(`main/p/{"env":"stage/eu"}/run build 7 claiming: f`)},
		{Commit: "c8", Owner: owner("claiming: g\nBuild URL: http://elsewhere/builds/" + itoa(oneOff))},
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
	w := liveness.New(client(t, fc), liveness.Options{})
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
	got := liveness.New(cc, liveness.Options{Concurrency: 3}).Evidence(context.Background(), claims)
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
	w := liveness.New(c, liveness.Options{Deadline: 200 * time.Millisecond, Concurrency: 1})
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
			ev := liveness.New(c, liveness.Options{}).Evidence(context.Background(),
				[]liveness.Claim{{Commit: "a", Owner: owner("main/p/run build 1 claiming: a")}})["a"]
			if ev == nil || ev.Err == "" || ev.Status != "" || ev.NotFound {
				t.Fatalf("%+v, want an error and no status", ev)
			}
		})
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
