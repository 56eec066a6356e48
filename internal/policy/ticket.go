package policy

import (
	"fmt"
	"strings"
	"time"
)

// Ticket verdicts: a queue ticket is deleted (Stale), kept because its build is
// running (Alive), or kept waiting (Held).

// Ended says whether the evidence shows that the waiting build itself has ended
// (succeeded, failed, errored or aborted): an answer about this very build, not an
// error, a 404, or an answer that is, or may be, about another build. A build
// that ended waits for nothing, so a lock that lands for it is given back; no
// hand-off applies to a build that was still waiting.
func Ended(b *Build) bool {
	return b != nil && b.Err == "" && !b.NotFound && b.Foreign == "" && b.KeepOnly == "" &&
		(dead(b.Status) || b.Status == "succeeded")
}

// TicketGrace is how long after its expiry a ticket is deleted: expiry is judged
// by the deleter's clock, which may run ahead of the waiter's, and a deleted
// ticket's waiter has to queue again at the back.
const TicketGrace = 10 * time.Second

// TicketInput is the evidence about one queue ticket.
type TicketInput struct {
	Now     time.Time
	Expires time.Time // the ticket's expiry; its waiter renews it while alive
	// Build is what Concourse said about the waiting build; nil when nobody asked.
	Build *Build
}

// DecideTicket returns the verdict for one queue ticket, by the rules that
// decide claims: a running build keeps its ticket whatever its expiry (its
// waiter renews it), a build that ended loses it at once (nothing waits in a
// build that ended, and no hand-off applies to a ticket), and without such
// evidence — no Concourse, an error, a 404, an answer about another build or one
// that may be — the ticket's expiry decides, TicketGrace after it.
func DecideTicket(in TicketInput) Verdict {
	b := in.Build
	warning := ""
	if b != nil {
		warning = b.Warning
	}
	switch {
	case b != nil && b.Err == "" && !b.NotFound && b.Foreign == "" && Running(b.Status):
		return Verdict{State: Alive, Rule: "build-running", Warning: warning, Reason: fmt.Sprintf("%s is %s: its waiter renews the ticket", b.Name, b.Status)}
	case Ended(b):
		return Verdict{State: Stale, Rule: "build-" + b.Status, Warning: warning, Reason: fmt.Sprintf("%s %s, so nothing waits on this ticket", b.Name, b.Status)}
	}
	note := ""
	switch {
	case b == nil:
	case b.Err != "":
		note, warning = "Concourse could not say whether "+b.Name+" is alive; ", strings.TrimSuffix(b.Err+"; "+b.Warning, "; ")
	case b.NotFound:
		note = b.Name + " is not known to Concourse; "
	case b.Foreign != "":
		note, warning = "Concourse's answer is about another build than "+b.Name+"; ", b.Foreign
	case b.KeepOnly != "":
		note = fmt.Sprintf("%s %s, but %s; ", b.Name, b.Status, b.KeepOnly)
	default:
		note = fmt.Sprintf("%s has status %q; ", b.Name, b.Status)
	}
	switch {
	case !in.Now.Before(in.Expires.Add(TicketGrace)):
		return Verdict{State: Stale, Rule: "ticket-expired", Warning: warning,
			Reason: note + fmt.Sprintf("expired %s ago: its waiter stopped renewing it", Human(in.Now.Sub(in.Expires)))}
	case !in.Now.Before(in.Expires):
		return Verdict{State: Held, Rule: "ticket-expired-grace", Warning: warning,
			Reason: note + fmt.Sprintf("expired %s ago; deleted %s after its expiry (clocks may differ)", Human(in.Now.Sub(in.Expires)), Human(TicketGrace))}
	}
	return Verdict{State: Held, Rule: "ticket-live", Warning: warning,
		Reason: note + fmt.Sprintf("expires in %s unless its waiter renews it", Human(in.Expires.Sub(in.Now)))}
}
