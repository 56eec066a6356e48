package main_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// build builds poolboy with the build tags given.
func build(t *testing.T, tags ...string) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "poolboy")
	cmd := exec.Command("go", "build", "-tags", strings.Join(tags, ","), "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEventually is clean for a poolboy that could not clean up itself (a
// panic, SIGKILL): its watchdog does, once it sees poolboy gone. It polls
// until nothing is left, and fails at the guard.
func (s *stalled) cleanEventually(t *testing.T) {
	t.Helper()
	for end := time.Now().Add(exitGuard); ; {
		left := testenv.Leftovers(t, s.marker)
		entries, err := os.ReadDir(s.tmp)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 && len(entries) == 0 {
			return
		}
		if time.Now().After(end) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("%s after poolboy died: still running:\n%s\nstill in TMPDIR: %v", exitGuard, strings.Join(left, "\n"), names)
		}
		time.Sleep(20 * time.Millisecond) // polling processes and a directory, not synchronisation
	}
}

// stalledStatus starts status against an HTTP server that never answers, with
// a password (so an askpass script is on disk besides the clone), and waits
// until git is on the wire.
func stalledStatus(t *testing.T, bin string) *stalled {
	t.Helper()
	srv, uri := stalledRepo(t, "http")
	s := startStalled(t, bin, nil, []string{"POOL_REPO_USERNAME=bot", "POOL_REPO_PASSWORD=exit-test-password"}, "status", "--repo", uri)
	s.waitFor(t, "connection", srv.Connected())
	entries, _ := os.ReadDir(s.tmp)
	if len(entries) == 0 {
		t.Fatal("nothing in TMPDIR while git runs: the test would prove nothing")
	}
	return s
}

// Every signal that stops poolboy leaves nothing behind: no temporary clone,
// no askpass script, no git, ssh or helper running. SIGINT, SIGTERM and SIGHUP
// stop it gracefully (exit 1, "interrupted"); SIGQUIT at once (131), with
// every goroutine's stack on stderr.
func TestEverySignalCleansUp(t *testing.T) {
	bin := build(t)
	for _, c := range []struct {
		sig    syscall.Signal
		code   int
		stderr string
	}{
		{syscall.SIGINT, 1, "poolboy: interrupted (interrupt signal received): "},
		{syscall.SIGTERM, 1, "poolboy: interrupted (terminated signal received): "},
		{syscall.SIGHUP, 1, "poolboy: interrupted (hangup signal received): "},
		{syscall.SIGQUIT, 131, "poolboy: quit signal received: exiting at once; its goroutines were:\ngoroutine "},
	} {
		t.Run(c.sig.String(), func(t *testing.T) {
			s := stalledStatus(t, bin)
			if err := s.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			if code := s.exit(t); code != c.code {
				t.Errorf("exit status %d, want %d; stderr %q", code, c.code, s.stderr.String())
			}
			if !strings.HasPrefix(s.stderr.String(), c.stderr) {
				t.Errorf("stderr %q, want it to begin %q", s.stderr.String(), c.stderr)
			}
			s.clean(t)
		})
	}
}

// poolboy status --output json | head -1: a write to a closed stdout is an
// error poolboy reports and cleans up after, not a SIGPIPE that kills it first.
func TestClosedStdoutCleansUp(t *testing.T) {
	bin := build(t)
	remote := filepath.Join(t.TempDir(), "locks.git")
	err := fixture.Build(context.Background(), remote, fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: time.Now().Add(-time.Hour),
		Ops: []fixture.Op{{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: time.Now().Add(-time.Minute)}}})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close() // the reader is gone before poolboy writes, as head's is after its line
	s := &stalled{tmp: t.TempDir(), marker: testenv.Marker(t)}
	cmd := exec.Command(bin, "status", "--repo", remote, "--output", "json")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + s.tmp, s.marker,
		"POOL_REPO_USERNAME=bot", "POOL_REPO_PASSWORD=exit-test-password"}
	cmd.Stdout, cmd.Stderr = w, &s.stderr
	err = cmd.Run()
	w.Close()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("poolboy: %v (%v), want exit status 1; stderr %q", err, cmd.ProcessState, s.stderr.String())
	}
	if got := s.stderr.String(); !strings.HasPrefix(got, "poolboy: ") || !strings.Contains(got, "broken pipe") || strings.Count(got, "\n") != 1 {
		t.Errorf("stderr %q, want one line saying the pipe is broken", got)
	}
	s.clean(t)
}

// A panic in a goroutine other than main's runs none of main's deferred
// cleanup, and neither can anything after SIGKILL: poolboy's watchdog removes
// the clone and the askpass script and kills git's process group.
func TestWatchdogCleansUpAfterAPanicOrSIGKILL(t *testing.T) {
	bin := build(t, "poolboy_panic_hook")
	t.Run("panic", func(t *testing.T) {
		s := stalledStatus(t, bin)
		if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		if code := s.exit(t); code != 2 || !strings.Contains(s.stderr.String(), "panic: poolboy_panic_hook: SIGUSR1") {
			t.Errorf("exit status %d, stderr %q: want Go's 2 and the panic", code, s.stderr.String())
		}
		s.cleanEventually(t)
	})
	t.Run("SIGKILL", func(t *testing.T) {
		s := stalledStatus(t, bin)
		if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		s.exit(t)
		s.cleanEventually(t)
	})
}
