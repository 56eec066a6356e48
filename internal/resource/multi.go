package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// Several locks, all or nothing. `acquire: N` asks for N locks of the pool, and
// `with: [{pool, count}]` for more of other pools of the same branch: one claim
// commit moves every one of them (commitmsg.LockSetKey lists them), so there is
// never a partial claim on the branch, and builds that need several locks cannot
// deadlock holding half each. With the queue, the request is one ticket in the
// queue of the resource's pool, wanting every lock (queue.Grant holds back for it
// the free locks it could take). The claim walk gives every lock of the commit the
// same claim, so the reaper judges them as one holding, and release frees them in
// one commit, each fenced by that claim.

// count is params.acquire (and a with entry's count): true is one lock, false
// none, a number that many.
type count int

func (c *count) UnmarshalJSON(b []byte) error {
	v, err := decodeValue(b)
	if err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*c = 0
	case bool:
		*c = 0
		if v {
			*c = 1
		}
	case json.Number:
		n, err := strconv.Atoi(v.String())
		if err != nil || n < 1 || n > queue.MaxWants {
			// A type error, so that decoding names the field (acquire, or with's count).
			return &json.UnmarshalTypeError{Value: "number " + v.String(), Type: reflect.TypeFor[count]()}
		}
		*c = count(n)
	default:
		return typeError(v)
	}
	return nil
}

// withLocks is one entry of params.with: count locks (default one) of pool.
type withLocks struct {
	Pool  string `json:"pool"`
	Count count  `json:"count"`
}

// poolCount is how many locks of one pool a put wants.
type poolCount struct {
	pool string
	n    int
}

// prepareAcquire reads what an acquire asks for: the resource's pool first, then
// params.with's pools in their order, each once.
func (o *outRun) prepareAcquire() error {
	req := []poolCount{{o.src.Pool, int(o.params.Acquire)}}
	total := req[0].n
	for i, w := range o.params.With {
		if w.Pool == "" {
			return fmt.Errorf("invalid payload: params.with[%d] needs a pool", i)
		}
		if pool.ValidName(w.Pool) != nil {
			return fmt.Errorf("invalid payload: params.with[%d].pool %q must be the name of a top-level directory of the repository", i, w.Pool)
		}
		n := max(int(w.Count), 1)
		total += n
		if j := slices.IndexFunc(req, func(r poolCount) bool { return r.pool == w.Pool }); j >= 0 {
			req[j].n += n
		} else {
			req = append(req, poolCount{w.Pool, n})
		}
	}
	if total > queue.MaxWants {
		return fmt.Errorf("invalid payload: params.acquire and params.with ask for %d locks; at most %d at once", total, queue.MaxWants)
	}
	o.request = req
	return nil
}

// multi says whether the put acquires more than one lock.
func (o *outRun) multi() bool {
	return o.op == "acquire" && (len(o.request) > 1 || o.request[0].n > 1)
}

// wants is the put's request as a ticket's wants (the resource's pool has none named).
func (o *outRun) wants() []queue.Want {
	if o.op == "claim" {
		return []queue.Want{{Claim: o.step.name}}
	}
	var ws []queue.Want
	for _, r := range o.request {
		p := r.pool
		if p == o.src.Pool {
			p = ""
		}
		for range r.n {
			ws = append(ws, queue.Want{Pool: p, Acquire: true})
		}
	}
	return ws
}

// requestedPools checks that every pool the request names exists at head, is
// usable, and has as many locks as asked for: a request that can never be
// granted must fail, not wait (and, queued, hold back the pool's locks) forever.
func (o *outRun) requestedPools() (map[string]*pool.Pool, error) {
	pools := map[string]*pool.Pool{}
	for _, r := range o.request {
		p, err := poolIn(o.snap, r.pool, o.src.Branch)
		if err != nil {
			return nil, err
		}
		if why := p.Unusable(); why != "" {
			return nil, fmt.Errorf("pool %q is not usable: %s", p.Name, why)
		}
		have := len(freeLocks(p))
		for _, l := range p.Claimed {
			if p.Broken[l.Name] == "" {
				have++
			}
		}
		if have < r.n {
			return nil, fmt.Errorf("pool %q has %d usable locks; this put asks for %d of them at once", p.Name, have, r.n)
		}
		pools[r.pool] = p
	}
	return pools, nil
}

// freeLocks are the pool's unclaimed locks that are not broken.
func freeLocks(p *pool.Pool) []pool.Lock {
	var free []pool.Lock
	for _, l := range p.Unclaimed {
		if p.Broken[l.Name] == "" {
			free = append(free, l)
		}
	}
	return free
}

// acquireMulti, without the queue, claims the request's locks, at random among
// the free ones of each pool, once every pool has enough free.
func (o *outRun) acquireMulti(ctx context.Context, head string, _ *pool.Pool) (plan, error) {
	pools, err := o.requestedPools()
	if err != nil {
		return plan{}, err
	}
	var locks []pool.Lock
	for _, r := range o.request {
		free := freeLocks(pools[r.pool])
		if len(free) < r.n {
			return plan{wait: o.shortage(pools, nil)}, nil
		}
		rand.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
		locks = append(locks, free[:r.n]...)
	}
	return o.multiClaimPlan(locks), nil
}

// shortage says why the request waits: per pool, how many it wants and how many
// are free (less held: those a ticket ahead holds back).
func (o *outRun) shortage(pools map[string]*pool.Pool, held map[string]int) string {
	var parts []string
	for _, r := range o.request {
		parts = append(parts, fmt.Sprintf("%d of pool %s (%d free)", r.n, r.pool, max(len(freeLocks(pools[r.pool]))-held[r.pool], 0)))
	}
	return "not enough locks available for " + strings.Join(parts, ", ")
}

// sortLocks puts the request's locks in the order the claim lists them: the
// resource's pool first, then the request's order of pools; by name within a pool
// (git's path order, so the first is the lock in names).
func (o *outRun) sortLocks(locks []pool.Lock) {
	rank := func(p string) int {
		return slices.IndexFunc(o.request, func(r poolCount) bool { return r.pool == p })
	}
	slices.SortFunc(locks, func(a, b pool.Lock) int {
		if ra, rb := rank(a.Pool), rank(b.Pool); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// multiClaimPlan claims every lock in one commit.
func (o *outRun) multiClaimPlan(locks []pool.Lock) plan {
	o.sortLocks(locks)
	pl := plan{lock: locks[0].Name}
	for _, l := range locks {
		claimed := l
		claimed.Claimed = true
		pl.edits = append(pl.edits, pool.Move(l, true)...)
		pl.undo = append(pl.undo, pool.Move(claimed, false)...)
		pl.locks = append(pl.locks, commitmsg.LockRef{Pool: l.Pool, Name: l.Name})
	}
	pl.msg = o.multiMessage("claiming", pl.locks)
	return pl
}

// multiMessage is the commit message of an operation on several locks: the pool
// resource's first line naming the first lock and how many more, the holder's
// lines, then one commitmsg.LockSetKey trailer per lock. A single lock gets the
// pool resource's message exactly.
func (o *outRun) multiMessage(op string, locks []commitmsg.LockRef, extra ...string) string {
	if len(locks) == 1 {
		return o.holder.message(op, locks[0].Name, extra...)
	}
	for _, l := range locks {
		extra = append(extra, commitmsg.LockSetKey+": "+l.String())
	}
	return o.holder.message(op, locks[0].Name+commitmsg.MultiSuffix(len(locks)-1), extra...)
}

// lockList names locks for people and the answer's "locks": "aws/env-1, gpu/g-1".
func lockList(locks []commitmsg.LockRef) string {
	var s []string
	for _, l := range locks {
		s = append(s, l.String())
	}
	return strings.Join(s, ", ")
}

// requestWords says what an acquire asks for: "3 locks of pool aws, 1 of pool gpu".
func (o *outRun) requestWords() string {
	var parts []string
	for i, r := range o.request {
		what := "of"
		if i == 0 {
			what = "locks of"
			if r.n == 1 {
				what = "lock of"
			}
		}
		parts = append(parts, fmt.Sprintf("%d %s pool %s", r.n, what, r.pool))
	}
	return strings.Join(parts, ", ")
}

// lockSetOf is the locks claim took at once, when it is a multi-lock claim: its
// message lists them (commitmsg.LockSetKey) and it moved every one of them into
// claimed/. nil for any other commit. A message listing locks the commit did not
// claim is an error: nobody can tell which locks it holds.
func lockSetOf(ctx context.Context, repo *gitx.Repo, claim string) ([]commitmsg.LockRef, error) {
	out, err := repo.Output(ctx, "log", "-1", "--format=%B", claim)
	if err != nil {
		return nil, err
	}
	set := commitmsg.Parse(string(out)).Locks
	if set == nil {
		return nil, nil
	}
	took, err := claimedBy(ctx, repo, claim)
	if err != nil {
		return nil, err
	}
	for _, l := range set {
		if pool.ValidName(l.Pool) != nil || !slices.Contains(took, pool.LockPath(l.Pool, l.Name, true)) {
			return nil, fmt.Errorf("claim %s lists lock %q of pool %q but did not claim it: cannot tell which locks it holds", claim, l.Name, l.Pool)
		}
	}
	return set, nil
}

// releaseSet frees every lock of the multi-lock claim, in one commit, each fenced
// by it: a lock the claim still holds is freed; one that is free already
// (released or reaped) or removed needs nothing, with a warning, as a single
// release; one that anybody else claimed since refuses the whole release, and
// nothing changes.
func (o *outRun) releaseSet(ctx context.Context, head, claim string, set []commitmsg.LockRef) (plan, error) {
	var held []pool.Lock
	for _, ref := range set {
		p, err := poolIn(o.snap, ref.Pool, o.src.Branch)
		if err != nil {
			return plan{}, fmt.Errorf("lock %q of claim %s: %w: not releasing any of its locks", ref.Name, claim, err)
		}
		l, found, err := find(p, ref.Name)
		switch {
		case err != nil:
			return plan{}, fmt.Errorf("%w: not releasing any of the locks of claim %s", err, claim)
		case !found:
			fmt.Fprintf(o.log, "warning: lock %s of pool %s was removed since; nothing to release for it\n", ref.Name, ref.Pool)
		case !l.Claimed:
			fmt.Fprintf(o.log, "warning: lock %s of pool %s is not claimed any more (reaped, or released by someone else); nothing to release for it\n", ref.Name, ref.Pool)
		default:
			held = append(held, l)
		}
	}
	var paths []string
	for _, l := range held {
		paths = append(paths, l.Path())
	}
	found, err := claims.Find(ctx, o.repo, head, paths)
	if err != nil {
		return plan{}, err
	}
	for _, l := range held {
		if cs := found.Conflicts[l.Path()]; len(cs) > 0 {
			return plan{}, fmt.Errorf("lock %q in pool %q: %s: not releasing any of the locks of claim %s", l.Name, l.Pool, reaper.ConflictDetail(cs), claim)
		}
		if c, ok := found.Claims[l.Path()]; !ok || c.Commit != claim {
			return plan{}, fmt.Errorf("lock %q of pool %q was claimed by this build (%s) with %d other locks, then %s, and is now claimed by %s: not releasing any of them",
				l.Name, l.Pool, claim, len(set)-1, o.endOf(ctx, claim, head, l.Path()), describe(c, ok))
		}
	}
	if len(held) == 0 {
		v, err := o.lockVersion(ctx, head, o.step.name)
		return plan{lock: o.step.name, done: true, version: v}, err
	}
	pl := plan{lock: held[0].Name}
	for _, l := range held {
		pl.edits = append(pl.edits, pool.Move(l, false)...)
		pl.locks = append(pl.locks, commitmsg.LockRef{Pool: l.Pool, Name: l.Name})
	}
	pl.msg = o.multiMessage("unclaiming", pl.locks, "Poolboy-Claim-Commit: "+claim)
	if len(held) == 1 {
		pl.locks = nil
	}
	return pl, nil
}
