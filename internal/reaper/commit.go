package reaper

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// commitBatch makes one commit per lock, then one per ticket, on top of parent, in
// one pool.Commits: each lock's file moves from claimed/ to unclaimed/ (its pool's,
// or its quarantine's) unchanged (same blob, same mode); each ticket is deleted.
func commitBatch(ctx context.Context, repo Repo, parent string, locks []LockReport, tickets []TicketReport, now time.Time) ([]Freed, []DeletedTicket, error) {
	changes := make([]pool.Change, 0, len(locks)+len(tickets))
	for _, l := range locks {
		changes = append(changes, pool.Change{Edits: freeEdits(l), Msg: message(l, now)})
	}
	for _, t := range tickets {
		changes = append(changes, pool.Change{Edits: []pool.Edit{{Path: t.Ticket.Path}}, Msg: ticketMessage(t, now)})
	}
	ids, err := pool.Commits(ctx, repo, parent, changes)
	if err != nil {
		return nil, nil, err
	}
	freed := make([]Freed, len(locks))
	for i, l := range locks {
		freed[i] = Freed{LockReport: l, Commit: ids[i]}
	}
	deleted := make([]DeletedTicket, len(tickets))
	for i, t := range tickets {
		deleted[i] = DeletedTicket{TicketReport: t, Commit: ids[len(locks)+i]}
	}
	return freed, deleted, nil
}

// freeEdits moves l to unclaimed/ (of l.ReapTo, when it has one) and deletes its
// hold file, if any: a freed lock is held by nobody.
func freeEdits(l LockReport) []pool.Edit {
	edits := pool.Move(l.lock, false)
	if l.ReapTo != "" {
		edits[1].Path = pool.LockPath(l.ReapTo, l.Name, false)
	}
	if l.holdFile {
		edits = append(edits, pool.Edit{Path: holds.Path(l.Pool, l.Name)})
	}
	return edits
}

// message is the unclaiming commit's message: the pool resource's own first line,
// so every tool that reads pool history understands it, then why, for people, then
// trailers, for machines.
// extra are more trailers (a person's release: who and why).
func message(l LockReport, now time.Time, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "unclaiming: %s\n\n", l.Name)
	if l.ReapTo != "" {
		fmt.Fprintf(&b, "poolboy moved this lock to pool %s, to be cleaned: %s.\n\n", l.ReapTo, oneLine(l.Verdict.Reason))
	} else {
		fmt.Fprintf(&b, "poolboy freed this lock: %s.\n\n", oneLine(l.Verdict.Reason))
	}
	fmt.Fprintf(&b, "Pool:       %s\n", l.Pool)
	fmt.Fprintf(&b, "Claimed at: %s (%s ago)\n", l.ClaimedAt.UTC().Format(time.RFC3339), policy.Human(l.Verdict.Age))
	fmt.Fprintf(&b, "Claim:      %s\n", l.ClaimCommit)
	// Never a "Build URL:" line: every reader of pool history (commitmsg.Parse
	// included) takes that key for the build that made the commit, and this commit
	// was made by poolboy, not by the reaped build. Its page goes on the Owner line.
	owner := oneLine(l.Owner.String())
	if l.Owner.URL != "" {
		owner += " (" + oneLine(l.Owner.URL) + ")"
	}
	fmt.Fprintf(&b, "Owner:      %s\n", owner)
	if ev := l.Build; ev != nil {
		fmt.Fprintf(&b, "Concourse:  %s\n", oneLine(evidence(ev)))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Poolboy-Rule: %s\n", l.Verdict.Rule)
	fmt.Fprintf(&b, "Poolboy-Pool: %s\n", l.Pool)
	fmt.Fprintf(&b, "Poolboy-Lock: %s\n", l.Name)
	fmt.Fprintf(&b, "Poolboy-Claim-Commit: %s\n", l.ClaimCommit)
	fmt.Fprintf(&b, "Poolboy-Claimed-At: %s\n", l.ClaimedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Poolboy-Age-Seconds: %d\n", int64(l.Verdict.Age/time.Second))
	fmt.Fprintf(&b, "Poolboy-Timeout-Seconds: %d\n", int64(l.timeout/time.Second))
	fmt.Fprintf(&b, "Poolboy-Owner: %s\n", oneLine(l.Owner.String()))
	if ev := l.Build; ev != nil && ev.Status != "" {
		fmt.Fprintf(&b, "Poolboy-Build-Status: %s\n", oneLine(ev.Status))
	}
	if ev := l.Build; ev != nil && ev.URL != "" {
		fmt.Fprintf(&b, "Poolboy-Build-URL: %s\n", oneLine(ev.URL))
	}
	if l.ReapTo != "" {
		fmt.Fprintf(&b, "Poolboy-Reaped-To: %s\n", l.ReapTo)
	}
	for _, t := range extra {
		b.WriteString(oneLine(t) + "\n")
	}
	fmt.Fprintf(&b, "Poolboy-Decided-At: %s\n", now.UTC().Format(time.RFC3339))
	// Two reapers freeing the same lock on the same head in the same second would
	// build identical commits, and the second would take git's "up to date" for its
	// own reap. A nonce keeps every commit one reaper's own.
	fmt.Fprintf(&b, "Poolboy-Nonce: %s\n", rand.Text())
	return b.String()
}

// evidence says in a line what Concourse answered about a lock's build.
func evidence(ev *policy.Build) string {
	var s string
	switch {
	case ev.Err != "":
		s = ev.Name + ": no answer (" + ev.Err + ")"
	case ev.NotFound:
		s = ev.Name + ": not found"
	default:
		s = ev.Name + " " + ev.Status
	}
	if ev.URL != "" {
		s += " " + ev.URL
	}
	return s
}

// oneLine keeps text that came from the repository (owner names, URLs) from adding
// lines, and so trailers, to our message.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
