package policy

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// expect is what Decide must say for one combination of evidence, worked out
// from the precedence problem > not found > clock skew > no timeout > timeout.
func expect(problem string, found bool, age, timeout time.Duration) (State, string, time.Duration) {
	switch {
	case problem != "":
		return Broken, "integrity", 0
	case !found:
		return Unknown, "no-claim", 0
	case age < 0 && timeout <= 0:
		return Unwatched, "clock-skew", 0
	case age < 0:
		return Held, "clock-skew", 0
	case timeout <= 0:
		return Unwatched, "no-timeout", age
	case age > timeout:
		return Stale, "timeout", age
	default:
		return Held, "within-timeout", age
	}
}

func TestDecideExhaustive(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	const hour = time.Hour
	ages := []struct {
		name string
		age  time.Duration
	}{
		{"skew", -5 * time.Minute},
		{"zero", 0},
		{"just-under", hour - time.Second},
		{"exactly", hour},
		{"just-over", hour + time.Second},
		{"far-over", 72 * hour},
	}
	type tc struct {
		name      string
		problem   string
		found     bool
		age       time.Duration
		timeout   time.Duration
		wantState State
		wantRule  string
		wantAge   time.Duration
	}
	var cases []tc
	for _, problem := range []string{"", "x"} {
		for _, found := range []bool{true, false} {
			for _, a := range ages {
				for _, timeout := range []time.Duration{0, hour} {
					st, rule, age := expect(problem, found, a.age, timeout)
					cases = append(cases, tc{
						name:    fmt.Sprintf("problem=%q/found=%v/age=%s/timeout=%v", problem, found, a.name, timeout),
						problem: problem, found: found, age: a.age, timeout: timeout,
						wantState: st, wantRule: rule, wantAge: age,
					})
				}
			}
		}
	}
	if len(cases) != 2*2*6*2 {
		t.Fatalf("built %d cases, want the full cross product of 48", len(cases))
	}
	// The table is derived from the precedence rules; pin a few by hand so a
	// mistake in expect cannot hide one in Decide.
	spot := map[string]State{
		`problem="x"/found=true/age=far-over/timeout=1h0m0s`:  Broken,
		`problem=""/found=false/age=far-over/timeout=1h0m0s`:  Unknown,
		`problem=""/found=true/age=skew/timeout=1h0m0s`:       Held,
		`problem=""/found=true/age=skew/timeout=0s`:           Unwatched,
		`problem=""/found=true/age=far-over/timeout=0s`:       Unwatched,
		`problem=""/found=true/age=exactly/timeout=1h0m0s`:    Held,
		`problem=""/found=true/age=just-over/timeout=1h0m0s`:  Stale,
		`problem=""/found=true/age=just-under/timeout=1h0m0s`: Held,
		`problem=""/found=true/age=zero/timeout=1h0m0s`:       Held,
	}
	seen := 0
	for _, c := range cases {
		if want, ok := spot[c.name]; ok {
			seen++
			if c.wantState != want {
				t.Fatalf("table says %s for %s, want %s", c.wantState, c.name, want)
			}
		}
	}
	if seen != len(spot) {
		t.Fatalf("only %d of %d spot checks matched a case name", seen, len(spot))
	}

	stale := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := Decide(Input{
				Now:        now,
				ClaimFound: c.found,
				ClaimedAt:  now.Add(-c.age),
				Timeout:    c.timeout,
				Problem:    c.problem,
			})
			if v.State != c.wantState || v.Rule != c.wantRule {
				t.Errorf("Decide = %s/%s, want %s/%s (reason %q)", v.State, v.Rule, c.wantState, c.wantRule, v.Reason)
			}
			if v.Reap() != (c.wantState == Stale) {
				t.Errorf("Reap() = %v for state %s", v.Reap(), v.State)
			}
			if v.Age != c.wantAge {
				t.Errorf("Age = %v, want %v", v.Age, c.wantAge)
			}
			if strings.TrimSpace(v.Reason) == "" {
				t.Errorf("empty Reason")
			}
			if c.problem != "" && !strings.Contains(v.Reason, c.problem) {
				t.Errorf("Reason %q does not name the problem %q", v.Reason, c.problem)
			}
			if v.Reap() {
				stale++
			}
		})
	}
	// Only found, problem-free claims strictly older than a real timeout.
	if stale != 2 {
		t.Errorf("%d cases reaped, want 2 (just-over and far-over with a 1h timeout)", stale)
	}
}

func TestDecideReasonWords(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   Input
		want []string
	}{
		{"skew", Input{Now: now, ClaimFound: true, ClaimedAt: now.Add(5 * time.Minute), Timeout: time.Hour}, []string{"5m", "future"}},
		{"stale", Input{Now: now, ClaimFound: true, ClaimedAt: now.Add(-3*time.Hour - 12*time.Minute), Timeout: time.Hour}, []string{"3h12m", "1h"}},
		{"held", Input{Now: now, ClaimFound: true, ClaimedAt: now.Add(-10 * time.Minute), Timeout: time.Hour}, []string{"10m", "1h"}},
		{"no timeout", Input{Now: now, ClaimFound: true, ClaimedAt: now.Add(-49 * time.Hour)}, []string{"2d1h", "no timeout"}},
		{"claim dated 9999-12-31", Input{Now: now, ClaimFound: true, ClaimedAt: time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), Timeout: time.Hour},
			[]string{"claimed centuries (at 9999-12-31T00:00:00Z) in the future"}},
		{"problem", Input{Now: now, ClaimFound: true, Problem: "lock is in both claimed/ and unclaimed/"}, []string{"both claimed/ and unclaimed/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(tt.in)
			for _, w := range tt.want {
				if !strings.Contains(v.Reason, w) {
					t.Errorf("Reason %q lacks %q", v.Reason, w)
				}
			}
		})
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{45 * time.Second, "45s"},
		{90 * time.Second, "1m30s"},
		{10 * time.Minute, "10m"},
		{10*time.Minute + 30*time.Second, "10m"},
		{59*time.Minute + 59*time.Second, "59m"},
		{time.Hour, "1h"},
		{3*time.Hour + 12*time.Minute, "3h12m"},
		{3*time.Hour + 12*time.Minute + 40*time.Second, "3h12m"},
		{24 * time.Hour, "1d"},
		{49 * time.Hour, "2d1h"},
		{49*time.Hour + 30*time.Minute, "2d1h"},
		{-90 * time.Second, "1m30s"},
		{-3 * time.Hour, "3h"},
		{math.MinInt64, "106751d23h"},
		{math.MaxInt64, "106751d23h"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			if got := Human(tt.d); got != tt.want {
				t.Errorf("Human(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}
