package soak

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// git runs git in the server's repository (read-only use).
func (w *world) git(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = w.bare
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C")
	out, err := cmd.Output()
	if err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, exit.Stderr)
		}
	}
	return string(out), err
}

// lockPath splits "pool/claimed/name" or "pool/unclaimed/name"; ok is false for
// anything else (.gitkeep files, other paths). It is deliberately not pool.Parse:
// the checks must not share a parser with the code they check.
func lockPath(p string) (pool, state, name string, ok bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || parts[2] == ".gitkeep" || (parts[1] != "claimed" && parts[1] != "unclaimed") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// checkStep checks the invariants on the server's current head, after a step:
//   - every lock is in exactly one place;
//   - no two actors believe they hold the same lock, and every lock an actor
//     believes it holds is claimed;
//   - the locks the admin added exist, the ones it removed do not.
//
// Beliefs are read before and after the head, and only those unchanged across
// the read are judged: an actor may let go of a lock while we look.
func (w *world) checkStep(after string) {
	b1, added, removed, gen1 := w.snapshot()
	out, err := w.git("ls-tree", "-r", "--name-only", "refs/heads/main")
	if err != nil {
		w.t.Errorf("harness: %v", err)
		return
	}
	b2, _, _, gen2 := w.snapshot()
	w.stats.add("invariant checks after a step", 1)
	where := map[string][]string{}
	for _, p := range strings.Split(strings.TrimSpace(out), "\n") {
		if pool, state, name, ok := lockPath(p); ok {
			where[pool+"/"+name] = append(where[pool+"/"+name], state)
		}
	}
	for lock, states := range where {
		if len(states) != 1 {
			w.violate("after %s: lock %s is in %v at the head", after, lock, states)
		}
	}
	holders := map[string]string{}
	for epoch, b := range b1 {
		if b2[epoch] != b {
			continue
		}
		key := b.pool + "/" + b.lock
		if other, dup := holders[key]; dup {
			w.violate("after %s: %s and %s both believe they hold %s", after, other, b.actor, key)
		}
		holders[key] = b.actor
		if !slices.Equal(where[key], []string{"claimed"}) {
			w.violate("after %s: %s believes it holds %s (claim %s), the head has it %v", after, b.actor, key, b.ref, where[key])
		}
	}
	if gen1 != gen2 {
		return
	}
	for lock, pool := range added {
		if len(where[pool+"/"+lock]) == 0 {
			w.violate("after %s: the admin added %s/%s, the head does not have it", after, pool, lock)
		}
	}
	for lock, pool := range removed {
		if len(where[pool+"/"+lock]) != 0 {
			w.violate("after %s: the admin removed %s/%s, the head still has it", after, pool, lock)
		}
	}
}

// attempt is one push attempt as the pre-receive hook saw it.
type attempt struct {
	at       time.Time
	old, new string
	verdict  string // ok, declined (injected), nonff (refused: not a fast-forward)
}

func (w *world) attempts() ([]attempt, error) {
	data, err := os.ReadFile(w.hookLog)
	if err != nil {
		return nil, err
	}
	var out []attempt
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			return nil, fmt.Errorf("hook log line %q", line)
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("hook log line %q: %v", line, err)
		}
		out = append(out, attempt{at: time.Unix(0, ns), old: f[1], new: f[2], verdict: f[4]})
	}
	return out, nil
}

// commit is one commit of the branch's history, with the lock files it changed.
type commit struct {
	sha     string
	parents []string
	at      time.Time // committer time
	msg     string
	changes [][2]string // status (A, D, M), path
}

func (w *world) history(from string) ([]commit, error) {
	out, err := w.git("log", "--reverse", "--no-renames", "--name-status",
		"--format=%x1e%H%x1f%P%x1f%ct%x1f%B%x1f", from+"..refs/heads/main")
	if err != nil {
		return nil, err
	}
	var cs []commit
	for _, rec := range strings.Split(out, "\x1e")[1:] {
		f := strings.Split(rec, "\x1f")
		if len(f) != 5 {
			return nil, fmt.Errorf("log record %q", rec)
		}
		ct, _ := strconv.ParseInt(f[2], 10, 64)
		c := commit{sha: f[0], parents: strings.Fields(f[1]), at: time.Unix(ct, 0), msg: f[3]}
		for _, line := range strings.Split(strings.TrimSpace(f[4]), "\n") {
			if st, path, ok := strings.Cut(line, "\t"); ok {
				c.changes = append(c.changes, [2]string{st, path})
			}
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// trailer is the value of "key: value" in a commit message ("" if absent).
func trailer(msg, key string) string {
	for _, line := range strings.Split(msg, "\n") {
		if v, ok := strings.CutPrefix(line, key+": "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// lockState is a lock in the replayed repository.
type lockState struct {
	claimed bool
	claim   string    // the commit that claimed it, when claimed
	at      time.Time // that commit's time
	holder  string    // the BUILD_ID that commit names
}

// replay walks every commit pushed since start, in order, and checks:
//   - history is linear, and no push attempt was anything but a fast-forward;
//   - every commit is one pool-resource operation on one lock, valid in the
//     state before it (so no lock is ever lost or duplicated);
//   - a lock is freed only by its holder, by a build it was handed to (fenced by
//     the claim commit), or by a reap whose stated evidence was true when the
//     push started — and never while the holder or a taker was running.
//
// It returns the final state of every lock.
func (w *world) replay(start string) map[string]*lockState {
	state := map[string]*lockState{}
	tree, err := w.git("ls-tree", "-r", "--name-only", start)
	if err != nil {
		w.t.Errorf("harness: %v", err)
		return nil
	}
	for _, p := range strings.Split(strings.TrimSpace(tree), "\n") {
		if pool, st, name, ok := lockPath(p); ok {
			state[pool+"/"+name] = &lockState{claimed: st == "claimed"}
		}
	}
	atts, err := w.attempts()
	if err != nil {
		w.t.Errorf("harness: %v", err)
		return nil
	}
	tipAt := map[string]time.Time{}
	for _, a := range atts {
		w.stats.add("push attempts: "+a.verdict, 1)
		switch a.verdict {
		case "nonff":
			w.violate("a push tried to move main from %s to %s, not a fast-forward (a force push)", a.old, a.new)
		case "ok":
			tipAt[a.new] = a.at
		}
	}
	cs, err := w.history(start)
	if err != nil {
		w.t.Errorf("harness: %v", err)
		return nil
	}
	// Each commit was pushed by the push whose tip is the first commit at or after it.
	pushedAt := make([]time.Time, len(cs))
	var cur time.Time
	for i := len(cs) - 1; i >= 0; i-- {
		if at, ok := tipAt[cs[i].sha]; ok {
			cur = at
		}
		if cur.IsZero() {
			w.violate("commit %s is on main, but no push the server saw brought it", cs[i].sha)
		}
		pushedAt[i] = cur
	}
	prev := start
	for i, c := range cs {
		if len(c.parents) != 1 || c.parents[0] != prev {
			w.violate("history is not linear at %s: parents %v, previous commit %s", c.sha, c.parents, prev)
		}
		prev = c.sha
		w.apply(state, w.queue, c, pushedAt[i])
	}
	w.stats.add("commits pushed", len(cs))
	return state
}

// apply checks one commit against the state before it and applies it. Its
// ticket changes are checked against the queue before it, and so is its claim,
// if it is one; a commit that changes tickets only is a queue operation.
func (w *world) apply(state map[string]*lockState, q *queueReplay, c commit, pushedAt time.Time) {
	var locks []string
	var tickets [][2]string
	kinds := ""
	for _, ch := range c.changes {
		if _, ok := ticketPath(ch[1]); ok {
			tickets = append(tickets, ch)
			continue
		}
		pool, st, name, ok := lockPath(ch[1])
		if !ok {
			w.violate("commit %s changes %s, which is not a lock", c.sha, ch[1])
			return
		}
		key := pool + "/" + name
		if !slices.Contains(locks, key) {
			locks = append(locks, key)
		}
		kinds += ch[0] + st + " "
	}
	after := w.checkTickets(q, c, tickets, pushedAt)
	defer func() { q.tickets = after }()
	subject, _, _ := strings.Cut(c.msg, "\n")
	if len(locks) == 0 && len(tickets) > 0 {
		w.stats.add("queue: commits that change tickets only", 1)
		return
	}
	if len(locks) != 1 {
		w.violate("commit %s (%q) changes %d locks, want one operation on one lock", c.sha, subject, len(locks))
		return
	}
	key := locks[0]
	pool, name, _ := strings.Cut(key, "/")
	l := state[key]
	op := ""
	switch strings.TrimSpace(kinds) {
	case "Dunclaimed Aclaimed", "Aclaimed Dunclaimed":
		op = "claiming"
		if l == nil || l.claimed {
			w.violate("commit %s claims %s, which was %s", c.sha, key, describe(l))
			return
		}
		w.checkFair(q, state, c, pool, name, trailer(c.msg, "Poolboy-Build-Id"), pushedAt)
		l.claimed, l.claim, l.at, l.holder = true, c.sha, c.at, trailer(c.msg, "Poolboy-Build-Id")
		// No scenario has a build hold two locks: a second one is a leak.
		for other, o := range state {
			if o.claimed && o.holder == l.holder && other != key {
				w.violate("commit %s: build %s claims %s while it still holds %s", c.sha, l.holder, key, other)
			}
		}
		w.stats.add("ops: claims", 1)
	case "Dclaimed Aunclaimed", "Aunclaimed Dclaimed":
		op = "unclaiming"
		if l == nil || !l.claimed {
			w.violate("commit %s unclaims %s, which was %s", c.sha, key, describe(l))
			return
		}
		w.checkFree(c, pool, key, l, pushedAt)
		*l = lockState{}
	case "Aunclaimed", "Aclaimed":
		op = "adding"
		if l != nil {
			w.violate("commit %s adds %s, which already existed (%s)", c.sha, key, describe(l))
			return
		}
		state[key] = &lockState{claimed: strings.HasPrefix(kinds, "Aclaimed"), claim: c.sha, at: c.at, holder: trailer(c.msg, "Poolboy-Build-Id")}
		w.stats.add("ops: adds", 1)
	case "Dclaimed":
		op = "removing"
		if l == nil || !l.claimed {
			w.violate("commit %s removes %s, which was %s", c.sha, key, describe(l))
			return
		}
		if by := trailer(c.msg, "Poolboy-Build-Id"); by != l.holder {
			w.violate("commit %s: build %s removed %s, which build %s held", c.sha, by, key, l.holder)
		}
		delete(state, key)
		w.stats.add("ops: removes", 1)
	case "Munclaimed":
		op = "updating"
		if l == nil || l.claimed {
			w.violate("commit %s updates %s, which was %s", c.sha, key, describe(l))
		}
		w.stats.add("ops: updates", 1)
	default:
		w.violate("commit %s (%q) is not a pool-resource operation: %s", c.sha, subject, kinds)
		return
	}
	if !strings.HasSuffix(subject, op+": "+name) && !strings.HasSuffix(subject, op+" unclaimed: "+name) && !strings.HasSuffix(subject, op+" claimed: "+name) {
		w.violate("commit %s changes %s (%s) but says %q", c.sha, key, op, subject)
	}
}

func describe(l *lockState) string {
	switch {
	case l == nil:
		return "absent"
	case l.claimed:
		return "claimed by " + l.claim
	}
	return "unclaimed"
}

// checkFree checks that freeing lock l by commit c was someone's right.
func (w *world) checkFree(c commit, pool, key string, l *lockState, pushedAt time.Time) {
	holder := w.buildByID(l.holder)
	if holder == nil {
		w.violate("commit %s frees %s, claimed by %s, which names no build of the soak", c.sha, key, l.claim)
		return
	}
	rule := trailer(c.msg, "Poolboy-Rule")
	if rule == "" {
		// A release (or a give-back): only by the holder or a build it handed the
		// claim to, and only of the claim it holds.
		by := w.buildByID(trailer(c.msg, "Poolboy-Build-Id"))
		if fence := trailer(c.msg, "Poolboy-Claim-Commit"); fence != l.claim {
			w.violate("commit %s releases %s fenced by %q, but the lock's claim is %s", c.sha, key, fence, l.claim)
		}
		if by == nil || (by != holder && !slices.Contains(by.inputs, l.claim)) {
			w.violate("commit %s: a build that neither holds %s nor was handed it released it", c.sha, key)
		}
		w.stats.add("ops: releases", 1)
		return
	}
	w.stats.add("reaps: "+rule, 1)
	if got := trailer(c.msg, "Poolboy-Claim-Commit"); got != l.claim {
		w.violate("reap %s of %s names claim %s, the lock's claim is %s", c.sha, key, got, l.claim)
	}
	if holder.orphan {
		// Concourse cannot say whether an orphan is alive: its timeout decides, by
		// design, and the orphan's release is then refused or finds the lock free.
		if rule != "timeout" {
			w.violate("reap %s of orphan lock %s says %s; Concourse knows nothing of its build", c.sha, key, rule)
		}
	} else if alive, why := w.aliveAt(holder, l.claim, pushedAt); alive {
		w.violate("reap %s freed %s while its build was alive: %s when the push started", c.sha, key, why)
	} else {
		// A reap states the status Concourse gave; with none (Concourse did not
		// answer) only the timeout may have decided.
		stated, real := trailer(c.msg, "Poolboy-Build-Status"), w.statusAt(holder, pushedAt)
		switch {
		case stated == "" && rule != "timeout":
			w.violate("reap %s of %s: rule %s without a build status", c.sha, key, rule)
		case stated != "" && stated != real:
			w.violate("reap %s of %s says the build was %q; when the push started it was %q", c.sha, key, stated, real)
		case rule != "timeout" && rule != "build-"+real:
			w.violate("reap %s of %s: rule %s, but the build was %s", c.sha, key, rule, real)
		}
	}
	if rule == "timeout" {
		age := pushedAt.Sub(l.at)
		stated, _ := strconv.Atoi(trailer(c.msg, "Poolboy-Age-Seconds"))
		if age < timeouts[pool] || time.Duration(stated)*time.Second < timeouts[pool]-time.Second {
			w.violate("reap %s of %s by timeout: held %s (says %ds), the pool's timeout is %s", c.sha, key, age, stated, timeouts[pool])
		}
	}
}

// checkEnd checks the final state, after every build ended and a last clean
// ran with everything healthy: no actor believes it holds anything, and no
// lock is still claimed, except by an orphan within its pool's timeout or by a
// build that succeeded and handed the lock to downstream builds that all failed
// to release it (kept until the timeout, as the policy says, and counted).
func (w *world) checkEnd(state map[string]*lockState, cleanAt time.Time) {
	w.checkQueueEnd()
	beliefs, _, _, _ := w.snapshot()
	for _, b := range beliefs {
		w.violate("at the end %s still believes it holds %s/%s", b.actor, b.pool, b.lock)
	}
	for key, l := range state {
		if !l.claimed {
			continue
		}
		pool, _, _ := strings.Cut(key, "/")
		holder := w.buildByID(l.holder)
		if holder == nil {
			w.violate("at the end %s is claimed by %s, which names no build", key, l.claim)
			continue
		}
		switch st := w.statusAt(holder, cleanAt); {
		case holder.orphan:
			if cleanAt.Sub(l.at) > timeouts[pool]+time.Second {
				w.violate("at the end orphan lock %s is claimed since %s, past the %s timeout", key, l.at.Format(time.TimeOnly), timeouts[pool])
			}
			w.stats.add("left claimed at the end: orphan within its timeout", 1)
		case st == "succeeded" && w.leftToTimeout[l.claim]:
			w.stats.add("left claimed at the end: build succeeded, hand-off failed (kept until the timeout)", 1)
		default:
			w.violate("at the end %s is still claimed by %s #%s, which is %s", key, holder.job, holder.name, st)
		}
	}
}
