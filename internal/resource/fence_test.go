package resource

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// The fence: release and remove act only on the claim the build holds. Every case
// drives Out on a real repository as Concourse does (a get wrote the step's ref).
func TestFence(t *testing.T) {
	t.Parallel()
	other := map[string]string{"BUILD_ID": "99", "BUILD_NAME": "7", "BUILD_TEAM_NAME": "main",
		"BUILD_PIPELINE_NAME": "other", "BUILD_JOB_NAME": "grab"}
	// refused runs params and wants an error with every fragment, nothing pushed.
	refused := func(t *testing.T, bare, dir string, source, params map[string]any, fragments ...string) {
		t.Helper()
		before := head(t, bare)
		r, err := out(t, context.Background(), dir, source, params, jobEnv, nil)
		if err == nil {
			t.Fatalf("out %v succeeded: %+v\n%s", params, r, r.log)
		}
		for _, f := range fragments {
			if !strings.Contains(err.Error(), f) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error = %v\nwant it to say %q, on one line", err, f)
			}
		}
		if head(t, bare) != before {
			t.Errorf("something was pushed: head %s, was %s", head(t, bare), before)
		}
	}

	t.Run("remove of a lock reaped and claimed again: refused, left with its holder", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		c := testenv.NewClone(t, fileURL(bare), "main")
		c.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "unclaiming: env-1\n\nPoolboy-Rule: timeout")
		mustOut(t, t.TempDir(), src(fileURL(bare)), map[string]any{"claim": "env-1"}, other)
		refused(t, bare, dir, src(fileURL(bare)), map[string]any{"remove": "lock"},
			`lock "env-1" was claimed by this build (`+acq.Version.Ref+`), then was reaped by poolboy (timeout) in `,
			"now claimed by main/other/grab #7", "not removing it")
		wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
	})

	t.Run("remove of the claim the build holds", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		rm := mustOut(t, dir, src(fileURL(bare)), map[string]any{"remove": "lock"}, jobEnv)
		wantTree(t, bare, "aws/claimed/env-2")
		if msg := message(t, bare, rm.Version.Ref); !strings.Contains(msg, "Poolboy-Claim-Commit: "+acq.Version.Ref) {
			t.Errorf("remove message %q does not name the claim", msg)
		}
	})

	// A person rewrote the branch and force-pushed: the build's claim commit is gone.
	rewrite := func(t *testing.T, bare string, claimEnv map[string]string) {
		t.Helper()
		c := testenv.NewClone(t, fileURL(bare), "main")
		testenv.Git(t, c.Dir, "reset", "-q", "--hard", "HEAD~1")
		testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "a person's rewrite")
		testenv.Git(t, c.Dir, "push", "-q", "-f", "origin", "HEAD:main")
		mustOut(t, t.TempDir(), src(fileURL(bare)), map[string]any{"claim": "env-1"}, claimEnv)
	}
	for _, op := range []string{"release", "remove"} {
		t.Run(op+" after a force-push, claimed now by another build: refused", func(t *testing.T) {
			t.Parallel()
			bare, dir := awsRepo(t), t.TempDir()
			acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
			get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
			rewrite(t, bare, other)
			refused(t, bare, dir, src(fileURL(bare)), map[string]any{op: "lock"},
				`cannot tell whose claim lock "env-1" is: the step's ref `+acq.Version.Ref+` is not in the history of branch main`,
				"main/other/grab #7")
			wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
		})
		t.Run(op+" after a force-push, the current claim names this build: done, with a warning", func(t *testing.T) {
			t.Parallel()
			bare, dir := awsRepo(t), t.TempDir()
			acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
			get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
			rewrite(t, bare, jobEnv)
			r := mustOut(t, dir, src(fileURL(bare)), map[string]any{op: "lock"}, jobEnv)
			if !strings.Contains(r.log, "is not in the history of branch main") || !strings.Contains(r.log, "names this build") {
				t.Errorf("log = %q", r.log)
			}
			if op == "release" {
				wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
			} else {
				wantTree(t, bare, "aws/claimed/env-2")
			}
		})
	}

	t.Run("release with the ref of another pool's lock: refused, naming both", func(t *testing.T) {
		t.Parallel()
		// Both pools name their locks env-1: `put: gcp-env, params: {release: aws-env}`.
		bare := newRepo(t, []string{"aws", "gcp"},
			lock{pool: "aws", name: "env-1"}, lock{pool: "gcp", name: "env-1"})
		dir := t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "aws-env", src(fileURL(bare)), acq.Version.Ref)
		gcp := src(fileURL(bare), "pool", "gcp")
		mustOut(t, t.TempDir(), gcp, map[string]any{"claim": "env-1"}, other)
		refused(t, bare, dir, gcp, map[string]any{"release": "aws-env"},
			`the step's ref `+acq.Version.Ref+` is the claim of lock "env-1" in pool "aws", not of lock "env-1" in pool "gcp"`)
		wantTree(t, bare, "aws/claimed/env-1", "gcp/claimed/env-1")
	})

	t.Run("release with a ref that claimed nothing, lock held by another build: refused", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		c := testenv.NewClone(t, fileURL(bare), "main")
		testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "unrelated")
		testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
		unrelated := head(t, bare)
		writeStep(t, dir, "lock", map[string]string{"name": "env-2\n", "ref": unrelated + "\n"})
		refused(t, bare, dir, src(fileURL(bare)), map[string]any{"release": "lock"},
			`cannot tell whose claim lock "env-2" is: the step's ref `+unrelated+` claimed no lock`)
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
	})

	t.Run("lock claimed on two merged branches: refused", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"claim": "env-1"}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		c := testenv.NewClone(t, fileURL(bare), "main")
		testenv.Git(t, c.Dir, "checkout", "-q", "-b", "side", acq.Version.Ref+"^")
		testenv.Git(t, c.Dir, "mv", "aws/unclaimed/env-1", "aws/claimed/env-1")
		testenv.Git(t, c.Dir, "commit", "-q", "-m", "main/other/grab build 7 claiming: env-1")
		testenv.Git(t, c.Dir, "checkout", "-q", "main")
		testenv.Git(t, c.Dir, "merge", "-q", "--no-edit", "side")
		testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
		refused(t, bare, dir, src(fileURL(bare)), map[string]any{"release": "lock"},
			"claimed independently on branches that were merged", "not releasing it")
		wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
	})

	t.Run("after a person's pull merged an old side, the new holder releases its own claim", func(t *testing.T) {
		t.Parallel()
		bare := awsRepo(t)
		// A person's clone from while env-2 still had its first claim.
		person := testenv.NewClone(t, fileURL(bare), "main")
		dir := t.TempDir()
		release := t.TempDir()
		writeStep(t, release, "old", map[string]string{"name": "env-2\n"})
		mustOut(t, release, src(fileURL(bare)), map[string]any{"release": "old"}, other)
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
		mustOut(t, dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv)
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/unclaimed/env-2", "README")
	})
}
