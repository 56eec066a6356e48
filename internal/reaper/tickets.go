package reaper

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/queue"
)

// The tickets sweep: clean also deletes the queue tickets (internal/queue) of the
// pools it cleans that nobody waits on any more, by policy.DecideTicket on the same
// Concourse evidence as claims: a ticket whose build ended is deleted at once, an
// expired one too (waiters ignore it already), a running build's ticket never,
// and a file that is not a ticket this version reads is never touched.

// TicketReport is one queue ticket and its verdict.
type TicketReport struct {
	Pool    string
	Ticket  queue.Ticket
	Build   *policy.Build // what Concourse said about the waiting build; nil if not asked
	Verdict policy.Verdict
}

// DeletedTicket is a ticket the reaper deleted.
type DeletedTicket struct {
	TicketReport
	Commit string // the deleting commit
}

// deadTickets reads the queues of the cleaned pools at rep's commit and returns
// the tickets to delete.
func deadTickets(ctx context.Context, repo Repo, cfg Config, rep *Report) ([]TicketReport, error) {
	var all []TicketReport
	var asks []liveness.Claim
	for _, p := range rep.Pools {
		if p.Timeout <= 0 || !p.intact {
			continue
		}
		ts, _, err := queue.Read(ctx, repo, rep.Commit, p.Name)
		if err != nil {
			return nil, fmt.Errorf("reading the queue of pool %s: %w", p.Name, err)
		}
		for _, t := range ts {
			all = append(all, TicketReport{Pool: p.Name, Ticket: t})
			asks = append(asks, liveness.Claim{Commit: t.Path, Time: t.Enqueued, Owner: t.Holder.Owner(), Waiting: true})
		}
	}
	var evidence map[string]*policy.Build
	if cfg.Witness != nil && len(asks) > 0 {
		evidence = cfg.Witness.Evidence(ctx, asks)
	}
	var dead []TicketReport
	for _, tr := range all {
		tr.Build = evidence[tr.Ticket.Path]
		tr.Verdict = policy.DecideTicket(policy.TicketInput{Now: rep.At, Expires: tr.Ticket.Expires, Build: tr.Build})
		if tr.Verdict.Reap() {
			dead = append(dead, tr)
		}
	}
	return dead, nil
}

// ticketMessage is the deleting commit's message, as a reap's: the resource's own
// first line for leaving a queue, then why, then trailers. No "Build URL:" line and
// no Poolboy-Build-Id trailer: readers of pool history take those for the build
// that made the commit.
func ticketMessage(t TicketReport, now time.Time) string {
	tk := t.Ticket
	var b strings.Builder
	fmt.Fprintf(&b, "leaving queue: %s\n\n", t.Pool)
	fmt.Fprintf(&b, "poolboy deleted this queue ticket: %s.\n\n", t.Verdict.Reason)
	fmt.Fprintf(&b, "Pool:       %s\n", t.Pool)
	fmt.Fprintf(&b, "Ticket:     %s\n", tk.Path)
	fmt.Fprintf(&b, "Wants:      %s\n", oneLine(tk.Describe()))
	fmt.Fprintf(&b, "Enqueued:   %s\n", tk.Enqueued.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Expires:    %s\n", tk.Expires.UTC().Format(time.RFC3339))
	owner := tk.Holder.Owner()
	waiter := oneLine(owner.String())
	if owner.URL != "" {
		waiter += " (" + oneLine(owner.URL) + ")"
	}
	fmt.Fprintf(&b, "Waiter:     %s\n", waiter)
	if ev := t.Build; ev != nil {
		fmt.Fprintf(&b, "Concourse:  %s\n", oneLine(evidence(ev)))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "Poolboy-Rule: %s\n", t.Verdict.Rule)
	fmt.Fprintf(&b, "Poolboy-Pool: %s\n", t.Pool)
	fmt.Fprintf(&b, "Poolboy-Ticket: %s\n", tk.ID)
	fmt.Fprintf(&b, "Poolboy-Ticket-Expires-At: %s\n", tk.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Poolboy-Waiter: %s\n", oneLine(owner.String()))
	if ev := t.Build; ev != nil && ev.Status != "" {
		fmt.Fprintf(&b, "Poolboy-Build-Status: %s\n", oneLine(ev.Status))
	}
	if ev := t.Build; ev != nil && ev.URL != "" {
		fmt.Fprintf(&b, "Poolboy-Build-URL: %s\n", oneLine(ev.URL))
	}
	fmt.Fprintf(&b, "Poolboy-Decided-At: %s\n", now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Poolboy-Nonce: %s\n", rand.Text())
	return b.String()
}
