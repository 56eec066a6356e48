package resource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// Review attacks on the release/remove fence.

// Several Concourses may share one lock repository (README, "Several Concourses"):
// each claim belongs to the Concourse its Build URL names. When the step's ref
// claimed nothing (or is gone after a force-push), the fence acts when the current
// claim "names this very build" — but it compares only the build id, or team,
// pipeline, job and build name, never the server. Build ids are per-server
// sequences, and the same pipeline is commonly set on staging and prod, so a build
// on ci.example.com frees a lock a live build on prod.example.com holds.
func TestReviewFenceClaimOfAnotherConcourse(t *testing.T) {
	t.Parallel()
	// prod's build has the same BUILD_ID as jobEnv's (1234), on another server.
	prodSameID := map[string]string{"BUILD_ID": "1234", "BUILD_NAME": "3", "BUILD_TEAM_NAME": "ops",
		"BUILD_PIPELINE_NAME": "nightly", "BUILD_JOB_NAME": "grab",
		"BUILD_URL": "https://prod.example.com/teams/ops/pipelines/nightly/jobs/grab/builds/3"}
	tests := []struct {
		name  string
		claim func(t *testing.T, bare string)
	}{{
		name: "poolboy claim with the same build id",
		claim: func(t *testing.T, bare string) {
			mustOut(t, t.TempDir(), src(fileURL(bare)), map[string]any{"claim": "env-1"}, prodSameID)
		},
	}, {
		// The upstream resource since v1.8 writes only the Build URL; the same
		// pipeline on prod, its job's build #12.
		name: "upstream claim of the same pipeline, job and build name",
		claim: func(t *testing.T, bare string) {
			c := testenv.NewClone(t, fileURL(bare), "main")
			c.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1",
				"claiming: env-1\n\nBuild URL: https://prod.example.com/teams/main/pipelines/deploy/jobs/test/builds/12")
		},
	}}
	for _, tt := range tests {
		for _, how := range []string{"ref that claimed nothing", "ref gone after a force-push"} {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				t.Parallel()
				bare, dir := awsRepo(t), t.TempDir()
				switch how {
				case "ref that claimed nothing":
					c := testenv.NewClone(t, fileURL(bare), "main")
					testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "unrelated")
					testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
					writeStep(t, dir, "lock", map[string]string{"name": "env-1\n", "ref": head(t, bare) + "\n"})
				case "ref gone after a force-push":
					acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"claim": "env-1"}, jobEnv)
					get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
					c := testenv.NewClone(t, fileURL(bare), "main")
					testenv.Git(t, c.Dir, "reset", "-q", "--hard", "HEAD~1")
					testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "a person's rewrite")
					testenv.Git(t, c.Dir, "push", "-q", "-f", "origin", "HEAD:main")
				}
				tt.claim(t, bare) // prod's live build now holds env-1
				before := head(t, bare)
				r, err := out(t, context.Background(), dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv, nil)
				if err == nil {
					t.Errorf("release of prod's lock by a ci.example.com build succeeded:\n%s", r.log)
				}
				if head(t, bare) != before {
					t.Errorf("something was pushed: %q", message(t, bare, head(t, bare)))
				}
				wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
			})
		}
	}
}

// The resource's fence walks a clone 64 commits deep. After a person's `git pull`
// of a busy branch (the person's side still shows the old claim of env-2, and more
// than 64 commits separate its release from the new claim), the claim walk ends at
// both candidates above the boundary, and merge-base in the shallow clone cannot
// see that the old one is an ancestor of the new: the build holding env-2 is told
// its lock was "claimed independently on branches that were merged" and cannot
// release it.
func TestReviewFenceOwnReleaseAfterPullOfABusyBranch(t *testing.T) {
	t.Parallel()
	bare := awsRepo(t)
	person := testenv.NewClone(t, fileURL(bare), "main")
	release := t.TempDir()
	writeStep(t, release, "old", map[string]string{"name": "env-2\n"})
	mustOut(t, release, src(fileURL(bare)), map[string]any{"release": "old"}, nil)
	busy := testenv.NewClone(t, fileURL(bare), "main")
	for i := range 70 {
		testenv.Git(t, busy.Dir, "commit", "-q", "--allow-empty", "-m", fmt.Sprintf("other pool work %d", i))
	}
	testenv.Git(t, busy.Dir, "push", "-q", "origin", "HEAD:main")
	dir := t.TempDir()
	acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"claim": "env-2"}, jobEnv)
	get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
	if err := os.WriteFile(filepath.Join(person.Dir, "README"), []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, person.Dir, "add", "README")
	testenv.Git(t, person.Dir, "commit", "-q", "-m", "notes")
	testenv.Git(t, person.Dir, "pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
	testenv.Git(t, person.Dir, "push", "-q", "origin", "HEAD:main")
	if first := testenv.Git(t, bare, "log", "-1", "--format=%s", "main^1"); first != "notes" {
		t.Fatalf("the merge's first parent is %q, want the person's commit (test premise)", first)
	}
	r, err := out(t, context.Background(), dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv, nil)
	if err != nil {
		t.Fatalf("the holder of env-2 cannot release it: %v", err)
	}
	if !strings.Contains(message(t, bare, r.Version.Ref), "Poolboy-Claim-Commit: "+acq.Version.Ref) {
		t.Errorf("release message %q does not name the claim", message(t, bare, r.Version.Ref))
	}
	wantTree(t, bare, "aws/unclaimed/env-1", "aws/unclaimed/env-2", "README")
}

// A put that pushes nothing answers its lock's own commit. An update that found
// the metadata already there answered the head; when the head was another lock's
// commit (here env-2's claim by another build), the implicit get named env-2 and
// wrote its claim as the step's ref, and a remove through the step then removed
// the lock another build holds (found by a review).
func TestReviewUnchangedUpdateAnswersItsLock(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", content: "one"}, lock{pool: "aws", name: "env-2", content: "two", claimed: true})
	dir := t.TempDir()
	writeStep(t, dir, "meta", map[string]string{"name": "env-1", "metadata": "one"})
	r := mustOut(t, dir, src(fileURL(bare)), map[string]any{"update": "meta"}, build(1))
	g := get(t, dir, "upd", src(fileURL(bare)), r.Version.Ref)
	if g.lock() != "env-1" || r.Version.Ref == head(t, bare) {
		t.Fatalf("unchanged update answered %s (head %s) and its get names %q, want env-1's own commit", r.Version.Ref, head(t, bare), g.lock())
	}
	// remove removes only claimed locks: env-1 is not, so nothing happens.
	if _, err := out(t, context.Background(), dir, src(fileURL(bare)), map[string]any{"remove": "upd"}, build(1), nil); err == nil || !strings.Contains(err.Error(), `lock "env-1"`) {
		t.Errorf("remove through the unchanged update's get: %v, want a refusal about env-1", err)
	}
	if tr := tree(t, bare); !tr["aws/claimed/env-2"] || !tr["aws/unclaimed/env-1"] {
		t.Errorf("after the remove: %v, want both locks where they were", keys(tr))
	}
}

// A version that changed no lock of the pool (another pool's commit) names the
// pool's newest lock commit's lock, as upstream's in does; that lock's claim is
// another build's, so it is no fence: a release through the step is refused (the
// version claimed another lock) instead of freeing it (found by a review).
func TestReviewGetAtAnotherPoolsCommitIsNoFence(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws", "gpu"}, lock{pool: "aws", name: "env-2", claimed: true}, lock{pool: "gpu", name: "g-1"})
	mustOut(t, t.TempDir(), src(fileURL(bare), "pool", "gpu"), map[string]any{"acquire": true}, build(7))
	dir := t.TempDir()
	g := get(t, dir, "lock", src(fileURL(bare)), head(t, bare)) // gpu's claim, read for pool aws
	ref, err := os.ReadFile(filepath.Join(dir, "lock", "ref"))
	if err != nil || g.lock() != "env-2" || strings.TrimSpace(string(ref)) != head(t, bare) {
		t.Fatalf("get names %q with ref %q (%v), want env-2 with the version as ref", g.lock(), ref, err)
	}
	if _, err := out(t, context.Background(), dir, src(fileURL(bare)), map[string]any{"release": "lock"}, build(1), nil); err == nil || !strings.Contains(err.Error(), `not releasing "env-2"`) {
		t.Errorf("release of another build's lock through a get at another pool's commit: %v", err)
	}
	if tr := tree(t, bare); !tr["aws/claimed/env-2"] {
		t.Errorf("env-2 is not claimed any more: %v", keys(tr))
	}
}
