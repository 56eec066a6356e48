package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// crossRepo has pools aws (env-1, env-2), gpu (g-1) and licences (l-1, l-2, l-3), all free.
func crossRepo(t *testing.T) string {
	return newRepo(t, []string{"aws", "gpu", "licences"},
		lock{pool: "aws", name: "env-1", content: "e1"}, lock{pool: "aws", name: "env-2", content: "e2"},
		lock{pool: "gpu", name: "g-1", content: "g1"},
		lock{pool: "licences", name: "l-1", content: "l1"}, lock{pool: "licences", name: "l-2", content: "l2"},
		lock{pool: "licences", name: "l-3", content: "l3"})
}

// changed lists the lock files commit added to claimed/ and to unclaimed/.
func changed(t *testing.T, bare, commit string) (claimed, unclaimed []string) {
	t.Helper()
	out := testenv.Git(t, bare, "diff-tree", "-r", "--no-commit-id", "--no-renames", "--diff-filter=A", "--name-only", commit)
	for _, p := range strings.Fields(out) {
		parts := strings.Split(p, "/")
		switch {
		case len(parts) != 3 || strings.HasPrefix(parts[0], "."):
		case parts[1] == "claimed":
			claimed = append(claimed, parts[0]+"/"+parts[2])
		case parts[1] == "unclaimed":
			unclaimed = append(unclaimed, parts[0]+"/"+parts[2])
		}
	}
	return claimed, unclaimed
}

// lockSet is the Poolboy-Lock-Set of commit, as "pool/lock" strings.
func lockSet(t *testing.T, bare, commit string) []string {
	t.Helper()
	var out []string
	for _, l := range commitmsg.Parse(message(t, bare, commit)).Locks {
		out = append(out, l.String())
	}
	return out
}

// readLocks reads DIR/locks/POOL/NAME files: "pool/name" → content.
func readLocks(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	root := filepath.Join(dir, "locks")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		data, err := os.ReadFile(p)
		got[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// acquire: 3 claims three locks in one commit; its implicit get writes every lock;
// its release frees all three in one commit.
func TestMultiAcquireClaimsAndReleasesInOneCommit(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", content: "one"}, lock{pool: "aws", name: "env-2", content: "two"},
		lock{pool: "aws", name: "env-3", content: "three"}, lock{pool: "aws", name: "env-4", content: "four"})
	before := head(t, bare)
	dir := t.TempDir()
	res := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": 3}, jobEnv)
	claim := res.Version.Ref
	if got := testenv.Git(t, bare, "rev-list", "--count", before+"..main"); got != "1" {
		t.Fatalf("%s commits, want the one claim", got)
	}
	claimed, unclaimed := changed(t, bare, claim)
	set := lockSet(t, bare, claim)
	if len(claimed) != 3 || len(unclaimed) != 0 || !slices.Equal(set, claimed) {
		t.Fatalf("claim moved %v into claimed/ and %v into unclaimed/, lists %v", claimed, unclaimed, set)
	}
	first := strings.TrimPrefix(set[0], "aws/")
	subject := strings.SplitN(message(t, bare, claim), "\n", 2)[0]
	if want := "main/deploy/test build 12 claiming: " + first + " (+2 more)"; subject != want {
		t.Errorf("first line %q, want %q", subject, want)
	}
	if res.lock() != first || res.meta("locks") != strings.Join(set, ", ") || res.meta("pool_name") != "aws" {
		t.Errorf("answer %+v", res.Metadata)
	}
	// The claim walk gives every lock the claim, and so the build.
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: fileURL(bare), Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	var paths []string
	for _, l := range claimed {
		paths = append(paths, strings.Replace(l, "/", "/claimed/", 1))
	}
	found, err := claims.Find(context.Background(), repo, claim, paths)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		c, ok := found.Claims[p]
		if o := commitmsg.Parse(c.Message).Owner; !ok || c.Commit != claim || o.String() != "main/deploy/test #12" || o.ID != "1234" {
			t.Errorf("claim of %s: %+v (owner %s)", p, c, o)
		}
	}

	got := get(t, dir, "lock", src(fileURL(bare)), claim)
	name, _ := os.ReadFile(filepath.Join(dir, "lock", "name"))
	ref, _ := os.ReadFile(filepath.Join(dir, "lock", "ref"))
	locks := readLocks(t, filepath.Join(dir, "lock"))
	content := map[string]string{"env-1": "one", "env-2": "two", "env-3": "three", "env-4": "four"}
	if string(name) != first+"\n" || string(ref) != claim+"\n" || len(locks) != 3 || got.meta("locks") != strings.Join(set, ", ") {
		t.Errorf("in wrote name %q ref %q locks %v, answered %+v", name, ref, locks, got.Metadata)
	}
	for _, l := range set {
		if locks[l] != content[strings.TrimPrefix(l, "aws/")] {
			t.Errorf("locks/%s is %q", l, locks[l])
		}
	}

	rel := mustOut(t, dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv)
	claimed, unclaimed = changed(t, bare, rel.Version.Ref)
	if len(claimed) != 0 || !slices.Equal(unclaimed, set) || !slices.Equal(lockSet(t, bare, rel.Version.Ref), set) {
		t.Errorf("release moved %v back, lists %v; want %v", unclaimed, lockSet(t, bare, rel.Version.Ref), set)
	}
	if m := message(t, bare, rel.Version.Ref); !strings.HasPrefix(m, "main/deploy/test build 12 unclaiming: "+first+" (+2 more)\n") ||
		commitmsg.Trailer(m, "Poolboy-Claim-Commit") != claim {
		t.Errorf("release message:\n%s", m)
	}
	wantTree(t, bare, "aws/unclaimed/env-1", "aws/unclaimed/env-2", "aws/unclaimed/env-3", "aws/unclaimed/env-4")
}

// acquire: true with `with` claims across pools of the branch in one commit.
func TestMultiAcquireAcrossPools(t *testing.T) {
	t.Parallel()
	for _, queued := range []bool{true, false} {
		t.Run(fmt.Sprintf("queue %v", queued), func(t *testing.T) {
			t.Parallel()
			bare := crossRepo(t)
			dir := t.TempDir()
			s := src(fileURL(bare), "queue", queued)
			params := map[string]any{"acquire": true, "with": []map[string]any{{"pool": "gpu"}, {"pool": "licences", "count": 2}}}
			res := mustOut(t, dir, s, params, jobEnv)
			claimed, _ := changed(t, bare, res.Version.Ref)
			set := lockSet(t, bare, res.Version.Ref)
			if len(set) != 4 || !strings.HasPrefix(set[0], "aws/") || set[1] != "gpu/g-1" || !strings.HasPrefix(set[2], "licences/") ||
				!strings.HasPrefix(set[3], "licences/") || len(claimed) != 4 {
				t.Fatalf("claim lists %v, moved %v", set, claimed)
			}
			for _, l := range set {
				if !slices.Contains(claimed, l) {
					t.Errorf("%s is listed but was not claimed (%v)", l, claimed)
				}
			}
			get(t, dir, "lock", s, res.Version.Ref)
			locks := readLocks(t, filepath.Join(dir, "lock"))
			if len(locks) != 4 || locks["gpu/g-1"] != "g1" {
				t.Errorf("in wrote %v", locks)
			}
			mustOut(t, dir, s, map[string]any{"release": "lock"}, jobEnv)
			if got := tree(t, bare); len(got) != 6 || slices.ContainsFunc(keys(got), func(p string) bool { return strings.Contains(p, "/claimed/") }) {
				t.Errorf("after the release: %v", keys(got))
			}
		})
	}
	t.Run("a pool with too few locks fails at once", func(t *testing.T) {
		t.Parallel()
		bare := crossRepo(t)
		before := head(t, bare)
		_, err := out(t, context.Background(), t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true, "with": []map[string]any{{"pool": "gpu", "count": 2}}}, jobEnv, nil)
		if err == nil || err.Error() != `pool "gpu" has 1 usable locks; this put asks for 2 of them at once` {
			t.Errorf("error %v", err)
		}
		_, err = out(t, context.Background(), t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true, "with": []map[string]any{{"pool": "gcp"}}}, jobEnv, nil)
		if err == nil || !strings.Contains(err.Error(), `pool "gcp" does not exist in branch main`) {
			t.Errorf("error %v", err)
		}
		if head(t, bare) != before {
			t.Error("a refused acquire pushed something")
		}
	})
}

// A multi-lock acquire racing single acquires: every commit of the history claims
// or frees either one lock or all of the multi-lock request, never part of it.
func TestMultiAcquireRacingSingleClaimsIsNeverPartial(t *testing.T) {
	t.Parallel()
	for _, queued := range []bool{true, false} {
		t.Run(fmt.Sprintf("queue %v", queued), func(t *testing.T) {
			t.Parallel()
			bare := newRepo(t, []string{"aws", "gpu"}, lock{pool: "aws", name: "env-1"}, lock{pool: "aws", name: "env-2"},
				lock{pool: "aws", name: "env-3"}, lock{pool: "gpu", name: "g-1"})
			start := head(t, bare)
			s := qsrc(bare, "queue", queued, "retry_delay", "1s")
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			run := func(n int, params map[string]any) {
				defer wg.Done()
				dir := t.TempDir()
				res, err := out(t, context.Background(), dir, s, params, build(n), nil)
				if err == nil {
					if _, err = in(t, filepath.Join(dir, "lock"), s, res.Version.Ref, nil); err == nil {
						_, err = out(t, context.Background(), dir, s, map[string]any{"release": "lock"}, build(n), nil)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("build %d: %w", n, err)
				}
			}
			wg.Add(1)
			go run(1, map[string]any{"acquire": 2, "with": []map[string]any{{"pool": "gpu"}}})
			for n := 2; n <= 6; n++ {
				wg.Add(2)
				go run(n, map[string]any{"acquire": true})
				go func(n int) {
					defer wg.Done()
					dir := t.TempDir()
					g := src(fileURL(bare), "retry_delay", "1s", "queue", queued, "pool", "gpu")
					res, err := out(t, context.Background(), dir, g, map[string]any{"acquire": true}, build(n*10), nil)
					if err == nil {
						if _, err = in(t, filepath.Join(dir, "lock"), g, res.Version.Ref, nil); err == nil {
							_, err = out(t, context.Background(), dir, g, map[string]any{"release": "lock"}, build(n*10), nil)
						}
					}
					if err != nil {
						errs <- fmt.Errorf("gpu build %d: %w", n*10, err)
					}
				}(n)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			multis := 0
			for _, c := range strings.Fields(testenv.Git(t, bare, "rev-list", start+"..main")) {
				claimed, unclaimed := changed(t, bare, c)
				m := commitmsg.Parse(message(t, bare, c))
				moved := max(len(claimed), len(unclaimed))
				switch {
				case m.Owner.Build == "1" && moved > 0:
					if moved != 3 || len(m.Locks) != 3 {
						t.Errorf("commit %s of the multi-lock build moved %v / %v, lists %v", c, claimed, unclaimed, m.Locks)
					}
					multis++
				case moved > 1 || len(m.Locks) > 0:
					t.Errorf("commit %s of build %s moved %v / %v", c, m.Owner.Build, claimed, unclaimed)
				}
			}
			if multis != 2 {
				t.Errorf("%d commits of the multi-lock build moved locks, want its claim and its release", multis)
			}
			if got := tree(t, bare); slices.ContainsFunc(keys(got), func(p string) bool { return strings.Contains(p, "/claimed/") }) {
				t.Errorf("locks left claimed: %v", keys(got))
			}
		})
	}
}

// A request for three is not starved by a stream of requests for one: once it is
// in the queue, the locks that free up are held back for it, and the single
// acquires that queued after it get theirs only after it got all three.
func TestMultiAcquireIsNotStarvedByAStreamOfOnes(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true},
		lock{pool: "aws", name: "env-2", claimed: true}, lock{pool: "aws", name: "env-3", claimed: true})
	start := head(t, bare)
	// A retry_delay that keeps four tickets' renewals (a third of 6 × retry_delay
	// apart) well within what a busy machine's git pushes keep up with.
	s := qsrc(bare, "retry_delay", "3s")
	multi := startOut(t, context.Background(), s, map[string]any{"acquire": 3}, build(1))
	await(t, multi.log.notify("waiting for 3 locks at once (3 of pool aws): position 1 of 1"), "the request for three to queue")
	var ones []*waiter
	for i := range 3 {
		w := startOut(t, context.Background(), s, map[string]any{"acquire": true}, build(i+2))
		await(t, w.log.notify(fmt.Sprintf("waiting for a lock in pool aws: position %d of %d", i+2, i+2)), fmt.Sprintf("single %d to queue", i+1))
		ones = append(ones, w)
	}
	// One ticket for the whole request.
	var wants []int
	for _, p := range tickets(t, bare) {
		var tk queue.Ticket
		if err := json.Unmarshal([]byte(testenv.Git(t, bare, "show", "main:"+p)), &tk); err != nil {
			t.Fatal(err)
		}
		wants = append(wants, len(tk.Want))
	}
	slices.Sort(wants)
	if !slices.Equal(wants, []int{1, 1, 1, 3}) {
		t.Errorf("tickets want %v locks, want one ticket for three and three for one", wants)
	}
	// The locks come free one at a time, as a stream of short holds would free them.
	for _, l := range []string{"env-1", "env-2", "env-3"} {
		upstream(t, bare, "unclaiming: "+l, gitMove(t, "aws/claimed/"+l, "aws/unclaimed/"+l))
	}
	multi.wait(t, "the request for three")
	if multi.err != nil {
		t.Fatalf("the request for three: %v\n%s", multi.err, multi.log)
	}
	for i, w := range ones {
		select {
		case <-w.done:
			t.Fatalf("single %d ended while the request for three held every lock: %v\n%s", i+1, w.err, w.log)
		default:
		}
	}
	multi.release(t, s, build(1))
	for i, w := range ones {
		w.wait(t, fmt.Sprintf("single %d", i+1))
		if w.err != nil {
			t.Fatalf("single %d: %v\n%s", i+1, w.err, w.log)
		}
	}
	cs := claimsInHistory(t, bare, start)
	if len(cs) != 4 || !strings.HasPrefix(cs[0], "1:") {
		t.Errorf("claims in history %v, want the request for three first", cs)
	}
	for i, w := range ones {
		w.release(t, s, build(i+2))
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
}

// The release of a multi-lock claim is all or nothing: a lock of it claimed by
// someone else since refuses the whole release; a lock freed already (reaped) is
// skipped with a warning, and the rest are freed.
func TestMultiReleaseFencedPerLock(t *testing.T) {
	t.Parallel()
	t.Run("one lock taken over: refused, nothing changes", func(t *testing.T) {
		t.Parallel()
		bare := crossRepo(t)
		dir := t.TempDir()
		s := src(fileURL(bare))
		res := mustOut(t, dir, s, map[string]any{"acquire": true, "with": []map[string]any{{"pool": "gpu"}}}, jobEnv)
		get(t, dir, "lock", s, res.Version.Ref)
		upstream(t, bare, "unclaiming: g-1", gitMove(t, "gpu/claimed/g-1", "gpu/unclaimed/g-1"))
		upstream(t, bare, "main/other/job build 3 claiming: g-1", gitMove(t, "gpu/unclaimed/g-1", "gpu/claimed/g-1"))
		before := head(t, bare)
		r, err := out(t, context.Background(), dir, s, map[string]any{"release": "lock"}, jobEnv, nil)
		if err == nil || !strings.Contains(err.Error(), `lock "g-1" of pool "gpu" was claimed by this build (`+res.Version.Ref+`) with 1 other locks`) ||
			!strings.Contains(err.Error(), "now claimed by main/other/job #3") || !strings.Contains(err.Error(), "not releasing any of them") {
			t.Errorf("release: %v\n%s", err, r.log)
		}
		if head(t, bare) != before {
			t.Error("a refused release pushed something")
		}
		// A later get of the claim's version fails, as upstream's for a lock let go.
		if _, err := in(t, t.TempDir(), s, res.Version.Ref, nil); err == nil || !strings.Contains(err.Error(), notAcquired) {
			t.Errorf("in of the claim after the take-over: %v", err)
		}
	})
	t.Run("one lock freed already: the rest are freed", func(t *testing.T) {
		t.Parallel()
		bare := crossRepo(t)
		dir := t.TempDir()
		s := src(fileURL(bare))
		res := mustOut(t, dir, s, map[string]any{"acquire": 2, "with": []map[string]any{{"pool": "gpu"}}}, jobEnv)
		get(t, dir, "lock", s, res.Version.Ref)
		first, _ := os.ReadFile(filepath.Join(dir, "lock", "name"))
		name := strings.TrimSpace(string(first))
		upstream(t, bare, "unclaiming: "+name, gitMove(t, "aws/claimed/"+name, "aws/unclaimed/"+name))
		r := mustOut(t, dir, s, map[string]any{"release": "lock"}, jobEnv)
		claimed, unclaimed := changed(t, bare, r.Version.Ref)
		if len(claimed) != 0 || len(unclaimed) != 2 || !slices.Contains(unclaimed, "gpu/g-1") {
			t.Errorf("release moved %v", unclaimed)
		}
		if !strings.Contains(r.log, "warning: lock "+name+" of pool aws is not claimed any more") {
			t.Errorf("log:\n%s", r.log)
		}
		if got := tree(t, bare); slices.ContainsFunc(keys(got), func(p string) bool { return strings.Contains(p, "/claimed/") }) {
			t.Errorf("locks left claimed: %v", keys(got))
		}
	})
	t.Run("the step's own lock removed: the rest are freed", func(t *testing.T) {
		t.Parallel()
		bare := crossRepo(t)
		dir := t.TempDir()
		s := src(fileURL(bare))
		res := mustOut(t, dir, s, map[string]any{"acquire": 2, "with": []map[string]any{{"pool": "gpu"}}}, jobEnv)
		get(t, dir, "lock", s, res.Version.Ref)
		first, _ := os.ReadFile(filepath.Join(dir, "lock", "name"))
		name := strings.TrimSpace(string(first))
		upstream(t, bare, "removing: "+name, func(d string) { testenv.Git(t, d, "rm", "-q", "aws/claimed/"+name) })
		r := mustOut(t, dir, s, map[string]any{"release": "lock"}, jobEnv)
		if _, unclaimed := changed(t, bare, r.Version.Ref); len(unclaimed) != 2 || !slices.Contains(unclaimed, "gpu/g-1") {
			t.Errorf("release moved %v", unclaimed)
		}
		if got := tree(t, bare); slices.ContainsFunc(keys(got), func(p string) bool { return strings.Contains(p, "/claimed/") }) {
			t.Errorf("locks left claimed: %v", keys(got))
		}
	})
}

// acquire: 1 is acquire: true: one lock, the single claim's message, no lock set.
func TestAcquireOneIsASingleClaim(t *testing.T) {
	t.Parallel()
	bare := awsRepo(t)
	dir := t.TempDir()
	res := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": 1}, jobEnv)
	m := message(t, bare, res.Version.Ref)
	if !strings.HasPrefix(m, "main/deploy/test build 12 claiming: env-1\n") || strings.Contains(m, commitmsg.LockSetKey) || res.meta("locks") != "" {
		t.Errorf("claim message:\n%s\nanswer %+v", m, res.Metadata)
	}
	get(t, dir, "lock", src(fileURL(bare)), res.Version.Ref)
	if locks := readLocks(t, filepath.Join(dir, "lock")); len(locks) != 1 || locks["aws/env-1"] != "one" {
		t.Errorf("in wrote locks %v", locks)
	}
}

// A multi-lock claim that landed after the abort is given back whole, in one commit.
func TestMultiClaimLandingAfterCancellationIsGivenBack(t *testing.T) {
	bare := crossRepo(t)
	before := head(t, bare)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	beforePush = cancel
	defer func() { beforePush = func() {} }()
	r, err := out(t, ctx, t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true, "with": []map[string]any{{"pool": "gpu"}}}, jobEnv, nil)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped while claiming locks aws/") {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if !strings.Contains(r.log, "gave locks aws/") {
		t.Errorf("log = %q", r.log)
	}
	commits := strings.Fields(testenv.Git(t, bare, "rev-list", before+"..main"))
	if len(commits) != 2 {
		t.Fatalf("pushed %d commits, want the claim and its give-back", len(commits))
	}
	if claimed, unclaimed := changed(t, bare, commits[0]); len(claimed) != 0 || len(unclaimed) != 2 ||
		!slices.Equal(lockSet(t, bare, commits[0]), lockSet(t, bare, commits[1])) {
		t.Errorf("give-back moved %v, lists %v", unclaimed, lockSet(t, bare, commits[0]))
	}
	if got := tree(t, bare); slices.ContainsFunc(keys(got), func(p string) bool { return strings.Contains(p, "/claimed/") }) {
		t.Errorf("locks left claimed: %v", keys(got))
	}
}
