package resource

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/queue"
)

// Fair waiting. An acquire or claim that cannot be granted at once writes a ticket
// into the pool's queue (internal/queue) and waits its turn; a grant is the claim
// commit, which also deletes the ticket (and every expired one). Only tickets near
// the front look at the remote often; the others look less often, and every
// waiter renews its ticket (a commit) a third of a ticket's lifetime after it was
// last written, so that a waiter that died leaves a ticket the others ignore once
// it expires.

const (
	// minTicketTTL keeps tickets of puts with a tiny retry_delay from expiring
	// while their renewal is still on the wire.
	minTicketTTL = 5 * time.Second
	// withdrawTimeout bounds withdrawing a ticket after an abort: Concourse kills
	// a step that does not end soon after its SIGTERM.
	withdrawTimeout = 8 * time.Second
)

// ticketTTL is how long a ticket lives after it was written: 6 × retry_delay, at
// least minTicketTTL.
func ticketTTL(delay time.Duration) time.Duration { return max(6*delay, minTicketTTL) }

// queueState is this put's place in the queue.
type queueState struct {
	id    string
	wrote bool   // a ticket was pushed (or may have been): withdraw it when giving up
	seen  bool   // the ticket was in the queue at a head: gone from a later one, it expired
	said  string // the last position line logged
}

// queueWait is how a waiting ticket waits.
type queueWait struct {
	line  string    // where it stands, for the log
	front bool      // near enough to the front to look often
	renew time.Time // when its ticket must be renewed
}

// queued decides an acquire or claim with the queue.
func (o *outRun) queued(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	if o.q == nil {
		o.q = &queueState{id: strings.ToLower(rand.Text())}
	}
	want := queue.Want{Acquire: true}
	cause := "no lock available in pool " + p.Name
	if o.op == "claim" {
		want = queue.Want{Claim: o.step.name}
		l, found, err := find(p, o.step.name)
		switch {
		case err != nil:
			return plan{}, err
		case !found:
			cause = fmt.Sprintf("lock %s does not exist in pool %s", o.step.name, p.Name)
		case l.Claimed:
			cause = fmt.Sprintf("lock %s is claimed", l.Name)
		default:
			cause = fmt.Sprintf("lock %s is promised to a ticket ahead", l.Name)
		}
	}
	tickets, _, err := queue.Read(ctx, o.repo, head, p.Name)
	if err != nil {
		return plan{}, err
	}
	now := time.Now()
	ttl := ticketTTL(o.src.retryDelay())
	var mine *queue.Ticket
	var others []queue.Ticket
	for i, t := range tickets {
		if t.ID == o.q.id {
			mine = &tickets[i]
		} else {
			others = append(others, t)
		}
	}
	me := queue.Ticket{ID: o.q.id, Seq: queue.NextSeq(tickets), Priority: o.params.Priority, Enqueued: now,
		Expires: now.Add(ttl), Want: []queue.Want{want}, Holder: o.queueHolder()}
	if mine != nil {
		me = *mine
		o.q.seen = true
	} else if o.q.seen {
		// Not merely wrote: a ticket whose push lost a race never was in the queue.
		fmt.Fprintf(o.log, "this build's ticket is gone from the queue of pool %s (it expired); queueing again\n", p.Name)
		o.q.seen = false
	}
	// This waiter is alive, whatever its ticket's expiry says.
	live := me
	live.Expires = maxTime(live.Expires, now.Add(time.Second))
	ordered := queue.Order(append(others, live), now)
	var free []string
	for _, l := range p.Unclaimed {
		if p.Broken[l.Name] == "" {
			free = append(free, l.Name)
		}
	}
	grants := queue.Grant(ordered, free)
	if name, ok := grants[me.ID]; ok {
		if mine == nil && o.op == "acquire" {
			name = o.anyLeft(free, grants, me.ID, name)
		}
		l, _, err := find(p, name)
		if err != nil {
			return plan{}, err
		}
		pl := o.claimPlan(l)
		for _, t := range tickets {
			if t.ID == me.ID || !t.Live(now) {
				pl.edits = append(pl.edits, pool.Edit{Path: t.Path})
			}
		}
		return pl, nil
	}
	renew := me.Expires.Add(-ttl * 2 / 3)
	if mine == nil || !now.Before(renew) {
		op := "queueing"
		if mine != nil {
			op = "renewing queue ticket"
			me.Expires = now.Add(ttl)
		}
		blob, err := writeBlob(ctx, o.repo, me.Encode())
		if err != nil {
			return plan{}, err
		}
		o.q.wrote = true
		return plan{again: true, msg: o.holder.message(op, p.Name),
			edits: []pool.Edit{{Path: queue.Path(p.Name, me.ID), Mode: "100644", Blob: blob}}}, nil
	}
	pos := 0
	for i, t := range ordered {
		if t.ID == me.ID {
			pos = i + 1
			break
		}
	}
	return plan{wait: cause, queue: &queueWait{
		line:  positionLine(p.Name, o.step.name, ordered, pos, cause),
		front: pos <= len(p.Claimed)+len(p.Unclaimed),
		renew: renew,
	}}, nil
}

// anyLeft picks, for a put that has no ticket yet, a random lock among those no
// ticket is granted (granted: the grant's own pick): puts arriving together on an
// empty queue then mostly pick different locks, as upstream's random pick does,
// instead of all racing for the first.
func (o *outRun) anyLeft(free []string, grants map[string]string, me, granted string) string {
	taken := map[string]bool{}
	for id, l := range grants {
		if id != me {
			taken[l] = true
		}
	}
	var left []string
	for _, l := range free {
		if !taken[l] {
			left = append(left, l)
		}
	}
	if len(left) == 0 {
		return granted
	}
	return left[mrand.IntN(len(left))]
}

// positionLine is where a ticket stands, for the build log:
// "waiting for a lock in pool envs: position 3 of 7 (ahead: main/deploy/test #41, …)".
func positionLine(poolName, claim string, ordered []queue.Ticket, pos int, cause string) string {
	what := "a lock"
	if claim != "" {
		what = "lock " + claim
	}
	line := fmt.Sprintf("waiting for %s in pool %s: position %d of %d", what, poolName, pos, len(ordered))
	if pos == 1 {
		return line + " (" + cause + ")"
	}
	var ahead []string
	for _, t := range ordered[:min(pos-1, 3)] {
		ahead = append(ahead, t.Holder.Owner().String())
	}
	if pos-1 > 3 {
		ahead = append(ahead, "…")
	}
	return line + " (ahead: " + strings.Join(ahead, ", ") + ")"
}

// queuePace logs where the ticket stands when that changed and says how to wait:
// near the front every twentieth to tenth of retry_delay, further back every half
// to whole retry_delay; until the ticket's renewal at the latest.
func (o *outRun) queuePace(q *queueWait, until time.Time) (lo, hi time.Duration, _ time.Time) {
	if q.line != o.q.said {
		fmt.Fprintln(o.log, q.line)
		o.q.said = q.line
	}
	if until.IsZero() || q.renew.Before(until) {
		until = q.renew
	}
	delay := o.src.retryDelay()
	if q.front {
		return delay / 20, delay / 10, until
	}
	return delay / 2, delay, until
}

func (o *outRun) queueHolder() queue.Holder {
	h := o.holder
	return queue.Holder{Team: h.Team, Pipeline: h.Pipeline, InstanceVars: h.InstanceVars, Job: h.Job, Build: h.Name, BuildID: h.ID, URL: h.URL}
}

// waitDeadline is when params.wait_timeout ends the wait; zero: never.
func (o *outRun) waitDeadline() time.Time {
	if o.params.WaitTimeout <= 0 {
		return time.Time{}
	}
	return o.start.Add(time.Duration(o.params.WaitTimeout))
}

// timedOut is the error of a put that waited params.wait_timeout (why: for what),
// nil while it may wait on.
func (o *outRun) timedOut(why string) error {
	if d := o.waitDeadline(); d.IsZero() || time.Now().Before(d) {
		return nil
	}
	return fmt.Errorf("gave up after waiting %s (params.wait_timeout): %s", time.Duration(o.params.WaitTimeout), why)
}

// withdraw takes this put's ticket out of the queue after the put gave up (err),
// within withdrawTimeout whether or not ctx has ended, and says so in the error.
func (o *outRun) withdraw(ctx context.Context, err error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	path := queue.Path(o.src.Pool, o.q.id)
	note := "withdrew its ticket from the queue"
	var werr error
	for range maxFailures {
		var head string
		if head, werr = o.repo.Fetch(bg); werr != nil {
			break
		}
		var out []byte
		if out, werr = o.repo.Output(bg, "ls-tree", "--name-only", head, "--", path); werr != nil {
			break
		}
		if strings.TrimSpace(string(out)) == "" {
			werr = nil
			break // never landed, or deleted already as expired
		}
		var c string
		if c, werr = pool.Commit(bg, o.repo, head, []pool.Edit{{Path: path}}, o.holder.message("leaving queue", o.src.Pool)); werr != nil {
			break
		}
		if werr = gitx.PushChecked(bg, o.repo, head, c); !errors.Is(werr, gitx.ErrRejected) {
			break
		}
	}
	if werr != nil {
		note = fmt.Sprintf("could not withdraw its ticket from the queue (%s); it expires within %s", oneLine(werr.Error()), ticketTTL(o.src.retryDelay()))
	}
	var ab *abortedError
	if errors.As(err, &ab) {
		ab.what += "; " + note
		return err
	}
	if ctx.Err() != nil {
		// The abort stopped a git command rather than the wait: run would call this
		// stoppedMidStep and drop the note with err's text, so say both here.
		return &abortedError{what: stoppedMidStep + "; " + note, cause: context.Cause(ctx), err: err}
	}
	return fmt.Errorf("%w; %s", err, note)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
