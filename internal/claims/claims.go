// Package claims finds, for each claimed lock, its claim commit: the commit that put
// the file now in claimed/ there, on the history the branch's tree actually came from.
//
// On linear history that is the newest commit that added the path. People edit lock
// repositories with plain git too, so history can have merges, and then the newest
// add on the first-parent line can be the wrong one: a `git pull` whose first parent
// is a person's old side hides a release and a new claim made on the other side. The
// walk therefore traces each path back through every parent that has it:
//
//   - a commit whose parent lacks the path (or that has no parent) added it: a
//     candidate claim;
//   - a commit whose parent has it passes the trace on to that parent;
//   - a merge passes the trace to each parent that has the path; a merge whose
//     parents all lack it (it moved the lock itself) is the candidate.
//
// A candidate that is an ancestor of another was released on the way to it: the
// descendant is the claim. Candidates that are not ancestors of each other are claims
// made independently on branches that were merged: nobody can tell which build holds
// the lock, so the path is a Conflict and nothing may act on it.
//
// All paths are traced in one walk of history (one `git log` over the claimed/
// directories that hold them, all commits with their parents), stopped as soon as
// every trace has ended, so linear history costs one pass over the commits that
// matter, as before merges were understood. A cold walk of a long history hands its
// older half to a second git log on another core (split.go), which lists exactly the
// commits the first would have. Messages are read afterwards, for the claim commits
// only. A shallow clone is deepened (×4 a round) while a trace reaches
// its boundary, and each round goes on only from where the traces stopped.
package claims

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// Claim is the commit that put a lock into claimed/.
type Claim struct {
	Commit  string
	Time    time.Time // committer time: when the claim reached the branch
	Message string
}

// Result is what the walk found for each path asked about.
type Result struct {
	// Claims holds the claim of every path that has exactly one.
	Claims map[string]Claim
	// Conflicts holds, for a path claimed independently on branches that were later
	// merged, every claim still standing (oldest first). Such a lock is held by
	// nobody anyone can name: it must never be freed or released automatically.
	Conflicts map[string][]Claim
}

// Repo is the part of a git repository the walk needs.
type Repo interface {
	Output(ctx context.Context, args ...string) ([]byte, error)
	Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error)
	Stream(ctx context.Context, fn func(io.Reader) error, args ...string) error
	// Shallow returns the boundary commits of a shallow clone (nil for a whole one).
	Shallow() (map[string]bool, error)
	// Deepen fetches more history into a shallow clone.
	Deepen(ctx context.Context) error
}

// maxMessage bounds the part of a claim message kept: every form the pool resource
// and poolboy write fits many times over, and a hostile message of megabytes must
// cost neither memory nor parse time.
const maxMessage = 16 << 10

// Find returns the claim of every path that is a file at head. A path that is not
// (a lock not claimed now), and one whose history cannot be had (below the boundary
// of a shallow clone that cannot be deepened), is in neither map: unknown.
func Find(ctx context.Context, repo Repo, head string, paths []string) (Result, error) {
	return findKnown(ctx, repo, head, paths, nil)
}

// answers are the walk's answers at one commit: per path, its standing claims (one:
// the claim; more: a conflict).
type answers map[string][]Claim

// findKnown is Find, with the answers already known at some commits: a trace that
// reaches such a commit with a path known there ends with the answer known.
func findKnown(ctx context.Context, repo Repo, head string, paths []string, known map[string]answers) (Result, error) {
	res := Result{Claims: map[string]Claim{}, Conflicts: map[string][]Claim{}}
	paths, err := files(ctx, repo, head, paths)
	if err != nil || len(paths) == 0 {
		return res, err
	}
	w := newWalk(paths, known)
	if s := w.reach(head, w.all()); !s.empty() {
		w.push(head, s)
	}
	shallow, err := repo.Shallow()
	if err != nil {
		return res, err
	}
	for {
		w.shallow = shallow
		if err := w.run(ctx, repo); err != nil {
			return res, err
		}
		if len(w.hit) == 0 || len(shallow) == 0 {
			break
		}
		// Traces reached the shallow boundary: fetch more history and go on from
		// exactly there (a boundary commit's own diff is real once its parents are here).
		more := false
		if shallow, more, err = deepen(ctx, repo, shallow); err != nil {
			return res, err
		}
		if !more {
			break // the remote has no more: those traces end unknown
		}
		// The next round starts below every commit traced so far: nothing of this
		// round can be reached again, and the boundary commits must be traced anew.
		hit := w.hit
		w.hit, w.seen, w.done = map[string]set{}, map[string]*record{}, map[string]set{}
		for _, c := range slices.Sorted(maps.Keys(hit)) {
			w.push(c, hit[c])
		}
	}
	return w.result(ctx, repo, res)
}

// set is a set of path indices.
type set []uint64

func (s set) has(i int) bool { return s[i/64]&(1<<(i%64)) != 0 }
func (s set) add(i int)      { s[i/64] |= 1 << (i % 64) }
func (s set) del(i int)      { s[i/64] &^= 1 << (i % 64) }
func (s set) empty() bool    { return !slices.ContainsFunc(s, func(w uint64) bool { return w != 0 }) }

// minus returns s without t's members.
func (s set) minus(t set) set {
	out := make(set, len(s))
	for i := range s {
		out[i] = s[i] &^ t[i]
	}
	return out
}

// or adds t's members to s.
func (s set) or(t set) {
	for i := range s {
		s[i] |= t[i]
	}
}

// record is one commit of the walk: its parents and the traced paths it added.
type record struct {
	commit  string
	parents []string
	added   set
}

// walk is the state of the traces. Invariant: a (commit, path) pair is traced at
// most once (done), so a history of many merges costs each commit once per path.
type walk struct {
	paths   []string
	index   map[string]int
	dirs    []string
	shallow map[string]bool

	frontier map[string]set     // commits where traces wait for the commit's record
	done     map[string]set     // what has been traced through each commit (only once merges are seen)
	seen     map[string]*record // records that arrived before a trace reached them (only once merges are seen)
	merges   bool               // a merge has been seen: from now on commits can arrive out of order
	cand     []map[string]bool  // per path: candidate claim commits
	hit      map[string]set     // shallow boundary commits traces stopped at

	known map[string]map[int][]Claim // commits whose answers are known: per path, its standing claims
	info  map[string]Claim           // claim commits already read (those of known answers)
}

func newWalk(paths []string, known map[string]answers) *walk {
	w := &walk{paths: paths, index: map[string]int{}, frontier: map[string]set{},
		done: map[string]set{}, seen: map[string]*record{}, hit: map[string]set{},
		cand: make([]map[string]bool, len(paths)), known: map[string]map[int][]Claim{}, info: map[string]Claim{}}
	dirs := map[string]bool{}
	for i, p := range paths {
		w.index[p] = i
		dirs[path.Dir(p)] = true
		w.cand[i] = map[string]bool{}
	}
	w.dirs = slices.Sorted(maps.Keys(dirs))
	for c, a := range known {
		for p, cs := range a {
			if i, ok := w.index[p]; ok && len(cs) > 0 {
				if w.known[c] == nil {
					w.known[c] = map[int][]Claim{}
				}
				w.known[c][i] = cs
			}
		}
	}
	return w
}

// reach returns the traces in s that go on at commit c: a trace that reaches a
// commit with its path's answer known ends there, with that answer. It is the
// answer a walk from c would give, because a trace reaching c means the file was
// there from c on, and what lies below c is c's history, which a commit id fixes.
func (w *walk) reach(c string, s set) set {
	k := w.known[c]
	if len(k) == 0 {
		return s
	}
	s = slices.Clone(s)
	for i, cs := range k {
		if !s.has(i) {
			continue
		}
		s.del(i)
		for _, cl := range cs {
			w.cand[i][cl.Commit] = true
			w.info[cl.Commit] = cl
		}
	}
	return s
}

func (w *walk) all() set {
	s := w.newSet()
	for i := range w.paths {
		s.add(i)
	}
	return s
}

func (w *walk) newSet() set { return make(set, (len(w.paths)+63)/64) }

// push hands the traces in s to commit c.
func (w *walk) push(c string, s set) {
	if f, ok := w.frontier[c]; ok {
		f.or(s)
		return
	}
	w.frontier[c] = slices.Clone(s)
}

// run walks history from the frontier until every trace has ended. The walk lists
// every commit (--sparse, --full-history) with its real parents, so each trace can
// be followed commit by commit; git lists them newest first, and children before
// parents except where a merge's branches interleave, which is why records that
// come early are kept once a merge has been seen.
func (w *walk) run(ctx context.Context, repo Repo) error {
	if len(w.frontier) == 0 {
		return nil
	}
	starts := slices.Sorted(maps.Keys(w.frontier))
	if len(starts) > 1 {
		w.merges = true
	}
	// Every option that user or repository config (log.follow, log.showRoot,
	// log.showSignature, color.*) could change is given explicitly. The walk reads
	// each tree once, so git's delta-base cache and pack windows only grow its
	// memory (tenfold on a busy repository), not its speed: they are kept small.
	args := []string{"-c", "core.deltaBaseCacheLimit=8m", "-c", "core.packedGitLimit=8m", "-c", "core.packedGitWindowSize=1m",
		"log", "--full-history", "--sparse", "--no-renames", "--no-follow", "--root",
		"--no-show-signature", "--no-color", "--name-status", "-z", "--format=" + marker + "%H %P"}
	from := func(starts ...string) []string {
		return append(append(append(slices.Clip(args), starts...), "--"), w.dirs...)
	}
	// A cold walk of one line from one head may hand its older half to a second git.
	var sp *splitter
	if splitMin > 0 && len(starts) == 1 && len(w.shallow) == 0 && len(w.known) == 0 && !w.merges {
		sp = startSplit(ctx, repo, w, starts[0], from)
		defer sp.stop()
	}
	var werr error
	handed := false
	err := repo.Stream(ctx, func(r io.Reader) error {
		return parse(r, w.index, w.newSet, func(rec *record) bool {
			if sp != nil && sp.reached(rec) {
				handed = true
				return true
			}
			if werr = w.arrive(ctx, repo, rec); werr != nil {
				return true
			}
			return len(w.frontier) == 0
		})
	}, from(starts...)...)
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	if handed {
		// The second git's records are the rest of the first's, in the same order.
		recs, err := sp.rest()
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if len(w.frontier) == 0 {
				break
			}
			if err := w.arrive(ctx, repo, rec); err != nil {
				return err
			}
		}
	}
	// Traces left waiting for commits git never listed (objects missing from the
	// clone) end without a claim: those locks are reported unknown, never freed.
	clear(w.frontier)
	return nil
}

// arrive handles a commit as git lists it.
func (w *walk) arrive(ctx context.Context, repo Repo, rec *record) error {
	if len(rec.parents) > 1 {
		w.merges = true
	}
	s, ok := w.frontier[rec.commit]
	if !ok {
		if w.merges {
			w.seen[rec.commit] = rec
		}
		return nil
	}
	delete(w.frontier, rec.commit)
	return w.trace(ctx, repo, rec, s)
}

// trace follows the paths in s through rec, and on through every record already here.
func (w *walk) trace(ctx context.Context, repo Repo, rec *record, s set) error {
	type step struct {
		rec *record
		s   set
	}
	queue := []step{{rec, s}}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		c := st.rec.commit
		s := st.s
		if w.merges {
			d, ok := w.done[c]
			if !ok {
				d = w.newSet()
				w.done[c] = d
			}
			s = s.minus(d)
			d.or(s)
			if s.empty() {
				continue
			}
			w.seen[c] = st.rec
		}
		var next map[string]set
		switch {
		case w.shallow[c]:
			// A boundary commit's parents are not here: git shows all of it as added,
			// which proves nothing. Deepen and go on from here.
			if h, ok := w.hit[c]; ok {
				h.or(s)
			} else {
				w.hit[c] = slices.Clone(s)
			}
			continue
		case len(st.rec.parents) == 0:
			w.candidates(andSet(s, st.rec.added), c) // a root has only what it added
			continue
		case len(st.rec.parents) == 1:
			w.candidates(andSet(s, st.rec.added), c)
			next = map[string]set{st.rec.parents[0]: s.minus(st.rec.added)}
		default:
			var err error
			if next, err = w.mergeParents(ctx, repo, c, st.rec.parents, s); err != nil {
				return err
			}
		}
		for _, p := range slices.Sorted(maps.Keys(next)) {
			ns := w.reach(p, next[p])
			if ns.empty() {
				continue
			}
			if r, ok := w.seen[p]; ok {
				queue = append(queue, step{r, ns})
				continue
			}
			w.push(p, ns)
		}
	}
	return nil
}

func andSet(a, b set) set {
	out := make(set, len(a))
	for i := range a {
		out[i] = a[i] & b[i]
	}
	return out
}

// candidates records c as a candidate claim of every path in s.
func (w *walk) candidates(s set, c string) {
	for i := range w.paths {
		if s.has(i) {
			w.cand[i][c] = true
		}
	}
}

// mergeParents splits the traces in s at merge c: each goes to every parent that has
// its path as a file; one that no parent has was added by the merge itself.
func (w *walk) mergeParents(ctx context.Context, repo Repo, c string, parents []string, s set) (map[string]set, error) {
	var idx []int
	for i := range w.paths {
		if s.has(i) {
			idx = append(idx, i)
		}
	}
	var q bytes.Buffer
	for _, p := range parents {
		for _, i := range idx {
			fmt.Fprintf(&q, "%s:%s\n", p, w.paths[i])
		}
	}
	out, err := repo.Input(ctx, &q, nil, "cat-file", "--batch-check=%(objecttype)")
	if err != nil {
		return nil, fmt.Errorf("reading the parents of merge %s: %w", c, err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(parents)*len(idx) {
		return nil, fmt.Errorf("reading the parents of merge %s: %d answers to %d questions", c, len(lines), len(parents)*len(idx))
	}
	next := map[string]set{}
	kept := w.newSet()
	for pi, p := range parents {
		ns, ok := next[p]
		if !ok {
			ns = w.newSet()
			next[p] = ns
		}
		for k, i := range idx {
			// Only a file at the path is the lock (a directory or a link there is not).
			if lines[pi*len(idx)+k] == "blob" {
				ns.add(i)
				kept.add(i)
			}
		}
	}
	w.candidates(s.minus(kept), c)
	return next, nil
}

// deepen fetches more history and returns the new shallow boundary (empty once the
// clone is whole), and whether the boundary moved: a remote that is itself shallow
// may have no more to give, and asking again would never end.
func deepen(ctx context.Context, repo Repo, before map[string]bool) (map[string]bool, bool, error) {
	if err := repo.Deepen(ctx); errors.Is(err, gitx.ErrNoMoreHistory) {
		return before, false, nil
	} else if err != nil {
		return before, false, err
	}
	after, err := repo.Shallow()
	if err != nil {
		return before, false, err
	}
	return after, !maps.Equal(after, before), nil
}

// files keeps the paths that are files at head: only those are claimed locks.
func files(ctx context.Context, repo Repo, head string, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	if strings.ContainsAny(head, "\n\x00 ") {
		return nil, fmt.Errorf("head %q is not a commit", head)
	}
	var q strings.Builder
	fmt.Fprintf(&q, "%s\n", head)
	for _, p := range paths {
		if strings.ContainsAny(p, "\n\x00") {
			return nil, fmt.Errorf("path %q cannot be a lock", p)
		}
		fmt.Fprintf(&q, "%s:%s\n", head, p)
	}
	out, err := repo.Input(ctx, strings.NewReader(q.String()), nil, "cat-file", "--batch-check=%(objecttype)")
	if err != nil {
		return nil, fmt.Errorf("reading the head's tree: %w", err)
	}
	types := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(types) != len(paths)+1 {
		return nil, fmt.Errorf("reading the head's tree: %d answers to %d questions", len(types), len(paths)+1)
	}
	if types[0] != "commit" {
		return nil, fmt.Errorf("head %q is not a commit", head)
	}
	var keep []string
	for i, p := range paths {
		if types[i+1] == "blob" {
			keep = append(keep, p)
		}
	}
	return keep, nil
}

// result settles each path's candidates and reads the claim commits. Paths whose
// traces stopped at a boundary nobody could deepen have no claim: what lies below
// could be a newer claim on a merged branch. In a shallow clone two candidates can
// look independent only because the history between them is missing: deepen until
// one stands, or there is no more history.
func (w *walk) result(ctx context.Context, repo Repo, res Result) (Result, error) {
	unresolved := map[int]bool{}
	for _, s := range w.hit {
		for i := range w.paths {
			if s.has(i) {
				unresolved[i] = true
			}
		}
	}
	standing := make([][]string, len(w.paths))
	shallow := w.shallow
	for {
		conflict := false
		for i := range w.paths {
			c := slices.Sorted(maps.Keys(w.cand[i]))
			if len(c) > 1 && !unresolved[i] {
				// Keep only the candidates no other one descends from.
				out, err := repo.Output(ctx, append([]string{"merge-base", "--independent"}, c...)...)
				if err != nil {
					return res, fmt.Errorf("comparing the claims of %s: %w", w.paths[i], err)
				}
				c = strings.Fields(string(out))
				conflict = conflict || len(c) > 1
			}
			standing[i] = c
		}
		if !conflict || len(shallow) == 0 {
			break
		}
		var more bool
		var err error
		if shallow, more, err = deepen(ctx, repo, shallow); err != nil {
			return res, err
		}
		if !more {
			break // what cannot be told apart stays a conflict: nothing acts on it
		}
	}
	var commits []string
	for i := range w.paths {
		if unresolved[i] {
			standing[i] = nil
		}
		for _, c := range standing[i] {
			if _, ok := w.info[c]; !ok {
				commits = append(commits, c)
			}
		}
	}
	info, err := read(ctx, repo, commits)
	if err != nil {
		return res, err
	}
	maps.Copy(info, w.info)
	for i, p := range w.paths {
		switch c := standing[i]; len(c) {
		case 0:
		case 1:
			res.Claims[p] = info[c[0]]
		default:
			var cs []Claim
			for _, id := range c {
				cs = append(cs, info[id])
			}
			slices.SortFunc(cs, func(a, b Claim) int { return a.Time.Compare(b.Time) })
			res.Conflicts[p] = cs
		}
	}
	return res, nil
}

// read returns the committer time and message of each commit, from the raw commit
// objects: sizes come first there, so no byte of a message can confuse the reading.
func read(ctx context.Context, repo Repo, commits []string) (map[string]Claim, error) {
	info := map[string]Claim{}
	if len(commits) == 0 {
		return info, nil
	}
	uniq := slices.Compact(slices.Sorted(slices.Values(commits)))
	stdin := strings.NewReader(strings.Join(uniq, "\n") + "\n")
	out, err := repo.Input(ctx, stdin, nil, "cat-file", "--batch")
	if err != nil {
		return nil, fmt.Errorf("reading claim commits: %w", err)
	}
	for _, id := range uniq {
		// "<oid> commit <size>\n<size bytes>\n"
		header, rest, ok := bytes.Cut(out, []byte("\n"))
		f := strings.Fields(string(header))
		if !ok || len(f) != 3 || f[0] != id || f[1] != "commit" {
			return nil, fmt.Errorf("reading claim commit %s: unexpected answer %q", id, oneLine(header))
		}
		size, err := strconv.Atoi(f[2])
		if err != nil || size < 0 || size+1 > len(rest) {
			return nil, fmt.Errorf("reading claim commit %s: bad size %q", id, f[2])
		}
		info[id] = parseCommit(id, rest[:size])
		out = rest[size+1:]
	}
	return info, nil
}

// parseCommit reads the committer time and the message of a raw commit object.
func parseCommit(id string, raw []byte) Claim {
	c := Claim{Commit: id}
	headers, msg, _ := bytes.Cut(raw, []byte("\n\n"))
	found := false
	for _, l := range bytes.Split(headers, []byte("\n")) {
		rest, ok := bytes.CutPrefix(l, []byte("committer "))
		if !ok {
			continue
		}
		// "Name <email> SECONDS ZONE"
		f := strings.Fields(string(rest[bytes.LastIndexByte(rest, '>')+1:]))
		if len(f) != 2 {
			break
		}
		secs, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		c.Time = commitTime(secs)
		found = !c.Time.IsZero()
	}
	if !found {
		// A hand-made commit can say anything; its claim then has no age (the zero
		// time), which the caller must treat as unknown, never as ancient.
		c.Time = time.Time{}
	}
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	c.Message = string(bytes.TrimRight(msg, "\n"))
	return c
}

// commitTime is a committer time in Unix seconds, or the zero time (no readable
// date) for one outside the years 0 to 9999: git accepts a commit dated year
// 10000, which no JSON document can hold.
func commitTime(secs int64) time.Time {
	t := time.Unix(secs, 0).UTC()
	if !pool.TimeInRange(t) {
		return time.Time{}
	}
	return t
}

// oneLine keeps git's answers to one line in errors.
func oneLine(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b)), "?")
}

// marker starts each commit record; no path starts with \x01 here (lock and pool
// names with control characters are integrity problems, never traced).
const marker = "\x01"

var errFormat = errors.New("git log: unexpected output")

// parse reads `git log -z --name-status --format=\x01%H %P` output: per commit a
// "\x01SHA PARENT..." token, then a status token and a path token per changed file
// (the first status preceded by a newline). It calls visit for every commit, with
// the traced paths (those in index) the commit added, and stops when visit says so.
func parse(r io.Reader, index map[string]int, newSet func() set, visit func(*record) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxToken)
	sc.Split((&nulSplitter{}).split)
	var cur *record
	flush := func() bool {
		if cur == nil {
			return false
		}
		stop := visit(cur)
		cur = nil
		return stop
	}
	for sc.Scan() {
		tok := sc.Bytes()
		if bytes.HasPrefix(tok, []byte(marker)) {
			if flush() {
				return nil
			}
			f := strings.Fields(string(tok[1:]))
			if len(f) == 0 {
				return errFormat
			}
			cur = &record{commit: f[0], parents: f[1:], added: newSet()}
			continue
		}
		status := bytes.TrimPrefix(tok, []byte("\n"))
		if len(status) == 0 {
			continue
		}
		added := len(status) == 1 && status[0] == 'A'
		if !sc.Scan() {
			return fmt.Errorf("%w: a status without a path", errFormat)
		}
		if cur == nil {
			return fmt.Errorf("%w: a path before any commit", errFormat)
		}
		if i, ok := index[string(sc.Bytes())]; ok && added {
			cur.added.add(i)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	flush()
	return nil
}

// maxToken bounds one token of git log's output. No path poolboy traces comes near
// it (a pool and a lock name, each at most 255 bytes).
const maxToken = 1 << 20

// overlong stands for a token longer than maxToken: no traced path, no status, no
// commit (a control character, which no traced path holds).
var overlong = []byte("\x02")

// nulSplitter splits git's -z output at NUL bytes. A token longer than maxToken (a
// crafted commit adding a file with a megabyte of name) is dropped and stands as
// overlong, so that one bad commit does not stop the walk of a whole repository.
type nulSplitter struct{ skipping bool }

func (s *nulSplitter) split(data []byte, atEOF bool) (int, []byte, error) {
	i := bytes.IndexByte(data, 0)
	switch {
	case i >= 0 && s.skipping:
		s.skipping = false
		return i + 1, overlong, nil
	case i >= 0:
		return i + 1, data[:i], nil
	case s.skipping || len(data) >= maxToken:
		if atEOF {
			s.skipping = false
			return len(data), overlong, nil
		}
		s.skipping = true
		return len(data), nil, nil
	case atEOF && len(data) > 0:
		return len(data), data, nil
	}
	return 0, nil, nil
}
