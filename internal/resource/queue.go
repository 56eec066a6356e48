package resource

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/backoff"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/queue"
)

// Fair waiting. An acquire or claim that cannot be granted at once writes a ticket
// into the pool's queue (internal/queue) and waits its turn; a grant is the claim
// commit, which also deletes the ticket (and every expired one). Only tickets near
// the front look at the remote often; the others look less often, and every
// waiter renews its ticket (a commit) when a third of its life is left (late, to
// write the branch seldom; a third of the life is slack for a slow push), so that
// a waiter that died leaves a ticket the others ignore once it expires.

const (
	// minTicketTTL keeps tickets of puts with a tiny retry_delay from expiring
	// while their renewal is still on the wire.
	minTicketTTL = 10 * time.Second
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
	wrote bool      // a ticket was pushed (or may have been): withdraw it when giving up
	seen  bool      // the ticket was in the queue at a head: gone from a later one, it expired
	since time.Time // when its first ticket was enqueued; zero: it wrote none
	said  string    // the last position line logged
}

// queueWait is how a waiting ticket waits.
type queueWait struct {
	line  string    // where it stands, for the log
	ahead int       // rounds of grants before its turn: 0 at the front (see lookEvery)
	renew time.Time // when its ticket must be renewed
}

// queued decides an acquire or claim with the queue. Tickets of every pool's
// queue are read and granted together: a ticket may want locks of several pools
// (multi.go), and every waiter must agree on who gets which lock.
func (o *outRun) queued(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	if o.q == nil {
		o.q = &queueState{id: strings.ToLower(rand.Text())}
	}
	cause := "no lock available in pool " + p.Name
	pools := map[string]*pool.Pool{p.Name: p}
	switch {
	case o.op == "claim":
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
	case o.multi():
		var err error
		if pools, err = o.requestedPools(); err != nil {
			return plan{}, err
		}
	}
	tickets, _, err := queue.ReadAll(ctx, o.repo, head)
	if err != nil {
		return plan{}, err
	}
	now := time.Now()
	ttl := ticketTTL(o.src.retryDelay())
	var mine *queue.Ticket
	var others []queue.Ticket
	for i, t := range tickets {
		if t.ID == o.q.id && t.Pool == p.Name {
			mine = &tickets[i]
		} else {
			others = append(others, t)
		}
	}
	me := queue.Ticket{ID: o.q.id, Seq: queue.NextSeq(tickets), Priority: o.params.Priority, Enqueued: now,
		Expires: now.Add(ttl), Want: o.wants(), Holder: o.queueHolder(), Pool: p.Name}
	if mine != nil {
		// What this put waits for is its own request, whatever its ticket file
		// says now (anyone who can push can rewrite it).
		me = *mine
		me.Want, me.Pool = o.wants(), p.Name
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
	free := map[string][]string{}
	for _, sp := range o.snap.Pools {
		for _, l := range freeLocks(sp) {
			free[sp.Name] = append(free[sp.Name], l.Name)
		}
	}
	shares := queue.Grant(ordered, free)
	if share := shares[me.Key()]; share.Granted {
		if mine == nil && o.op == "acquire" {
			share.Locks = anyLeft(free, shares, me.Key(), share.Locks)
		}
		var locks []pool.Lock
		for _, gl := range share.Locks {
			if pools[gl.Pool] == nil {
				return plan{}, fmt.Errorf("internal error: the queue granted lock %s of pool %s, which this put does not want", gl.Name, gl.Pool)
			}
			l, _, err := find(pools[gl.Pool], gl.Name)
			if err != nil {
				return plan{}, err
			}
			locks = append(locks, l)
		}
		pl := o.claimPlan(locks[0])
		if o.multi() {
			pl = o.multiClaimPlan(locks)
		}
		for _, t := range tickets {
			if t.Key() == me.Key() || !now.Before(t.Expires.Add(policy.TicketGrace)) {
				pl.edits = append(pl.edits, pool.Edit{Path: t.Path})
			}
		}
		return pl, nil
	}
	if o.multi() {
		held := map[string]int{}
		for k, sh := range shares {
			if k != me.Key() {
				for _, l := range sh.Locks {
					held[l.Pool]++
				}
			}
		}
		cause = o.shortage(pools, held)
	}
	renew := me.Expires.Add(-ttl / 3)
	if mine == nil || !now.Before(renew) {
		op := "queueing"
		if mine != nil {
			op = "renewing queue ticket"
			me.Expires = now.Add(ttl)
		}
		blob, err := pool.WriteBlob(ctx, o.repo, me.Encode())
		if err != nil {
			return plan{}, err
		}
		o.q.wrote = true
		if o.q.since.IsZero() {
			o.q.since = me.Enqueued
		}
		return plan{again: true, msg: o.holder.message(op, p.Name),
			edits: []pool.Edit{{Path: queue.Path(p.Name, me.ID), Mode: "100644", Blob: blob}}}, nil
	}
	// The line this ticket stands in: the tickets that want a lock of a pool it wants.
	var line []queue.Ticket
	locks := 0
	for _, sp := range pools {
		locks += len(sp.Claimed) + len(sp.Unclaimed)
	}
	for _, t := range ordered {
		if t.Key() == me.Key() || slices.ContainsFunc(t.Want, func(w queue.Want) bool { return pools[t.PoolOf(w)] != nil }) {
			line = append(line, t)
		}
	}
	pos := slices.IndexFunc(line, func(t queue.Ticket) bool { return t.Key() == me.Key() }) + 1
	var claim *queue.Lock
	if o.op == "claim" {
		claim = &queue.Lock{Pool: p.Name, Name: o.step.name}
	}
	return plan{wait: cause, queue: &queueWait{
		line:  positionLine(o.waitingFor(), line, pos, cause),
		ahead: roundsAhead(line, pos, locks, claim),
		renew: renew,
	}}, nil
}

// roundsAhead is how many rounds of grants come before the turn of the ticket at
// pos (1-based) of line, the tickets that want a lock of the pools it wants, with
// locks locks in those pools: a round grants as many tickets as there are locks.
// A claim of one lock (claim) waits only for the tickets ahead that claim that
// lock too, one round each; the others it passes as soon as its lock is free.
func roundsAhead(line []queue.Ticket, pos, locks int, claim *queue.Lock) int {
	if claim == nil {
		return (pos - 1) / max(locks, 1)
	}
	n := 0
	for _, t := range line[:max(pos-1, 0)] {
		if slices.ContainsFunc(t.Want, func(w queue.Want) bool { return w.Claim == claim.Name && t.PoolOf(w) == claim.Pool }) {
			n++
		}
	}
	return n
}

// waitingFor is what the put waits for, for its position line: "a lock in pool
// aws", "lock env-1 in pool aws", "3 locks at once (2 of pool aws, 1 of pool gpu)".
func (o *outRun) waitingFor() string {
	switch {
	case o.op == "claim":
		return fmt.Sprintf("lock %s in pool %s", o.step.name, o.src.Pool)
	case o.multi():
		total := 0
		var parts []string
		for _, r := range o.request {
			total += r.n
			parts = append(parts, fmt.Sprintf("%d of pool %s", r.n, r.pool))
		}
		return fmt.Sprintf("%d locks at once (%s)", total, strings.Join(parts, ", "))
	}
	return "a lock in pool " + o.src.Pool
}

// anyLeft picks, for a put that has no ticket yet, random locks among those no
// ticket gets or holds back (granted: the grant's own picks), pool by pool: puts
// arriving together on an empty queue then mostly pick different locks, as
// upstream's random pick does, instead of all racing for the first.
func anyLeft(free map[string][]string, shares map[queue.Key]queue.Share, me queue.Key, granted []queue.Lock) []queue.Lock {
	taken := map[queue.Lock]bool{}
	for k, sh := range shares {
		if k != me {
			for _, l := range sh.Locks {
				taken[l] = true
			}
		}
	}
	need := map[string]int{}
	for _, l := range granted {
		need[l.Pool]++
	}
	var picked []queue.Lock
	for _, p := range slices.Sorted(maps.Keys(need)) {
		var left []queue.Lock
		for _, n := range free[p] {
			if l := (queue.Lock{Pool: p, Name: n}); !taken[l] {
				left = append(left, l)
			}
		}
		if len(left) < need[p] {
			return granted
		}
		mrand.Shuffle(len(left), func(i, j int) { left[i], left[j] = left[j], left[i] })
		picked = append(picked, left[:need[p]]...)
	}
	return picked
}

// positionLine is where a ticket stands, for the build log:
// "waiting for a lock in pool envs: position 3 of 7 (ahead: main/deploy/test #41, …)".
func positionLine(what string, ordered []queue.Ticket, pos int, cause string) string {
	line := fmt.Sprintf("waiting for %s: position %d of %d", what, pos, len(ordered))
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

// queuePace logs where the ticket stands when that changed and says how to wait
// (lookEvery); until the ticket's renewal at the latest.
func (o *outRun) queuePace(q *queueWait, until time.Time) (lo, hi time.Duration, _ time.Time) {
	if q.line != o.q.said {
		fmt.Fprintln(o.log, q.line)
		o.q.said = q.line
	}
	if until.IsZero() || q.renew.Before(until) {
		until = q.renew
	}
	lo, hi = lookEvery(o.src.retryDelay(), q.ahead)
	return lo, hi, until
}

// lookEvery is how far apart a waiting ticket looks at the remote, ahead rounds of
// grants from its turn (a round: as many grants as the pool has locks). The front
// looks every twentieth to tenth of delay, each round further back half as often,
// down to every half to whole delay. Only the front can be granted a lock, but a
// ticket reaches the front when the one before it claims, which only its own next
// look tells it: a ticket one round back that looked as seldom as the back of the
// queue would notice its turn seconds after the lock it gets was freed.
func lookEvery(delay time.Duration, ahead int) (lo, hi time.Duration) {
	lo = delay / 20
	for range min(ahead, 8) {
		lo *= 2
	}
	lo = min(lo, delay/2)
	return lo, min(2*lo, delay)
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
// A try that lost a push race (many waiters aborted at once all withdraw
// together) or could not reach the remote is made again after a backoff until
// the time is up; any other failure (a refused push, bad credentials) ends it.
func (o *outRun) withdraw(ctx context.Context, err error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), withdrawTimeout)
	defer cancel()
	path := queue.Path(o.src.Pool, o.q.id)
	note := "withdrew its ticket from the queue"
	var werr error
	for try := 1; ; try++ {
		werr = o.withdrawOnce(bg, path)
		if werr == nil || !errors.Is(werr, gitx.ErrRejected) && !errors.Is(werr, gitx.ErrUnreachable) {
			break
		}
		if sleep(bg, backoff.Exp(try, maxJitter, time.Second)) != nil {
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

// withdrawOnce deletes the ticket at path from the remote branch, if it is there.
func (o *outRun) withdrawOnce(ctx context.Context, path string) error {
	head, err := o.repo.Fetch(ctx)
	if err != nil {
		return err
	}
	out, err := o.repo.Output(ctx, "ls-tree", "--name-only", head, "--", path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(out)) == "" {
		return nil // never landed, or deleted already as expired
	}
	c, err := pool.Commit(ctx, o.repo, head, []pool.Edit{{Path: path}}, o.holder.message("leaving queue", o.src.Pool))
	if err != nil {
		return err
	}
	beforePush()
	return gitx.PushChecked(ctx, o.repo, head, c)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
