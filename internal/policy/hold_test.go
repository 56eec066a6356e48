package policy

import (
	"strings"
	"testing"
	"time"
)

// A person's hold keeps the lock whatever else says, until it expires; then the
// lock is decided as if there were none, and the reason says the hold expired.
func TestDecideHold(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	dead := &Build{Name: "main/p/j #1", Status: "failed"}
	cases := []struct {
		name      string
		until     time.Time
		problem   string
		found     bool
		age       time.Duration
		build     *Build
		wantState State
		wantRule  string
		wantIn    string
	}{
		{"active, past timeout", now.Add(time.Hour), "", true, 5 * time.Hour, nil, OnHold, "hold", "on hold until 2026-05-04T13:00:00Z (1h left), by ann: debugging"},
		{"active, build failed", now.Add(time.Minute), "", true, time.Minute, dead, OnHold, "hold", "on hold until"},
		{"active, integrity problem", now.Add(time.Hour), "x", true, 5 * time.Hour, nil, Broken, "integrity", "not touched: x"},
		{"active, no claim", now.Add(time.Hour), "", false, 0, nil, Unknown, "no-claim", "no commit"},
		{"expired, past timeout", now.Add(-time.Minute), "", true, 5 * time.Hour, nil, Stale, "timeout", "the hold by ann: debugging expired 1m ago; held 5h"},
		{"expiring now", now, "", true, 5 * time.Hour, nil, Stale, "timeout", "expired 0s ago"},
		{"expired, within timeout", now.Add(-time.Minute), "", true, time.Minute, nil, Held, "within-timeout", "expired 1m ago; held 1m"},
		{"expired, build failed", now.Add(-time.Minute), "", true, time.Minute, dead, Stale, "build-failed", "expired 1m ago; main/p/j #1 failed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(Input{Now: now, ClaimFound: c.found, ClaimedAt: now.Add(-c.age), Timeout: time.Hour,
				Problem: c.problem, Build: c.build, Hold: &Hold{Until: c.until, By: "ann", Reason: "debugging"}})
			if v.State != c.wantState || v.Rule != c.wantRule || !strings.Contains(v.Reason, c.wantIn) {
				t.Errorf("got %s/%s %q, want %s/%s containing %q", v.State, v.Rule, v.Reason, c.wantState, c.wantRule, c.wantIn)
			}
			if v.State == OnHold && v.Reap() {
				t.Error("a held lock is to be reaped")
			}
		})
	}
}
