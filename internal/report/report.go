// Package report renders what the reaper found, for people (text) and for
// programs (JSON, schema "poolboy.status/v2", documented in docs/status-schema.md).
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// Schema names the JSON document's version; fields are only ever added within it.
// v2: pools have a queue, and their problems name unreadable queue tickets too.
const Schema = "poolboy.status/v2"

// Doc is the JSON document.
type Doc struct {
	Schema      string    `json:"schema"`
	Repo        string    `json:"repo"`
	Branch      string    `json:"branch"`
	Commit      string    `json:"commit"`
	GeneratedAt time.Time `json:"generated_at"`
	Pools       []Pool    `json:"pools"`
	Clean       *Clean    `json:"clean,omitempty"`
}

// Pool is one pool.
type Pool struct {
	Name           string         `json:"name"`
	TimeoutSeconds *int64         `json:"timeout_seconds"` // null: no timeout, never cleaned
	Claimed        int            `json:"claimed"`
	Unclaimed      int            `json:"unclaimed"`
	Stale          int            `json:"stale"`
	OnHold         int            `json:"on_hold"`           // claimed locks kept by a hold that has not expired
	ReapTo         string         `json:"reap_to,omitempty"` // the quarantine its reaped locks go to
	Locks          []Lock         `json:"locks"`
	Queue          []Ticket       `json:"queue"` // live tickets in the order they are served, then expired ones
	Problems       []pool.Problem `json:"problems"`
}

// Lock is one claimed lock.
type Lock struct {
	Name        string     `json:"name"`
	Owner       *Owner     `json:"owner"` // null: unknown
	ClaimCommit string     `json:"claim_commit"`
	ClaimedAt   *time.Time `json:"claimed_at"`
	AgeSeconds  int64      `json:"age_seconds"`
	Build       *Evidence  `json:"build"` // null: Concourse was not asked
	Verdict     string     `json:"verdict"`
	Rule        string     `json:"rule"`
	Reason      string     `json:"reason"`
	Warning     string     `json:"warning,omitempty"`
	Hold        *Hold      `json:"hold,omitempty"` // a person's hold on this claim, maybe expired
}

// Hold is a lock kept on purpose (poolboy hold).
type Hold struct {
	By      string    `json:"by"`
	Reason  string    `json:"reason"`
	Since   time.Time `json:"since"`
	Until   time.Time `json:"until"`
	Expired bool      `json:"expired"`
}

// Evidence is what Concourse said about the build that claimed a lock.
type Evidence struct {
	Name        string `json:"name"`
	Status      string `json:"status,omitempty"` // "" when not known
	URL         string `json:"url,omitempty"`
	NotFound    bool   `json:"not_found,omitempty"`
	HandedOffTo string `json:"handed_off_to,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Owner is the build that claimed a lock, as its claim commit tells.
type Owner struct {
	Display      string                     `json:"display"`
	Team         string                     `json:"team,omitempty"`
	Pipeline     string                     `json:"pipeline,omitempty"`
	InstanceVars map[string]json.RawMessage `json:"instance_vars,omitempty"`
	Job          string                     `json:"job,omitempty"`
	Build        string                     `json:"build,omitempty"`
	BuildID      string                     `json:"build_id,omitempty"`
	URL          string                     `json:"url,omitempty"`
}

// Clean is what a clean run did (or would do, on a dry run).
type Clean struct {
	DryRun   bool            `json:"dry_run"`
	Attempts int             `json:"attempts"`
	Freed    []Freed         `json:"freed"`
	Tickets  []DeletedTicket `json:"tickets_deleted"`
}

// DeletedTicket is one deleted queue ticket (see README, *Fair waiting*).
type DeletedTicket struct {
	Pool   string `json:"pool"`
	Ticket string `json:"ticket"`           // its id: the file is .poolboy-queue/POOL/ID.json
	Waiter string `json:"waiter"`           // the build that waited, for people
	Commit string `json:"commit,omitempty"` // empty on a dry run
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Freed is one freed lock.
type Freed struct {
	Pool   string `json:"pool"`
	Lock   string `json:"lock"`
	Commit string `json:"commit,omitempty"` // empty on a dry run
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
}

// Build turns a report, the queues of its pools (ReadQueues) and a clean result, if
// any, into the JSON document.
func Build(repo, branch string, rep *reaper.Report, res *reaper.Result, queues Queues) Doc {
	d := Doc{Schema: Schema, Repo: repo, Branch: branch, Commit: rep.Commit, GeneratedAt: rep.At.UTC(), Pools: []Pool{}}
	for _, p := range rep.Pools {
		jp := Pool{Name: p.Name, Claimed: p.Claimed, Unclaimed: p.Unclaimed, Stale: p.Stale, ReapTo: p.ReapTo,
			Locks: []Lock{}, Problems: slices.Clone(p.Problems)}
		var qProblems []pool.Problem
		jp.Queue, qProblems = queueDoc(p.Name, queues[p.Name], rep.At)
		jp.Problems = append(jp.Problems, qProblems...)
		if jp.Problems == nil {
			jp.Problems = []pool.Problem{}
		}
		if p.Timeout > 0 {
			s := int64(p.Timeout / time.Second)
			jp.TimeoutSeconds = &s
		}
		for _, l := range p.Locks {
			jl := Lock{Name: l.Name, ClaimCommit: l.ClaimCommit, AgeSeconds: int64(l.Verdict.Age / time.Second),
				Verdict: string(l.Verdict.State), Rule: l.Verdict.Rule, Reason: l.Verdict.Reason, Warning: l.Verdict.Warning}
			if b := l.Build; b != nil {
				jl.Build = &Evidence{Name: b.Name, Status: b.Status, URL: b.URL, NotFound: b.NotFound, HandedOffTo: b.HandedOffTo, Error: b.Err}
			}
			if h := l.Hold; h != nil {
				jl.Hold = &Hold{By: h.By, Reason: h.Reason, Since: h.Since.UTC(), Until: h.Until.UTC(), Expired: l.Verdict.State != policy.OnHold}
				if !jl.Hold.Expired {
					jp.OnHold++
				}
			}
			if l.ClaimCommit != "" {
				t := l.ClaimedAt.UTC()
				jl.ClaimedAt = &t
			}
			if l.Owner.Known() || l.Owner.URL != "" {
				jl.Owner = ownerDoc(l.Owner)
			}
			jp.Locks = append(jp.Locks, jl)
		}
		d.Pools = append(d.Pools, jp)
	}
	if res != nil {
		d.Clean = &Clean{DryRun: res.DryRun, Attempts: res.Attempts, Freed: []Freed{}}
		for _, f := range res.Freed {
			d.Clean.Freed = append(d.Clean.Freed, Freed{Pool: f.Pool, Lock: f.Name, Commit: f.Commit,
				Rule: f.Verdict.Rule, Reason: f.Verdict.Reason})
		}
		d.Clean.Tickets = []DeletedTicket{}
		for _, t := range res.Tickets {
			d.Clean.Tickets = append(d.Clean.Tickets, DeletedTicket{Pool: t.Pool, Ticket: t.Ticket.ID, Waiter: t.Ticket.Holder.Owner().String(),
				Commit: t.Commit, Rule: t.Verdict.Rule, Reason: t.Verdict.Reason})
		}
	}
	return d
}

func ownerDoc(o commitmsg.Owner) *Owner {
	return &Owner{Display: o.String(), Team: o.Team, Pipeline: o.Pipeline, InstanceVars: o.Vars,
		Job: o.Job, Build: o.Build, BuildID: o.BuildID, URL: o.URL}
}

// JSON writes the document, indented.
func JSON(w io.Writer, d Doc) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

// Text writes the pools for people: a block per pool, a row per claimed lock. (What
// a clean did is CleanText's: clean prints it first, then the pools as they are now.)
func Text(w io.Writer, d Doc) error {
	// Everything but the numbers comes from the repository or from Concourse:
	// escaped, so no control character reaches the terminal.
	e := term.Escape
	fmt.Fprintf(w, "%s (branch %s at %s)\n", e(d.Repo), e(d.Branch), e(short(d.Commit)))
	if len(d.Pools) == 0 {
		fmt.Fprintln(w, "\nno pools in this repository")
	}
	for _, p := range d.Pools {
		timeout := "no timeout"
		if p.TimeoutSeconds != nil {
			timeout = "timeout " + policy.Human(time.Duration(*p.TimeoutSeconds)*time.Second)
		}
		if p.ReapTo != "" {
			timeout += ", reaps to " + e(p.ReapTo)
		}
		held := ""
		if p.OnHold > 0 {
			held = fmt.Sprintf(", %d on hold", p.OnHold)
		}
		fmt.Fprintf(w, "\npool %s (%s): %d claimed, %d unclaimed, %d stale%s\n", e(p.Name), timeout, p.Claimed, p.Unclaimed, p.Stale, held)
		if len(p.Locks) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "  LOCK\tOWNER\tCLAIMED AT\tAGE\tBUILD\tVERDICT\tREASON")
			for _, l := range p.Locks {
				owner, at, age := "unknown", "-", "-"
				if l.Owner != nil {
					owner = e(l.Owner.Display)
				}
				if l.ClaimedAt != nil {
					at = l.ClaimedAt.Format("2006-01-02 15:04 UTC")
					age = policy.Human(time.Duration(l.AgeSeconds) * time.Second)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", e(l.Name), owner, at, age, e(buildColumn(l.Build)), e(l.Verdict), e(l.Reason))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		for _, l := range p.Locks {
			if l.Build != nil && l.Build.URL != "" {
				fmt.Fprintf(w, "  %s: %s\n", e(l.Name), e(l.Build.URL))
			}
			if l.Warning != "" {
				fmt.Fprintf(w, "  warning: %s: %s\n", e(l.Name), e(l.Warning))
			}
		}
		if err := queueText(w, p.Queue); err != nil {
			return err
		}
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "  problem: %s\n", e(pr.String()))
		}
	}
	return nil
}

// queueText writes a pool's queue: a row per ticket, in the order they are
// served, the expired ones last.
func queueText(w io.Writer, q []Ticket) error {
	if len(q) == 0 {
		return nil
	}
	e := term.Escape
	waiting := 0
	for _, t := range q {
		if t.Position != nil {
			waiting++
		}
	}
	head := fmt.Sprintf("  queue: %d waiting", waiting)
	if n := len(q) - waiting; n > 0 {
		head += fmt.Sprintf(", %d expired (ignored)", n)
	}
	fmt.Fprintln(w, head)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  POS\tHOLDER\tWANTS\tWAITING SINCE\tWAITED\tPRIORITY")
	for _, t := range q {
		pos := "expired"
		if t.Position != nil {
			pos = fmt.Sprint(*t.Position)
		}
		prio := fmt.Sprint(t.Priority)
		if t.EffectivePriority != t.Priority {
			prio += fmt.Sprintf(" (now %d)", t.EffectivePriority)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", pos, e(t.Holder.Display), e(t.Wants),
			t.Enqueued.Format("2006-01-02 15:04 UTC"), policy.Human(time.Duration(t.WaitedSeconds)*time.Second), prio)
	}
	return tw.Flush()
}

// CleanText writes what a clean did (or would do): a line per lock, then a summary.
func CleanText(w io.Writer, c *Clean) error {
	e := term.Escape
	verb := "freed"
	if c.DryRun {
		verb = "would free"
	}
	for _, f := range c.Freed {
		commit := ""
		if f.Commit != "" {
			commit = " in " + short(f.Commit)
		}
		fmt.Fprintf(w, "%s %s/%s%s: %s\n", verb, e(f.Pool), e(f.Lock), e(commit), e(f.Reason))
	}
	verb = "deleted"
	if c.DryRun {
		verb = "would delete"
	}
	for _, t := range c.Tickets {
		commit := ""
		if t.Commit != "" {
			commit = " in " + short(t.Commit)
		}
		fmt.Fprintf(w, "%s queue ticket %s/%s of %s%s: %s\n", verb, e(t.Pool), e(t.Ticket), e(t.Waiter), e(commit), e(t.Reason))
	}
	summary := cleanSummary(c)
	if n := len(c.Tickets); n > 0 && c.DryRun {
		summary += fmt.Sprintf("; %d dead queue %s to delete", n, plural(n, "ticket"))
	} else if n > 0 {
		summary += fmt.Sprintf("; deleted %d queue %s", n, plural(n, "ticket"))
	}
	_, err := fmt.Fprintln(w, summary)
	return err
}

// buildColumn is the owning build's status in a word: "-" when Concourse was not asked.
func buildColumn(b *Evidence) string {
	switch {
	case b == nil:
		return "-"
	case b.Error != "":
		return "no answer"
	case b.NotFound:
		return "not found"
	}
	return b.Status
}

func cleanSummary(c *Clean) string {
	n := len(c.Freed)
	switch {
	case n == 0:
		return "nothing to clean: no stale locks"
	case c.DryRun:
		return fmt.Sprintf("dry run: %d stale %s, nothing pushed", n, plural(n, "lock"))
	}
	return fmt.Sprintf("cleaned %d %s (%d %s)", n, plural(n, "lock"), c.Attempts, plural(c.Attempts, "attempt"))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func short(sha string) string {
	if len(sha) > 10 {
		return sha[:10]
	}
	return strings.TrimSpace(sha)
}
