package soak

import (
	"encoding/json"
	"maps"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/policy"
)

// ticketTTL is how long a ticket of pool lives after it was written, as the
// README promises it (Fair waiting, Expiry): 6 × retry_delay, at least 5 s.
func ticketTTL(pool string) time.Duration { return max(6*retryDelay(pool), 10*time.Second) }

// ticket is a queue ticket as the replay knows it. The checker decodes tickets
// itself, as it parses paths itself: it must not share a parser with the code it
// checks.
type ticket struct {
	pool    string
	build   string // holder.build_id
	seq     int64
	prio    int
	want    string // "*" for any lock of the pool, else the lock's name; "" for a want the checker does not know
	expires time.Time
}

// ticketPath splits ".poolboy-queue/POOL/ID.json".
func ticketPath(p string) (pool string, ok bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[0] != ".poolboy-queue" || !strings.HasSuffix(parts[2], ".json") {
		return "", false
	}
	return parts[1], true
}

func decodeTicket(pool string, data []byte) (ticket, error) {
	var raw struct {
		Seq      int64     `json:"seq"`
		Priority int       `json:"priority"`
		Expires  time.Time `json:"expires"`
		Want     []struct {
			Acquire bool   `json:"acquire"`
			Claim   string `json:"claim"`
		} `json:"want"`
		Holder struct {
			BuildID string `json:"build_id"`
		} `json:"holder"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return ticket{}, err
	}
	t := ticket{pool: pool, build: raw.Holder.BuildID, seq: raw.Seq, prio: raw.Priority, expires: raw.Expires}
	if len(raw.Want) == 1 {
		switch w := raw.Want[0]; {
		case w.Acquire && w.Claim == "":
			t.want = "*"
		case !w.Acquire && w.Claim != "":
			t.want = w.Claim
		}
	}
	return t, nil
}

// queueReplay is the queue's state during the replay.
type queueReplay struct {
	tickets    map[string]ticket    // by path, at the commit replayed last
	maxExpires map[string]time.Time // by build: the latest expiry any of its tickets was written with
}

// checkTickets checks a commit's ticket changes against the state before it,
// and returns the state after it (applied by the caller once the commit's lock
// change was checked against the state before):
//   - a ticket is written (added, renewed) only by its own build, expiring no
//     later than ticketTTL after its commit; a new ticket's seq is above every
//     ticket of its pool (the order tickets landed in); a renewal keeps its seq;
//   - a ticket is deleted only by its own build (a withdrawal, or its grant), or
//     once it has expired (an expired ticket is ignored, and the next claim
//     deletes it): a live waiter's place is never taken away.
func (w *world) checkTickets(q *queueReplay, c commit, changes [][2]string, pushedAt time.Time) map[string]ticket {
	by := trailer(c.msg, "Poolboy-Build-Id")
	next := map[string]ticket{}
	for p, t := range q.tickets {
		next[p] = t
	}
	for _, ch := range changes {
		st, path := ch[0], ch[1]
		pool, _ := ticketPath(path)
		old, had := q.tickets[path]
		if st == "D" {
			delete(next, path)
			switch {
			case !had:
				w.violate("commit %s deletes ticket %s, which the replay never saw written", c.sha, path)
			case old.build == by:
				w.stats.add("queue: tickets deleted by their own build (granted or withdrawn)", 1)
			case strings.HasPrefix(trailer(c.msg, "Poolboy-Rule"), "build-"):
				// A reaper's word that the waiting build ended: it must have.
				if b := w.buildByID(old.build); b == nil {
					w.violate("reaper commit %s deletes ticket %s of build %s, which is no build of the soak", c.sha, path, old.build)
				} else if st := w.statusAt(b, pushedAt); policy.Running(st) {
					w.violate("reaper commit %s deletes ticket %s of build %s, which was %s when its push started", c.sha, path, old.build, st)
				} else {
					w.stats.add("queue: tickets of ended builds deleted by a reaper", 1)
				}
			case old.expires.After(pushedAt):
				w.violate("commit %s (build %s) deletes the ticket %s of build %s, live until %s, when its push started at %s",
					c.sha, by, path, old.build, old.expires.Format(time.StampMilli), pushedAt.Format(time.StampMilli))
			default:
				w.stats.add("queue: expired tickets deleted by another build", 1)
			}
			continue
		}
		data, err := w.git("cat-file", "blob", c.sha+":"+path)
		if err != nil {
			w.t.Errorf("harness: %v", err)
			continue
		}
		t, err := decodeTicket(pool, []byte(data))
		switch {
		case err != nil:
			w.violate("commit %s writes ticket %s, which is not a ticket: %v", c.sha, path, err)
			continue
		case t.build != by:
			w.violate("commit %s by build %s writes ticket %s of build %s", c.sha, by, path, t.build)
		case t.expires.Sub(c.at) > ticketTTL(pool)+time.Second: // commit times are whole seconds
			w.violate("commit %s writes ticket %s expiring %s after its commit, past the documented %s",
				c.sha, path, t.expires.Sub(c.at).Round(time.Millisecond), ticketTTL(pool))
		}
		if st == "A" {
			for p, o := range q.tickets {
				if o.pool == pool && o.seq >= t.seq {
					w.violate("commit %s adds ticket %s with seq %d, not above ticket %s (seq %d)", c.sha, path, t.seq, p, o.seq)
				}
			}
			w.stats.add("queue: tickets written", 1)
		} else {
			if had && old.seq != t.seq {
				w.violate("commit %s renews ticket %s with seq %d, it had %d: a renewal must keep its place", c.sha, path, t.seq, old.seq)
			}
			w.stats.add("queue: tickets renewed", 1)
		}
		if t.expires.After(q.maxExpires[t.build]) {
			q.maxExpires[t.build] = t.expires
		}
		next[path] = t
	}
	return next
}

// checkFair checks a claim of lock name in pool by build by against the queue
// before it (FIFO among same-priority tickets): no live ticket of another build
// with the same priority that landed earlier (or any, when the claimer had no
// ticket: it came last) waited for that very lock, and fewer such tickets waited
// for any lock of the pool than there were free locks; otherwise the lock was
// taken from under a waiter ahead. "Live" is at the push's start, which is after
// the claimer decided: a ticket live then was live for the claimer too. Tickets
// with wants the checker does not know are left out.
func (w *world) checkFair(q *queueReplay, state map[string]*lockState, c commit, pool, name, by string, pushedAt time.Time) {
	var mine *ticket
	for _, t := range q.tickets {
		if t.pool == pool && t.build == by {
			mine = &t
			break
		}
	}
	if mine != nil {
		w.stats.add("queue: grants to a ticket", 1)
	}
	prio := 0
	if mine != nil {
		prio = mine.prio
	}
	free := 0
	for key, l := range state {
		if strings.HasPrefix(key, pool+"/") && !l.claimed {
			free++
		}
	}
	var anyLock []string
	for path, t := range q.tickets {
		if t.pool != pool || t.build == by || t.prio != prio || !t.expires.After(pushedAt) || (mine != nil && t.seq > mine.seq) {
			continue
		}
		switch t.want {
		case name:
			w.violate("commit %s: build %s claimed %s/%s while the earlier live ticket %s of build %s waited for that lock",
				c.sha, by, pool, name, path, t.build)
		case "*":
			anyLock = append(anyLock, t.build)
		}
	}
	if len(anyLock) >= free {
		w.violate("commit %s: build %s claimed %s/%s while the earlier live tickets of builds %v waited for a lock of the pool, %d free",
			c.sha, by, pool, name, anyLock, free)
	}
}

// checkQueueEnd checks the queue at the end, when every put has ended: every
// ticket left belongs to a put that was killed or said its withdrawal failed;
// and no killed waiter's ticket was written to live longer than ticketTTL past
// the kill, so that no dead ticket holds up the queue longer than the README
// says (other waiters ignore it once it expired: checkFair).
func (w *world) checkQueueEnd() {
	w.mu.Lock()
	left := maps.Clone(w.ticketLeft)
	w.mu.Unlock()
	for path, t := range w.queue.tickets {
		if _, ok := left[t.build]; !ok {
			w.violate("at the end ticket %s of build %s is still in the queue; its put neither was killed nor said it could not withdraw it", path, t.build)
			continue
		}
		w.stats.add("queue: tickets left at the end by a killed waiter or a failed withdrawal", 1)
	}
	for build, k := range left {
		if k.at.IsZero() {
			continue
		}
		if until := w.queue.maxExpires[build]; until.After(k.at.Add(ticketTTL(k.pool) + time.Second)) {
			w.violate("build %s was killed at %s, its ticket counted until %s: longer than the documented %s",
				build, k.at.Format(time.StampMilli), until.Format(time.StampMilli), ticketTTL(k.pool))
		}
	}
}
