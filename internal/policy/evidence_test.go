package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The decision table of the README, one row each, with Concourse evidence.
func TestDecideWithBuildEvidence(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	in := func(age time.Duration, b *Build) Input {
		return Input{Now: now, ClaimFound: true, ClaimedAt: now.Add(-age), Timeout: time.Hour, Build: b}
	}
	build := func(status string) *Build { return &Build{Name: "main/p/j #7", Status: status} }
	cases := []struct {
		name  string
		in    Input
		state State
		rule  string
		words []string
	}{
		{"started at 10x the timeout is kept", in(10*time.Hour, build("started")), Alive, "build-running", []string{"main/p/j #7", "started"}},
		{"pending is kept", in(3*time.Hour, build("pending")), Alive, "build-running", []string{"pending"}},
		{"handed off is kept", in(3*time.Hour, &Build{Name: "main/p/j #7", Status: "succeeded", HandedOffTo: "main/p/k #3"}), Alive, "handed-off", []string{"main/p/k #3"}},
		{"aborted before the timeout is stale now", in(time.Minute, build("aborted")), Stale, "build-aborted", []string{"aborted"}},
		{"failed is stale now", in(time.Minute, build("failed")), Stale, "build-failed", nil},
		{"errored is stale now", in(time.Minute, build("errored")), Stale, "build-errored", nil},
		{"succeeded within the timeout is held", in(time.Minute, build("succeeded")), Held, "within-timeout", []string{"succeeded"}},
		{"succeeded past the timeout is stale", in(2*time.Hour, build("succeeded")), Stale, "timeout", []string{"succeeded"}},
		{"404 within the timeout is held", in(time.Minute, &Build{Name: "x", NotFound: true}), Held, "within-timeout", []string{"no longer exists"}},
		{"404 past the timeout is stale", in(2*time.Hour, &Build{Name: "x", NotFound: true}), Stale, "timeout", nil},
		{"an error is not evidence of death", in(time.Minute, &Build{Name: "x", Err: "503"}), Held, "within-timeout", []string{"only the timeout"}},
		{"an unknown status is not evidence", in(time.Minute, build("cancelled")), Held, "within-timeout", []string{`"cancelled"`}},
		{"no owner: timeout only", in(2*time.Hour, nil), Stale, "timeout", nil},
		// Foreign: the answer is about another build (issue 10.3): no evidence.
		{"another build's run is not kept", in(2*time.Hour, &Build{Name: "x", Status: "started", Foreign: "build id 9, not 4"}), Stale, "timeout", []string{"another build"}},
		{"another build's failure is no hurry", in(time.Minute, &Build{Name: "x", Status: "failed", Foreign: "other Concourse"}), Held, "within-timeout", []string{"only the timeout"}},
		{"another build's hand-off is not kept", in(2*time.Hour, &Build{Name: "x", Status: "succeeded", HandedOffTo: "y #1", Foreign: "ended before"}), Stale, "timeout", nil},
		// KeepOnly: the claim names no team (or no Concourse of several).
		{"no team, running: kept", in(10*time.Hour, &Build{Name: "p/j #1", Status: "started", KeepOnly: "no team"}), Alive, "build-running", nil},
		{"no team, handed off: kept", in(10*time.Hour, &Build{Name: "p/j #1", Status: "succeeded", HandedOffTo: "y #1", KeepOnly: "no team"}), Alive, "handed-off", nil},
		{"no team, failed: not freed early", in(time.Minute, &Build{Name: "p/j #1", Status: "failed", KeepOnly: "no team"}), Held, "within-timeout", []string{"failed", "no team", "only the timeout"}},
		{"no team, aborted, past the timeout: the timeout frees it", in(2*time.Hour, &Build{Name: "p/j #1", Status: "aborted", KeepOnly: "no team"}), Stale, "timeout", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(c.in)
			if v.State != c.state || v.Rule != c.rule {
				t.Fatalf("got %s/%s (%s), want %s/%s", v.State, v.Rule, v.Reason, c.state, c.rule)
			}
			for _, w := range c.words {
				if !strings.Contains(v.Reason, w) {
					t.Errorf("reason %q lacks %q", v.Reason, w)
				}
			}
		})
	}
	succeeded := in(time.Minute, build("succeeded"))
	succeeded.ReapSucceeded = true
	if v := Decide(succeeded); v.State != Stale || v.Rule != "build-succeeded" {
		t.Errorf("reap-succeeded pool: %+v", v)
	}
	if v := Decide(in(time.Minute, &Build{Name: "x", Err: "concourse: 503"})); v.Warning != "concourse: 503" {
		t.Errorf("the lookup error must surface as a warning: %+v", v)
	}
	if v := Decide(in(time.Minute, &Build{Name: "x", Status: "started", Foreign: "its Build URL names http://staging"})); v.Warning != "its Build URL names http://staging" {
		t.Errorf("why the answer is foreign must surface as a warning: %+v", v)
	}
	for _, st := range []string{"started", "failed"} {
		b := &Build{Name: "x", Status: st, Warning: "started after the claim"}
		v, plain := Decide(in(time.Minute, b)), Decide(in(time.Minute, build(st)))
		if v.Warning != b.Warning || v.State != plain.State || v.Rule != plain.Rule {
			t.Errorf("a warning about the claim's own build must surface and decide nothing: %+v, without it %+v", v, plain)
		}
	}
	if v := Decide(in(time.Minute, &Build{Name: "x", Status: "failed", Err: "503", Warning: "clock"})); v.Warning != "503; clock" {
		t.Errorf("an error and a warning must both surface: %+v", v)
	}
	keepOnly := in(time.Minute, &Build{Name: "x", Status: "succeeded", KeepOnly: "no team"})
	keepOnly.ReapSucceeded = true
	if v := Decide(keepOnly); v.State != Held {
		t.Errorf("keep-only evidence freed a reap-on-success lock early: %+v", v)
	}
}

// Properties that must hold for every combination of evidence, age, timeout and
// pool option: the safety rules of the issue, checked exhaustively.
func TestDecideEvidenceProperties(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var builds []*Build
	builds = append(builds, nil)
	for _, st := range []string{"", "pending", "started", "succeeded", "failed", "errored", "aborted", "cancelled"} {
		builds = append(builds,
			&Build{Name: "b", Status: st},
			&Build{Name: "b", Status: st, HandedOffTo: "c #1"},
			&Build{Name: "b", Status: st, Err: "boom"},
			&Build{Name: "b", Status: st, Foreign: "another build"},
			&Build{Name: "b", Status: st, HandedOffTo: "c #1", Foreign: "another build"},
			&Build{Name: "b", Status: st, KeepOnly: "no team"},
			&Build{Name: "b", Status: st, HandedOffTo: "c #1", KeepOnly: "no team"},
			&Build{Name: "b", Status: st, Err: "boom", KeepOnly: "no team"},
			&Build{Name: "b", Status: st, Warning: "clock"},
			&Build{Name: "b", Status: st, HandedOffTo: "c #1", Warning: "clock"},
			&Build{Name: "b", Status: st, Warning: "clock", KeepOnly: "started after the claim"},
		)
	}
	builds = append(builds, &Build{Name: "b", NotFound: true})
	ages := []time.Duration{-time.Hour, 0, time.Minute, time.Hour, time.Hour + time.Second, 100 * time.Hour}
	n := 0
	for _, b := range builds {
		for _, age := range ages {
			for _, timeout := range []time.Duration{0, time.Hour} {
				for _, reapSucceeded := range []bool{false, true} {
					n++
					in := Input{Now: now, ClaimFound: true, ClaimedAt: now.Add(-age), Timeout: timeout, Build: b, ReapSucceeded: reapSucceeded}
					v := Decide(in)
					bare := in
					bare.Build = nil
					timeoutOnly := Decide(bare)
					where := fmt.Sprintf("build=%+v age=%s timeout=%s reapSucceeded=%v -> %+v", b, age, timeout, reapSucceeded, v)
					switch {
					case v.Reason == "":
						t.Errorf("no reason: %s", where)
					case b != nil && b.Warning != "" && !strings.Contains(v.Warning, b.Warning):
						t.Errorf("the answer's warning is lost: %s", where)
					case b != nil && b.Foreign != "":
						if v.State != timeoutOnly.State || v.Warning != b.Foreign {
							t.Errorf("an answer about another build is no evidence: %s", where)
						}
					case b != nil && b.KeepOnly != "" && v.Reap() && !timeoutOnly.Reap():
						t.Errorf("keep-only evidence freed a lock before its timeout: %s", where)
					case b != nil && (Running(b.Status) || b.HandedOffTo != "") && v.State != Alive:
						t.Errorf("a live build's lock must be kept: %s", where)
					case timeout <= 0 && v.Reap():
						t.Errorf("a pool without a timeout is never cleaned: %s", where)
					case b != nil && b.Err != "" && !Running(b.Status) && b.HandedOffTo == "" && v.State != timeoutOnly.State:
						t.Errorf("an error must leave the decision to the timeout: %s", where)
					case b != nil && b.NotFound && v.State != timeoutOnly.State:
						t.Errorf("a 404 must leave the decision to the timeout: %s", where)
					case b != nil && dead(b.Status) && b.Err == "" && b.KeepOnly == "" && b.HandedOffTo == "" && timeout > 0 && !v.Reap():
						t.Errorf("a dead build's lock is stale at once: %s", where)
					case b != nil && b.Status == "succeeded" && b.Err == "" && b.HandedOffTo == "" && (!reapSucceeded || b.KeepOnly != "") && v.State != timeoutOnly.State:
						t.Errorf("a succeeded build leaves the decision to the timeout: %s", where)
					case v.Reap() && b != nil && Running(b.Status):
						t.Errorf("reaped a running build's lock: %s", where)
					}
				}
			}
		}
	}
	if n != len(builds)*len(ages)*2*2 {
		t.Fatalf("checked %d combinations", n)
	}
}
