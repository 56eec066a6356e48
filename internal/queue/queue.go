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
	"strconv"
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

// MaxWants bounds the locks one ticket may want: a ticket is read by every waiter.
const MaxWants = 64

// MaxPriority bounds a ticket's priority either way, so that a priority and its
// age's points always add up without overflow.
const MaxPriority = 1_000_000

// Want is one lock a ticket waits for: any free lock of a pool (Acquire) or the
// named one (Claim). Pool "" is the ticket's own pool, the queue it is in; another
// pool of the same branch is named. A ticket wants every lock of its list at once:
// one claim commit takes all of them (see Grant).
type Want struct {
	Pool    string `json:"pool,omitempty"`
	Acquire bool   `json:"acquire,omitempty"`
	Claim   string `json:"claim,omitempty"`
}

// String says what the want is, for people: "any lock", "lock env-1", "any lock of
// pool gpu", "lock g-1 of pool gpu".
func (w Want) String() string {
	s := "any lock"
	if w.Claim != "" {
		s = "lock " + w.Claim
	}
	if w.Pool != "" {
		s += " of pool " + w.Pool
	}
	return s
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

	Pool string `json:"-"` // the pool whose queue holds it: the pool of its wants without one
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

// Describe says what the ticket waits for, for people: "any lock", "lock env-1",
// or for several at once "3 locks at once: 2 × any lock, any lock of pool gpu".
func (t Ticket) Describe() string {
	if len(t.Want) == 1 {
		return t.Want[0].String()
	}
	var parts []string
	count := map[string]int{}
	for _, w := range t.Want {
		if count[w.String()]++; count[w.String()] == 1 {
			parts = append(parts, w.String())
		}
	}
	for i, p := range parts {
		if n := count[p]; n > 1 {
			parts[i] = fmt.Sprintf("%d × %s", n, p)
		}
	}
	return fmt.Sprintf("%d locks at once: %s", len(t.Want), strings.Join(parts, ", "))
}

// PoolOf is the pool a want of t is about.
func (t Ticket) PoolOf(w Want) string {
	if w.Pool != "" {
		return w.Pool
	}
	return t.Pool
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
	case len(t.Want) == 0 || len(t.Want) > MaxWants:
		return t, fmt.Errorf("wants %d locks; a ticket wants 1 to %d", len(t.Want), MaxWants)
	case t.Expires.IsZero() || t.Enqueued.IsZero():
		return t, fmt.Errorf("no enqueue or expiry time")
	case !pool.TimeInRange(t.Enqueued) || !pool.TimeInRange(t.Expires):
		return t, fmt.Errorf("enqueue or expiry time outside the years 0 to 9999 (UTC)")
	case t.Priority > MaxPriority || t.Priority < -MaxPriority:
		return t, fmt.Errorf("priority %d is beyond ±%d", t.Priority, MaxPriority)
	}
	claimed := map[Want]bool{}
	for _, w := range t.Want {
		switch {
		case w.Acquire == (w.Claim != ""):
			return t, fmt.Errorf("a want is neither an acquire nor a claim of one lock")
		case w.Claim != "" && pool.ValidName(w.Claim) != nil:
			return t, fmt.Errorf("claim %q is not a lock name", w.Claim)
		case w.Pool != "" && pool.ValidName(w.Pool) != nil:
			return t, fmt.Errorf("pool %q is not a pool name", w.Pool)
		case w.Claim != "" && claimed[w]:
			return t, fmt.Errorf("claims %s twice", w)
		}
		claimed[w] = true
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
	return read(ctx, git, commit, []string{poolName})
}

// ReadAll returns the tickets of every queue at commit, by Seq, and the files there
// that are not tickets it can read. A ticket may want locks of pools other than its
// own, so whoever grants locks reads every queue: all waiters then agree on one order.
func ReadAll(ctx context.Context, git Git, commit string) ([]Ticket, []Unreadable, error) {
	out, err := git.Output(ctx, "ls-tree", "-z", "--full-tree", commit, "--", Root+"/")
	if err != nil {
		return nil, nil, err
	}
	var pools []string
	var bad []Unreadable
	for _, rec := range bytes.Split(out, []byte{0}) {
		meta, path, _ := bytes.Cut(rec, []byte{'\t'})
		name := strings.TrimPrefix(string(path), Root+"/")
		switch f := strings.Fields(string(meta)); {
		case len(rec) == 0 || strings.HasPrefix(name, "."):
		case len(f) != 3 || f[1] != "tree" || pool.ValidName(name) != nil:
			bad = append(bad, Unreadable{string(path), "not a pool's queue directory"})
		default:
			pools = append(pools, name)
		}
	}
	if len(pools) == 0 {
		return nil, bad, nil
	}
	ts, more, err := read(ctx, git, commit, pools)
	return ts, append(bad, more...), err
}

func read(ctx context.Context, git Git, commit string, pools []string) ([]Ticket, []Unreadable, error) {
	// --long gives each blob's size: a file too large to be a ticket is never read
	// (cat-file would hand all of it over, whatever the cap).
	args := []string{"ls-tree", "-z", "--long", "--full-tree", commit, "--"}
	for _, p := range pools {
		args = append(args, Dir(p)+"/")
	}
	out, err := git.Output(ctx, args...)
	if err != nil {
		return nil, nil, err
	}
	var paths, blobs, owners []string
	var bad []Unreadable
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, path, _ := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		p := string(path)
		if len(f) != 4 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
			bad = append(bad, Unreadable{p, "not a regular file"})
			continue
		}
		if size, err := strconv.ParseInt(f[3], 10, 64); err != nil || size > maxTicket {
			bad = append(bad, Unreadable{p, fmt.Sprintf("larger than %d bytes", maxTicket)})
			continue
		}
		owner, name, _ := strings.Cut(strings.TrimPrefix(p, Root+"/"), "/")
		if !strings.HasSuffix(name, ".json") || !ValidID(strings.TrimSuffix(name, ".json")) {
			if !strings.HasPrefix(name, ".") {
				bad = append(bad, Unreadable{p, "not named ID.json"})
			}
			continue
		}
		paths, blobs, owners = append(paths, p), append(blobs, f[2]), append(owners, owner)
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
		if err == nil && Path(owners[i], t.ID) != paths[i] {
			err = fmt.Errorf("id %q does not match its file name", t.ID)
		}
		if err != nil {
			bad = append(bad, Unreadable{paths[i], err.Error()})
			continue
		}
		t.Pool, t.Path = owners[i], paths[i]
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

// Lock is one lock of one pool.
type Lock struct{ Pool, Name string }

// Key names a ticket: its queue and its id, as its path does. An id alone does
// not: anyone who can push can copy a waiter's id into another pool's queue.
type Key struct{ Pool, ID string }

// Key is the ticket's key.
func (t Ticket) Key() Key { return Key{t.Pool, t.ID} }

// Share is what Grant sets aside for one ticket.
type Share struct {
	// Granted: the ticket gets every lock it wants, Locks, and may claim them.
	Granted bool
	// Locks are the locks granted, or while the ticket cannot have all it wants,
	// the free ones it holds back: no ticket behind it may take them.
	Locks []Lock
}

// Grant hands the free locks (per pool, by name) to the ordered tickets, first
// come first served. A ticket is granted when every lock it wants is free for it:
// each claim its named lock, each acquire a free lock of its pool that no ticket
// behind it claims by name if there is one, else any. A ticket that cannot have
// all it wants holds back the free locks it could take, so that a request for
// three is not starved by a stream of requests for one; it does not hold up the
// tickets behind it for locks it could not take. It returns ticket key → share, for
// the tickets that get or hold back something.
func Grant(ordered []Ticket, free map[string][]string) map[Key]Share {
	left := map[string][]string{}
	for p, names := range free {
		left[p] = slices.Clone(names)
	}
	claimedLater := map[Lock]int{}
	for _, t := range ordered {
		for _, w := range t.Want {
			if w.Claim != "" {
				claimedLater[Lock{t.PoolOf(w), w.Claim}]++
			}
		}
	}
	take := func(l Lock) {
		i := slices.Index(left[l.Pool], l.Name)
		left[l.Pool] = slices.Delete(left[l.Pool], i, i+1)
	}
	shares := map[Key]Share{}
	for _, t := range ordered {
		var got []Lock
		all := true
		// Claims first: an acquire of the same ticket must not take a lock it names.
		for _, w := range t.Want {
			if w.Claim == "" {
				continue
			}
			l := Lock{t.PoolOf(w), w.Claim}
			claimedLater[l]--
			if slices.Contains(left[l.Pool], l.Name) {
				got = append(got, l)
				take(l)
			} else {
				all = false
			}
		}
		for _, w := range t.Want {
			if w.Claim != "" {
				continue
			}
			p := t.PoolOf(w)
			if len(left[p]) == 0 {
				all = false
				continue
			}
			i := slices.IndexFunc(left[p], func(n string) bool { return claimedLater[Lock{p, n}] == 0 })
			if i < 0 {
				i = 0
			}
			l := Lock{p, left[p][i]}
			got = append(got, l)
			take(l)
		}
		if all || len(got) > 0 {
			shares[t.Key()] = Share{Granted: all, Locks: got}
		}
	}
	return shares
}
