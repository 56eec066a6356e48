package claims

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// Review attacks on the claim walk. Each names the definition it checks: the
// claim of a lock is the commit that put the file now in claimed/ there, on the
// history the current tree came from; a claim that is an ancestor of another was
// released on the way to it; independent claims are a conflict.

var reviewDates = map[string]func(n int) time.Time{
	"rising": func(n int) time.Time {
		return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)
	},
	"same second": func(int) time.Time { return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC) },
	"falling": func(n int) time.Time {
		return time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(n) * time.Minute)
	},
}

// wantOnly fails unless res holds exactly one claim, commit, for path, and no conflict.
func wantOnly(t *testing.T, h *history, res Result, path, commit string) {
	t.Helper()
	if cs := res.Conflicts[path]; len(cs) > 0 {
		var ids []string
		for _, c := range cs {
			ids = append(ids, c.Commit)
		}
		t.Errorf("%s: conflict %v, want the single claim %s\n%s", path, ids, commit, h.git("log", "--graph", "--format=%h %s", "--all"))
		return
	}
	if got := res.Claims[path].Commit; got != commit {
		t.Errorf("%s: claim %q (%q), want %s\n%s", path, got, res.Claims[path].Message, commit, h.git("log", "--graph", "--format=%h %s", "--all"))
	}
}

// A merge parent where the lock's path is a directory (a person's p/claimed/L/notes)
// does not have the lock: the trace must not go into it. Here build 1 holds L on
// main; on the side branch build 1 released it, build 2 claimed and released it,
// and a person made p/claimed/L a directory; the merge kept main's file. The file
// at head is build 1's claim. Following the side parent finds build 2's (released)
// claim, which descends from build 1's, so build 2 wins: a finished build is named
// the holder, and the reaper may free build 1's live lock.
func TestReviewMergeParentWithDirectoryAtLockPath(t *testing.T) {
	for dn, date := range reviewDates {
		t.Run(dn, func(t *testing.T) {
			h := newHistory(t, date)
			x := h.claim("L", "p/j build 1")
			h.branch("side")
			h.release("L", "p/j build 1")
			h.claim("L", "p/j build 2")
			h.release("L", "p/j build 2")
			h.git("rm", "-q", "p/unclaimed/L")
			h.write("p/claimed/L/notes", "a person's notes")
			h.git("add", "-A")
			h.commit("notes about L")
			h.checkout("main")
			h.unrelated("README")
			h.n++
			if _, _, err := testenvRun(h, "merge", "-q", "--no-commit", "--no-ff", "side"); err != nil {
				t.Logf("merge stopped (resolved by hand below): %v", err)
			}
			// The person keeps main's lock file and drops the side's directory.
			h.git("rm", "-r", "-q", "--cached", "-f", "--ignore-unmatch", "p/claimed/L", "p/claimed/L/notes")
			h.git("checkout", x, "--", "p/claimed/L")
			h.commit("merge side, keeping L as main has it")
			if got := h.git("ls-tree", "-r", "--name-only", "HEAD", "p"); got != "p/claimed/.gitkeep\np/claimed/L\np/unclaimed/.gitkeep\np/unclaimed/K" {
				t.Fatalf("tree after the merge:\n%s\n(test premise)", got)
			}
			if h.git("rev-parse", "HEAD:p/claimed/L") != h.git("rev-parse", x+":p/claimed/L") {
				t.Fatal("head's L is not main's (test premise)")
			}
			res := find(t, newGit(t, filepath.Join(h.dir, ".git")), "p/claimed/L")
			wantOnly(t, h, res, "p/claimed/L", x)
		})
	}
}

// A shallow clone whose boundary cuts the path between two candidates: the trace
// ends at both without reaching the boundary, so nothing is deepened, and
// merge-base --independent in the shallow clone cannot see that the old claim is an
// ancestor of the new one. A person's `git pull` of a busy branch: build 1's claim
// on the person's old side, build 2's claim (after build 1's release and 10 other
// commits) on origin. The answer is build 2's claim; a shallow clone reports a
// conflict, so build 2 cannot release its own lock (the resource clones 64 deep:
// a gap of 64 commits is enough there).
func TestReviewShallowGapBetweenCandidatesIsNoConflict(t *testing.T) {
	for dn, date := range reviewDates {
		t.Run(dn, func(t *testing.T) {
			h := newHistory(t, date)
			h.claim("L", "p/j build 1")
			h.branch("origin")
			h.release("L", "p/j build 1")
			for i := range 10 {
				h.unrelated(fmt.Sprintf("n%d", i))
			}
			y := h.claim("L", "p/j build 2")
			h.checkout("main")
			h.unrelated("README")
			h.merge("origin")

			whole := find(t, newGit(t, filepath.Join(h.dir, ".git")), "p/claimed/L")
			if whole.Claims["p/claimed/L"].Commit != y || len(whole.Conflicts) > 0 {
				t.Fatalf("whole clone: %+v, want the claim %s (test premise)", whole, y)
			}

			dst := filepath.Join(t.TempDir(), "shallow.git")
			testenv.Git(t, "", "clone", "-q", "--bare", "--depth=4", "-b", "main", "file://"+filepath.Join(h.dir, ".git"), dst)
			g := &execGit{t: t, dir: dst, src: filepath.Join(h.dir, ".git")}
			res := find(t, g, "p/claimed/L")
			wantOnly(t, h, res, "p/claimed/L", y)
		})
	}
}

// countingDeepen is execGit whose Deepen counts its calls and gives up (with an
// error the test reports) after 20: Find must stop by itself well before.
type countingDeepen struct {
	*execGit
	deepens int
}

var errTooDeep = errors.New("Deepen called 20 times")

func (g *countingDeepen) Deepen(ctx context.Context) error {
	g.deepens++
	if g.deepens > 20 {
		return errTooDeep
	}
	return g.execGit.Deepen(ctx)
}

// A remote that is itself shallow (a mirror made with clone --depth) cannot give
// more history: every fetch --deepen succeeds and changes nothing. Find deepens
// again and again, for ever ("nothing hangs"): it must notice that a round made
// no progress and end those traces without a claim (unknown, never freed).
func TestReviewShallowRemoteEndsTheWalk(t *testing.T) {
	h := newHistory(t, reviewDates["rising"])
	h.claim("L", "p/j build 1")
	for i := range 8 {
		h.unrelated(fmt.Sprintf("n%d", i))
	}
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	testenv.Git(t, "", "clone", "-q", "--bare", "--depth=5", "-b", "main", "file://"+filepath.Join(h.dir, ".git"), mirror)
	dst := filepath.Join(t.TempDir(), "shallow.git")
	testenv.Git(t, "", "clone", "-q", "--bare", "--depth=2", "-b", "main", "file://"+mirror, dst)
	g := &countingDeepen{execGit: &execGit{t: t, dir: dst, src: mirror}}
	head := strings.TrimSpace(testenv.Git(t, dst, "rev-parse", "main"))
	res, err := Find(context.Background(), g, head, []string{"p/claimed/L"})
	if errors.Is(err, errTooDeep) {
		t.Fatalf("Find deepened %d times without progress and did not stop by itself", g.deepens-1)
	}
	if err == nil {
		if c, ok := res.Claims["p/claimed/L"]; ok {
			t.Errorf("claim %+v below a boundary nobody can deepen: want unknown", c)
		}
	}
}

// The walk runs `git log`, which reads the user's and the repository's git
// configuration (poolboy passes HOME through, and the resource's git_config
// reaches every git command). Porcelain settings people really use must not
// change the answer. log.follow (one pool = one pathspec) hides every commit
// that does not touch claimed/, so the head is never listed and nothing is
// found; log.showRoot=false hides the root commit's adds.
func TestReviewGitConfigDoesNotChangeTheWalk(t *testing.T) {
	for _, tt := range []struct{ key, value string }{
		{"log.follow", "true"},
		{"log.showRoot", "false"},
	} {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			h := &history{t: t, dir: t.TempDir(), date: reviewDates["rising"]}
			h.git("init", "-q", "-b", "main")
			// The repository's first commit adds K claimed (add_claimed by hand).
			for _, f := range []string{"p/claimed/.gitkeep", "p/unclaimed/.gitkeep", "p/unclaimed/L", "p/claimed/K"} {
				h.write(f, filepath.Base(f))
			}
			h.git("add", "-A")
			root := h.commit("p/j build 1 adding claimed: K")
			cl := h.claim("L", "p/j build 2")
			h.unrelated("README")
			h.git("config", tt.key, tt.value)
			res := find(t, newGit(t, filepath.Join(h.dir, ".git")), "p/claimed/L", "p/claimed/K")
			wantOnly(t, h, res, "p/claimed/L", cl)
			wantOnly(t, h, res, "p/claimed/K", root)
		})
	}
}

// A path asked for that is not in claimed/ at head has no claim: there is no
// file now in claimed/. Find returns the last claim of a lock since released.
// (Today's callers pass only paths claimed at head, so this is the contract, not
// a live bug: "Find returns the claim of every path, claimed at head".)
func TestReviewPathNotClaimedAtHeadHasNoClaim(t *testing.T) {
	h := newHistory(t, reviewDates["rising"])
	h.claim("L", "p/j build 1")
	h.release("L", "p/j build 1")
	res := find(t, newGit(t, filepath.Join(h.dir, ".git")), "p/claimed/L")
	if c, ok := res.Claims["p/claimed/L"]; ok {
		t.Errorf("p/claimed/L is unclaimed at head, but Find says claimed by %s (%q)", c.Commit, c.Message)
	}
}

// Attacks the walk withstood; kept as regression tests.
func TestReviewHeldUp(t *testing.T) {
	tests := []struct {
		name  string
		build func(h *history) (paths []string, claims map[string]string, conflicts map[string]int)
	}{{
		name: "criss-cross merges: the re-claim on one side wins over the old claim",
		build: func(h *history) ([]string, map[string]string, map[string]int) {
			h.claim("L", "p/j build 1")
			h.branch("a")
			h.unrelated("a1")
			h.checkout("main")
			h.branch("b")
			h.release("L", "p/j build 1")
			y := h.claim("L", "p/j build 2")
			h.checkout("a")
			h.merge("b")
			h.checkout("b")
			h.git("merge", "-q", "--no-edit", "--no-ff", "a~1")
			h.checkout("a")
			h.merge("b")
			h.checkout("main")
			h.git("merge", "-q", "--no-edit", "--ff-only", "a")
			return []string{"p/claimed/L"}, map[string]string{"p/claimed/L": y}, nil
		},
	}, {
		name: "merge of merges and an octopus over 130 locks",
		build: func(h *history) ([]string, map[string]string, map[string]int) {
			var paths []string
			want := map[string]string{}
			for i := range 130 {
				h.write(fmt.Sprintf("p/unclaimed/m%03d", i), "x")
			}
			h.git("add", "-A")
			h.commit("add 130 locks")
			for b := range 3 {
				h.checkout("main")
				h.branch(fmt.Sprintf("b%d", b))
				for i := b; i < 130; i += 3 {
					l := fmt.Sprintf("m%03d", i)
					p := "p/claimed/" + l
					paths = append(paths, p)
					want[p] = h.claim(l, fmt.Sprintf("p/j build %d", i))
				}
			}
			h.checkout("b0")
			h.merge("b1")
			h.checkout("main")
			h.unrelated("z")
			h.merge("b0", "b2")
			return paths, want, nil
		},
	}, {
		name: "a lock renamed within claimed/: the rename put the file there",
		build: func(h *history) ([]string, map[string]string, map[string]int) {
			h.claim("L", "p/j build 1")
			h.git("mv", "p/claimed/L", "p/claimed/M")
			m := h.commit("rename L to M")
			return []string{"p/claimed/M"}, map[string]string{"p/claimed/M": m}, nil
		},
	}, {
		name: "a type change is not a claim",
		build: func(h *history) ([]string, map[string]string, map[string]int) {
			if err := os.Symlink("target", filepath.Join(h.dir, "p/claimed/S")); err != nil {
				t.Fatal(err)
			}
			h.git("add", "-A")
			c := h.commit("p/j build 1 adding claimed: S (a symlink)")
			if err := os.Remove(filepath.Join(h.dir, "p/claimed/S")); err != nil {
				t.Fatal(err)
			}
			h.write("p/claimed/S", "now a file")
			h.git("add", "-A")
			h.commit("S becomes a file")
			return []string{"p/claimed/S"}, map[string]string{"p/claimed/S": c}, nil
		},
	}, {
		name: "a merge whose parents are the same commit",
		build: func(h *history) ([]string, map[string]string, map[string]int) {
			c := h.claim("L", "p/j build 1")
			h.n++
			raw := fmt.Sprintf("tree %s\nparent %s\nparent %s\nauthor t <t@e> 1772323200 +0000\ncommitter t <t@e> 1772323200 +0000\n\nodd merge\n",
				h.git("rev-parse", "HEAD^{tree}"), c, c)
			f := filepath.Join(t.TempDir(), "commit")
			if err := os.WriteFile(f, []byte(raw), 0o644); err != nil {
				t.Fatal(err)
			}
			m := h.git("hash-object", "-t", "commit", "-w", f)
			if got := h.git("rev-list", "--parents", "-1", m); got != m+" "+c+" "+c {
				t.Fatalf("rev-list --parents: %q (test premise)", got)
			}
			h.git("update-ref", "refs/heads/main", m)
			h.git("reset", "-q", "--hard", m)
			return []string{"p/claimed/L"}, map[string]string{"p/claimed/L": c}, nil
		},
	}}
	for _, tt := range tests {
		for dn, date := range reviewDates {
			t.Run(tt.name+"/"+dn, func(t *testing.T) {
				h := newHistory(t, date)
				paths, want, _ := tt.build(h)
				res := find(t, newGit(t, filepath.Join(h.dir, ".git")), paths...)
				for _, p := range paths {
					wantOnly(t, h, res, p, want[p])
				}
			})
		}
	}
}

// A shallow boundary cutting through both sides of a merge: the walk deepens and
// goes on from the boundary commits on each side.
func TestReviewHeldUpShallowThroughMerges(t *testing.T) {
	for dn, date := range reviewDates {
		t.Run(dn, func(t *testing.T) {
			h := newHistory(t, date)
			h.branch("side")
			k := h.claim("K", "p/j build 1")
			for i := range 5 {
				h.unrelated(fmt.Sprintf("s%d", i))
			}
			h.checkout("main")
			l := h.claim("L", "p/j build 2")
			for i := range 5 {
				h.unrelated(fmt.Sprintf("m%d", i))
			}
			h.merge("side")
			h.unrelated("top")
			dst := filepath.Join(t.TempDir(), "shallow.git")
			testenv.Git(t, "", "clone", "-q", "--bare", "--depth=3", "-b", "main", "file://"+filepath.Join(h.dir, ".git"), dst)
			g := &execGit{t: t, dir: dst, src: filepath.Join(h.dir, ".git")}
			if s, _ := g.Shallow(); len(s) < 2 {
				t.Fatalf("shallow boundary %v: want one on each side (test premise)", s)
			}
			res := find(t, g, "p/claimed/K", "p/claimed/L")
			wantOnly(t, h, res, "p/claimed/K", k)
			wantOnly(t, h, res, "p/claimed/L", l)
		})
	}
}
