package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// exitGuard is how long poolboy may take to exit after the signal before the
// test calls it hung. The promise is a few seconds (git's 2 s between SIGTERM
// and SIGKILL); this is a failure guard, not a speed budget.
const exitGuard = 30 * time.Second

// stalled is a poolboy process talking to a server that never answers.
type stalled struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	tmp, marker    string
	exited         chan struct{} // closed when poolboy has exited
	err            error         // Wait's, once exited is closed
}

// startStalled starts bin with args, TMPDIR set to a fresh directory and a
// marker in its environment that every process it starts inherits.
func startStalled(t *testing.T, bin string, stdin io.Reader, env []string, args ...string) *stalled {
	t.Helper()
	s := &stalled{tmp: t.TempDir(), marker: testenv.Marker(t), exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + s.tmp, s.marker}, env...)
	s.cmd.Stdin = stdin
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	// Wait must not wait for processes poolboy left behind holding its pipes.
	s.cmd.WaitDelay = time.Second
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	return s
}

// waitFor waits for the server to see poolboy's git, failing at the guard.
func (s *stalled) waitFor(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-s.exited:
		t.Fatalf("poolboy exited (%v) before %s\nstderr: %s", s.err, what, s.stderr.String())
	case <-time.After(exitGuard):
		t.Fatalf("no %s within %s\nstderr: %s", what, exitGuard, s.stderr.String())
	}
}

// exit waits for poolboy to exit, failing at the guard, and returns its status.
func (s *stalled) exit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.exited:
	case <-time.After(exitGuard):
		t.Fatalf("poolboy did not exit within %s of SIGTERM\nstderr: %s", exitGuard, s.stderr.String())
	}
	return s.cmd.ProcessState.ExitCode()
}

// clean checks that nothing poolboy started is still running and that it left
// no temporary file behind.
func (s *stalled) clean(t *testing.T) {
	t.Helper()
	if left := testenv.Leftovers(t, s.marker); len(left) > 0 {
		t.Errorf("processes left running after poolboy exited:\n%s", strings.Join(left, "\n"))
	}
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}

func binary(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	return filepath.Join(filepath.Dir(filepath.Dir(optResource(t))), "poolboy")
}

// sshKey is a private key that ssh can load (the stalled server never asks for it).
func sshKey(t *testing.T) string {
	t.Helper()
	keygen := testenv.RequireCommand(t, "ssh-keygen")
	testenv.RequireCommand(t, "ssh")
	key := filepath.Join(t.TempDir(), "key")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	b, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stalledRepo is the URL of a repository on a server that never answers.
func stalledRepo(t *testing.T, transport string) (*testenv.StallServer, string) {
	srv := testenv.Stall(t)
	if transport == "ssh" {
		return srv, "ssh://git@" + srv.Addr + "/locks.git"
	}
	return srv, "http://" + srv.Addr + "/locks.git"
}

// A git server that accepts the connection and never answers: SIGTERM stops
// status and the resource's out at once, with every git helper (git-remote-http,
// sh -c ssh, ssh) and every temporary file (the clone, the key) gone.
func TestSIGTERMStopsAStalledGit(t *testing.T) {
	bin := binary(t)
	key := sshKey(t)
	res := filepath.Join(filepath.Dir(bin), "opt", "resource")
	for _, transport := range []string{"http", "ssh"} {
		t.Run(transport+"/status", func(t *testing.T) {
			srv, uri := stalledRepo(t, transport)
			var env []string
			if transport == "ssh" {
				env = append(env, "POOL_REPO_SSH_PRIVATE_KEY="+key)
			}
			s := startStalled(t, bin, nil, env, "status", "--repo", uri)
			s.waitFor(t, "connection", srv.Connected())
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := s.exit(t); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.HasPrefix(s.stderr.String(), "poolboy: interrupted (terminated signal received): ") {
				t.Errorf("stderr %q does not say poolboy was interrupted", s.stderr.String())
			}
			s.clean(t)
		})
		t.Run(transport+"/out", func(t *testing.T) {
			srv, uri := stalledRepo(t, transport)
			source := map[string]any{"uri": uri, "branch": "main", "pool": "aws"}
			if transport == "ssh" {
				source["private_key"] = key
			}
			req, _ := json.Marshal(map[string]any{"source": source, "params": map[string]any{"acquire": true}})
			s := startStalled(t, filepath.Join(res, "out"), bytes.NewReader(req), nil, t.TempDir())
			s.waitFor(t, "connection", srv.Connected())
			if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if code := s.exit(t); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if !strings.HasPrefix(s.stderr.String(), "aborted") || s.stdout.Len() > 0 {
				t.Errorf("stdout %q, stderr %q: want only the interruption", s.stdout.String(), s.stderr.String())
			}
			s.clean(t)
		})
	}
}

// A second SIGTERM exits at once (128 + 15), even while a push is on the wire
// (which the first lets finish), killing git and removing the temporary files.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	bin := binary(t)
	root := t.TempDir()
	err := fixture.Build(context.Background(), filepath.Join(root, "locks.git"), fixture.Spec{Branch: "main", Pools: []string{"aws"},
		Start: time.Now().Add(-time.Hour), Ops: []fixture.Op{{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: time.Now().Add(-time.Minute)}}})
	if err != nil {
		t.Fatal(err)
	}
	backend, err := url.Parse(testenv.GitHTTP(t, root, "", "").URL)
	if err != nil {
		t.Fatal(err)
	}
	// Fetches reach the git server; a push gets no answer.
	proxy := httputil.NewSingleHostReverseProxy(backend)
	pushing := make(chan struct{})
	var once bool
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, "git-receive-pack") || strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			if !once {
				once = true
				close(pushing)
			}
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })

	source := map[string]any{"uri": srv.URL + "/locks.git", "branch": "main", "pool": "aws"}
	req, _ := json.Marshal(map[string]any{"source": source, "params": map[string]any{"acquire": true}})
	s := startStalled(t, filepath.Join(filepath.Dir(bin), "opt", "resource", "out"), bytes.NewReader(req), nil, t.TempDir())
	s.waitFor(t, "push", pushing)
	// The first SIGTERM lets the push go on; one of the next ones ends poolboy.
	// Signals sent close together may merge into one, hence the repeats.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	end := time.After(exitGuard)
	for exited := false; !exited; {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			exited = true
		case <-tick.C:
		case <-end:
			t.Fatalf("poolboy did not exit within %s of repeated SIGTERMs\nstderr: %s", exitGuard, s.stderr.String())
		}
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("exit status %d, want 143; stderr %q", code, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "terminated signal received again: exiting at once") || s.stdout.Len() > 0 {
		t.Errorf("stdout %q, stderr %q", s.stdout.String(), s.stderr.String())
	}
	s.clean(t)
}

// unread is how many bytes written to the pipe w nobody has read yet.
func unread(t *testing.T, w *os.File) int {
	t.Helper()
	var n int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, w.Fd(), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatalf("FIONREAD: %v", errno)
	}
	return int(n)
}

// Concourse aborts a step while its stdin is still open: the script exits at
// once and says it was aborted while reading the request.
func TestSIGTERMWhileStdinIsOpen(t *testing.T) {
	bin := binary(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s := startStalled(t, filepath.Join(filepath.Dir(bin), "opt", "resource", "out"), r, nil, t.TempDir())
	r.Close()
	if _, err := w.WriteString(`{"source":`); err != nil { // part of a request, then nothing
		t.Fatal(err)
	}
	// Once poolboy has read what was written, it is reading stdin, and its
	// signal handling (set up before) is in place.
	for end := time.Now().Add(exitGuard); unread(t, w) > 0; {
		if time.Now().After(end) {
			t.Fatalf("poolboy read nothing of its stdin within %s", exitGuard)
		}
		time.Sleep(10 * time.Millisecond) // polling the pipe, not synchronisation
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.exit(t); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if got := s.stderr.String(); got != "aborted while reading the request (terminated signal received)\n" || s.stdout.Len() > 0 {
		t.Errorf("stdout %q, stderr %q", s.stdout.String(), got)
	}
	s.clean(t)
}
