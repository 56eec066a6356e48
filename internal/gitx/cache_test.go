package gitx

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A relative cache dir (a Concourse task's `caches: [{path: cache}]`) is the
// task's working directory's: it works, and is reused next run.
func TestRelativeCacheDir(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	work := t.TempDir()
	t.Chdir(work)
	r1 := mustOpen(t, Options{URL: "file://" + dir, CacheDir: "cache"})
	clone := r1.Dir()
	if !filepath.IsAbs(clone) || !strings.HasPrefix(clone, filepath.Join(work, "cache")+string(filepath.Separator)) {
		t.Errorf("clone at %q, want it under %s", clone, filepath.Join(work, "cache"))
	}
	if _, err := r1.Head(context.Background()); err != nil {
		t.Fatal(err)
	}
	r1.Close()
	r2 := mustOpen(t, Options{URL: "file://" + dir, CacheDir: "cache"})
	defer r2.Close()
	if r2.Dir() != clone {
		t.Errorf("second run at %s, want reuse of %s", r2.Dir(), clone)
	}
}

// holdCacheLock takes the cache dir's lock as another poolboy process would.
func holdCacheLock(t *testing.T, cache string) (release func()) {
	t.Helper()
	if err := os.MkdirAll(cache, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(cache, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// One poolboy per cache dir: a second one waits (boundedly) for the first, then
// gives up with a message that says why; once the first is done it works.
func TestCacheDirIsLocked(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	cache := t.TempDir()
	defer func(w time.Duration) { lockWait = w }(lockWait)
	lockWait = 50 * time.Millisecond

	release := holdCacheLock(t, cache)
	_, err := Open(context.Background(), Options{URL: "file://" + dir, CacheDir: cache})
	if err == nil {
		t.Fatal("opened a cache dir another poolboy holds")
	}
	for _, want := range []string{cache, "in use by another poolboy", "--cache-dir"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	release()

	r := mustOpen(t, Options{URL: "file://" + dir, CacheDir: cache})
	// While r is open, the lock is r's: a second Open in this process waits too.
	if _, err := Open(context.Background(), Options{URL: "file://" + dir, CacheDir: cache}); err == nil {
		t.Error("two Repos share one cache dir")
	}
	r.Close()
	mustOpen(t, Options{URL: "file://" + dir, CacheDir: cache}).Close()
}

// The wait for the lock ends with the context.
func TestCacheLockWaitEndsWithContext(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	cache := t.TempDir()
	defer holdCacheLock(t, cache)()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, Options{URL: "file://" + dir, CacheDir: cache}); err == nil || !strings.Contains(err.Error(), "in use by another poolboy") {
		t.Errorf("Open with a cancelled context = %v", err)
	}
}

// Without --branch the cache follows the remote's default branch when it changes.
func TestCacheFollowsTheRemotesDefaultBranch(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	testenv.Git(t, dir, "branch", "other", "main")
	cache := t.TempDir()
	url := "file://" + dir
	r1 := mustOpen(t, Options{URL: url, CacheDir: cache})
	if r1.Branch() != "main" {
		t.Fatalf("branch %q, want main", r1.Branch())
	}
	r1.Close()

	// The default branch moves to other, which then gets a commit main lacks.
	testenv.Git(t, dir, "symbolic-ref", "HEAD", "refs/heads/other")
	other := testenv.NewClone(t, url, "other")
	other.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "claiming: env-1")

	r2 := mustOpen(t, Options{URL: url, CacheDir: cache})
	if r2.Branch() != "other" {
		t.Errorf("branch %q after the remote's default became other", r2.Branch())
	}
	if h, err := r2.Head(context.Background()); err != nil || h != other.RemoteHead(t) {
		t.Errorf("head %s (%v), want other's %s", h, err, other.RemoteHead(t))
	}
	r2.Close()

	// An explicit branch is kept whatever the default.
	r3 := mustOpen(t, Options{URL: url, CacheDir: cache, Branch: "main"})
	defer r3.Close()
	if r3.Branch() != "main" {
		t.Errorf("explicit branch main became %q", r3.Branch())
	}
}
