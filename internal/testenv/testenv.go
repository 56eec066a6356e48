// Package testenv holds helpers for tests that exercise REAL components: the
// git CLI, and git servers (git daemon, git http-backend) on loopback.
//
// Project rules these helpers follow: no sleeps standing in for
// synchronisation (conditions are polled with a bounded deadline), a missing
// real component fails the test under CI=true and skips it otherwise, only
// 127.0.0.1 is used, and everything started is stopped via t.Cleanup.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// gitTimeout bounds a single git invocation so a wedged server fails the
// test instead of hanging it until the global go test timeout.
const gitTimeout = 2 * time.Minute

// RequireCommand returns the absolute path of a command, failing under
// CI=true and skipping otherwise when it is missing.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		p, err = filepath.Abs(p)
	}
	if err != nil {
		missing(t, "command %q not found: %v", name, err)
		return ""
	}
	return p
}

// missing reports an absent real component: CI must not silently skip
// what it is supposed to test, a developer machine may.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// gitExecPath returns `git --exec-path` and checks that the git subcommand
// binary sub (e.g. "git-daemon") is installed there; some distributions
// ship git-daemon and git-http-backend in separate packages.
func gitExecPath(t testing.TB, sub string) string {
	t.Helper()
	dir := Git(t, "", "--exec-path")
	if _, err := os.Stat(filepath.Join(dir, sub)); err != nil {
		missing(t, "%s not installed in %s: %v", sub, dir, err)
	}
	return dir
}

var (
	homesMu sync.Mutex
	homes   = map[testing.TB]string{}
)

// home returns the per-test HOME, created on first use, so no user or
// machine git config (credential helpers, url rewrites, hooks) leaks in.
func home(t testing.TB) string {
	t.Helper()
	homesMu.Lock()
	defer homesMu.Unlock()
	if h, ok := homes[t]; ok {
		return h
	}
	h := t.TempDir()
	homes[t] = h
	t.Cleanup(func() {
		homesMu.Lock()
		delete(homes, t)
		homesMu.Unlock()
	})
	return h
}

// gitEnv builds the deterministic environment for git. The inherited
// environment is kept (PATH, TMPDIR, ...) minus anything that changes git's
// behaviour: GIT_* variables, config locations, askpass helpers and proxies
// (curl would otherwise send loopback traffic to a proxy).
func gitEnv(t testing.TB, extra []string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "GIT_"),
			strings.HasSuffix(strings.ToLower(k), "_proxy"),
			k == "HOME", k == "XDG_CONFIG_HOME", k == "SSH_ASKPASS",
			k == "EMAIL", k == "LANGUAGE":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOME="+home(t),
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test",
		"GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test",
		"GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	)
	// os/exec keeps the last value of a duplicated key, so extra wins.
	return append(env, extra...)
}

// runGit runs git and returns trimmed stdout, stderr and the error, without
// failing the test; for checks that expect git to fail.
func runGit(t testing.TB, dir string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	git := RequireCommand(t, "git")
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, git, args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(t, env)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// A helper (git-remote-http, ssh) left holding our pipes must not
	// block Wait forever after a timeout kill.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timeout %v)", err, gitTimeout)
	}
	return strings.TrimSpace(out.String()), strings.TrimSpace(errb.String()), err
}

// Git runs the git CLI in dir (dir may be "" for the current directory)
// with a deterministic environment, fails the test with git's stderr on
// error and returns trimmed stdout.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	return GitEnv(t, dir, nil, args...)
}

// GitEnv is like Git but with extra "K=V" environment entries (e.g.
// GIT_COMMITTER_DATE); they override the deterministic defaults.
func GitEnv(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	out, errOut, err := runGit(t, dir, env, args...)
	if err != nil {
		t.Fatalf("git %s (in %q): %v\n%s", strings.Join(args, " "), dir, err, errOut)
	}
	return out
}

// FreePort returns a free TCP port on 127.0.0.1. The port is released before
// returning, so callers that bind it later must tolerate a (rare) race.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1:0: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a child's stderr; the exec copier goroutine writes
// while the test may read it for diagnostics.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// GitDaemon serves every bare repository under root with `git daemon`
// (export-all, receive-pack enabled, on 127.0.0.1 and a free port), waits
// until it accepts connections and stops it at cleanup. It returns the base
// URL "git://127.0.0.1:PORT/"; root/locks.git is then base+"locks.git".
func GitDaemon(t testing.TB, root string) string {
	t.Helper()
	return StartGitDaemon(t, root).URL
}

// GitDaemonServer is a `git daemon` started by StartGitDaemon, which tests
// can stop and start again on the same address, as a server restart would.
type GitDaemonServer struct {
	// URL is the base URL "git://127.0.0.1:PORT/".
	URL string

	t    testing.TB
	root string
	port int

	mu      sync.Mutex
	stop    func(graceful bool) // nil while stopped
	release func()              // while stopped: gives up the port reservation
}

// StartGitDaemon is GitDaemon, returning the server so it can be restarted.
func StartGitDaemon(t testing.TB, root string) *GitDaemonServer {
	t.Helper()
	gitExecPath(t, "git-daemon")
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("abs %q: %v", root, err)
	}
	s := &GitDaemonServer{t: t, root: root}
	// FreePort releases the port before the daemon binds it; if someone
	// else grabs it in between the daemon exits, and we retry on a new one.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.port = FreePort(t)
		if lastErr = s.Start(); lastErr == nil {
			s.URL = fmt.Sprintf("git://127.0.0.1:%d/", s.port)
			return s
		}
	}
	t.Fatalf("git daemon did not start: %v", lastErr)
	return nil
}

// Stop stops the daemon with SIGTERM to it and to the processes serving
// connections (a push in flight ends; git removes its ref lock files on
// SIGTERM), and waits until they have exited. While it is stopped the port stays
// reserved, so connections are refused and Start finds the port free. Stopping
// a stopped daemon is a no-op.
func (s *GitDaemonServer) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop == nil {
		return
	}
	s.stop(true)
	s.stop = nil
	release, err := reservePort(s.port)
	if err != nil {
		s.t.Errorf("git daemon stopped, but its port %d could not be held: %v", s.port, err)
		return
	}
	s.release = release
	s.t.Cleanup(release)
}

// Start starts the daemon again on its port and waits until it accepts
// connections; a running daemon is left alone. It fails when the port was
// taken meanwhile.
func (s *GitDaemonServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return nil
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	cmd := exec.Command(RequireCommand(s.t, "git"), "daemon",
		"--export-all",
		"--enable=receive-pack",
		"--reuseaddr",
		"--informative-errors",
		"--listen=127.0.0.1",
		fmt.Sprintf("--port=%d", s.port),
		"--base-path="+s.root,
	)
	cmd.Env = gitEnv(s.t, nil)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	// The probe connects and hangs up, so the daemon logs one harmless
	// "remote end hung up" line.
	stop, err := serve(s.t, "git daemon", cmd, stderr, 10*time.Second, func() error {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err
	}, nil)
	if err == nil && s.release != nil {
		s.release()
		s.release = nil
	}
	s.stop = stop
	return err
}
