package resource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/backoff"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/queue"
)

const (
	// maxMetadata caps a lock file read from a step directory: lock metadata is
	// configuration, and every clone of the repository carries it forever.
	maxMetadata = 1 << 20
	// maxFailures is how many unexpected git failures in a row out tolerates, as
	// upstream's five "unexpected errors", before giving up.
	maxFailures = 5
	// pushTimeout bounds a push that ctx's cancellation does not reach (see push).
	pushTimeout = 60 * time.Second
	// maxJitter bounds the pause after a lost push race: long enough to stop racers
	// colliding in lock-step again, far shorter than a retry_delay.
	maxJitter = 50 * time.Millisecond
)

// beforePush runs right before each push, after the last check of ctx; tests use it
// to cancel at that exact moment.
var beforePush = func() {}

type outParams struct {
	Acquire        count  `json:"acquire"`
	Claim          string `json:"claim"`
	Release        string `json:"release"`
	Add            string `json:"add"`
	AddClaimed     string `json:"add_claimed"`
	Remove         string `json:"remove"`
	Update         string `json:"update"`
	Check          string `json:"check"`
	CheckUnclaimed string `json:"check_unclaimed"`
	Reap           bool   `json:"reap"`
	// WaitTimeout, Priority, To and With qualify the operation: they are not operations.
	WaitTimeout waitTimeout `json:"wait_timeout"`
	Priority    int         `json:"priority"`
	// To is the pool a release sends the lock to (its unclaimed/), in the one
	// commit: a janitor's return of a cleaned lock from a quarantine.
	To   string      `json:"to"`
	With []withLocks `json:"with"` // more locks of other pools, claimed with acquire's (multi.go)
}

// ops names the operations the params ask for.
func (p outParams) ops() []string {
	var ops []string
	for _, o := range []struct {
		name string
		set  bool
	}{
		{"acquire", p.Acquire > 0}, {"release", p.Release != ""}, {"remove", p.Remove != ""},
		{"claim", p.Claim != ""}, {"add", p.Add != ""}, {"add_claimed", p.AddClaimed != ""},
		{"update", p.Update != ""}, {"check", p.Check != ""}, {"check_unclaimed", p.CheckUnclaimed != ""},
		{"reap", p.Reap},
	} {
		if o.set {
			ops = append(ops, o.name)
		}
	}
	return ops
}

func (p outParams) check() error {
	switch ops := p.ops(); len(ops) {
	case 0:
		// Upstream's words, exactly: users search their logs for this line.
		return errors.New("invalid payload (missing acquire, release, remove, claim, add, add_claimed, update, check, or check_unclaimed)")
	case 1:
		if p.To != "" && ops[0] != "release" {
			return fmt.Errorf("invalid payload: params.to goes with release only, not %s", ops[0])
		}
		if len(p.With) > 0 && ops[0] != "acquire" {
			return fmt.Errorf("invalid payload: params.with goes with acquire, not %s", ops[0])
		}
		if p.Priority > queue.MaxPriority || p.Priority < -queue.MaxPriority {
			return fmt.Errorf("invalid payload: params.priority %d must be between %d and %d", p.Priority, -queue.MaxPriority, queue.MaxPriority)
		}
		if p.To != "" {
			return validPoolName(p.To)
		}
		return nil
	default:
		return fmt.Errorf("invalid payload (give only one of acquire, release, remove, claim, add, add_claimed, update, check, check_unclaimed or reap; got %s)", strings.Join(ops, ", "))
	}
}

// outRun is one run of out.
type outRun struct {
	*script
	params outParams
	dir    string
	holder holder
	op     string
	step   step // the lock named by the params, read before anything is cloned
	repo   *gitx.Repo
	start  time.Time
	q      *queueState // nil: the operation does not queue (see queue.go)
	waited bool        // the put could not be done at once (it waited, or queued)
	// request is what an acquire asks for, per pool, the resource's first (multi.go).
	request []poolCount
	// snap is the branch at the head the current decision is made on (set by loop).
	snap *pool.Snapshot
}

// step is what a step directory (params.release: NAME means DIR/NAME) says.
type step struct {
	name     string
	metadata []byte // only for add, add_claimed and update
	blob     string // metadata's blob, once the repository is open
	ref      string // the commit in wrote for this lock (the fence); "" if none
}

// plan is what one look at the pool decides.
type plan struct {
	lock    string
	wait    string // nothing is possible yet, and why
	done    bool   // nothing to commit: the answer is version
	version string
	edits   []pool.Edit
	msg     string
	undo    []pool.Edit         // for a claim: the edits that give the lock back (see push)
	again   bool                // a queue commit: once it lands, decide again on it
	queue   *queueWait          // waiting in the queue: how to wait
	locks   []commitmsg.LockRef // every lock of an operation on several at once; nil for one
}

type decider func(ctx context.Context, head string, p *pool.Pool) (plan, error)

func (o *outRun) run(ctx context.Context) (*answer, error) {
	start := time.Now()
	o.start = start
	o.op = o.params.ops()[0]
	// Everything local first: a bad step directory fails before the network.
	if err := o.prepare(); err != nil {
		return nil, err
	}
	depth := outDepth
	switch o.op {
	case "release", "remove":
		depth = releaseDepth
	case "reap":
		depth = reapDepth
	}
	repo, err := o.open(ctx, depth)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	o.repo = repo

	var ans *answer
	if o.op == "reap" {
		ans, err = o.reap(ctx)
	} else {
		ans, err = o.operate(ctx)
	}
	if err != nil {
		return nil, err
	}
	o.pushMetrics(ctx, start, ans)
	return ans, nil
}

// prepare reads and validates the lock the params name.
func (o *outRun) prepare() error {
	var err error
	p := o.params
	switch o.op {
	case "acquire":
		err = o.prepareAcquire()
	case "claim":
		o.step.name = strings.TrimSpace(p.Claim)
		if err := pool.ValidName(o.step.name); err != nil {
			return fmt.Errorf("params.claim: %q is not a lock name: %v", o.step.name, err)
		}
	case "release":
		o.step, err = readStep(o.dir, "release", p.Release, false)
	case "add":
		o.step, err = readStep(o.dir, "add", p.Add, true)
	case "add_claimed":
		o.step, err = readStep(o.dir, "add_claimed", p.AddClaimed, true)
	case "remove":
		o.step, err = readStep(o.dir, "remove", p.Remove, false)
	case "update":
		o.step, err = readStep(o.dir, "update", p.Update, true)
	case "check":
		o.step, err = readStep(o.dir, "check", p.Check, false)
	case "check_unclaimed":
		o.step, err = readStep(o.dir, "check_unclaimed", p.CheckUnclaimed, false)
	case "reap":
		if o.src.StaleTimeout <= 0 {
			return errors.New(`invalid payload: reap: true needs source.stale_timeout (minutes, or a duration like "90m")`)
		}
	}
	return err
}

// readStep reads NAME/name (and NAME/metadata, and for a release or remove NAME/ref when present) from
// the put's directory. The files must be regular files inside dir: a path or
// symlink leading out of it is refused, so nothing else on the worker can end up
// in the repository.
func readStep(dir, param, rel string, withMetadata bool) (step, error) {
	var st step
	if !filepath.IsLocal(rel) {
		return st, fmt.Errorf("params.%s: %q must be a path inside the put step's directory", param, rel)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return st, err
	}
	defer root.Close()
	rel = filepath.ToSlash(rel)
	name, err := readSmall(root, path.Join(rel, "name"), 4096)
	if err != nil {
		return st, fmt.Errorf("could not read the name file of your lock %q: %s", path.Join(rel, "name"), oneLine(err.Error()))
	}
	st.name = strings.TrimSpace(string(name))
	if err := pool.ValidName(st.name); err != nil {
		return st, fmt.Errorf("%s/name: %q is not a lock name: %v", rel, st.name, err)
	}
	if withMetadata {
		if st.metadata, err = readSmall(root, path.Join(rel, "metadata"), maxMetadata); err != nil {
			return st, fmt.Errorf("could not read the metadata file of your lock: %v", err)
		}
	}
	if param != "release" && param != "remove" { // only these are fenced
		return st, nil
	}
	ref, err := readSmall(root, path.Join(rel, "ref"), 256)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return st, err
	default:
		st.ref = strings.TrimSpace(string(ref))
		if !isCommitID(st.ref) {
			return st, fmt.Errorf("%s/ref: %q is not a commit id", rel, st.ref)
		}
	}
	return st, nil
}

// readSmall reads a regular file of at most limit bytes.
func readSmall(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// operate runs every operation but reap: announce, then the loop.
func (o *outRun) operate(ctx context.Context) (*answer, error) {
	name, poolName := o.step.name, o.src.Pool
	var decide decider
	switch o.op {
	case "acquire":
		fmt.Fprintf(o.log, "acquiring lock on: %s\n", poolName)
		decide = o.acquire
		if o.multi() {
			fmt.Fprintf(o.log, "acquiring %s at once\n", o.requestWords())
			decide = o.acquireMulti
		}
		if o.src.queued() {
			decide = o.queued
		}
	case "claim":
		fmt.Fprintf(o.log, "claiming lock: %s on pool: %s\n", name, poolName)
		decide = o.claim
		if o.src.queued() {
			decide = o.queued
		}
	case "release":
		fmt.Fprintf(o.log, "releasing lock: %s on pool: %s\n", name, poolName)
		decide = o.release
	case "add", "add_claimed":
		claimed := o.op == "add_claimed"
		fmt.Fprintf(o.log, "adding %s lock: %s to pool: %s\n", state(claimed), name, poolName)
		decide = func(ctx context.Context, head string, p *pool.Pool) (plan, error) { return o.add(p, claimed) }
	case "remove":
		fmt.Fprintf(o.log, "removing lock: %s on pool: %s\n", name, poolName)
		decide = o.remove
	case "update":
		fmt.Fprintf(o.log, "updating lock: %s in pool: %s\n", name, poolName)
		decide = o.update
	case "check", "check_unclaimed":
		fmt.Fprintf(o.log, "checking lock: %s in pool: %s\n", name, poolName)
		decide = o.check
	}
	if o.step.metadata != nil {
		var err error
		if o.step.blob, err = pool.WriteBlob(ctx, o.repo, o.step.metadata); err != nil {
			return nil, err
		}
	}
	ans, err := o.loop(ctx, decide)
	if err != nil && o.q != nil && o.q.wrote {
		err = o.withdraw(ctx, err)
	}
	return ans, err
}

// loop decides, commits and pushes until the operation is done: each round looks
// at the pool at the head it fetched, so every decision is made on the state its
// commit is built on, and a lost race is decided again on the newer state.
func (o *outRun) loop(ctx context.Context, decide decider) (*answer, error) {
	head, err := o.repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	delay := o.src.retryDelay()
	failures := 0
	// unsure is a commit whose push ended without a verdict (the connection broke)
	// and whose fate push could not look up: once a fetch works, its history says
	// whether it landed. Deciding again without looking would claim a second lock.
	var unsure *pending
	lostTickets := 0 // queue commits that lost a push race in a row
	for {
		p, err := o.poolAt(ctx, head)
		if err != nil {
			return nil, err
		}
		pl, err := decide(ctx, head, p)
		switch {
		case err != nil:
			return nil, err
		case pl.done:
			// Every put that pushes nothing answers its lock's own commit
			// (lockVersion): the head can be about another lock, and the
			// implicit get would name that one.
			if pl.version == "" {
				return nil, fmt.Errorf("internal error: %s pushed nothing and has no version to answer", o.op)
			}
			return o.answerLocks(pl.version, pl), nil
		case pl.wait != "":
			o.waited = true
			if err := o.timedOut(pl.wait); err != nil {
				return nil, err
			}
			lo, hi, until := delay/6, delay/2, o.waitDeadline()
			if q := pl.queue; q != nil {
				lo, hi, until = o.queuePace(q, until)
			} else {
				fmt.Fprintf(o.log, "%s, retrying in at most %s\n", pl.wait, delay/2)
			}
			if head, err = o.waitForChange(ctx, head, pl.wait, lo, hi, until); err != nil {
				return nil, err
			}
			continue
		}
		commit, err := pool.Commit(ctx, o.repo, head, pl.edits, pl.msg)
		if err != nil {
			return nil, err
		}
		err = o.push(ctx, head, commit)
		switch {
		case err == nil && pl.again:
			o.waited = true
			head = commit
			lostTickets = 0
			continue
		case err == nil:
			return o.landed(ctx, commit, pl)
		case ctx.Err() != nil:
			return nil, aborted(ctx, "stopped before the push landed; nothing changed")
		case errors.Is(err, gitx.ErrRejected):
			// Someone else's push won. Deciding again at once (after a jitter that
			// keeps the losers from colliding in lock-step) is what makes a freed
			// lock go to a waiter quickly; a full retry_delay here is upstream's
			// main cost under contention.
			fmt.Fprintln(o.log, "someone else pushed first; deciding again on the new state")
			pause := rand.N(min(maxJitter, delay) + 1)
			if pl.again {
				// Every waiter writes a ticket: W waiters arriving together would
				// collide about W²/2 times after the short jitter, every loss a push
				// and a fetch that also stand in the way of the claims of waiters
				// being granted. A ticket is not urgent, so its writer backs off
				// (up to half a retry_delay); a claim keeps the short jitter.
				lostTickets++
				pause = backoff.Exp(lostTickets, max(maxJitter, delay/40), delay/2)
			}
			if err := sleep(ctx, pause); err != nil {
				return nil, err
			}
		default:
			// A queue commit needs no verdict: deciding again on the fetched head
			// sees whether the ticket is there.
			if !errors.Is(err, gitx.ErrRefused) && !pl.again {
				unsure = &pending{commit, pl}
			}
			if failures++; failures >= maxFailures {
				return nil, fmt.Errorf("gave up after %d failed pushes: %w", failures, err)
			}
			fmt.Fprintf(o.log, "failed to push (%v), retrying in %s\n", err, delay)
			if err := sleep(ctx, delay); err != nil {
				return nil, err
			}
		}
		err = o.retryUnreachable(ctx, func() (err error) {
			head, err = o.repo.Fetch(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		if unsure != nil {
			if head == unsure.commit || gitx.IsAncestor(ctx, o.repo, unsure.commit, head) {
				fmt.Fprintf(o.log, "the push of %s landed after all\n", unsure.commit)
				return o.landed(ctx, unsure.commit, unsure.plan)
			}
			unsure = nil
		}
	}
}

// pending is a commit pushed without a verdict, and the plan it carries out.
type pending struct {
	commit string
	plan   plan
}

// landed finishes an operation whose commit is on the remote branch: a claim that
// landed after ctx ended, or for a build that Concourse says ended while its put
// waited, is given straight back.
func (o *outRun) landed(ctx context.Context, commit string, pl plan) (*answer, error) {
	if ctx.Err() != nil && pl.undo != nil {
		what := pl.what()
		if o.giveBack(ctx, commit, pl, "aborted while claiming") {
			return nil, aborted(ctx, fmt.Sprintf("stopped while claiming %s; gave it back", what))
		}
		return nil, aborted(ctx, fmt.Sprintf("stopped while claiming %s; it stays claimed by %s of this build", what, commit))
	}
	if pl.undo != nil && o.waited {
		if b := o.endedWhileWaiting(ctx, commit, pl); b != nil {
			why := fmt.Sprintf("Concourse says %s %s while this put waited for a lock", b.Name, b.Status)
			if o.giveBack(ctx, commit, pl, "the build ended while it waited") {
				return nil, fmt.Errorf("%s; gave %s back", why, pl.what())
			}
			return nil, fmt.Errorf("%s; %s stays claimed by %s of this build until poolboy reaps it", why, pl.what(), commit)
		}
	}
	subject, _, _ := strings.Cut(pl.msg, "\n")
	fmt.Fprintf(o.log, "pushed %s: %s\n", commit, subject)
	return o.answerLocks(commit, pl), nil
}

// answerLocks is the answer naming the plan's lock, and for several its "locks".
func (o *outRun) answerLocks(ref string, pl plan) *answer {
	a := o.answer(ref, pl.lock)
	if pl.locks != nil {
		a.Metadata = append(a.Metadata, metadataPair{Name: "locks", Value: lockList(pl.locks)})
	}
	return a
}

// poolAt is the configured pool at head; it must exist and have both directories.
func (o *outRun) poolAt(ctx context.Context, head string) (*pool.Pool, error) {
	snap, err := pool.Read(ctx, o.repo, head)
	if err != nil {
		return nil, err
	}
	o.snap = snap
	p, err := poolIn(snap, o.src.Pool, o.src.Branch)
	if err != nil {
		return nil, err
	}
	if why := p.Unusable(); why != "" {
		return nil, fmt.Errorf("pool %q is not usable: %s", p.Name, why)
	}
	return p, nil
}

// waitForChange waits until the remote branch moves away from head and returns the
// new head, fetched; why is what it waits for, for the abort message. It looks at
// random times between lo and hi apart, and returns (the head fetched then, moved
// or not) at until when that is not zero.
//
// Waiters look at random times between a sixth and a half of retry_delay, not once
// per retry_delay: waiters that all lost the same round would otherwise wake in
// lock-step, race for the same lock again, and leave a lock freed early in a round
// idle until the next. Each look is one fetch: when nothing moved it costs the same
// single request as `git ls-remote` and downloads nothing, and when the branch moved
// it saves the second request. (Measured in docs/BENCHMARKS.md: 10 waiters on 2
// locks, retry_delay 10 s — full-delay ls-remote looks: 49 s, hand-off p50 5.3 s,
// 11 upload-packs per acquire; these looks: 32 s, 0.4–0.8 s, 7.4–7.9.)
func (o *outRun) waitForChange(ctx context.Context, head, why string, lo, hi time.Duration, until time.Time) (string, error) {
	failures := 0
	for {
		d := lo + rand.N(max(hi-lo, 0)+1)
		last := !until.IsZero() && time.Until(until) <= d
		if last {
			// Past until already (a failed fetch at until): look again soon.
			if d = time.Until(until); d <= 0 {
				d = lo
			}
		}
		if sleep(ctx, d) != nil {
			return "", aborted(ctx, "stopped waiting ("+why+")")
		}
		now, err := o.repo.Fetch(ctx)
		switch {
		case ctx.Err() != nil:
			return "", aborted(ctx, "stopped waiting ("+why+")")
		case err != nil:
			// A fetch fails the same way whether the network blinked or the branch
			// was deleted; only the latter is final.
			if remote, rerr := o.repo.RemoteHead(ctx); rerr == nil && remote == "" {
				return "", fmt.Errorf("branch %s is gone from the remote", o.src.Branch)
			}
			if failures++; failures >= maxFailures {
				return "", err
			}
			fmt.Fprintf(o.log, "warning: could not look at the remote branch (%v), retrying\n", err)
		case now != head || last:
			return now, nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return aborted(ctx, "stopped waiting")
	case <-t.C:
		return nil
	}
}

// push makes commit, built on parent, the head of the remote branch. It returns nil
// once the remote has it, an error wrapping gitx.ErrRejected when someone else
// pushed first, or another error.
//
// ctx is checked right before the push, so nothing is pushed once ctx is done. The
// push itself runs on a context ctx's cancellation does not reach (bounded by
// pushTimeout): git killed half-way leaves the remote's state unknown to us, and a
// claim that landed unknown to us would stay with a build that is going away, where
// only a reaper could free it. Letting the push finish, we know; the caller gives a
// claim that landed after ctx ended straight back (giveBack).
func (o *outRun) push(ctx context.Context, parent, commit string) error {
	if err := ctx.Err(); err != nil {
		return aborted(ctx, "stopped before pushing; nothing was pushed")
	}
	beforePush()
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	defer cancel()
	return gitx.PushChecked(pctx, o.repo, parent, commit)
}

// what names the lock or locks the plan is about, for people.
func (pl plan) what() string {
	if pl.locks != nil {
		return "locks " + lockList(pl.locks)
	}
	return "lock " + pl.lock
}

// giveBack releases a claim pushed after ctx ended, on top of it (fast-forward
// only, so only if nothing else happened since), best effort: if it cannot, the
// claim names this build, and the reaper frees it once Concourse says the build
// is over. It reports whether the lock was given back.
func (o *outRun) giveBack(ctx context.Context, claim string, pl plan, why string) bool {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	defer cancel()
	msg := o.holder.message("unclaiming", pl.lock, "Poolboy-Claim-Commit: "+claim)
	what := fmt.Sprintf("lock %q", pl.lock)
	if pl.locks != nil {
		msg = o.multiMessage("unclaiming", pl.locks, "Poolboy-Claim-Commit: "+claim)
		what = "locks " + lockList(pl.locks)
	}
	c, err := pool.Commit(bg, o.repo, claim, pl.undo, msg)
	if err == nil {
		err = o.repo.Push(bg, c)
	}
	if err != nil {
		fmt.Fprintf(o.log, "warning: %s; %s stays claimed by %s of this build (release it, or let poolboy reap it): %v\n", why, what, claim, err)
		return false
	}
	fmt.Fprintf(o.log, "%s; gave %s back (%s)\n", why, what, c)
	return true
}

// find says where the named lock is. A name the pool holds as anything but a lock
// file (a symlink, a directory, in both states) is an error: it is never touched.
func find(p *pool.Pool, name string) (l pool.Lock, found bool, err error) {
	if why := p.Broken[name]; why != "" {
		return l, false, fmt.Errorf("lock %q in pool %q: %s; fix the repository by hand", name, p.Name, why)
	}
	for _, list := range [][]pool.Lock{p.Claimed, p.Unclaimed} {
		if i := slices.IndexFunc(list, func(l pool.Lock) bool { return l.Name == name }); i >= 0 {
			return list[i], true, nil
		}
	}
	return l, false, nil
}

func state(claimed bool) string {
	if claimed {
		return "claimed"
	}
	return "unclaimed"
}

// acquire claims a random free lock, as upstream does: racing builds then mostly
// pick different locks.
func (o *outRun) acquire(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	var free []pool.Lock
	for _, l := range p.Unclaimed {
		if p.Broken[l.Name] == "" {
			free = append(free, l)
		}
	}
	if len(free) == 0 {
		return plan{wait: "no lock available in pool " + p.Name}, nil
	}
	return o.claimPlan(free[rand.IntN(len(free))]), nil
}

// claim claims the named lock, waiting while it is claimed or absent (as upstream).
func (o *outRun) claim(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	l, found, err := find(p, o.step.name)
	switch {
	case err != nil:
		return plan{}, err
	case !found:
		return plan{wait: fmt.Sprintf("lock %s does not exist in pool %s", o.step.name, p.Name)}, nil
	case l.Claimed:
		return plan{wait: fmt.Sprintf("lock %s is claimed", l.Name)}, nil
	}
	return o.claimPlan(l), nil
}

func (o *outRun) claimPlan(l pool.Lock) plan {
	claimed := l
	claimed.Claimed = true
	return plan{
		lock:  l.Name,
		edits: pool.Move(l, true),
		undo:  pool.Move(claimed, false),
		msg:   o.holder.message("claiming", l.Name),
	}
}

// release frees the lock the step names, fenced by the claim the build holds (see
// fence). A lock that is not claimed any more (reaped, or released by someone else)
// needs nothing: succeed with a warning rather than fail the build.
//
// A claim of several locks at once (multi.go) is released whole: every lock of it,
// in one commit (see releaseSet), also when the step's own lock is free already.
func (o *outRun) release(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	name := o.step.name
	l, found, err := find(p, name)
	switch {
	case err != nil:
		return plan{}, err
	case !found, !l.Claimed:
		claim, set, err := o.heldSet(ctx, head)
		if err != nil || set != nil {
			if err != nil {
				return plan{}, err
			}
			if o.params.To != "" {
				return plan{}, fmt.Errorf("invalid payload: params.to returns one lock; the claim of %s took several (%s)", name, lockList(set))
			}
			return o.releaseSet(ctx, head, claim, set)
		}
		if !found {
			return o.quarantined(ctx, head, p.Name, name)
		}
		fmt.Fprintf(o.log, "warning: lock %s is not claimed any more (reaped, or released by someone else); nothing to release\n", name)
		v, err := o.lockVersion(ctx, head, name)
		return plan{lock: name, done: true, version: v}, err
	}
	claim, err := o.fence(ctx, head, l)
	if err != nil {
		return plan{}, err
	}
	if claim != "" {
		set, err := lockSetOf(ctx, o.repo, claim)
		if err != nil {
			return plan{}, err
		}
		if set != nil {
			if o.params.To != "" {
				return plan{}, fmt.Errorf("invalid payload: params.to returns one lock; the claim of %s took several (%s)", l.Name, lockList(set))
			}
			return o.releaseSet(ctx, head, claim, set)
		}
	}
	pl := o.releasePlan(l, claim)
	if to := o.params.To; to != "" {
		if pl.edits, err = o.returnEdits(ctx, head, l); err != nil {
			return plan{}, err
		}
		extra := []string{"Poolboy-Returned-To: " + to}
		if claim != "" {
			extra = append(extra, "Poolboy-Claim-Commit: "+claim)
		}
		pl.msg = o.holder.message("unclaiming", l.Name, extra...)
	}
	return pl, nil
}

// quarantined is the release of a lock the pool does not have: when the commit
// that last changed it reaped it to a quarantine pool, the build's lock was
// reaped, and the release succeeds with a warning as for a reaped lock; else the
// lock does not exist.
func (o *outRun) quarantined(ctx context.Context, head, poolName, name string) (plan, error) {
	v, err := o.lockVersion(ctx, head, name)
	if err != nil {
		return plan{}, err
	}
	msg, err := o.repo.Output(ctx, "log", "-1", "--format=%B", v)
	if err != nil {
		return plan{}, err
	}
	m := string(msg)
	to := commitmsg.Trailer(m, "Poolboy-Reaped-To")
	if to == "" || commitmsg.Trailer(m, "Poolboy-Pool") != poolName || commitmsg.Trailer(m, "Poolboy-Lock") != name {
		return plan{}, fmt.Errorf("lock %q does not exist in pool %q", name, poolName)
	}
	fmt.Fprintf(o.log, "warning: lock %s was reaped by poolboy to pool %s (%s); nothing to release\n", name, oneLine(to), v)
	return plan{lock: name, done: true, version: v}, nil
}

// returnEdits move claimed lock l to params.to's unclaimed/, refusing a pool
// that does not exist or has a lock of that name already (two would be made).
func (o *outRun) returnEdits(ctx context.Context, head string, l pool.Lock) ([]pool.Edit, error) {
	snap, err := pool.Read(ctx, o.repo, head)
	if err != nil {
		return nil, err
	}
	to := o.params.To
	dest := snap.Pool(to)
	switch {
	case to == l.Pool:
		return nil, fmt.Errorf("invalid payload: params.to %q is the resource's own pool (a release goes there anyway)", to)
	case dest == nil:
		return nil, fmt.Errorf("pool %q (params.to) does not exist (pools: %s)", to, strings.Join(snap.Names(), ", "))
	case !dest.Intact():
		return nil, fmt.Errorf("pool %q (params.to) is not usable: %s", to, dest.Unusable())
	}
	if other, found, err := find(dest, l.Name); err != nil || found {
		if err == nil {
			err = fmt.Errorf("pool %q (params.to) already has a lock %q (%s): not moving a second one there", to, l.Name, state(other.Claimed))
		}
		return nil, err
	}
	edits := pool.Move(l, false)
	edits[1].Path = pool.LockPath(to, l.Name, false)
	return edits, nil
}

// heldSet is the step's ref and its locks when the ref is a multi-lock claim in
// the branch's history that took the step's lock; "" and nil otherwise.
func (o *outRun) heldSet(ctx context.Context, head string) (string, []commitmsg.LockRef, error) {
	ref := o.step.ref
	if ref == "" {
		return "", nil, nil
	}
	present, err := have(ctx, o.repo, ref)
	if err != nil || !present || !gitx.IsAncestor(ctx, o.repo, ref, head) {
		return "", nil, err
	}
	set, err := lockSetOf(ctx, o.repo, ref)
	if err != nil || !slices.Contains(set, commitmsg.LockRef{Pool: o.src.Pool, Name: o.step.name}) {
		return "", nil, err
	}
	return ref, set, nil
}

func (o *outRun) releasePlan(l pool.Lock, claim string) plan {
	var extra []string
	if claim != "" {
		extra = append(extra, "Poolboy-Claim-Commit: "+claim)
	}
	return plan{lock: l.Name, edits: pool.Move(l, false), msg: o.holder.message("unclaiming", l.Name, extra...)}
}

// add adds a new lock, refusing a name the pool already has (upstream would
// write a second copy, or retry forever).
func (o *outRun) add(p *pool.Pool, claimed bool) (plan, error) {
	l, found, err := find(p, o.step.name)
	switch {
	case err != nil:
		return plan{}, err
	case found:
		return plan{}, fmt.Errorf("lock %q already exists in pool %q (%s)", l.Name, p.Name, state(l.Claimed))
	}
	return plan{
		lock:  o.step.name,
		edits: []pool.Edit{{Path: pool.LockPath(p.Name, o.step.name, claimed), Mode: "100644", Blob: o.step.blob}},
		msg:   o.holder.message("adding "+state(claimed), o.step.name),
	}, nil
}

// remove removes a claimed lock, fenced as release is; as upstream, an unclaimed one
// must be claimed first.
func (o *outRun) remove(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	l, found, err := find(p, o.step.name)
	switch {
	case err != nil:
		return plan{}, err
	case !found:
		return plan{}, fmt.Errorf("lock %q does not exist in pool %q", o.step.name, p.Name)
	case !l.Claimed:
		return plan{}, fmt.Errorf("lock %q in pool %q is not claimed: the pool resource removes only claimed locks (claim it first)", l.Name, p.Name)
	}
	claim, err := o.fence(ctx, head, l)
	if err != nil {
		return plan{}, err
	}
	var extra []string
	if claim != "" {
		extra = append(extra, "Poolboy-Claim-Commit: "+claim)
	}
	return plan{lock: l.Name, edits: []pool.Edit{{Path: l.Path()}}, msg: o.holder.message("removing", l.Name, extra...)}, nil
}

// update replaces an unclaimed lock's metadata, waiting while the lock is claimed,
// and adds it unclaimed when it does not exist (as upstream).
func (o *outRun) update(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	l, found, err := find(p, o.step.name)
	switch {
	case err != nil:
		return plan{}, err
	case found && l.Claimed:
		return plan{wait: fmt.Sprintf("lock %s is claimed", l.Name)}, nil
	case found && l.Blob == o.step.blob:
		// The answer is the lock's own newest commit, not the head (which can be
		// about another lock): the implicit get must name this lock.
		fmt.Fprintf(o.log, "lock %s already has this metadata; nothing to update\n", l.Name)
		v, err := o.lockVersion(ctx, head, l.Name)
		return plan{lock: l.Name, done: true, version: v}, err
	case found:
		return plan{lock: l.Name, edits: []pool.Edit{{Path: l.Path(), Mode: l.Mode, Blob: o.step.blob}},
			msg: o.holder.message("updating", l.Name)}, nil
	}
	return plan{
		lock:  o.step.name,
		edits: []pool.Edit{{Path: pool.LockPath(p.Name, o.step.name, false), Mode: "100644", Blob: o.step.blob}},
		msg:   o.holder.message("adding unclaimed", o.step.name),
	}, nil
}

// check waits while the lock is claimed (check) or unclaimed (check_unclaimed),
// then pushes nothing (as upstream; an absent lock passes) and answers the lock's
// newest commit: upstream answers the head, which can be about another lock or
// pool, and the implicit get then names that.
func (o *outRun) check(ctx context.Context, head string, p *pool.Pool) (plan, error) {
	l, found, err := find(p, o.step.name)
	waitWhileClaimed := o.op == "check"
	switch {
	case err != nil:
		return plan{}, err
	case found && l.Claimed == waitWhileClaimed:
		return plan{wait: fmt.Sprintf("lock %s is %s", l.Name, state(l.Claimed))}, nil
	}
	v, err := o.lockVersion(ctx, head, o.step.name)
	return plan{lock: o.step.name, done: true, version: v}, err
}

// lockVersion is the newest commit at or before head that changed lock name of the
// pool (for a lock released already, normally the commit that freed it): the
// version a put that pushes nothing answers, so that its implicit get names this
// lock. The head when no commit in history did (a lock that never existed).
func (o *outRun) lockVersion(ctx context.Context, head, name string) (string, error) {
	paths := []string{pool.LockPath(o.src.Pool, name, true), pool.LockPath(o.src.Pool, name, false)}
	for {
		out, err := o.repo.Output(ctx, append([]string{"rev-list", "--max-count=1", head, "--"}, paths...)...)
		if err != nil {
			return "", err
		}
		commit := strings.TrimSpace(string(out))
		shallow, err := o.repo.Shallow()
		if err != nil {
			return "", err
		}
		switch {
		case commit != "" && !shallow[commit]:
			return commit, nil
		case !o.repo.IsShallow():
			return head, nil
		}
		// Only the shallow boundary "changed" it, which proves nothing.
		if err := o.repo.Deepen(ctx); err != nil {
			return "", err
		}
	}
}
