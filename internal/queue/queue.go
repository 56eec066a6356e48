// Package queue is the waiting line of a pool, kept in the lock repository next to
// the locks: one ticket file per waiting put in .poolboy-queue/POOL/ on the pool's
// branch. The directory is outside every pool (pool.Parse skips top-level names
// starting with '.'), so upstream resources, whose check lists only commits that
// touch their pool's directory, never see queue traffic.
//
// Invariants:
//   - Order is a pure function of the tickets at one commit and the time: every
//     waiter reading the same head agrees on who is next and which lock each front
//     ticket gets (Grant), so front tickets claim different locks and do not race.
//   - A ticket that has expired (Expires passed: its waiter stopped renewing it) is
//     ignored; the next claim deletes it.
//   - A ticket this version cannot read (another format version, malformed) is
//     ignored and never deleted: it may be a newer poolboy's.
package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// Root is the top-level directory of all queues.
const Root = ".poolboy-queue"

// Version is the ticket format this package writes and reads.
const Version = 1

// AgingStep is how long a ticket waits for each point of priority it gains: a
// ticket enqueued with priority p has p + ⌊waited/AgingStep⌋, so a low-priority
// ticket overtakes newer higher-priority ones in the end and never waits forever.
const AgingStep = 10 * time.Minute

// maxTicket caps a ticket file read from the repository.
const maxTicket = 64 << 10

// Dir is the directory of pool's queue.
func Dir(poolName string) string { return Root + "/" + poolName }

// Path is where a ticket lives.
func Path(poolName, id string) string { return Dir(poolName) + "/" + id + ".json" }

// Want is one lock a ticket waits for: any free lock of the pool (Acquire) or the
// named one (Claim). A ticket has exactly one today; the list leaves room for
// tickets that want several locks at once.
type Want struct {
	Acquire bool   `json:"acquire,omitempty"`
	Claim   string `json:"claim,omitempty"`
}

// Holder is the build that waits.
type Holder struct {
	Team         string `json:"team,omitempty"`
	Pipeline     string `json:"pipeline,omitempty"`
	InstanceVars string `json:"instance_vars,omitempty"` // BUILD_PIPELINE_INSTANCE_VARS as given
	Job          string `json:"job,omitempty"`
	Build        string `json:"build,omitempty"` // the build name
	BuildID      string `json:"build_id,omitempty"`
	URL          string `json:"url,omitempty"`
}

// Owner is the holder as the claim parser would name it, for display and for
// asking Concourse about the build.
func (h Holder) Owner() commitmsg.Owner {
	o := commitmsg.Owner{Team: h.Team, Pipeline: h.Pipeline, Job: h.Job, Build: h.Build, URL: h.URL, ID: h.BuildID,
		Server: commitmsg.ServerOf(h.URL)}
	if h.InstanceVars != "" {
		_ = json.Unmarshal([]byte(h.InstanceVars), &o.Vars)
	}
	if h.Pipeline == "" || h.Job == "" || h.Build == "" {
		o.BuildID = h.BuildID
	}
	return o
}

// Ticket is one waiting put.
type Ticket struct {
	V        int       `json:"v"`
	ID       string    `json:"id"`
	Seq      int64     `json:"seq"` // one more than the highest at the commit it was enqueued on
	Priority int       `json:"priority"`
	Enqueued time.Time `json:"enqueued"`
	Expires  time.Time `json:"expires"` // renewed by its waiter; ignored once passed
	Want     []Want    `json:"want"`
	Holder   Holder    `json:"holder"`

	Path string `json:"-"` // where it was read, "" for a ticket not written yet
}

// Encode is the ticket's file content.
func (t Ticket) Encode() []byte {
	t.V = Version
	b, _ := json.MarshalIndent(t, "", "  ") // a struct of strings, numbers and times cannot fail
	return append(b, '\n')
}

// Live says whether the ticket counts at now.
func (t Ticket) Live(now time.Time) bool { return now.Before(t.Expires) }

// Effective is the ticket's priority at now, with its age (see AgingStep).
func (t Ticket) Effective(now time.Time) int {
	age := now.Sub(t.Enqueued)
	if age < 0 {
		return t.Priority
	}
	return t.Priority + int(age/AgingStep)
}

// String says what w waits for, for people: "any lock" or "lock NAME".
func (w Want) String() string {
	if w.Claim != "" {
		return "lock " + w.Claim
	}
	return "any lock"
}

// Describe says what the ticket waits for, for people: its wants, joined.
func (t Ticket) Describe() string {
	s := make([]string, len(t.Want))
	for i, w := range t.Want {
		s[i] = w.String()
	}
	return strings.Join(s, " and ")
}

// ValidID accepts the ids tickets are named by: lower-case letters and digits.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// decode reads a ticket file; an error says why it is not a ticket of this version.
func decode(data []byte) (Ticket, error) {
	var t Ticket
	if err := json.Unmarshal(data, &t); err != nil {
		return t, err
	}
	switch {
	case t.V != Version:
		return t, fmt.Errorf("format version %d, not %d", t.V, Version)
	case !ValidID(t.ID):
		return t, fmt.Errorf("id %q is not a ticket id", t.ID)
	case len(t.Want) != 1 || t.Want[0].Acquire == (t.Want[0].Claim != ""):
		return t, fmt.Errorf("wants %d locks; this version reads tickets for one lock, by acquire or by claim", len(t.Want))
	case t.Want[0].Claim != "" && pool.ValidName(t.Want[0].Claim) != nil:
		return t, fmt.Errorf("claim %q is not a lock name", t.Want[0].Claim)
	case t.Expires.IsZero() || t.Enqueued.IsZero():
		return t, fmt.Errorf("no enqueue or expiry time")
	}
	return t, nil
}

// Git is the part of a repository Read needs.
type Git interface {
	Output(ctx context.Context, args ...string) ([]byte, error)
	Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error)
}

// Unreadable is a file in a queue directory that is not a ticket of this version.
type Unreadable struct {
	Path, Why string
}

// Read returns the tickets of pool's queue at commit, by Seq, and the files there
// that are not tickets it can read.
func Read(ctx context.Context, git Git, commit, poolName string) ([]Ticket, []Unreadable, error) {
	out, err := git.Output(ctx, "ls-tree", "-z", "--full-tree", commit, "--", Dir(poolName)+"/")
	if err != nil {
		return nil, nil, err
	}
	var paths, blobs []string
	var bad []Unreadable
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, path, _ := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		p := string(path)
		if len(f) != 3 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
			bad = append(bad, Unreadable{p, "not a regular file"})
			continue
		}
		name := strings.TrimPrefix(p, Dir(poolName)+"/")
		if !strings.HasSuffix(name, ".json") || !ValidID(strings.TrimSuffix(name, ".json")) {
			if !strings.HasPrefix(name, ".") {
				bad = append(bad, Unreadable{p, "not named ID.json"})
			}
			continue
		}
		paths, blobs = append(paths, p), append(blobs, f[2])
	}
	if len(blobs) == 0 {
		return nil, bad, nil
	}
	data, err := pool.CatBlobs(ctx, git, blobs, maxTicket)
	if err != nil {
		return nil, nil, err
	}
	var ts []Ticket
	for i, d := range data {
		t, err := decode(d)
		if err == nil && Path(poolName, t.ID) != paths[i] {
			err = fmt.Errorf("id %q does not match its file name", t.ID)
		}
		if err != nil {
			bad = append(bad, Unreadable{paths[i], err.Error()})
			continue
		}
		t.Path = paths[i]
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b Ticket) int { return cmpSeq(a, b) })
	return ts, bad, nil
}

func cmpSeq(a, b Ticket) int {
	if a.Seq != b.Seq {
		return cmpInt(a.Seq, b.Seq)
	}
	return strings.Compare(a.ID, b.ID)
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NextSeq is the sequence number of a ticket enqueued on top of tickets.
func NextSeq(tickets []Ticket) int64 {
	var max int64
	for _, t := range tickets {
		if t.Seq > max {
			max = t.Seq
		}
	}
	return max + 1
}

// Order returns the live tickets at now, first in line first: higher effective
// priority first, then the order they were enqueued in.
func Order(tickets []Ticket, now time.Time) []Ticket {
	var live []Ticket
	for _, t := range tickets {
		if t.Live(now) {
			live = append(live, t)
		}
	}
	slices.SortStableFunc(live, func(a, b Ticket) int {
		if pa, pb := a.Effective(now), b.Effective(now); pa != pb {
			return cmpInt(pb, pa)
		}
		return cmpSeq(a, b)
	})
	return live
}

// Grant hands the free locks (by name) to the ordered tickets, first come first
// served: a ticket claiming a lock gets it when it is free; a ticket acquiring any
// lock gets a free one that no ticket behind it claims by name if there is one,
// else any. A ticket that gets nothing does not hold up the tickets behind it for
// locks it could not take. It returns ticket id → lock.
func Grant(ordered []Ticket, free []string) map[string]string {
	left := slices.Clone(free)
	claimedLater := map[string]int{}
	for _, t := range ordered {
		if c := t.Want[0].Claim; c != "" {
			claimedLater[c]++
		}
	}
	grants := map[string]string{}
	for _, t := range ordered {
		w := t.Want[0]
		if w.Claim != "" {
			claimedLater[w.Claim]--
			if i := slices.Index(left, w.Claim); i >= 0 {
				grants[t.ID] = w.Claim
				left = slices.Delete(left, i, i+1)
			}
			continue
		}
		if len(left) == 0 {
			continue
		}
		i := slices.IndexFunc(left, func(l string) bool { return claimedLater[l] == 0 })
		if i < 0 {
			i = 0
		}
		grants[t.ID] = left[i]
		left = slices.Delete(left, i, i+1)
	}
	return grants
}
