package claims

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// execGit is a claims.Repo over the real git CLI: `git --git-dir=DIR args...`.
// Like gitx it reads pathspecs literally, and it stops a streamed git once fn
// returns. It counts the bytes history walks (git log) read, and records every command. Deepen
// fetches from src, as a shallow mirror would from its remote.
type execGit struct {
	t     *testing.T
	dir   string
	src   string     // where Deepen fetches from
	mu    sync.Mutex // a split walk runs gits side by side
	read  int64
	calls [][]string
	// running counts the streamed gits not yet ended.
	running int
}

type countingReader struct {
	r io.Reader
	g *execGit
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.g.mu.Lock()
	c.g.read += int64(n)
	c.g.mu.Unlock()
	return n, err
}

func (g *execGit) cmd(ctx context.Context, args []string) *exec.Cmd {
	g.mu.Lock()
	g.calls = append(g.calls, args)
	g.mu.Unlock()
	cmd := exec.CommandContext(ctx, testenv.RequireCommand(g.t, "git"), append([]string{"--git-dir=" + g.dir}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+g.t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C", "GIT_LITERAL_PATHSPECS=1")
	return cmd
}

func (g *execGit) Output(ctx context.Context, args ...string) ([]byte, error) {
	return g.Input(ctx, nil, nil, args...)
}

func (g *execGit) Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	cmd := g.cmd(ctx, args)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %v: %s", args[0], err, stderr.Bytes())
	}
	return out, nil
}

func (g *execGit) Stream(ctx context.Context, fn func(io.Reader) error, args ...string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := g.cmd(ctx, args)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	g.mu.Lock()
	g.running++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.running--
		g.mu.Unlock()
	}()
	var r io.Reader = stdout
	if slices.Contains(args, "log") {
		r = countingReader{stdout, g} // the history walk's bytes, not the first-parent line's
	}
	ferr := fn(r)
	stopped := ferr != nil || !atEOF(stdout)
	if stopped {
		cancel() // fn has what it wanted: stop git instead of reading on
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	if ferr != nil {
		return ferr
	}
	if werr != nil && !stopped {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), werr, stderr.Bytes())
	}
	return nil
}

func (g *execGit) Shallow() (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(g.dir, "shallow"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	set := map[string]bool{}
	for _, l := range strings.Fields(string(data)) {
		set[l] = true
	}
	return set, err
}

func (g *execGit) Deepen(ctx context.Context) error {
	_, err := g.Output(ctx, "fetch", "-q", "--deepen=100", "file://"+g.src, "+refs/heads/*:refs/heads/*")
	return err
}

// walks counts the history walks among the commands run.
func (g *execGit) walks() int {
	n := 0
	for _, c := range g.calls {
		if slices.Contains(c, "log") {
			n++
		}
	}
	return n
}

// atEOF says whether git had nothing more to say (fn read it all).
func atEOF(r io.Reader) bool {
	var b [1]byte
	n, _ := r.Read(b[:])
	return n == 0
}

func newGit(t *testing.T, dir string) *execGit { return &execGit{t: t, dir: dir} }

// find runs Find at branch main.
func find(t *testing.T, g *execGit, paths ...string) Result {
	t.Helper()
	head := strings.TrimSpace(testenv.Git(t, g.dir, "rev-parse", "main"))
	res, err := Find(context.Background(), g, head, paths)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	return res
}

var t0 = time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func build(t *testing.T, spec fixture.Spec) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatalf("fixture.Build: %v", err)
	}
	return dir
}

// opCommit is the commit op i of spec made: ops are one commit each after the
// initial one, on a linear branch.
func opCommit(t *testing.T, dir string, spec fixture.Spec, i int) string {
	t.Helper()
	return testenv.Git(t, dir, "rev-parse", fmt.Sprintf("main~%d", len(spec.Ops)-1-i))
}

func TestFind(t *testing.T) {
	add := func(pool, lock string, m int) fixture.Op {
		return fixture.Op{Kind: fixture.Add, Pool: pool, Lock: lock, At: at(m), Content: lock}
	}
	op := func(k fixture.Kind, pool, lock string, m int, msg string) fixture.Op {
		return fixture.Op{Kind: k, Pool: pool, Lock: lock, At: at(m), Message: msg, Content: "new " + lock}
	}
	tests := []struct {
		name  string
		pools []string
		ops   []fixture.Op
		paths []string
		want  map[string]int // path -> index of the op that claimed it
	}{
		{
			name:  "most recent claim wins",
			pools: []string{"aws"},
			ops: []fixture.Op{
				add("aws", "env-1", 1),
				op(fixture.Claim, "aws", "env-1", 2, "p/j build 1 claiming: env-1"),
				op(fixture.Release, "aws", "env-1", 3, "p/j build 1 unclaiming: env-1"),
				op(fixture.Claim, "aws", "env-1", 4, "p/j build 2 claiming: env-1\nBuild URL: https://ci/builds/2"),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 3},
		},
		{
			name:  "an update after the claim is not a claim",
			pools: []string{"aws"},
			ops: []fixture.Op{
				add("aws", "env-1", 1),
				op(fixture.Claim, "aws", "env-1", 2, ""),
				op(fixture.Update, "aws", "env-1", 3, "p/j build 1 updating: env-1"),
				op(fixture.Update, "aws", "env-1", 4, ""),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 1},
		},
		{
			name:  "adding claimed is a claim",
			pools: []string{"aws"},
			ops: []fixture.Op{
				op(fixture.AddClaimed, "aws", "env-1", 1, ""),
				op(fixture.Update, "aws", "env-1", 2, ""),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 0},
		},
		{
			name:  "removed and added claimed again",
			pools: []string{"aws"},
			ops: []fixture.Op{
				op(fixture.AddClaimed, "aws", "env-1", 1, ""),
				op(fixture.Remove, "aws", "env-1", 2, ""),
				op(fixture.AddClaimed, "aws", "env-1", 3, ""),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 2},
		},
		{
			name:  "glob characters and spaces in names",
			pools: []string{"p*", "px", "my pool"},
			ops: []fixture.Op{
				add("p*", "*", 1), add("p*", "a?", 2), add("p*", "a b", 3), add("p*", "[ab]", 4),
				add("px", "*", 5), add("px", "ab", 6), add("my pool", "x y", 7), add("p*", "ab", 8),
				op(fixture.Claim, "p*", "*", 10, ""),
				op(fixture.Claim, "p*", "a?", 11, ""),
				op(fixture.Claim, "p*", "a b", 12, ""),
				op(fixture.Claim, "p*", "[ab]", 13, ""),
				op(fixture.Claim, "my pool", "x y", 14, ""),
				// Later claims a glob reading would mistake for the ones above.
				op(fixture.Claim, "px", "*", 15, ""),
				op(fixture.Claim, "px", "ab", 16, ""),
				op(fixture.Claim, "p*", "ab", 17, ""),
			},
			paths: []string{"p*/claimed/*", "p*/claimed/a?", "p*/claimed/a b", "p*/claimed/[ab]", "my pool/claimed/x y"},
			want: map[string]int{"p*/claimed/*": 8, "p*/claimed/a?": 9, "p*/claimed/a b": 10,
				"p*/claimed/[ab]": 11, "my pool/claimed/x y": 12},
		},
		{
			name:  "many pools in one walk",
			pools: []string{"aws", "gpu", "licences"},
			ops: []fixture.Op{
				add("aws", "env-1", 1), add("gpu", "gpu-a", 2), add("licences", "m-1", 3), add("aws", "env-2", 4),
				op(fixture.Claim, "licences", "m-1", 5, ""),
				op(fixture.Claim, "aws", "env-1", 6, ""),
				op(fixture.Claim, "gpu", "gpu-a", 7, ""),
				op(fixture.Claim, "aws", "env-2", 8, ""),
				op(fixture.Release, "aws", "env-2", 9, ""),
				op(fixture.Claim, "aws", "env-2", 10, ""),
			},
			paths: []string{"aws/claimed/env-1", "gpu/claimed/gpu-a", "licences/claimed/m-1", "aws/claimed/env-2"},
			want: map[string]int{"aws/claimed/env-1": 5, "gpu/claimed/gpu-a": 6, "licences/claimed/m-1": 4,
				"aws/claimed/env-2": 9},
		},
		{
			name:  "paths never claimed are not found",
			pools: []string{"aws"},
			ops: []fixture.Op{
				add("aws", "env-1", 1), add("aws", "env-2", 2),
				op(fixture.Claim, "aws", "env-2", 3, ""),
			},
			paths: []string{"aws/claimed/env-1", "aws/claimed/ghost", "nope/claimed/x", "aws/claimed/env-2"},
			want:  map[string]int{"aws/claimed/env-2": 2},
		},
		{
			name:  "no paths",
			pools: []string{"aws"},
			ops:   []fixture.Op{op(fixture.AddClaimed, "aws", "env-1", 1, "")},
			want:  map[string]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fixture.Spec{Pools: tt.pools, Start: t0, Ops: tt.ops}
			dir := build(t, spec)
			g := newGit(t, dir)
			res := find(t, g, tt.paths...)
			got := res.Claims
			wantCalls := 1
			if len(tt.paths) == 0 {
				wantCalls = 0
			}
			if g.walks() != wantCalls {
				t.Errorf("%d git walks, want %d", g.walks(), wantCalls)
			}
			if len(res.Conflicts) != 0 {
				t.Errorf("conflicts on linear history: %v", res.Conflicts)
			}
			if len(got) != len(tt.want) {
				t.Errorf("found %d claims %v, want %d", len(got), keys(got), len(tt.want))
			}
			for p, i := range tt.want {
				c, ok := got[p]
				if !ok {
					t.Errorf("%s: not found", p)
					continue
				}
				if want := opCommit(t, dir, spec, i); c.Commit != want {
					t.Errorf("%s: claim %s (%q), want %s (op %d)", p, c.Commit, c.Message, want, i)
				}
				if !c.Time.Equal(tt.ops[i].At) || c.Time.Location() != time.UTC {
					t.Errorf("%s: time %v, want %v UTC", p, c.Time, tt.ops[i].At)
				}
				if want := testenv.Git(t, dir, "log", "-1", "--format=%B", c.Commit); c.Message != want {
					t.Errorf("%s: message %q, want %q", p, c.Message, want)
				}
			}
		})
	}
}

func keys(m map[string]Claim) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestFindGitError(t *testing.T) {
	dir := build(t, fixture.Spec{Pools: []string{"aws"}, Start: t0})
	got, err := Find(context.Background(), newGit(t, dir), "no-such-branch", []string{"aws/claimed/x"})
	if err == nil {
		t.Fatalf("Find on a missing head = %v, want an error", got)
	}
}

// A claim below a shallow clone's boundary is found by deepening: the boundary
// commit, which git shows as adding every file, is never taken for the claim, and
// the second walk goes on from the boundary instead of walking again from the head.
func TestFindShallow(t *testing.T) {
	spec := fixture.Spec{Pools: []string{"aws"}, Start: t0, Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "old", At: at(1)},
		{Kind: fixture.Add, Pool: "aws", Lock: "new", At: at(2)},
		{Kind: fixture.Claim, Pool: "aws", Lock: "old", At: at(3)}, // op 2: far below the boundary
	}}
	for i := 0; i < 6; i++ {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Update, Pool: "aws", Lock: "old", At: at(10 + i), Content: fmt.Sprint(i)})
	}
	spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "new", At: at(20)}) // op 9: head
	src := build(t, spec)
	oldPath, newPath := "aws/claimed/old", "aws/claimed/new"

	dst := filepath.Join(t.TempDir(), "shallow.git")
	testenv.Git(t, "", "clone", "-q", "--bare", "--depth=3", "file://"+src, dst)
	g := &execGit{t: t, dir: dst, src: src}
	shallow, err := g.Shallow()
	if err != nil {
		t.Fatal(err)
	}
	boundary := strings.TrimSpace(testenv.Git(t, dst, "rev-parse", "main~2"))
	if len(shallow) != 1 || !shallow[boundary] {
		t.Fatalf("shallow set %v, want the boundary main~2 = %s (test premise)", shallow, boundary)
	}

	res := find(t, g, oldPath, newPath)
	if want := opCommit(t, src, spec, 2); res.Claims[oldPath].Commit != want || !res.Claims[oldPath].Time.Equal(at(3)) {
		t.Errorf("claim of old = %+v, want %s at %v", res.Claims[oldPath], want, at(3))
	}
	if want := opCommit(t, src, spec, 9); res.Claims[newPath].Commit != want {
		t.Errorf("claim of new = %q, want %s", res.Claims[newPath].Commit, want)
	}
	var walks [][]string
	for _, c := range g.calls {
		if slices.Contains(c, "log") {
			walks = append(walks, c)
		}
	}
	if len(walks) != 2 || !slices.Contains(walks[1], boundary) || slices.Contains(walks[1], "main") {
		t.Errorf("walks %q: want two, the second from the boundary %s", walks, boundary)
	}
}

// The walk stops once every path is found: it must not read the rest of a long
// history. Asserted on bytes read, not on time.
func TestFindStopsEarly(t *testing.T) {
	end := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	spec, err := fixture.Synthetic(2, 5, 4, 2, 3000, end)
	if err != nil {
		t.Fatal(err)
	}
	dir := build(t, spec)

	// The last two commits are the final (non-ancient) claims.
	var recent, ancient []string
	for _, f := range strings.Split(testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "main"), "\n") {
		if !strings.Contains(f, "/claimed/") || strings.HasSuffix(f, ".gitkeep") {
			continue
		}
		if testenv.Git(t, dir, "log", "-1", "--format=%s", "--diff-filter=A", "main", "--", f) == "main/ancient/hold build 1 claiming: "+filepath.Base(f) {
			ancient = append(ancient, f)
		} else {
			recent = append(recent, f)
		}
	}
	if len(recent) != 2 || len(ancient) != 2 {
		t.Fatalf("recent %q, ancient %q: want 2 each", recent, ancient)
	}

	tests := []struct {
		name      string
		paths     []string
		wantEarly bool
	}{
		{"recent claims only", recent, true},
		{"ancient claims need the whole walk", append(append([]string(nil), recent...), ancient...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGit(t, dir)
			got := find(t, g, tt.paths...).Claims
			for _, p := range tt.paths {
				want := testenv.Git(t, dir, "log", "-1", "--format=%H", "--diff-filter=A", "main", "--", p)
				if got[p].Commit != want {
					t.Errorf("%s: claim %q, want %s", p, got[p].Commit, want)
				}
			}
			if g.walks() != 1 {
				t.Fatalf("%d walks, want 1", g.walks())
			}
			// The whole output of the same walk, read to the end.
			full := newGit(t, dir)
			if err := full.Stream(context.Background(), func(r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				return err
			}, g.calls[slices.IndexFunc(g.calls, func(c []string) bool { return slices.Contains(c, "log") })]...); err != nil {
				t.Fatal(err)
			}
			t.Logf("read %d of %d bytes", g.read, full.read)
			if full.read < 100_000 {
				t.Fatalf("history output is only %d bytes: too small to tell", full.read)
			}
			if early := g.read < full.read/4; early != tt.wantEarly {
				t.Errorf("read %d of %d bytes; stopped early = %v, want %v", g.read, full.read, early, tt.wantEarly)
			}
		})
	}
}

// history builds a lock repository with plain git, as people edit one: branches,
// merges in either order, octopus merges, conflicts resolved by hand. Commit dates
// come from date, so a test can make git list commits out of order.
type history struct {
	t    *testing.T
	dir  string
	n    int
	date func(n int) time.Time
}

func newHistory(t *testing.T, date func(n int) time.Time) *history {
	h := &history{t: t, dir: t.TempDir(), date: date}
	h.git("init", "-q", "-b", "main")
	for _, f := range []string{"p/claimed/.gitkeep", "p/unclaimed/.gitkeep", "p/unclaimed/L", "p/unclaimed/K"} {
		h.write(f, strings.TrimPrefix(filepath.Base(f), ".gitkeep"))
	}
	h.git("add", "-A")
	h.commit("setup")
	return h
}

func (h *history) git(args ...string) string {
	h.t.Helper()
	d := h.date(h.n).Format(time.RFC3339)
	return strings.TrimSpace(testenv.GitEnv(h.t, h.dir, []string{"GIT_AUTHOR_DATE=" + d, "GIT_COMMITTER_DATE=" + d}, args...))
}

func (h *history) write(name, content string) {
	h.t.Helper()
	p := filepath.Join(h.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// commit commits what is staged (allowing nothing) and returns the commit.
func (h *history) commit(msg string) string {
	h.t.Helper()
	h.n++
	h.git("commit", "-q", "--allow-empty", "-m", msg)
	return h.git("rev-parse", "HEAD")
}

func (h *history) checkout(branch string) { h.git("checkout", "-q", branch) }
func (h *history) branch(name string)     { h.git("checkout", "-q", "-b", name) }

func (h *history) claim(lock, who string) string {
	h.git("mv", "p/unclaimed/"+lock, "p/claimed/"+lock)
	return h.commit(who + " claiming: " + lock)
}

func (h *history) release(lock, who string) string {
	h.git("mv", "p/claimed/"+lock, "p/unclaimed/"+lock)
	return h.commit(who + " unclaiming: " + lock)
}

func (h *history) unrelated(name string) string {
	h.write(name, name)
	h.git("add", name)
	return h.commit("a person's change: " + name)
}

// merge merges branches into the current one, as `git pull` does.
func (h *history) merge(branches ...string) string {
	h.n++
	h.git(append([]string{"merge", "-q", "--no-edit", "--no-ff"}, branches...)...)
	return h.git("rev-parse", "HEAD")
}

// TestFindMerges covers histories people make with plain git. Each case runs with
// dates that rise with every commit, with every commit in the same second, and with
// the branches that get merged in dated before their base, so that git lists
// commits in every order it can.
func TestFindMerges(t *testing.T) {
	type want = mergesWant
	tests := []struct {
		name  string
		build func(h *history) want
	}{{
		// A person commits, `git pull`s (a merge whose first parent is the person's
		// old side) and pushes; meanwhile L was released and claimed again.
		name: "pull: first parent is the side that still shows the old claim",
		build: func(h *history) want {
			h.claim("L", "p/j build 1")
			h.branch("origin")
			h.release("L", "p/j build 1")
			c1 := h.claim("L", "p/j build 2")
			h.checkout("main")
			h.unrelated("README")
			h.merge("origin")
			return want{claims: map[string]string{"p/claimed/L": c1}}
		},
	}, {
		name: "pull: first parent is the side that claimed again",
		build: func(h *history) want {
			h.claim("L", "p/j build 1")
			h.branch("person")
			h.unrelated("README")
			h.checkout("main")
			h.release("L", "p/j build 1")
			c1 := h.claim("L", "p/j build 2")
			h.merge("person")
			return want{claims: map[string]string{"p/claimed/L": c1}}
		},
	}, {
		name: "claimed on a side branch and merged: the side's claim, not the merge",
		build: func(h *history) want {
			h.branch("side")
			c := h.claim("L", "p/j build 3")
			h.checkout("main")
			h.unrelated("README")
			h.merge("side")
			return want{claims: map[string]string{"p/claimed/L": c}}
		},
	}, {
		name: "a merge that moved the lock itself is the claim",
		build: func(h *history) want {
			h.branch("side")
			h.unrelated("a")
			h.checkout("main")
			h.unrelated("b")
			h.git("merge", "-q", "--no-commit", "--no-ff", "side")
			h.git("mv", "p/unclaimed/L", "p/claimed/L")
			m := h.commit("merge, and take L by hand")
			return want{claims: map[string]string{"p/claimed/L": m}}
		},
	}, {
		name: "octopus merge",
		build: func(h *history) want {
			h.branch("b1")
			cl := h.claim("L", "p/j build 4")
			h.checkout("main")
			h.branch("b2")
			h.unrelated("x")
			h.checkout("main")
			h.branch("b3")
			ck := h.claim("K", "p/j build 5")
			h.checkout("main")
			h.unrelated("y")
			h.merge("b1", "b2", "b3")
			return want{claims: map[string]string{"p/claimed/L": cl, "p/claimed/K": ck}}
		},
	}, {
		name: "a merge that resolves a conflict keeps the claim of the side it took",
		build: func(h *history) want {
			h.branch("side")
			h.write("p/unclaimed/L", "side's metadata")
			h.git("add", "-A")
			h.commit("updating: L")
			h.checkout("main")
			c := h.claim("L", "p/j build 6")
			h.write("p/claimed/L", "main's metadata")
			h.git("add", "-A")
			h.commit("p/j build 6 updating: L")
			h.n++
			if _, _, err := testenvRun(h, "merge", "-q", "--no-edit", "side"); err == nil {
				h.t.Fatal("merge succeeded: want a conflict (test premise)")
			}
			h.git("rm", "-q", "--cached", "-f", "--ignore-unmatch", "p/unclaimed/L")
			h.write("p/claimed/L", "resolved")
			h.git("add", "p/claimed/L")
			h.commit("merge side, resolving L by hand")
			if ls := h.git("ls-files", "p"); strings.Contains(ls, "unclaimed/L") || !strings.Contains(ls, "claimed/L") {
				h.t.Fatalf("after the resolution: %s (test premise)", ls)
			}
			return want{claims: map[string]string{"p/claimed/L": c}}
		},
	}, {
		name: "claimed independently on two branches that were merged: a conflict",
		build: func(h *history) want {
			h.branch("side")
			c1 := h.claim("L", "p/j build 7")
			h.checkout("main")
			c2 := h.claim("L", "p/k build 8")
			h.merge("side")
			return want{conflicts: map[string][]string{"p/claimed/L": {c1, c2}}}
		},
	}, {
		name: "claimed again on both sides of a merge: a conflict, the old claim is not one",
		build: func(h *history) want {
			h.claim("L", "p/j build 1")
			h.branch("side")
			h.release("L", "p/j build 1")
			c1 := h.claim("L", "p/j build 2")
			h.checkout("main")
			h.release("L", "p/j build 1")
			c2 := h.claim("L", "p/k build 9")
			ck := h.claim("K", "p/k build 9")
			h.merge("side")
			return want{claims: map[string]string{"p/claimed/K": ck},
				conflicts: map[string][]string{"p/claimed/L": {c1, c2}}}
		},
	}, {
		// Lock moves on one line above a merge: a split walk takes its second half
		// below the line's top, and that half has to trace through the merge.
		name: "a line of lock moves above a pull",
		build: func(h *history) want {
			h.claim("L", "p/j build 1")
			h.branch("origin")
			h.release("L", "p/j build 1")
			c1 := h.claim("L", "p/j build 2")
			h.checkout("main")
			h.unrelated("README")
			h.merge("origin")
			for i := range 3 {
				h.claim("K", fmt.Sprintf("p/k build %d", i))
				h.release("K", fmt.Sprintf("p/k build %d", i))
			}
			ck := h.claim("K", "p/k build 9")
			return want{claims: map[string]string{"p/claimed/L": c1, "p/claimed/K": ck}}
		},
	}}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	dates := map[string]func(n int) time.Time{
		"rising":      func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) },
		"same second": func(int) time.Time { return base },
		"falling":     func(n int) time.Time { return base.Add(-time.Duration(n) * time.Minute) },
	}
	for _, tt := range tests {
		for _, dn := range slices.Sorted(maps.Keys(dates)) {
			for _, split := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/split=%v", tt.name, dn, split), func(t *testing.T) {
					if split {
						forceSplit(t)
					}
					findMerges(t, dates[dn], tt.build)
				})
			}
		}
	}
}

// forceSplit makes every cold walk of a line of two commits or more split, for the
// rest of the test.
func forceSplit(t *testing.T) {
	oldMin, oldWait := splitMin, splitWait
	splitMin, splitWait = 2, true
	t.Cleanup(func() { splitMin, splitWait = oldMin, oldWait })
}

type mergesWant = struct {
	claims    map[string]string
	conflicts map[string][]string
}

// findMerges builds a history with build and checks what Find says of it.
func findMerges(t *testing.T, date func(int) time.Time, build func(h *history) mergesWant) *execGit {
	h := newHistory(t, date)
	w := build(h)
	h.checkout("main")
	var paths []string
	for _, p := range strings.Split(h.git("ls-tree", "-r", "--name-only", "main", "p/claimed"), "\n") {
		if !strings.HasSuffix(p, ".gitkeep") {
			paths = append(paths, p)
		}
	}
	g := newGit(t, filepath.Join(h.dir, ".git"))
	res := find(t, g, paths...)
	got := map[string]string{}
	for p, c := range res.Claims {
		got[p] = c.Commit
	}
	if fmt.Sprint(got) != fmt.Sprint(w.claims) && len(got)+len(w.claims) > 0 {
		t.Errorf("claims %v, want %v\n%s", got, w.claims, h.git("log", "--graph", "--format=%h %s", "--all"))
	}
	gotC := map[string][]string{}
	for p, cs := range res.Conflicts {
		for _, c := range cs {
			gotC[p] = append(gotC[p], c.Commit)
		}
		slices.Sort(gotC[p])
	}
	for p := range w.conflicts {
		slices.Sort(w.conflicts[p])
	}
	if fmt.Sprint(gotC) != fmt.Sprint(w.conflicts) && len(gotC)+len(w.conflicts) > 0 {
		t.Errorf("conflicts %v, want %v\n%s", gotC, w.conflicts, h.git("log", "--graph", "--format=%h %s", "--all"))
	}
	return g
}

// testenvRun runs git in h's work tree and returns its error instead of failing.
func testenvRun(h *history, args ...string) (string, string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = h.dir
	d := h.date(h.n).Format(time.RFC3339)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+d, "GIT_COMMITTER_DATE="+d,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// A commit that added (and one that removed) a file with a name longer than any
// token git log may give (a crafted commit: git's plumbing takes any length) is
// walked past: it stopped every walk of the repository with "a status without a
// path" (found by a review). The walk reads on and finds the claim behind it.
func TestParseWalksPastAHugeName(t *testing.T) {
	huge := strings.Repeat("h", maxToken+maxToken/10)
	for _, tail := range []string{"\x00", ""} { // the huge name last, with and without its NUL
		log := "\x01c3 c2\x00\nD\x00aws/claimed/" + huge + "\x00" +
			"\x01c2 c1\x00\nA\x00aws/claimed/env-1\x00A\x00aws/claimed/" + huge + tail
		var seen []string
		var added bool
		err := parse(strings.NewReader(log), map[string]int{"aws/claimed/env-1": 0}, func() set { return make(set, 1) }, func(r *record) bool {
			seen = append(seen, r.commit)
			added = added || (r.commit == "c2" && r.added.has(0))
			return false
		})
		if err != nil || !slices.Equal(seen, []string{"c3", "c2"}) || !added {
			t.Errorf("tail %q: commits %v, env-1 added by c2: %v, err %v", tail, seen, added, err)
		}
	}
}

// A committer time outside the years 0 to 9999 (git accepts "@253402400800 +0000",
// year 10000) is no readable date: the claim has no age, and nothing writes the
// time into JSON. An index written before this rule reads it the same way.
func TestACommitTimeOutOfRangeIsNoReadableDate(t *testing.T) {
	for _, secs := range []int64{253402400800, -62167219201, 1 << 62} {
		raw := fmt.Sprintf("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ncommitter t <t@e> %d +0000\n\nclaiming: env-1\n", secs)
		if c := parseCommit("c0ffee", []byte(raw)); !c.Time.IsZero() {
			t.Errorf("committer time %d read as %s, want no readable date", secs, c.Time)
		}
	}
	if c := parseCommit("c0ffee", []byte("committer t <t@e> 253402300799 +0000\n\nx\n")); c.Time.Year() != 9999 {
		t.Errorf("the last second of 9999 read as %s", c.Time)
	}
	file := filepath.Join(t.TempDir(), IndexFile)
	head := strings.Repeat("a", 40)
	data := fmt.Sprintf(`{"version":%d,"head":%q,"paths":{"aws/claimed/env-1":[{"commit":%q,"time":253402400800,"message":"claiming: env-1"}]}}`,
		indexVersion, head, head)
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	x := OpenIndex(file)
	if cs := x.ans["aws/claimed/env-1"]; x.at != head || len(cs) != 1 || !cs[0].Time.IsZero() {
		t.Errorf("index read as %s %+v, want its claim with no readable date", x.at, cs)
	}
}
