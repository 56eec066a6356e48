// Package policy decides whether a claimed lock is stale. Decide is a pure function
// of its Input, so every combination of evidence can be tested; the reaper gathers
// the evidence and acts on the verdict, nothing else decides.
package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// State is a claimed lock's verdict.
type State string

// The verdicts. Only Stale locks are ever freed.
const (
	Held      State = "held"      // claimed, within its pool's timeout
	Alive     State = "alive"     // its build, or the build it was handed to, is running: kept whatever its age
	Stale     State = "stale"     // to be freed
	Unwatched State = "unwatched" // its pool has no timeout: reported, never freed
	Broken    State = "broken"    // an integrity problem: reported, never freed
	Unknown   State = "unknown"   // no claim commit in history: no age, so never freed
	OnHold    State = "on-hold"   // a person holds it on purpose (poolboy hold) until the hold expires
)

// Input is the evidence about one claimed lock.
type Input struct {
	Now        time.Time
	ClaimFound bool      // the claim commit was found
	ClaimedAt  time.Time // its committer time
	Timeout    time.Duration
	Problem    string // an integrity problem with this lock, "" if none
	// Build is what Concourse said about the build that claimed the lock; nil when
	// nobody asked (no Concourse configured, or the claim names no build).
	Build *Build
	// ReapSucceeded frees a lock as soon as its build succeeded, for pools whose
	// jobs never pass locks on to other jobs.
	ReapSucceeded bool
	// Hold is a person's hold on this very claim (poolboy hold); nil: none.
	Hold *Hold
}

// Hold is a lock kept on purpose: until Until, the lock is never freed, whatever
// its age or its build's state.
type Hold struct {
	Until  time.Time
	By     string // who holds it, for people
	Reason string
}

// Build is the evidence about the build that claimed a lock.
type Build struct {
	Name        string // for people: "team/pipeline/job #12"
	Status      string // pending, started, succeeded, failed, errored, aborted; "" when not known
	NotFound    bool   // Concourse answered 404: the build or its pipeline is gone
	Err         string // the lookup failed (unreachable, 5xx, 401/403, timeout, bad JSON)
	HandedOffTo string // a pending or started build that took this claim as an input
	URL         string // the build's page, for people
	// Foreign says why Concourse's answer is about another build than the one
	// that wrote the claim (another Concourse, another build id): no evidence
	// at all.
	Foreign string
	// KeepOnly says why the answer may be about another build (the claim names
	// no team, or no Concourse of several, or two builds; a claim time outside
	// the build's; recorded puts that are not the claim): it may keep the
	// lock, never free it before the timeout.
	KeepOnly string
	// Warning is something odd about an answer that is about the claim's own
	// build, which decides nothing but people should see (a claim time outside
	// its build's times: a worker's clock off).
	Warning string
}

// Running says whether a build status means the build is still going.
func Running(status string) bool { return status == "pending" || status == "started" }

func dead(status string) bool {
	return status == "failed" || status == "errored" || status == "aborted"
}

// Verdict is what to do with a claimed lock, and why, in words for people.
type Verdict struct {
	State   State
	Rule    string // the rule that decided, for machines: trailers, metrics, JSON
	Reason  string
	Warning string        // evidence that could not be had, e.g. Concourse unreachable
	Age     time.Duration // how long the lock has been claimed; 0 when unknown
}

// Reap says whether the lock must be freed.
func (v Verdict) Reap() bool { return v.State == Stale }

// Decide returns the verdict for one claimed lock. A person's hold comes first,
// until it expires. Then evidence from Concourse: a running build keeps its lock
// whatever its age, a dead one loses it at once. Without evidence — no Concourse,
// no owner, a 404, or an error, which is never evidence of death — the pool's
// timeout decides.
func Decide(in Input) Verdict {
	if in.Problem != "" {
		return Verdict{State: Broken, Rule: "integrity", Reason: "not touched: " + in.Problem}
	}
	if !in.ClaimFound {
		return Verdict{State: Unknown, Rule: "no-claim", Reason: "no commit in history claims it, so its age is unknown"}
	}
	h := in.Hold
	if h == nil {
		return decide(in)
	}
	who := h.By + ": " + h.Reason
	if in.Now.Before(h.Until) {
		return Verdict{State: OnHold, Rule: "hold", Age: max(in.Now.Sub(in.ClaimedAt), 0),
			Reason: fmt.Sprintf("on hold until %s (%s left), by %s", h.Until.UTC().Format(time.RFC3339), Human(h.Until.Sub(in.Now)), who)}
	}
	v := decide(in)
	v.Reason = fmt.Sprintf("the hold by %s expired %s ago; %s", who, Human(in.Now.Sub(h.Until)), v.Reason)
	return v
}

// decide is Decide for a claim nobody holds on purpose.
func decide(in Input) Verdict {
	age := in.Now.Sub(in.ClaimedAt)
	v := Verdict{Age: max(age, 0)}
	b := in.Build
	if b != nil {
		v.Warning = b.Warning
	}
	if b != nil && b.Foreign != "" {
		v.Warning = b.Foreign
		return timeout(in, v, "Concourse's answer is about another build than "+b.Name+", so only the timeout decides; ")
	}
	switch {
	case b != nil && Running(b.Status):
		v.State, v.Rule, v.Reason = Alive, "build-running", fmt.Sprintf("%s is %s: kept whatever its age", b.Name, b.Status)
		return v
	case b != nil && b.HandedOffTo != "":
		v.State, v.Rule, v.Reason = Alive, "handed-off", fmt.Sprintf("%s %s and handed the lock off to %s", b.Name, b.Status, b.HandedOffTo)
		return v
	}
	note := ""
	if b != nil {
		switch {
		case b.Err != "":
			note = "Concourse could not say whether " + b.Name + " is alive, so only the timeout decides; "
			v.Warning = strings.TrimSuffix(b.Err+"; "+b.Warning, "; ")
		case b.NotFound:
			note = b.Name + " no longer exists in Concourse; "
		case in.Timeout <= 0:
			note = b.Name + " " + b.Status + "; "
		case b.KeepOnly != "":
			note = fmt.Sprintf("%s %s, but %s: only the timeout frees it; ", b.Name, b.Status, b.KeepOnly)
		case dead(b.Status):
			v.State, v.Rule = Stale, "build-"+b.Status
			v.Reason = fmt.Sprintf("%s %s and no running build took the lock on", b.Name, b.Status)
			return v
		case b.Status == "succeeded" && in.ReapSucceeded:
			v.State, v.Rule = Stale, "build-succeeded"
			v.Reason = b.Name + " succeeded and the pool frees locks when their build ends"
			return v
		case b.Status == "succeeded":
			note = b.Name + " succeeded and no running build took the lock on; "
		default:
			note = b.Name + " has status " + strconv.Quote(b.Status) + "; "
		}
	}
	return timeout(in, v, note)
}

// timeout is the verdict without (deciding) evidence: the pool's timeout, after
// note on what Concourse said.
func timeout(in Input, v Verdict, note string) Verdict {
	age := in.Now.Sub(in.ClaimedAt)
	if age < 0 {
		// A claim from the future is a clock problem, not evidence of staleness.
		ahead := in.ClaimedAt.Sub(in.Now)
		when := Human(ahead)
		if ahead == math.MaxInt64 { // Sub saturates past 292 years
			when = "centuries (at " + in.ClaimedAt.UTC().Format(time.RFC3339) + ")"
		}
		v.State, v.Rule, v.Reason = Held, "clock-skew", note+"claimed "+when+" in the future (clock skew?)"
		if in.Timeout <= 0 {
			v.State = Unwatched
		}
		return v
	}
	switch {
	case in.Timeout <= 0:
		v.State, v.Rule, v.Reason = Unwatched, "no-timeout", note+"held "+Human(age)+"; the pool has no timeout"
	case age > in.Timeout:
		v.State, v.Rule, v.Reason = Stale, "timeout", note+fmt.Sprintf("held %s, longer than the pool's %s timeout", Human(age), Human(in.Timeout))
	default:
		v.State, v.Rule, v.Reason = Held, "within-timeout", note+fmt.Sprintf("held %s of the pool's %s timeout", Human(age), Human(in.Timeout))
	}
	return v
}

// Human renders a duration the way people say it: "45s", "12m", "3h12m", "2d4h".
// Two units at most; the rest is noise when deciding about a lock.
func Human(d time.Duration) string {
	if d < 0 {
		d = -d
		if d < 0 { // the most negative duration has no opposite
			d = math.MaxInt64
		}
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
