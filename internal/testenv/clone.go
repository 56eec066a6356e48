package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Clone is a working-tree clone that plays "another user of the lock repo"
// in tests, using the git CLI.
type Clone struct {
	// Dir is the working tree.
	Dir string
	// Env holds extra "K=V" entries for every git command the clone runs
	// after NewClone (e.g. GIT_ASKPASS for an authenticated remote).
	Env []string

	branch string
}

// NewClone clones branch of remoteURL into a temp dir. An empty remote (or
// one without branch yet) is fine: the clone then starts on an unborn
// branch, and a test can create and push the first commit with Git in c.Dir.
func NewClone(t testing.TB, remoteURL, branch string) *Clone {
	t.Helper()
	c := &Clone{Dir: t.TempDir(), branch: branch}
	// init+fetch rather than `git clone -b`, which fails on an empty remote.
	Git(t, c.Dir, "init", "-q", "-b", branch)
	Git(t, c.Dir, "remote", "add", "origin", remoteURL)
	if c.RemoteHead(t) != "" {
		c.sync(t)
		Git(t, c.Dir, "branch", "-q", "--set-upstream-to=origin/"+branch)
	}
	return c
}

// sync makes the working tree exactly the newest remote state.
func (c *Clone) sync(t testing.TB) {
	t.Helper()
	c.git(t, nil, "fetch", "-q", "origin", "+refs/heads/"+c.branch+":refs/remotes/origin/"+c.branch)
	c.git(t, nil, "reset", "-q", "--hard", "origin/"+c.branch)
	c.git(t, nil, "clean", "-q", "-ffdx")
}

func (c *Clone) git(t testing.TB, env []string, args ...string) string {
	t.Helper()
	return GitEnv(t, c.Dir, append(append([]string(nil), c.Env...), env...), args...)
}

// Move does `git mv from to` (paths relative to the repo root), commits with
// msg and pushes fast-forward. It first pulls (fetch + reset --hard to
// origin/branch) so it acts on the newest state. env entries are added to
// the commit (e.g. GIT_COMMITTER_DATE=...). Fails the test on error,
// including a rejected (non-fast-forward) push.
func (c *Clone) Move(t testing.TB, from, to, msg string, env ...string) {
	t.Helper()
	c.sync(t)
	// git mv refuses a destination directory that does not exist.
	if err := os.MkdirAll(filepath.Dir(filepath.Join(c.Dir, filepath.FromSlash(to))), 0o755); err != nil {
		t.Fatalf("mkdir for %q: %v", to, err)
	}
	c.git(t, nil, "mv", from, to)
	c.git(t, env, "commit", "-q", "-m", msg)
	c.git(t, nil, "push", "-q", "origin", "HEAD:refs/heads/"+c.branch)
}

// RemoteHead returns the remote branch head SHA as seen by `git ls-remote`,
// or "" when the branch does not exist on the remote.
func (c *Clone) RemoteHead(t testing.TB) string {
	t.Helper()
	out := c.git(t, nil, "ls-remote", "origin", "refs/heads/"+c.branch)
	sha, _, _ := strings.Cut(out, "\t")
	return sha
}
