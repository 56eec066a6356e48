package claims

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// claimedAt lists the lock files in claimed/ directories at main.
func claimedAt(t *testing.T, dir string) []string {
	t.Helper()
	var paths []string
	for _, p := range strings.Split(testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "main"), "\n") {
		if strings.Contains(p, "/claimed/") && !strings.HasSuffix(p, ".gitkeep") {
			paths = append(paths, p)
		}
	}
	return paths
}

// A cold walk of a long line of history hands its older half to a second git log,
// and finds exactly what one walk finds.
func TestFindSplit(t *testing.T) {
	end := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	synthetic, err := fixture.Synthetic(2, 5, 4, 2, 3000, end)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := fixture.Busy(2, 5, 2, 2000, end, 3)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		spec      fixture.Spec
		wantSplit bool
	}{
		{"linear, claims recent and ancient", synthetic, true},
		{"busy: every commit moves a lock", busy, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := build(t, tt.spec)
			paths := claimedAt(t, dir)
			one := find(t, newGit(t, dir), paths...)
			forceSplit(t)
			g := newGit(t, dir)
			got := find(t, g, paths...)
			if !sameResult(got, one) {
				t.Errorf("split walk found %v, one walk %v", summary(got), summary(one))
			}
			for _, p := range paths {
				want := testenv.Git(t, dir, "log", "-1", "--format=%H", "--diff-filter=A", "main", "--", p)
				if got.Claims[p].Commit != want {
					t.Errorf("%s: claim %q, want %s", p, got.Claims[p].Commit, want)
				}
			}
			if split := g.walks() == 2; split != tt.wantSplit {
				t.Errorf("%d walks (%q); split = %v, want %v", g.walks(), g.calls, split, tt.wantSplit)
			}
		})
	}
}

// A merge listed before the split point ends the split: its other parent's commits
// can come after that point. A merge below it is the second walk's to trace.
func TestFindSplitAndMerges(t *testing.T) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rising := func(n int) time.Time { return base.Add(time.Duration(n) * time.Minute) }
	pull := func(h *history) string {
		h.claim("L", "p/j build 1")
		h.branch("origin")
		h.release("L", "p/j build 1")
		c1 := h.claim("L", "p/j build 2")
		h.checkout("main")
		h.unrelated("README")
		h.merge("origin")
		return c1
	}
	tests := []struct {
		name      string
		build     func(h *history) mergesWant
		wantWalks int
	}{{
		name: "merge at the head: one walk",
		build: func(h *history) mergesWant {
			h.claim("K", "p/k build 1")
			for range 4 {
				h.unrelated("x")
			}
			c1 := pull(h)
			return mergesWant{claims: map[string]string{"p/claimed/L": c1, "p/claimed/K": opOf(h, "p/k build 1")}}
		},
		wantWalks: 1,
	}, {
		name: "merge below the split point: two walks",
		build: func(h *history) mergesWant {
			c1 := pull(h)
			for i := range 6 {
				h.claim("K", fmt.Sprintf("p/k build %d", i))
				h.release("K", fmt.Sprintf("p/k build %d", i))
			}
			ck := h.claim("K", "p/k build 9")
			return mergesWant{claims: map[string]string{"p/claimed/L": c1, "p/claimed/K": ck}}
		},
		wantWalks: 2,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forceSplit(t)
			g := findMerges(t, rising, tt.build)
			if g.walks() != tt.wantWalks {
				t.Errorf("%d walks, want %d: %q", g.walks(), tt.wantWalks, g.calls)
			}
		})
	}
}

// opOf is the newest commit whose subject starts with who.
func opOf(h *history, who string) string {
	out := h.git("log", "--format=%H %s", "main")
	for _, l := range strings.Split(out, "\n") {
		id, subject, _ := strings.Cut(l, " ")
		if strings.HasPrefix(subject, who+" ") {
			return id
		}
	}
	h.t.Fatalf("no commit of %s", who)
	return ""
}

// A walk that ends early, with the second git still walking, stops it and the
// finder: Find returns with no git of it still running.
func TestFindSplitStopsItsGits(t *testing.T) {
	end := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	spec, err := fixture.Synthetic(2, 5, 4, 0, 3000, end)
	if err != nil {
		t.Fatal(err)
	}
	dir := build(t, spec)
	forceSplit(t)
	g := newGit(t, dir)
	res := find(t, g, claimedAt(t, dir)...)
	if len(res.Claims) != 4 {
		t.Errorf("%d claims, want 4", len(res.Claims))
	}
	if g.walks() != 2 {
		t.Fatalf("%d walks, want 2 (test premise: the split was taken): %q", g.walks(), g.calls)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running != 0 {
		t.Errorf("%d gits still running after Find returned", g.running)
	}
}
