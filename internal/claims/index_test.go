package claims

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// indexFind runs x.Find at commit head and checks its answer is what a fresh walk
// (claims.Find) gives there.
func indexFind(t *testing.T, g *execGit, x *Index, head string, paths ...string) Result {
	t.Helper()
	res, err := x.Find(context.Background(), g, head, paths)
	if err != nil {
		t.Fatalf("Index.Find: %v", err)
	}
	fresh, err := Find(context.Background(), newGit(t, g.dir), head, paths)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if !sameResult(res, fresh) {
		t.Errorf("Index.Find at %s = %v, a fresh walk finds %v", head[:8], summary(res), summary(fresh))
	}
	return res
}

func sameResult(a, b Result) bool {
	eq := func(a, b Claim) bool { return a.Commit == b.Commit && a.Time.Equal(b.Time) && a.Message == b.Message }
	if len(a.Claims) != len(b.Claims) || len(a.Conflicts) != len(b.Conflicts) {
		return false
	}
	for p, c := range a.Claims {
		if d, ok := b.Claims[p]; !ok || !eq(c, d) {
			return false
		}
	}
	for p, cs := range a.Conflicts {
		if !slices.EqualFunc(cs, b.Conflicts[p], eq) {
			return false
		}
	}
	return true
}

func summary(r Result) map[string][]string {
	out := map[string][]string{}
	for p, c := range r.Claims {
		out[p] = []string{c.Commit[:8]}
	}
	for p, cs := range r.Conflicts {
		for _, c := range cs {
			out[p] = append(out[p], c.Commit[:8])
		}
	}
	return out
}

func rev(t *testing.T, dir, what string) string {
	t.Helper()
	return strings.TrimSpace(testenv.Git(t, dir, "rev-parse", what))
}

// lockPaths are the claimed/ paths of every lock of Synthetic's pools.
func lockPaths(pools, perPool int) []string {
	var out []string
	for p := 0; p < pools; p++ {
		for l := 0; l < perPool; l++ {
			out = append(out, lockPath(p, l))
		}
	}
	return out
}

func lockPath(p, l int) string {
	return filepath.ToSlash(filepath.Join(poolName(p), "claimed", lockName(l)))
}

func poolName(p int) string { return "pool-0" + string(rune('0'+p)) }
func lockName(l int) string { return "lock-00" + string(rune('0'+l)) }

// After new commits, the index walks only them: the traces of the claims it knows
// end at the commit it knows them at, so ancient claims cost nothing; with no new
// commit there is no walk at all. What it keeps survives the process (the file).
func TestIndexNewCommits(t *testing.T) {
	end := time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)
	// 2 ancient claims at the very bottom of 3,000 commits; the last 100 commits
	// claim and release other locks, and claim 2 more.
	spec, err := fixture.Synthetic(2, 5, 4, 2, 3000, end)
	if err != nil {
		t.Fatal(err)
	}
	dir := build(t, spec)
	paths := lockPaths(2, 5)
	h0, h1 := rev(t, dir, "main~100"), rev(t, dir, "main")
	file := filepath.Join(t.TempDir(), IndexFile)

	full := newGit(t, dir)
	if _, err := Find(context.Background(), full, h1, paths); err != nil {
		t.Fatal(err)
	}

	x := OpenIndex(file)
	g := newGit(t, dir)
	indexFind(t, g, x, h0, paths...)
	g.read = 0
	res := indexFind(t, g, x, h1, paths...)
	if len(res.Claims) != 4 {
		t.Errorf("claims at the new head: %v, want the 4 claimed locks", summary(res))
	}
	t.Logf("walk of the new commits read %d bytes, a full walk %d", g.read, full.read)
	if full.read < 100_000 || g.read > full.read/4 {
		t.Errorf("the walk after 100 new commits read %d bytes of git log, a full walk %d: it did not stop at the indexed commit", g.read, full.read)
	}

	// Nothing new: the answer is the index's, without a walk.
	g.calls = nil
	indexFind(t, g, x, h1, paths...)
	if g.walks() != 0 {
		t.Errorf("no new commit, yet %d history walks: %v", g.walks(), g.calls)
	}
	// A later run (another process) starts from the file.
	g.calls = nil
	indexFind(t, g, OpenIndex(file), h1, paths...)
	if g.walks() != 0 {
		t.Errorf("a new process with the index file walked history %d times: %v", g.walks(), g.calls)
	}
}

// A lock released and claimed again since the index was made has the new claim,
// also when that happened on a branch merged in; released, it has none.
func TestIndexReleasedAndClaimedAgain(t *testing.T) {
	for _, via := range []string{"directly", "through a merge"} {
		t.Run(via, func(t *testing.T) {
			h := newHistory(t, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) })
			g := newGit(t, filepath.Join(h.dir, ".git"))
			x := OpenIndex(filepath.Join(t.TempDir(), IndexFile))
			paths := []string{"p/claimed/L", "p/claimed/K"}
			c1 := h.claim("L", "p/j build 1")
			wantOnly(t, h, indexFind(t, g, x, h.git("rev-parse", "HEAD"), paths...), "p/claimed/L", c1)

			if via != "directly" {
				h.branch("side")
			}
			h.release("L", "p/j build 1")
			if via == "directly" {
				res := indexFind(t, g, x, h.git("rev-parse", "HEAD"), paths...)
				if len(res.Claims)+len(res.Conflicts) != 0 {
					t.Errorf("released L still has a claim: %v", summary(res))
				}
			}
			h.unrelated("README")
			c2 := h.claim("L", "p/j build 2")
			if via != "directly" {
				h.checkout("main")
				h.unrelated("NOTES")
				h.merge("side")
			}
			wantOnly(t, h, indexFind(t, g, x, h.git("rev-parse", "HEAD"), paths...), "p/claimed/L", c2)
		})
	}
}

// History rewritten under the index (a force-push): the old head is not in the
// new history, so no trace reaches it and the walk is a full one; the index's
// answers about the old history are never used.
func TestIndexForcePush(t *testing.T) {
	tests := []struct {
		name    string
		rewrite func(h *history) (want string)
	}{{
		name: "rebuilt from before the claim, claimed by another build",
		rewrite: func(h *history) string {
			h.git("reset", "-q", "--hard", "main~3")
			return h.claim("L", "p/j build 9")
		},
	}, {
		name: "reset to a commit before the last release and claim",
		rewrite: func(h *history) string {
			h.git("reset", "-q", "--hard", "main~2")
			return h.git("log", "-1", "--format=%H", "--", "p/claimed/L")
		},
	}, {
		name: "the same changes made again (other commits, same trees)",
		rewrite: func(h *history) string {
			h.git("reset", "-q", "--hard", "main~2")
			h.n += 100 // other dates: other commits
			h.release("L", "p/j build 1")
			return h.claim("L", "p/j build 2")
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(t, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) })
			g := newGit(t, filepath.Join(h.dir, ".git"))
			x := OpenIndex(filepath.Join(t.TempDir(), IndexFile))
			paths := []string{"p/claimed/L"}
			h.claim("L", "p/j build 1")
			h.release("L", "p/j build 1")
			old := h.claim("L", "p/j build 2")
			wantOnly(t, h, indexFind(t, g, x, old, paths...), "p/claimed/L", old)

			want := tt.rewrite(h)
			head := h.git("rev-parse", "HEAD")
			if gitOK(h, "merge-base", "--is-ancestor", old, head) {
				t.Fatal("the rewrite kept the old head")
			}
			wantOnly(t, h, indexFind(t, g, x, head, paths...), "p/claimed/L", want)
		})
	}
}

func gitOK(h *history, args ...string) bool {
	_, _, err := testenvRun(h, args...)
	return err == nil
}

// A claim made on a branch that left before the indexed head and was merged after
// it stands beside the indexed claim: the trace that leaves the new commits other
// than through the indexed head is walked on, and the lock is a conflict.
func TestIndexTraceLeavesBesideTheIndexedHead(t *testing.T) {
	h := newHistory(t, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) })
	g := newGit(t, filepath.Join(h.dir, ".git"))
	x := OpenIndex(filepath.Join(t.TempDir(), IndexFile))
	h.branch("side")
	h.unrelated("README")
	side := h.claim("L", "p/j build 2")
	h.checkout("main")
	mine := h.claim("L", "p/j build 1")
	wantOnly(t, h, indexFind(t, g, x, mine, "p/claimed/L"), "p/claimed/L", mine)
	h.merge("side")
	res := indexFind(t, g, x, h.git("rev-parse", "HEAD"), "p/claimed/L")
	var got []string
	for _, c := range res.Conflicts["p/claimed/L"] {
		got = append(got, c.Commit)
	}
	if want := []string{mine, side}; !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("conflict %v, want both claims %v", summary(res), want)
	}
}

// An index file that cannot be trusted (damaged, cut short by a crash, written
// by a poolboy of another version) is ignored: the walk is a full one, its answer
// right, and the file is written anew.
func TestIndexDamagedFile(t *testing.T) {
	h := newHistory(t, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) })
	setup := h.git("rev-parse", "HEAD")
	c1 := h.claim("L", "p/j build 1")
	head := h.git("rev-parse", "HEAD")
	// What a careless reader would take: L claimed by the setup commit.
	lie := func(version int) string {
		b, _ := json.Marshal(map[string]any{"version": version, "head": head,
			"paths": map[string]any{"p/claimed/L": []map[string]any{{"commit": setup, "time": 1, "message": "p/j build 0 claiming: L"}}}})
		return string(b)
	}
	valid := lie(indexVersion)
	tests := []struct{ name, content string }{
		{"garbage", "\x00\x01 not json"},
		{"cut short by a crash", valid[:len(valid)/2]},
		{"a newer version", lie(indexVersion + 1)},
		{"an older version", lie(indexVersion - 1)},
		{"no version", strings.Replace(valid, `,"version":1`, "", 1)},
		{"a head that is no commit id", strings.Replace(valid, head, "HEAD", 1)},
		{"a claim that is no commit id", strings.Replace(valid, setup, "main~1", 1)},
		{"an empty answer", strings.Replace(valid, `[{"commit":"`+setup+`","message":"p/j build 0 claiming: L","time":1}]`, "[]", 1)},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), IndexFile)
			if err := os.WriteFile(file, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			g := newGit(t, filepath.Join(h.dir, ".git"))
			wantOnly(t, h, indexFind(t, g, OpenIndex(file), head, "p/claimed/L"), "p/claimed/L", c1)
			if g.walks() == 0 {
				t.Error("answered without a walk from a file that cannot be trusted")
			}
			g.calls = nil
			wantOnly(t, h, indexFind(t, g, OpenIndex(file), head, "p/claimed/L"), "p/claimed/L", c1)
			if g.walks() != 0 {
				t.Errorf("the file was not written anew: the next run walked %d times", g.walks())
			}
		})
	}
	// The same lie in this version's own format is believed: the cases above fail
	// for what they are, not for how the lie is written.
	file := filepath.Join(t.TempDir(), IndexFile)
	if err := os.WriteFile(file, []byte(valid), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := OpenIndex(file).Find(context.Background(), newGit(t, filepath.Join(h.dir, ".git")), head, []string{"p/claimed/L"})
	if err != nil || res.Claims["p/claimed/L"].Commit != setup {
		t.Fatalf("a well-formed index was not used: %v %v", summary(res), err)
	}
}

// A crash between writing the temporary file and renaming it leaves the old index
// whole and a temporary file behind, which the next write removes.
func TestIndexCrashMidWrite(t *testing.T) {
	h := newHistory(t, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) })
	g := newGit(t, filepath.Join(h.dir, ".git"))
	dir := t.TempDir()
	file := filepath.Join(dir, IndexFile)
	c1 := h.claim("L", "p/j build 1")
	indexFind(t, g, OpenIndex(file), c1, "p/claimed/L")
	old, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, IndexFile+".tmp-123")
	if err := os.WriteFile(left, old[:len(old)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	g.calls = nil
	x := OpenIndex(file)
	indexFind(t, g, x, c1, "p/claimed/L")
	if g.walks() != 0 {
		t.Errorf("the old index was not used after the crash: %d walks", g.walks())
	}
	c2 := h.claim("K", "p/j build 2")
	indexFind(t, g, x, c2, "p/claimed/L", "p/claimed/K")
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the crash's temporary file is still there: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files next to the index: %v, want the index alone", entries)
	}
}

// Memory stays flat however many runs an index serves: 1,000 lookups with nothing
// new keep no more than one.
func TestIndexMemoryFlat(t *testing.T) {
	h := newHistory(t, func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) })
	g := newGit(t, filepath.Join(h.dir, ".git"))
	head := h.claim("L", "p/j build 1")
	x := OpenIndex(filepath.Join(t.TempDir(), IndexFile))
	run := func(n int) {
		for range n {
			g.calls = g.calls[:0]
			if _, err := x.Find(context.Background(), g, head, []string{"p/claimed/L", "p/claimed/K"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	run(10)
	before := heap()
	run(1000)
	after := heap()
	t.Logf("heap before %d, after 1,000 lookups %d", before, after)
	if after > before+256<<10 {
		t.Errorf("heap grew by %d bytes over 1,000 lookups", after-before)
	}
}
