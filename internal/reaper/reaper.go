// Package reaper reports the state of every pool and frees stale locks.
//
// Invariants:
//   - A lock is freed only if policy.Decide says Stale on the state the push is built on.
//   - One commit per freed lock; the push is fast-forward only. When it is rejected,
//     everything is fetched and decided again from the new state: the lock may have
//     been released, or released and claimed again, meanwhile.
//   - Pools without a timeout, pools missing claimed/ or unclaimed/, and locks with an
//     integrity problem are reported and never touched.
//   - A queue ticket is deleted only if policy.DecideTicket says Stale on the state
//     the push is built on (see tickets.go); a file that is not a ticket this
//     version reads is never deleted.
//   - A lock held on purpose (holds) is kept until its hold expires; the hold counts
//     only for the claim it was taken on.
//   - A pool with a quarantine (Config.ReapTo) sends its reaped locks to the
//     quarantine pool's unclaimed/, in the same one commit; a lock whose name the
//     quarantine already has is broken, never moved (no lock is ever duplicated).
package reaper

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/backoff"
	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// Repo is the part of a git mirror the reaper needs (gitx.Repo is the real one).
type Repo interface {
	pool.Git
	pool.Writer
	claims.Repo
	Head(ctx context.Context) (string, error)
	Fetch(ctx context.Context) (string, error)
	Push(ctx context.Context, commit string) error
}

// Config is how the reaper decides and retries.
type Config struct {
	Timeouts    policy.Timeouts
	Now         func() time.Time                // default time.Now
	MaxAttempts int                             // clean: pushes tried before giving up; default 5
	Backoff     func(attempt int) time.Duration // wait after the attempt-th lost race; default jittered exponential
	Log         *slog.Logger                    // default: discard
	// Witness says what Concourse knows about the builds that claimed locks; nil
	// means no Concourse is configured and the timeouts decide alone.
	Witness Witness
	// ReapSucceeded names the pools whose locks are freed as soon as their build
	// succeeded (their jobs never pass locks on).
	ReapSucceeded map[string]bool
	// Index remembers the claims found from one evaluation to the next (a
	// claims.Index), so that each walks only the commits since the last; nil:
	// every evaluation walks the history anew.
	Index Index
	// ReapTo names, per pool, the pool its reaped locks go to (their unclaimed/)
	// instead of its own unclaimed/: a quarantine that a janitor job takes dirty
	// locks from, cleans them, and gives them back.
	ReapTo map[string]string
}

// Index finds claims as claims.Find does, remembering what it found.
type Index interface {
	Find(ctx context.Context, repo claims.Repo, head string, paths []string) (claims.Result, error)
}

// Witness is the part of liveness.Witness the reaper needs.
type Witness interface {
	Evidence(ctx context.Context, claims []liveness.Claim) map[string]*policy.Build
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == nil {
		c.Backoff = Backoff
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Backoff waits 250ms, 500ms, 1s, ... capped at 8s, each scaled by a random factor
// in [0.5, 1.5) so that racing reapers do not collide again in lock-step.
func Backoff(attempt int) time.Duration {
	return backoff.Exp(attempt, 250*time.Millisecond, 8*time.Second)
}

// LockReport is one claimed lock and its verdict.
type LockReport struct {
	Pool        string
	Name        string
	ClaimCommit string // "" when not found
	ClaimedAt   time.Time
	Owner       commitmsg.Owner
	Build       *policy.Build // what Concourse said about the owner; nil if not asked
	Hold        *holds.Hold   // a person's hold on this claim (maybe expired); nil: none
	Verdict     policy.Verdict
	ReapTo      string // the pool a reap sends it to; "" for its own unclaimed/

	lock     pool.Lock
	timeout  time.Duration
	holdFile bool // a hold file exists for this lock (any claim): a free deletes it
	// unheld is the verdict without the hold, when there is one: a hold keeps a
	// lock from reaps, it is no evidence that its build ended.
	unheld policy.Verdict
}

// PoolReport is one pool.
type PoolReport struct {
	Name      string
	Timeout   time.Duration // 0: none
	ReapTo    string        // Config.ReapTo's pool for it, "" for none
	Claimed   int
	Unclaimed int
	Stale     int
	Locks     []LockReport // claimed locks, by name
	Problems  []pool.Problem
	intact    bool
}

// Report is every pool at one commit.
type Report struct {
	Commit string
	At     time.Time
	Pools  []PoolReport

	snap  *pool.Snapshot
	holds *holds.Set
}

// Stale lists the locks to free.
func (r *Report) Stale() []LockReport {
	var out []LockReport
	for _, p := range r.Pools {
		if p.Timeout <= 0 || !p.intact {
			continue
		}
		for _, l := range p.Locks {
			if l.Verdict.Reap() {
				out = append(out, l)
			}
		}
	}
	return out
}

// UnknownPoolError is a configured pool the repository does not have.
type UnknownPoolError struct {
	Pool     string
	Existing []string
}

func (e *UnknownPoolError) Error() string {
	existing := "none"
	if len(e.Existing) > 0 {
		existing = strings.Join(e.Existing, ", ")
	}
	return fmt.Sprintf("unknown pool %q (pools in the repository: %s)", e.Pool, existing)
}

// Status evaluates the branch as the mirror has it now.
func Status(ctx context.Context, repo Repo, cfg Config) (*Report, error) {
	cfg.defaults()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	return evaluate(ctx, repo, cfg, head)
}

// evaluate reads the pools at head, finds every claim, and decides each lock.
func evaluate(ctx context.Context, repo Repo, cfg Config, head string) (*Report, error) {
	for {
		snap, err := pool.Read(ctx, repo, head)
		if err != nil {
			return nil, err
		}
		for _, name := range cfg.Timeouts.Names() {
			if snap.Pool(name) == nil {
				return nil, &UnknownPoolError{Pool: name, Existing: snap.Names()}
			}
		}
		for _, from := range slices.Sorted(maps.Keys(cfg.ReapTo)) {
			if snap.Pool(from) == nil {
				return nil, &UnknownPoolError{Pool: from, Existing: snap.Names()}
			}
			if snap.Pool(cfg.ReapTo[from]) == nil {
				return nil, &UnknownPoolError{Pool: cfg.ReapTo[from], Existing: snap.Names()}
			}
		}
		held, err := holds.Read(ctx, repo, head)
		if err != nil {
			return nil, err
		}
		var paths []string
		for _, p := range snap.Pools {
			for _, l := range p.Claimed {
				if p.Broken[l.Name] == "" {
					paths = append(paths, l.Path())
				}
			}
		}
		find := claims.Find
		if cfg.Index != nil {
			find = cfg.Index.Find
		}
		found, err := find(ctx, repo, head, paths)
		if err != nil {
			return nil, err
		}
		// Finding ancient claims may have deepened a shallow mirror, which fetches
		// the branch too: if it moved, decide on the new state instead.
		now, err := repo.Head(ctx)
		if err != nil {
			return nil, err
		}
		if now == head {
			var evidence map[string]*policy.Build
			if cfg.Witness != nil {
				evidence = cfg.Witness.Evidence(ctx, ownedClaims(found.Claims))
			}
			return decide(cfg, snap, found, evidence, held), nil
		}
		head = now
	}
}

// ownedClaims lists each distinct claim commit once, with the build its message names.
func ownedClaims(found map[string]claims.Claim) []liveness.Claim {
	seen := map[string]bool{}
	var out []liveness.Claim
	for _, path := range slices.Sorted(maps.Keys(found)) {
		c := found[path]
		if seen[c.Commit] {
			continue
		}
		seen[c.Commit] = true
		out = append(out, liveness.Claim{Commit: c.Commit, Time: c.Time, Owner: commitmsg.Parse(c.Message).Owner})
	}
	return out
}

func decide(cfg Config, snap *pool.Snapshot, found claims.Result, evidence map[string]*policy.Build, held *holds.Set) *Report {
	now := cfg.Now()
	rep := &Report{Commit: snap.Commit, At: now, snap: snap, holds: held}
	// sentTo is which pool's lock each quarantine path would receive: a second lock
	// for one path (CheckReapTo refuses shared quarantines; this holds whatever the
	// config) is broken, never moved, as two files cannot become one.
	sentTo := map[string]string{}
	for _, p := range snap.Pools {
		pr := PoolReport{
			Name:      p.Name,
			Timeout:   cfg.Timeouts[p.Name],
			ReapTo:    cfg.ReapTo[p.Name],
			Claimed:   len(p.Claimed),
			Unclaimed: len(p.Unclaimed),
			Problems:  p.Problems,
			intact:    p.Intact(),
		}
		for _, l := range p.Claimed {
			c, ok := found.Claims[l.Path()]
			lr := LockReport{Pool: p.Name, Name: l.Name, ReapTo: pr.ReapTo, lock: l, timeout: pr.Timeout,
				holdFile: held.File(p.Name, l.Name)}
			problem := p.Broken[l.Name]
			if problem == "" && !pr.intact {
				// No lock of a pool missing claimed/ or unclaimed/ can move: each is
				// broken, as its pool is, never stale.
				problem = "the pool is not usable: " + p.Unusable()
			}
			why := quarantineProblem(snap, pr.ReapTo, l.Name)
			if dest := pr.ReapTo + "/" + l.Name; pr.ReapTo != "" && why == "" {
				if other, ok := sentTo[dest]; ok {
					why = fmt.Sprintf("pool %s also reaps a lock %s to quarantine %s: a reap would make one of two; fix the configuration", other, l.Name, pr.ReapTo)
				} else {
					sentTo[dest] = p.Name
				}
			}
			if problem == "" && why != "" {
				problem = why
				pr.Problems = append(pr.Problems, pool.Problem{Pool: p.Name, Lock: l.Name, Path: l.Path(), Detail: why})
			}
			if cs := found.Conflicts[l.Path()]; len(cs) > 0 && problem == "" {
				problem = ConflictDetail(cs)
				pr.Problems = append(pr.Problems, pool.Problem{Pool: p.Name, Lock: l.Name, Path: l.Path(), Detail: problem})
			}
			// A claim commit without a readable date has no age: unknown, never ancient.
			ok = ok && !c.Time.IsZero()
			if ok {
				lr.ClaimCommit, lr.ClaimedAt = c.Commit, c.Time
				lr.Owner = commitmsg.Parse(c.Message).Owner
				lr.Build = evidence[c.Commit]
				if h, ok := held.Of(p.Name, l.Name); ok && h.Claim == c.Commit {
					lr.Hold = &h
				}
			}
			var hold *policy.Hold
			if h := lr.Hold; h != nil {
				hold = &policy.Hold{Until: h.Until, By: h.By, Reason: h.Reason}
			}
			in := policy.Input{
				Now:           now,
				ClaimFound:    ok,
				ClaimedAt:     c.Time,
				Timeout:       pr.Timeout,
				Problem:       problem,
				Build:         lr.Build,
				ReapSucceeded: cfg.ReapSucceeded[p.Name],
				Hold:          hold,
			}
			lr.Verdict = policy.Decide(in)
			in.Hold = nil
			lr.unheld = policy.Decide(in)
			if lr.Verdict.Reap() {
				pr.Stale++
			}
			pr.Locks = append(pr.Locks, lr)
		}
		rep.Pools = append(rep.Pools, pr)
	}
	oneHolding(rep)
	return rep
}

// quarantineProblem says why a lock cannot be reaped to pool dest: dest is not
// usable, or already has a lock of that name. "" when it can (or dest is "").
func quarantineProblem(snap *pool.Snapshot, dest, name string) string {
	if dest == "" {
		return ""
	}
	d := snap.Pool(dest)
	if why := d.Unusable(); why != "" {
		return fmt.Sprintf("its reaps go to pool %s, which is not usable: %s", dest, why)
	}
	if _, ok := d.Broken[name]; ok || slices.ContainsFunc(append(slices.Clip(d.Claimed), d.Unclaimed...), func(l pool.Lock) bool { return l.Name == name }) {
		return fmt.Sprintf("pool %s, where its reaps go, already has a lock %s: a reap would make two; fix the repository by hand", dest, name)
	}
	return ""
}

// oneHolding gives the locks one claim commit took together (a claim of several
// locks at once) one verdict: they share the build, its evidence and the claim's
// age, but their pools may differ in timeout or in reap_on_success. They are
// freed only when every one of them would be; otherwise each keeps the verdict
// of the first of them that is kept, so none is freed alone.
func oneHolding(rep *Report) {
	type ref struct{ pool, lock int }
	byClaim := map[string][]ref{}
	for i, p := range rep.Pools {
		for j, l := range p.Locks {
			if l.ClaimCommit != "" {
				byClaim[l.ClaimCommit] = append(byClaim[l.ClaimCommit], ref{i, j})
			}
		}
	}
	for _, refs := range byClaim {
		var keep *LockReport
		for _, r := range refs {
			p := &rep.Pools[r.pool]
			if l := &p.Locks[r.lock]; !l.Verdict.Reap() || p.Timeout <= 0 || !p.intact {
				keep = l
				break
			}
		}
		if keep == nil || len(refs) == 1 {
			continue
		}
		for _, r := range refs {
			p := &rep.Pools[r.pool]
			l := &p.Locks[r.lock]
			if l == keep || !l.Verdict.Reap() {
				continue
			}
			p.Stale--
			v := keep.Verdict
			v.Age = l.Verdict.Age
			v.Reason = fmt.Sprintf("claimed together with lock %s of pool %s, which is kept: %s", keep.Name, keep.Pool, keep.Verdict.Reason)
			l.Verdict = v
		}
	}
}

// byHolding orders locks so that those of one claim commit are next to each
// other, where the first of them was; the order is otherwise kept.
func byHolding(locks []LockReport) []LockReport {
	first := map[string]int{}
	rank := make([]int, len(locks))
	for i, l := range locks {
		rank[i] = i
		if l.ClaimCommit == "" {
			continue
		}
		if j, ok := first[l.ClaimCommit]; ok {
			rank[i] = j
		} else {
			first[l.ClaimCommit] = i
		}
	}
	order := make([]int, len(locks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return rank[a] - rank[b] })
	out := make([]LockReport, len(locks))
	for i, j := range order {
		out[i] = locks[j]
	}
	return out
}

// ConflictDetail says why a lock claimed on two merged branches is left alone.
func ConflictDetail(cs []claims.Claim) string {
	var who []string
	for _, c := range cs {
		who = append(who, fmt.Sprintf("%s (%s)", commitmsg.Parse(c.Message).Owner, short(c.Commit)))
	}
	return "claimed independently on branches that were merged, by " + strings.Join(who, " and ") +
		": nobody can tell which build holds it; fix the repository by hand"
}

func short(commit string) string { return commit[:min(len(commit), 12)] }

// Freed is a lock the reaper released.
type Freed struct {
	LockReport
	Commit string // the unclaiming commit
}

// Result is what clean did.
type Result struct {
	Report   *Report         // the state the last decision was made on
	Freed    []Freed         // pushed, or planned on a dry run
	Tickets  []DeletedTicket // queue tickets deleted (see tickets.go), or planned on a dry run
	DryRun   bool
	Attempts int
}

// maxBatch bounds the frees pushed at once. A mass reap (after an outage) lands in
// batches: each is decided on the newest state, and a batch small enough to be
// built and pushed between other people's pushes wins the race.
const maxBatch = 256

// Clean frees every stale lock and deletes every dead queue ticket of the cleaned
// pools, one commit each (frees first), pushed fast-forward in batches of at most
// maxBatch. After each batch that lands, what is left is decided again on the new
// state; a lost race means fetch, halve the batch, decide again, and retry, up to
// cfg.MaxAttempts lost races in a row. The Result holds every free and deletion
// that landed, also when Clean gives up (it then returns both).
func Clean(ctx context.Context, repo Repo, cfg Config, dryRun bool) (*Result, error) {
	cfg.defaults()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{DryRun: dryRun}
	// partial is what to return with an error: the frees and deletions that landed, if any.
	partial := func() *Result {
		if len(res.Freed)+len(res.Tickets) == 0 {
			return nil
		}
		return res
	}
	batch, lost := maxBatch, 0
	for {
		rep, err := evaluate(ctx, repo, cfg, head)
		if err != nil {
			return partial(), err
		}
		res.Report = rep
		stale := rep.Stale()
		dead, err := deadTickets(ctx, repo, cfg, rep)
		if err != nil {
			return partial(), err
		}
		if dryRun || len(stale)+len(dead) == 0 {
			for _, l := range stale {
				res.Freed = append(res.Freed, Freed{LockReport: l})
			}
			for _, t := range dead {
				res.Tickets = append(res.Tickets, DeletedTicket{TicketReport: t})
			}
			return res, nil
		}
		stale = byHolding(stale)
		n := min(len(stale), batch)
		// A batch ends between holdings: the locks of one claim land in one push.
		for n > 0 && n < len(stale) && stale[n].ClaimCommit != "" && stale[n].ClaimCommit == stale[n-1].ClaimCommit {
			n++
		}
		nt := max(0, min(len(dead), batch-n))
		freed, deleted, err := commitBatch(ctx, repo, head, stale[:n], dead[:nt], rep.At)
		if err != nil {
			return partial(), err
		}
		tip := head
		if n > 0 {
			tip = freed[n-1].Commit
		}
		if nt > 0 {
			tip = deleted[nt-1].Commit
		}
		res.Attempts++
		err = gitx.PushChecked(ctx, repo, head, tip)
		if err == nil {
			for _, f := range freed {
				cfg.Log.Info("freed lock", "pool", f.Pool, "lock", f.Name, "commit", f.Commit, "reason", f.Verdict.Reason)
			}
			for _, d := range deleted {
				cfg.Log.Info("deleted queue ticket", "pool", d.Pool, "ticket", d.Ticket.ID, "commit", d.Commit, "reason", d.Verdict.Reason)
			}
			res.Freed = append(res.Freed, freed...)
			res.Tickets = append(res.Tickets, deleted...)
			if n+nt == len(stale)+len(dead) {
				return res, nil
			}
			head, lost, batch = tip, 0, min(2*batch, maxBatch)
			continue
		}
		if !errors.Is(err, gitx.ErrRejected) {
			return partial(), err
		}
		if lost++; lost >= cfg.MaxAttempts {
			return partial(), fmt.Errorf("gave up after %d attempts: the branch kept moving under us (%w)", lost, err)
		}
		batch = max(1, (n+nt)/2)
		wait := cfg.Backoff(lost)
		cfg.Log.Info("lost a push race; deciding again from the new state", "attempt", lost, "wait", wait, "batch", batch)
		select {
		case <-ctx.Done():
			return partial(), ctx.Err()
		case <-time.After(wait):
		}
		if head, err = repo.Fetch(ctx); err != nil {
			return partial(), err
		}
	}
}
