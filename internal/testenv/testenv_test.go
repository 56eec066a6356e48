package testenv

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeTB records Fatalf/Skipf instead of ending the real test, so the
// CI=true / not-CI behaviour of RequireCommand can be checked.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// runFake runs fn on a fresh goroutine (Fatalf/Skipf call Goexit).
func runFake(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestRequireCommand(t *testing.T) {
	p := RequireCommand(t, "git")
	if !filepath.IsAbs(p) {
		t.Fatalf("RequireCommand(git) = %q, want absolute path", p)
	}

	const bogus = "poolboy-no-such-command-xyz"
	t.Setenv("CI", "true")
	f := runFake(t, func(tb testing.TB) { RequireCommand(tb, bogus) })
	if f.fatal == "" || f.skip != "" {
		t.Errorf("CI=true: fatal=%q skip=%q, want a fatal", f.fatal, f.skip)
	}
	t.Setenv("CI", "")
	f = runFake(t, func(tb testing.TB) { RequireCommand(tb, bogus) })
	if f.skip == "" || f.fatal != "" {
		t.Errorf("CI unset: fatal=%q skip=%q, want a skip", f.fatal, f.skip)
	}
}

func TestGitEnvironment(t *testing.T) {
	// Inherited git variables must not leak into the deterministic env.
	t.Setenv("GIT_AUTHOR_NAME", "Leaked")
	t.Setenv("GIT_DIR", "/nonexistent")

	if got := Git(t, "", "var", "GIT_AUTHOR_IDENT"); !strings.HasPrefix(got, "Test <test@example.com> ") {
		t.Errorf("author ident = %q", got)
	}
	if got := Git(t, "", "var", "GIT_COMMITTER_IDENT"); !strings.HasPrefix(got, "Test <test@example.com> ") {
		t.Errorf("committer ident = %q", got)
	}

	// HOME is a temp dir that stays the same for the whole test.
	Git(t, "", "config", "--global", "poolboy.probe", "yes")
	if got := Git(t, "", "config", "--global", "poolboy.probe"); got != "yes" {
		t.Errorf("global config across calls = %q, want yes", got)
	}
	if realHome, _ := os.UserHomeDir(); realHome != "" && home(t) == realHome {
		t.Errorf("HOME is the real home %q", realHome)
	}

	dir := t.TempDir()
	Git(t, dir, "init", "-q", "-b", "main")
	Git(t, dir, "commit", "-q", "--allow-empty", "-m", "first")
	GitEnv(t, dir, []string{"GIT_COMMITTER_DATE=2001-02-03T04:05:06Z"}, "commit", "-q", "--allow-empty", "-m", "dated")
	if got := Git(t, dir, "log", "-1", "--format=%ct %s"); got != "981173106 dated" {
		t.Errorf("dated commit = %q", got)
	}
	if _, stderr, err := runGit(t, dir, nil, "rev-parse", "no-such-rev"); err == nil || stderr == "" {
		t.Errorf("bad rev: err=%v stderr=%q, want an error with stderr", err, stderr)
	}
}

func TestFreePort(t *testing.T) {
	port := FreePort(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d from FreePort is not free: %v", port, err)
	}
	l.Close()
}

// newBare creates root/name as an empty bare repo on branch main.
func newBare(t *testing.T, root, name string) string {
	t.Helper()
	bare := filepath.Join(root, name)
	Git(t, "", "init", "-q", "--bare", "-b", "main", bare)
	return bare
}

// seed pushes an initial commit with free/a and free/b to an empty remote
// from a fresh Clone.
func seed(t *testing.T, remoteURL string, env []string) {
	t.Helper()
	c := NewClone(t, remoteURL, "main")
	c.Env = env
	if h := c.RemoteHead(t); h != "" {
		t.Fatalf("empty remote has head %q", h)
	}
	for _, f := range []string{"free/a", "free/b"} {
		p := filepath.Join(c.Dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	GitEnv(t, c.Dir, env, "add", ".")
	GitEnv(t, c.Dir, env, "commit", "-q", "-m", "initial")
	GitEnv(t, c.Dir, env, "push", "-q", "origin", "HEAD:refs/heads/main")
}

func TestGitDaemonCloneMovePush(t *testing.T) {
	root := t.TempDir()
	bare := newBare(t, root, "locks.git")
	base := GitDaemon(t, root)
	if !strings.HasPrefix(base, "git://127.0.0.1:") || !strings.HasSuffix(base, "/") {
		t.Fatalf("base URL = %q", base)
	}
	url := base + "locks.git"

	seed(t, url, nil) // push over git:// (receive-pack enabled)
	a := NewClone(t, url, "main")
	b := NewClone(t, url, "main") // becomes stale once a moves
	if _, err := os.Stat(filepath.Join(a.Dir, "free", "a")); err != nil {
		t.Fatalf("clone has no free/a: %v", err)
	}

	a.Move(t, "free/a", "claimed/a", "claim a", "GIT_COMMITTER_DATE=2001-02-03T04:05:06Z")
	// b must pull a's commit first, or its push would be rejected.
	b.Move(t, "free/b", "claimed/b", "claim b")

	head := b.RemoteHead(t)
	if want := Git(t, bare, "rev-parse", "main"); head != want || a.RemoteHead(t) != want {
		t.Fatalf("RemoteHead = %q, bare main = %q", head, want)
	}
	if got := Git(t, bare, "ls-tree", "-r", "--name-only", "main"); got != "claimed/a\nclaimed/b" {
		t.Errorf("remote tree = %q", got)
	}
	if got := Git(t, bare, "log", "--format=%s|%ct", "main"); !strings.Contains(got, "claim a|981173106") {
		t.Errorf("remote log = %q, want claim a with the given committer date", got)
	}
}

func TestGitDaemonStoppedAtCleanup(t *testing.T) {
	root := t.TempDir()
	newBare(t, root, "locks.git")
	var addr string
	t.Run("serve", func(t *testing.T) {
		base := GitDaemon(t, root)
		addr = strings.TrimSuffix(strings.TrimPrefix(base, "git://"), "/")
		Git(t, "", "ls-remote", base+"locks.git")
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("git daemon still accepting on %s after cleanup", addr)
	}
}

// askpass writes a 0700 GIT_ASKPASS script that answers from
// $TEST_GIT_USER / $TEST_GIT_PASS, so credentials never appear in argv.
func askpass(t *testing.T) string {
	t.Helper()
	sh := RequireCommand(t, "sh")
	p := filepath.Join(t.TempDir(), "askpass.sh")
	script := "#!" + sh + `
case "$1" in
*Username*) printf '%s\n' "$TEST_GIT_USER" ;;
*) printf '%s\n' "$TEST_GIT_PASS" ;;
esac
`
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGitHTTPAuth(t *testing.T) {
	root := t.TempDir()
	bare := newBare(t, root, "locks.git")
	seed(t, bare, nil) // local path: HTTP is what is under test below
	srv := GitHTTP(t, root, "alice", "s3cret")
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") || !strings.HasSuffix(srv.URL, "/") {
		t.Fatalf("URL = %q", srv.URL)
	}
	url := srv.URL + "locks.git"
	ask := askpass(t)
	env := func(pass string) []string {
		return []string{"GIT_ASKPASS=" + ask, "TEST_GIT_USER=alice", "TEST_GIT_PASS=" + pass}
	}

	// No credentials at all: 401 with a Basic challenge.
	resp, err := http.Get(url + "/info/refs?service=git-upload-pack")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="git"` {
		t.Fatalf("anonymous: %s, WWW-Authenticate %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	// Wrong password: clone fails and nothing reaches http-backend.
	_, stderr, err := runGit(t, "", env("wrong"), "clone", "-q", url, filepath.Join(t.TempDir(), "bad"))
	if err == nil {
		t.Fatal("clone with wrong password succeeded")
	}
	if !strings.Contains(stderr, "Authentication failed") {
		t.Errorf("wrong password stderr = %q", stderr)
	}
	if n := srv.Requests()["upload-pack"]; n != 0 {
		t.Errorf("upload-pack requests after failed auth = %d, want 0", n)
	}

	// Right password: clone and push.
	dir := filepath.Join(t.TempDir(), "good")
	GitEnv(t, "", env("s3cret"), "clone", "-q", url, dir)
	if err := os.WriteFile(filepath.Join(dir, "free", "c"), []byte("c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "add", ".")
	Git(t, dir, "commit", "-q", "-m", "add c")
	GitEnv(t, dir, env("s3cret"), "push", "-q", "origin", "HEAD:refs/heads/main")
	if got, want := Git(t, bare, "rev-parse", "main"), Git(t, dir, "rev-parse", "HEAD"); got != want {
		t.Errorf("bare main = %s, pushed %s", got, want)
	}

	reqs := srv.Requests()
	if reqs["upload-pack"] == 0 || reqs["receive-pack"] == 0 {
		t.Errorf("Requests() = %v, want upload-pack and receive-pack > 0", reqs)
	}
}

func TestGitHTTPNoAuthAndCleanup(t *testing.T) {
	root := t.TempDir()
	bare := newBare(t, root, "locks.git")
	seed(t, bare, nil)
	var base string
	t.Run("serve", func(t *testing.T) {
		srv := GitHTTP(t, root, "", "")
		base = srv.URL
		c := NewClone(t, srv.URL+"locks.git", "main")
		c.Move(t, "free/a", "claimed/a", "claim a")
		if got, want := c.RemoteHead(t), Git(t, bare, "rev-parse", "main"); got != want {
			t.Errorf("RemoteHead = %q, bare main = %q", got, want)
		}
		if reqs := srv.Requests(); reqs["upload-pack"] == 0 || reqs["receive-pack"] == 0 {
			t.Errorf("Requests() = %v, want upload-pack and receive-pack > 0", reqs)
		}
	})
	addr := strings.TrimSuffix(strings.TrimPrefix(base, "http://"), "/")
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("HTTP server still accepting on %s after cleanup", addr)
	}
}

// A stopped daemon refuses connections; started again, it serves the same
// repositories on the same URL: its port reservation while stopped (which keeps
// outgoing connections from taking the port) does not keep the daemon out.
func TestGitDaemonStopAndRestart(t *testing.T) {
	root := t.TempDir()
	newBare(t, root, "locks.git")
	s := StartGitDaemon(t, root)
	url := s.URL + "locks.git"
	seed(t, url, nil)
	head := Git(t, "", "ls-remote", url, "refs/heads/main")
	s.Stop()
	s.Stop() // no-op
	if _, errOut, err := runGit(t, "", nil, "ls-remote", url); err == nil || !strings.Contains(errOut, "Connection refused") {
		t.Fatalf("ls-remote against a stopped daemon: err=%v stderr=%q", err, errOut)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil { // already running: no-op
		t.Fatal(err)
	}
	if got := Git(t, "", "ls-remote", url, "refs/heads/main"); got != head {
		t.Errorf("after restart ls-remote = %q, want %q", got, head)
	}
}
