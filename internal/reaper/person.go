package reaper

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// A person's change to one lock (hold, unhold, release) is one commit, pushed
// fast-forward only. It acts on the claim the lock has when it is first decided;
// when someone pushes first, it decides again on the new state and refuses if
// that claim does not hold the lock any more (released, reaped, claimed again).

// RefusedError is a person's change poolboy will not make: nothing was pushed.
type RefusedError struct{ Why string }

func (e *RefusedError) Error() string { return e.Why }

// Done is a person's change that landed.
type Done struct {
	Lock   LockReport // the lock as decided before the change
	Commit string
}

// Person is who asks for a change, and why: both go in its commit.
type Person struct {
	By, Reason string
}

// Release frees a claimed lock by hand: its own pool's unclaimed/ (never a
// quarantine: the person says it is fine), deleting its hold, if any. It refuses a
// lock that is not claimed, whose claim commit is unknown, that has an integrity
// problem, or whose build Concourse says is alive.
func Release(ctx context.Context, repo Repo, cfg Config, poolName, lock string, who Person) (*Done, error) {
	cfg.defaults()
	return change(ctx, repo, cfg, poolName, lock, func(l LockReport, _ *Report) (pool.Change, error) {
		for _, v := range []policy.Verdict{l.Verdict, l.unheld} {
			switch v.State {
			case policy.Broken, policy.Unknown, policy.Alive:
				return pool.Change{}, &RefusedError{fmt.Sprintf("%s/%s not released: %s", poolName, lock, v.Reason)}
			}
		}
		l.ReapTo = ""
		l.Verdict.Rule = "manual"
		l.Verdict.Reason = "released by hand by " + who.By + ": " + who.Reason
		return pool.Change{Edits: freeEdits(l), Msg: message(l, cfg.Now(), "Poolboy-Released-By: "+who.By, "Poolboy-Reason: "+who.Reason)}, nil
	})
}

// Hold keeps a claimed lock's current claim from every reap for d (replacing
// the lock's hold, if any).
func Hold(ctx context.Context, repo Repo, cfg Config, poolName, lock string, d time.Duration, who Person) (*Done, error) {
	cfg.defaults()
	return change(ctx, repo, cfg, poolName, lock, func(l LockReport, rep *Report) (pool.Change, error) {
		if l.Verdict.State == policy.Broken || l.Verdict.State == policy.Unknown {
			return pool.Change{}, &RefusedError{fmt.Sprintf("%s/%s not held: %s", poolName, lock, l.Verdict.Reason)}
		}
		now := cfg.Now()
		h := holds.Hold{Pool: poolName, Lock: lock, Claim: l.ClaimCommit, By: who.By, Reason: who.Reason, Since: now.UTC(), Until: now.Add(d).UTC()}
		blob, err := pool.WriteBlob(ctx, repo, h.Encode())
		if err != nil {
			return pool.Change{}, err
		}
		msg := fmt.Sprintf("poolboy hold: %s/%s until %s\n\nheld by %s for %s: %s\n\nPoolboy-Hold-Pool: %s\nPoolboy-Hold-Lock: %s\nPoolboy-Claim-Commit: %s\nPoolboy-Hold-Until: %s\n",
			poolName, lock, h.Until.Format(time.RFC3339), oneLine(who.By), policy.Human(d), oneLine(who.Reason),
			poolName, lock, l.ClaimCommit, h.Until.Format(time.RFC3339))
		return pool.Change{Edits: []pool.Edit{{Path: holds.Path(poolName, lock), Mode: "100644", Blob: blob}}, Msg: msg}, nil
	})
}

// Unhold ends a lock's hold: the reaper decides it as before. It refuses a lock
// without a hold file.
func Unhold(ctx context.Context, repo Repo, cfg Config, poolName, lock string, who Person) (*Done, error) {
	cfg.defaults()
	return push(ctx, repo, cfg, func(rep *Report) (LockReport, pool.Change, error) {
		l, err := target(rep, poolName, lock, false)
		if err != nil {
			return l, pool.Change{}, err
		}
		if !rep.holds.File(poolName, lock) {
			return l, pool.Change{}, &RefusedError{fmt.Sprintf("%s/%s is not held", poolName, lock)}
		}
		why := ""
		if who.Reason != "" {
			why = ": " + oneLine(who.Reason)
		}
		msg := fmt.Sprintf("poolboy unhold: %s/%s\n\nhold ended by %s%s\n\nPoolboy-Hold-Pool: %s\nPoolboy-Hold-Lock: %s\n",
			poolName, lock, oneLine(who.By), why, poolName, lock)
		return l, pool.Change{Edits: []pool.Edit{{Path: holds.Path(poolName, lock)}}, Msg: msg}, nil
	})
}

// change (cfg with its defaults) acts on the claimed lock poolName/lock with plan; after a lost race it
// refuses if the claim it was first decided on does not hold the lock any more.
func change(ctx context.Context, repo Repo, cfg Config, poolName, lock string, plan func(LockReport, *Report) (pool.Change, error)) (*Done, error) {
	first := ""
	return push(ctx, repo, cfg, func(rep *Report) (LockReport, pool.Change, error) {
		l, err := target(rep, poolName, lock, true)
		if err != nil {
			return l, pool.Change{}, err
		}
		if l.ClaimCommit == "" {
			return l, pool.Change{}, &RefusedError{fmt.Sprintf("%s/%s: %s", poolName, lock, l.Verdict.Reason)}
		}
		if first == "" {
			first = l.ClaimCommit
		} else if l.ClaimCommit != first {
			return l, pool.Change{}, &RefusedError{fmt.Sprintf("%s/%s was released and claimed again meanwhile (now by %s); nothing done", poolName, lock, l.Owner)}
		}
		c, err := plan(l, rep)
		return l, c, err
	})
}

// target finds poolName/lock in rep; claimed: it must be claimed. A lock that is
// not there, or not claimed when it must be, is refused.
func target(rep *Report, poolName, lock string, claimed bool) (LockReport, error) {
	p := rep.snap.Pool(poolName)
	if p == nil {
		return LockReport{}, &UnknownPoolError{Pool: poolName, Existing: rep.snap.Names()}
	}
	for _, pr := range rep.Pools {
		if pr.Name != poolName {
			continue
		}
		for _, l := range pr.Locks {
			if l.Name == lock {
				return l, nil
			}
		}
	}
	free := slices.ContainsFunc(p.Unclaimed, func(l pool.Lock) bool { return l.Name == lock })
	switch {
	case claimed && p.Broken[lock] != "":
		return LockReport{}, &RefusedError{fmt.Sprintf("%s/%s: not touched: %s", poolName, lock, p.Broken[lock])}
	case claimed && free:
		return LockReport{}, &RefusedError{fmt.Sprintf("%s/%s is not claimed", poolName, lock)}
	case !free && !rep.holds.File(poolName, lock):
		return LockReport{}, &RefusedError{fmt.Sprintf("pool %s has no lock %s", poolName, lock)}
	case claimed:
		// Only unhold acts on a lock that is gone, to end its hold.
		return LockReport{}, &RefusedError{fmt.Sprintf("pool %s has no lock %s (only its hold file is left)", poolName, lock)}
	}
	return LockReport{Pool: poolName, Name: lock}, nil
}

// push decides on the head, commits what plan says and pushes it fast-forward,
// deciding again from the new state after each lost race.
func push(ctx context.Context, repo Repo, cfg Config, plan func(*Report) (LockReport, pool.Change, error)) (*Done, error) {
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	for lost := 0; ; {
		rep, err := evaluate(ctx, repo, cfg, head)
		if err != nil {
			return nil, err
		}
		l, c, err := plan(rep)
		if err != nil {
			return nil, err
		}
		commit, err := pool.Commit(ctx, repo, head, c.Edits, c.Msg)
		if err != nil {
			return nil, err
		}
		err = gitx.PushChecked(ctx, repo, head, commit)
		if err == nil {
			return &Done{Lock: l, Commit: commit}, nil
		}
		if !errors.Is(err, gitx.ErrRejected) {
			return nil, err
		}
		if lost++; lost >= cfg.MaxAttempts {
			return nil, fmt.Errorf("gave up after %d attempts: the branch kept moving under us (%w)", lost, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(cfg.Backoff(lost)):
		}
		if head, err = repo.Fetch(ctx); err != nil {
			return nil, err
		}
	}
}
