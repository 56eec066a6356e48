// Package doctor lists the integrity problems of a lock repository, each with the
// history that explains it, and repairs the ones that have one safe answer.
//
// Invariants:
//   - A repair is made only when exactly one state of the repository is right and
//     nothing anyone holds can be lost: a pool directory or .gitkeep that is
//     missing is added (empty, never a lock), and a lock in both claimed/ and
//     unclaimed/ loses its claimed copy only when that claim has no live holder
//     (its build's end, from Concourse, or its age past the pool's timeout, as
//     the reaper decides) and both copies are the same file.
//   - One commit per repair, saying why; pushed fast-forward only. A lost race is
//     fetched and everything decided again on the new state.
//   - Anything else is left for a person, with the git commands that resolve it.
package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// Repo is the part of a git mirror the doctor needs (gitx.Repo is the real one).
type Repo interface {
	reaper.Repo
}

// Witness says what Concourse knows about the builds that claimed locks.
type Witness interface {
	Evidence(ctx context.Context, claims []liveness.Claim) map[string]*policy.Build
}

// Config is how the doctor decides and retries.
type Config struct {
	Timeouts      policy.Timeouts // a claimed copy past its pool's timeout has no live holder
	ReapSucceeded map[string]bool
	Witness       Witness // nil: no Concourse, only the timeouts decide
	Now           func() time.Time
	MaxAttempts   int                             // pushes tried when others keep pushing first; default 5
	Backoff       func(attempt int) time.Duration // default: as the reaper's
	Log           *slog.Logger
}

func (c *Config) defaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.Backoff == nil {
		c.Backoff = reaper.Backoff
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Change is a commit of the history that explains a problem.
type Change struct {
	Path    string    `json:"path"` // the path it last touched
	Commit  string    `json:"commit"`
	Time    time.Time `json:"time"`
	Subject string    `json:"subject"`
}

// Finding is one integrity problem.
type Finding struct {
	Pool    string   `json:"pool"`
	Lock    string   `json:"lock,omitempty"`
	Path    string   `json:"path"`
	Problem string   `json:"problem"`
	History []Change `json:"history"` // the last commit that touched each path involved; empty: not in the fetched history
	// Repair is what --fix does (or did) about it, and why that is safe; "" when
	// it has no one safe answer.
	Repair string `json:"repair,omitempty"`
	Fixed  string `json:"fixed,omitempty"` // the commit that repaired it
	// Why it is left for a person, and the commands that resolve it in a clone
	// of the branch.
	Ambiguous string   `json:"ambiguous,omitempty"`
	Commands  []string `json:"commands,omitempty"`

	paths []string // whose history explains it
	edits []pool.Edit
	msg   string
}

// Result is what the doctor found, at Commit.
type Result struct {
	Commit   string    `json:"commit"`
	Findings []Finding `json:"findings"`
	Attempts int       `json:"attempts"` // pushes tried
	Fix      bool      `json:"fix"`
}

// Left counts the problems that remain: not repaired.
func (r *Result) Left() int {
	n := 0
	for _, f := range r.Findings {
		if f.Fixed == "" {
			n++
		}
	}
	return n
}

// Check lists every problem at the mirror's head, with the repair --fix would make.
func Check(ctx context.Context, repo Repo, cfg Config) (*Result, error) {
	cfg.defaults()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	fs, err := inspect(ctx, repo, cfg, head)
	if err != nil {
		return nil, err
	}
	return &Result{Commit: head, Findings: fs}, nil
}

// Fix repairs every problem with one safe answer, one commit each, pushed
// fast-forward together. When someone pushes first, it fetches and decides again
// from the new state (a problem may be gone, or no longer safe to repair), up to
// cfg.MaxAttempts lost races.
func Fix(ctx context.Context, repo Repo, cfg Config) (*Result, error) {
	cfg.defaults()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	res := &Result{Fix: true}
	for lost := 0; ; {
		fs, err := inspect(ctx, repo, cfg, head)
		if err != nil {
			return nil, err
		}
		res.Commit, res.Findings = head, fs
		var todo []int
		var changes []pool.Change
		for i, f := range fs {
			if f.Repair != "" {
				todo = append(todo, i)
				changes = append(changes, pool.Change{Edits: f.edits, Msg: f.msg})
			}
		}
		if len(todo) == 0 {
			return res, nil
		}
		ids, err := pool.Commits(ctx, repo, head, changes)
		if err != nil {
			return nil, err
		}
		res.Attempts++
		err = gitx.PushChecked(ctx, repo, head, ids[len(ids)-1])
		if err == nil {
			for j, i := range todo {
				res.Findings[i].Fixed = ids[j]
				cfg.Log.Debug("repaired", "path", fs[i].Path, "commit", ids[j])
			}
			res.Commit = ids[len(ids)-1]
			return res, nil
		}
		if !errors.Is(err, gitx.ErrRejected) {
			return nil, err
		}
		if lost++; lost >= cfg.MaxAttempts {
			return nil, fmt.Errorf("gave up after %d attempts: the branch kept moving under us (%w)", lost, err)
		}
		wait := cfg.Backoff(lost)
		cfg.Log.Debug("lost a push race; deciding again from the new state", "attempt", lost, "wait", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		if head, err = repo.Fetch(ctx); err != nil {
			return nil, err
		}
	}
}

// inspect finds every problem at head and decides each one's repair.
func inspect(ctx context.Context, repo Repo, cfg Config, head string) ([]Finding, error) {
	snap, err := pool.Read(ctx, repo, head)
	if err != nil {
		return nil, err
	}
	for _, name := range cfg.Timeouts.Names() {
		if snap.Pool(name) == nil {
			return nil, &reaper.UnknownPoolError{Pool: name, Existing: snap.Names()}
		}
	}
	empty, err := emptyBlob(ctx, repo)
	if err != nil {
		return nil, err
	}
	keeps, err := gitkeeps(ctx, repo, head, snap)
	if err != nil {
		return nil, err
	}
	var dirs, both, others []Finding
	var claimedPaths []string
	for _, p := range snap.Pools {
		// The pool's own problems with its state directories, by directory.
		dirProblem := map[string]string{}
		for _, pr := range p.Problems {
			if dir, ok := strings.CutPrefix(pr.Path, p.Name+"/"); ok && pr.Lock == "" {
				dirProblem[dir] = pr.Detail
			}
		}
		missing := func(dir string) bool { return strings.HasPrefix(dirProblem[dir], "missing ") }
		for _, pr := range p.Problems {
			f := Finding{Pool: p.Name, Lock: pr.Lock, Path: pr.Path, Problem: pr.Detail, paths: []string{pr.Path}}
			dir := strings.TrimPrefix(pr.Path, p.Name+"/")
			switch {
			case pr.Lock == "" && missing(dir) && len(dirProblem) == 1:
				// One state directory is gone (its last file left): add it back.
				keep := pr.Path + "/.gitkeep"
				f.Repair = "add " + keep + ": " + p.Name + "/ is a pool (it has the other state directory), and git keeps no empty directory"
				f.edits = []pool.Edit{{Path: keep, Mode: "100644", Blob: empty}}
				f.msg = message("add "+keep, p.Name, "", "missing-"+dir,
					p.Name+" had no "+dir+"/ directory, so no lock of the pool could move. "+
						"An empty .gitkeep brings it back, as the pool resource lays pools out.")
				dirs = append(dirs, f)
				continue
			case pr.Lock == "" && missing(dir) && missing("claimed") && missing("unclaimed"):
				if dir == "unclaimed" {
					continue // told once, with claimed/
				}
				f.Path, f.Problem = p.Name, "missing claimed/ and unclaimed/ directories"
				f.paths = []string{p.Name}
				f.Ambiguous = p.Name + "/ has neither claimed/ nor unclaimed/: it may not be meant as a pool"
				f.Commands = []string{
					"# if " + p.Name + " is a pool:",
					"mkdir -p -- " + quote(p.Name+"/claimed") + " " + quote(p.Name+"/unclaimed"),
					"touch -- " + quote(p.Name+"/claimed/.gitkeep") + " " + quote(p.Name+"/unclaimed/.gitkeep"),
					"git add -- " + quote(p.Name),
					"# if it is not: move it out of the top level, or give it a name starting with '.'",
				}
			case pr.Lock == "" && (dir == "claimed" || dir == "unclaimed"):
				f.Ambiguous = "something else is where the pool's " + dir + "/ directory should be"
				f.Commands = []string{
					"git rm -r -q -- " + quote(pr.Path) + "   # after keeping what it holds, if anything",
					"mkdir -p -- " + quote(pr.Path) + " && touch -- " + quote(pr.Path+"/.gitkeep"),
					"git add -- " + quote(pr.Path+"/.gitkeep"),
				}
			case pr.Lock == "":
				f.Ambiguous = "only a person can choose the pool's new name"
				f.Commands = []string{"git mv -- " + quote(pr.Path) + " NEW-NAME"}
			case strings.Contains(pr.Path, "/{claimed,unclaimed}/"):
				f.Path = pool.LockPath(p.Name, pr.Lock, true)
				f.paths = []string{f.Path, pool.LockPath(p.Name, pr.Lock, false)}
				claimedPaths = append(claimedPaths, f.Path)
				both = append(both, f)
				continue
			default:
				f.Ambiguous = "what belongs here instead (a lock file, or nothing) is for a person to say"
				f.Commands = []string{"git rm -r -q -- " + quote(pr.Path)}
			}
			others = append(others, f)
		}
		for _, dir := range []string{"claimed", "unclaimed"} {
			keep := p.Name + "/" + dir + "/.gitkeep"
			if dirProblem[dir] != "" || keeps[keep] {
				continue
			}
			dirs = append(dirs, Finding{Pool: p.Name, Path: keep, paths: []string{keep},
				Problem: "missing .gitkeep: " + p.Name + "/" + dir + "/ vanishes when its last lock leaves it",
				Repair:  "add " + keep + " (empty; never a lock)",
				edits:   []pool.Edit{{Path: keep, Mode: "100644", Blob: empty}},
				msg: message("add "+keep, p.Name, "", "gitkeep",
					p.Name+"/"+dir+"/ had no .gitkeep: when its last lock left it, git would drop the "+
						"directory and the pool would become unusable. An empty .gitkeep keeps it."),
			})
		}
		for _, l := range p.Claimed {
			if p.Broken[l.Name] == "" {
				claimedPaths = append(claimedPaths, l.Path())
			}
		}
	}
	found, err := claims.Find(ctx, repo, head, claimedPaths)
	if err != nil {
		return nil, err
	}
	var conflicts []Finding
	for _, path := range slices.Sorted(maps.Keys(found.Conflicts)) {
		cs := found.Conflicts[path]
		pl, lock := splitLock(path)
		if slices.ContainsFunc(both, func(f Finding) bool { return f.Path == path }) {
			continue // told with its other problem
		}
		f := Finding{Pool: pl, Lock: lock, Path: path, Problem: reaper.ConflictDetail(cs), paths: []string{path}}
		for _, c := range cs {
			f.History = append(f.History, Change{Path: path, Commit: c.Commit, Time: c.Time, Subject: subject(c.Message)})
		}
		f.Ambiguous = "two builds each think they hold it; only the people who run them can say which does"
		f.Commands = []string{
			"# when neither build holds it any more, free it:",
			"git mv -- " + quote(path) + " " + quote(pool.LockPath(pl, lock, false)),
			"# (while one does, leave it: its release, or a new claim, ends the conflict)",
		}
		conflicts = append(conflicts, f)
	}
	held, err := holds.Read(ctx, repo, head)
	if err != nil {
		return nil, err
	}
	decideBoth(ctx, cfg, snap, found, held, both)
	// By pool; within one, repairs of its directories come before its locks', and
	// each kind in natural order of its paths (env-2 before env-10).
	byPath := func(a, b Finding) int { return pool.CompareNames(a.Path, b.Path) }
	for _, fs := range [][]Finding{dirs, both, conflicts, others} {
		slices.SortStableFunc(fs, byPath)
	}
	out := slices.Concat(dirs, both, conflicts, others)
	slices.SortStableFunc(out, func(a, b Finding) int { return pool.CompareNames(a.Pool, b.Pool) })
	for i := range out {
		if out[i].History == nil {
			if out[i].History, err = history(ctx, repo, head, out[i].paths); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// decideBoth decides each lock in both states: its claimed copy is removed when
// that claim has no live holder and both copies are the same file. As clean
// decides: a hold on the claim keeps it, and a claim of several locks at once,
// which clean keeps whole while any of its locks is kept, is for a person.
func decideBoth(ctx context.Context, cfg Config, snap *pool.Snapshot, found claims.Result, held *holds.Set, both []Finding) {
	var owned []liveness.Claim
	for _, f := range both {
		if c, ok := found.Claims[f.Path]; ok {
			owned = append(owned, liveness.Claim{Commit: c.Commit, Time: c.Time, Owner: commitmsg.Parse(c.Message).Owner})
		}
	}
	var evidence map[string]*policy.Build
	if cfg.Witness != nil && len(owned) > 0 {
		evidence = cfg.Witness.Evidence(ctx, owned)
	}
	now := cfg.Now()
	for i := range both {
		f := &both[i]
		p := snap.Pool(f.Pool)
		claimed, free := lockIn(p.Claimed, f.Lock), lockIn(p.Unclaimed, f.Lock)
		f.Problem = "lock is in both claimed/ and unclaimed/"
		freePath := pool.LockPath(f.Pool, f.Lock, false)
		keepClaim := []string{
			"# if its build still holds it, the free copy must go:",
			"git rm -q -- " + quote(freePath),
			"# if nobody holds it, the claimed copy must go:",
			"git rm -q -- " + quote(f.Path),
		}
		if cs := found.Conflicts[f.Path]; len(cs) > 0 {
			f.Problem += "; and " + reaper.ConflictDetail(cs)
			f.Ambiguous = "nobody can tell which build holds the claimed copy"
			f.Commands = keepClaim
			continue
		}
		c, ok := found.Claims[f.Path]
		if !ok || c.Time.IsZero() {
			f.Ambiguous = "no commit in the fetched history claims the claimed copy, so nothing says whether anyone holds it"
			f.Commands = keepClaim
			continue
		}
		parsed := commitmsg.Parse(c.Message)
		owner := parsed.Owner
		if len(parsed.Locks) > 1 {
			f.Ambiguous = "the claim (" + short(c.Commit) + ", " + owner.String() + ") took " + strconv.Itoa(len(parsed.Locks)) +
				" locks at once, which clean keeps together while any of them is kept: which copy goes is for a person to say"
			f.Commands = keepClaim
			continue
		}
		var hold *policy.Hold
		if h, ok := held.Of(f.Pool, f.Lock); ok && h.Claim == c.Commit {
			hold = &policy.Hold{Until: h.Until, By: h.By, Reason: h.Reason}
		}
		v := policy.Decide(policy.Input{Now: now, ClaimFound: true, ClaimedAt: c.Time, Timeout: cfg.Timeouts[f.Pool],
			Build: evidence[c.Commit], ReapSucceeded: cfg.ReapSucceeded[f.Pool], Hold: hold})
		switch {
		case !v.Reap():
			f.Ambiguous = "the claim (" + short(c.Commit) + ", " + owner.String() + ") may still be held: " + v.Reason
			f.Commands = keepClaim
		case claimed.Blob != free.Blob || claimed.Mode != free.Mode:
			f.Ambiguous = "nobody holds the claimed copy (" + v.Reason + "), but the two copies differ: which content is the lock's is for a person to say"
			f.Commands = []string{
				"git diff --no-index -- " + quote(f.Path) + " " + quote(freePath),
				"# keep the right content in " + quote(freePath) + ", then:",
				"git rm -q -- " + quote(f.Path),
			}
		default:
			f.Repair = "remove the claimed copy " + f.Path + ": its claim (" + short(c.Commit) + ", " + owner.String() + ") has no live holder: " + v.Reason
			f.edits = []pool.Edit{{Path: f.Path}}
			f.msg = message("unclaiming: "+f.Lock, f.Pool, f.Lock, "both-states",
				"The lock was in both claimed/ and unclaimed/, with the same content. Its claim "+
					c.Commit+" ("+oneLine(owner.String())+") has no live holder: "+oneLine(v.Reason)+
					".\nSo the claimed copy goes, and the lock stays free in unclaimed/.")
		}
	}
}

func lockIn(ls []pool.Lock, name string) pool.Lock {
	i := slices.IndexFunc(ls, func(l pool.Lock) bool { return l.Name == name })
	return ls[i]
}

// message is a repair's commit message: what it does, why, and trailers. A
// freed lock's first line is the pool resource's own ("unclaiming: L"), so every
// reader of pool history understands it.
func message(first, pool, lock, rule, why string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\npoolboy doctor: %s\n\n", first, why)
	fmt.Fprintf(&b, "Poolboy-Doctor: %s\nPoolboy-Pool: %s\n", rule, pool)
	if lock != "" {
		fmt.Fprintf(&b, "Poolboy-Lock: %s\n", lock)
	}
	// Two doctors repairing the same head in the same second would build identical
	// commits, and the second would take git's "up to date" for its own push.
	fmt.Fprintf(&b, "Poolboy-Nonce: %s\n", rand.Text())
	return b.String()
}

// gitkeeps says which .gitkeep files exist at head, in the pools' state
// directories that are directories.
func gitkeeps(ctx context.Context, repo Repo, head string, snap *pool.Snapshot) (map[string]bool, error) {
	var paths []string
	for _, p := range snap.Pools {
		for _, dir := range []string{p.Name + "/claimed", p.Name + "/unclaimed"} {
			if !slices.ContainsFunc(p.Problems, func(pr pool.Problem) bool { return pr.Lock == "" && pr.Path == dir }) {
				paths = append(paths, dir+"/.gitkeep")
			}
		}
	}
	have := map[string]bool{}
	if len(paths) == 0 {
		return have, nil
	}
	out, err := repo.Input(ctx, nil, []string{"GIT_LITERAL_PATHSPECS=1"},
		append([]string{"ls-tree", "-z", "--full-tree", head, "--"}, paths...)...)
	if err != nil {
		return nil, err
	}
	for _, rec := range bytes.Split(out, []byte{0}) {
		meta, path, ok := bytes.Cut(rec, []byte{'\t'})
		// Whatever is there (a directory, a symlink) keeps the directory in git
		// too, and writing a file over it would delete it.
		if ok && len(meta) > 0 {
			have[string(path)] = true
		}
	}
	return have, nil
}

// emptyBlob writes the empty file into the mirror and returns its id.
func emptyBlob(ctx context.Context, repo Repo) (string, error) {
	return pool.WriteBlob(ctx, repo, nil)
}

// history is the last commit that touched each of paths (it made the problem,
// or left it behind).
func history(ctx context.Context, repo Repo, head string, paths []string) ([]Change, error) {
	var out []Change
	for _, p := range paths {
		raw, err := repo.Input(ctx, nil, []string{"GIT_LITERAL_PATHSPECS=1"},
			"log", "-1", "--no-show-signature", "--no-color", "--format=%H%x00%ct%x00%s", head, "--", p)
		if err != nil {
			return nil, err
		}
		parts := strings.SplitN(strings.TrimSpace(string(raw)), "\x00", 3)
		if len(parts) != 3 {
			continue // not in the fetched history
		}
		secs, _ := strconv.ParseInt(parts[1], 10, 64)
		out = append(out, Change{Path: p, Commit: parts[0], Time: time.Unix(secs, 0).UTC(), Subject: parts[2]})
	}
	return out, nil
}

func splitLock(path string) (poolName, lock string) {
	i := strings.Index(path, "/claimed/")
	return path[:i], path[i+len("/claimed/"):]
}

func subject(msg string) string {
	first, _, _ := strings.Cut(msg, "\n")
	return first
}

func short(commit string) string { return commit[:min(len(commit), 10)] }

// quote makes a path one shell word. A name with a control character or bytes
// that are not UTF-8 is written $'…' with \xNN escapes (bash, zsh, ksh), so the
// command still names the file once the output is made safe for a terminal.
func quote(s string) string {
	if !strings.ContainsFunc(s, unicode.IsControl) && utf8.ValidString(s) {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// oneLine keeps text from the repository (owner names) from adding lines, and so
// trailers, to a message.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// Text writes the result for people: each problem, the history that explains it,
// and what was (or would be) done about it, or the commands for a person.
func Text(w io.Writer, repoURL, branch string, res *Result) error {
	e := term.Escape
	fmt.Fprintf(w, "%s (branch %s at %s)\n", e(repoURL), e(branch), e(short(res.Commit)))
	if len(res.Findings) == 0 {
		_, err := fmt.Fprintln(w, "\nno integrity problems")
		return err
	}
	fixed, repairable, manual := 0, 0, 0
	for _, f := range res.Findings {
		fmt.Fprintf(w, "\nproblem: %s: %s\n", e(f.Path), e(f.Problem))
		for _, c := range f.History {
			fmt.Fprintf(w, "  history: %s %s %q last changed %s\n", short(c.Commit), c.Time.UTC().Format("2006-01-02 15:04 UTC"), e(c.Subject), e(c.Path))
		}
		if len(f.History) == 0 {
			fmt.Fprintln(w, "  history: no commit in the fetched history touched it")
		}
		switch {
		case f.Fixed != "":
			fixed++
			fmt.Fprintf(w, "  fixed in %s: %s\n", short(f.Fixed), e(f.Repair))
		case f.Repair != "":
			repairable++
			fmt.Fprintf(w, "  --fix would %s\n", e(f.Repair))
		default:
			manual++
			fmt.Fprintf(w, "  left for a person: %s\n", e(f.Ambiguous))
			for _, c := range f.Commands {
				fmt.Fprintf(w, "    %s\n", e(c))
			}
		}
	}
	fmt.Fprintln(w)
	if manual > 0 {
		fmt.Fprintf(w, "to resolve by hand: git clone --branch %s %s locks && cd locks; run the commands above,\n", e(quote(branch)), e(quote(repoURL)))
		fmt.Fprintf(w, "then git commit -m 'poolboy doctor: …' && git push origin HEAD:%s (and run poolboy doctor again)\n", e(quote(branch)))
	}
	parts := []string{fmt.Sprintf("%d %s", len(res.Findings), plural(len(res.Findings), "problem"))}
	if fixed > 0 {
		parts = append(parts, fmt.Sprintf("%d fixed", fixed))
	}
	if repairable > 0 {
		parts = append(parts, fmt.Sprintf("%d with one safe repair (run with --fix)", repairable))
	}
	if manual > 0 {
		parts = append(parts, fmt.Sprintf("%d left for a person", manual))
	}
	_, err := fmt.Fprintln(w, parts[0]+": "+strings.Join(parts[1:], ", "))
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
