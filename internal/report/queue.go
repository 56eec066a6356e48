package report

import (
	"bytes"
	"context"
	"time"

	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// Ticket is one waiting put in a pool's queue.
type Ticket struct {
	Position          *int         `json:"position"` // 1: next in line; null: expired, in line no more
	ID                string       `json:"id"`
	Holder            *Owner       `json:"holder"`
	Enqueued          time.Time    `json:"enqueued"`
	WaitedSeconds     int64        `json:"waited_seconds"`
	Expires           time.Time    `json:"expires"`
	Expired           bool         `json:"expired"`
	Priority          int          `json:"priority"`
	EffectivePriority int          `json:"effective_priority"`
	Want              []queue.Want `json:"want"`
	Wants             string       `json:"wants"` // want in words
	Seq               int64        `json:"seq"`
}

// Queues is what the queues of a report's pools hold, by pool name.
type Queues map[string]PoolQueue

// PoolQueue is one pool's queue at a commit.
type PoolQueue struct {
	Tickets    []queue.Ticket // by seq
	Unreadable []queue.Unreadable
}

// ReadQueues reads the queue of each pool of rep at rep.Commit. It is the one
// reading of the queues that status, clean and the watch daemon share.
func ReadQueues(ctx context.Context, git queue.Git, rep *reaper.Report) (Queues, error) {
	// One listing of the queues' root first: most pools have no queue directory,
	// and need no git command of their own.
	out, err := git.Output(ctx, "ls-tree", "-z", "--name-only", "--full-tree", rep.Commit, "--", queue.Root+"/")
	if err != nil {
		return nil, err
	}
	has := map[string]bool{}
	for _, name := range bytes.Split(out, []byte{0}) {
		has[string(bytes.TrimPrefix(name, []byte(queue.Root+"/")))] = true
	}
	qs := Queues{}
	for _, p := range rep.Pools {
		if !has[p.Name] {
			continue
		}
		ts, bad, err := queue.Read(ctx, git, rep.Commit, p.Name)
		if err != nil {
			return nil, err
		}
		qs[p.Name] = PoolQueue{Tickets: ts, Unreadable: bad}
	}
	return qs, nil
}

// Read reads rep's queues and builds the document (see Build).
func Read(ctx context.Context, git queue.Git, repo, branch string, rep *reaper.Report, res *reaper.Result) (Doc, error) {
	qs, err := ReadQueues(ctx, git, rep)
	if err != nil {
		return Doc{}, err
	}
	return Build(repo, branch, rep, res, qs), nil
}

// queueDoc lists q's live tickets in the order they are served, then its expired
// ones by seq; its unreadable files are the pool's problems.
func queueDoc(poolName string, q PoolQueue, now time.Time) ([]Ticket, []pool.Problem) {
	out := []Ticket{}
	for i, t := range queue.Order(q.Tickets, now) {
		jt := ticketDoc(t, now)
		pos := i + 1
		jt.Position = &pos
		out = append(out, jt)
	}
	for _, t := range q.Tickets {
		if !t.Live(now) {
			out = append(out, ticketDoc(t, now))
		}
	}
	var problems []pool.Problem
	for _, u := range q.Unreadable {
		problems = append(problems, pool.Problem{Pool: poolName, Path: u.Path,
			Detail: "not a queue ticket this version can read (" + u.Why + "): ignored, never deleted"})
	}
	return out, problems
}

func ticketDoc(t queue.Ticket, now time.Time) Ticket {
	return Ticket{ID: t.ID, Holder: ownerDoc(t.Holder.Owner()), Enqueued: t.Enqueued.UTC(),
		WaitedSeconds: max(int64(now.Sub(t.Enqueued)/time.Second), 0), Expires: t.Expires.UTC(), Expired: !t.Live(now),
		Priority: t.Priority, EffectivePriority: t.Effective(now), Want: t.Want, Wants: t.Describe(), Seq: t.Seq}
}
