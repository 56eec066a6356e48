package gitx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockFile, in a cache dir, is held (flock) by the poolboy using it.
const lockFile = "poolboy.lock"

// lockWait bounds how long Open waits for another poolboy to let go of the cache
// dir; tests shorten it.
var lockWait = time.Minute

// lockCache takes the cache dir's lock for as long as the Repo is open: two
// poolboys fetching into and committing in one clone would corrupt each other's
// work. The lock is the kernel's, so a poolboy that dies lets go at once. A busy
// lock is waited for, at most lockWait.
func (r *Repo) lockCache(ctx context.Context) error {
	path := filepath.Join(r.opts.CacheDir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	deadline := time.NewTimer(lockWait)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	logged := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			r.cleanup = append(r.cleanup, func() { f.Close() })
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("cache dir: locking %s: %w", path, err)
		}
		if !logged {
			r.log.Info("waiting for the cache dir: another poolboy is using it", "cache_dir", r.opts.CacheDir, "wait", lockWait)
			logged = true
		}
		select {
		case <-poll.C:
			continue
		case <-ctx.Done():
		case <-deadline.C:
		}
		f.Close()
		return fmt.Errorf("cache dir %s is in use by another poolboy (it holds %s); give each poolboy its own --cache-dir", r.opts.CacheDir, lockFile)
	}
}

// defaultMoved says whether the remote's default branch is no longer the one the
// cached clone follows, when no branch was asked for: the clone is then made anew.
func (r *Repo) defaultMoved(ctx context.Context) (bool, error) {
	if r.opts.Branch != "" {
		return false, nil
	}
	out, err := r.Output(ctx, "ls-remote", "--symref", "origin", "HEAD")
	if err != nil {
		return false, err
	}
	// "ref: refs/heads/NAME\tHEAD": a remote without a HEAD says nothing.
	for line := range strings.Lines(string(out)) {
		ref, ok := strings.CutPrefix(line, "ref: refs/heads/")
		if name, target, _ := strings.Cut(ref, "\t"); ok && strings.TrimSpace(target) == "HEAD" && name != r.branch {
			r.log.Info("the remote's default branch changed: cloning it", "was", r.branch, "now", name)
			return true, nil
		}
	}
	return false, nil
}
