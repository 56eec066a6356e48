// Package policy decides whether a claimed lock is stale. Decide is a pure function
// of its Input, so every combination of evidence can be tested; the reaper gathers
// the evidence and acts on the verdict, nothing else decides.
package policy

import (
	"fmt"
	"time"
)

// State is a claimed lock's verdict.
type State string

// The verdicts. Only Stale locks are ever freed.
const (
	Held      State = "held"      // claimed, within its pool's timeout
	Stale     State = "stale"     // to be freed
	Unwatched State = "unwatched" // its pool has no timeout: reported, never freed
	Broken    State = "broken"    // an integrity problem: reported, never freed
	Unknown   State = "unknown"   // no claim commit in history: no age, so never freed
)

// Input is the evidence about one claimed lock.
type Input struct {
	Now        time.Time
	ClaimFound bool      // the claim commit was found
	ClaimedAt  time.Time // its committer time
	Timeout    time.Duration
	Problem    string // an integrity problem with this lock, "" if none
}

// Verdict is what to do with a claimed lock, and why, in words for people.
type Verdict struct {
	State  State
	Rule   string // the rule that decided, for machines: trailers, metrics, JSON
	Reason string
	Age    time.Duration // how long the lock has been claimed; 0 when unknown
}

// Reap says whether the lock must be freed.
func (v Verdict) Reap() bool { return v.State == Stale }

// Decide returns the verdict for one claimed lock.
func Decide(in Input) Verdict {
	if in.Problem != "" {
		return Verdict{State: Broken, Rule: "integrity", Reason: "not touched: " + in.Problem}
	}
	if !in.ClaimFound {
		return Verdict{State: Unknown, Rule: "no-claim", Reason: "no commit in history claims it, so its age is unknown"}
	}
	age := in.Now.Sub(in.ClaimedAt)
	if age < 0 {
		// A claim from the future is a clock problem, not evidence of staleness.
		v := Verdict{State: Held, Rule: "clock-skew", Reason: "claimed " + Human(-age) + " in the future (clock skew?)"}
		if in.Timeout <= 0 {
			v.State = Unwatched
		}
		return v
	}
	v := Verdict{Age: age}
	switch {
	case in.Timeout <= 0:
		v.State, v.Rule, v.Reason = Unwatched, "no-timeout", "held "+Human(age)+"; the pool has no timeout"
	case age > in.Timeout:
		v.State, v.Rule, v.Reason = Stale, "timeout", fmt.Sprintf("held %s, longer than the pool's %s timeout", Human(age), Human(in.Timeout))
	default:
		v.State, v.Rule, v.Reason = Held, "within-timeout", fmt.Sprintf("held %s of the pool's %s timeout", Human(age), Human(in.Timeout))
	}
	return v
}

// Human renders a duration the way people say it: "45s", "12m", "3h12m", "2d4h".
// Two units at most; the rest is noise when deciding about a lock.
func Human(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	s := int64(d / time.Second)
	days, hours, mins := s/86400, s/3600%24, s/60%60
	switch {
	case days > 0 && hours > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case hours > 0 && mins > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case hours > 0:
		return fmt.Sprintf("%dh", hours)
	case mins > 0 && s%60 > 0 && mins < 10:
		return fmt.Sprintf("%dm%ds", mins, s%60)
	case mins > 0:
		return fmt.Sprintf("%dm", mins)
	}
	return fmt.Sprintf("%ds", s)
}
