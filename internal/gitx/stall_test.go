package gitx

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// An HTTP server that accepts the connection and never answers: git gives up
// on its own (curl's low-speed limit; shortened here through git_config, which
// overrides poolboy's 30 s), and that is unreachable, so it is retried.
func TestAStalledHTTPServerIsUnreachable(t *testing.T) {
	testenv.RequireCommand(t, "git")
	srv := testenv.Stall(t)
	done := make(chan error, 1)
	go func() {
		r, err := Open(context.Background(), Options{URL: "http://" + srv.Addr + "/locks.git",
			GitConfig: []ConfigEntry{{"http.lowSpeedTime", "1"}}})
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "Operation too slow") {
			t.Errorf("error %v, want an unreachable remote that was too slow", err)
		}
	case <-time.After(time.Minute): // a failure guard, not a speed budget
		t.Fatal("git still waiting on a server that never answers")
	}
}

// With a key, poolboy's ssh bounds the connection, the handshake and a silence.
func TestPoolboysSSHCommandBoundsAStall(t *testing.T) {
	r := &Repo{opts: Options{Auth: Auth{PrivateKey: []byte("key\n")}}}
	if err := r.prepareAuth(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var ssh string
	for _, e := range r.env {
		if v, ok := strings.CutPrefix(e, "GIT_SSH_COMMAND="); ok {
			ssh = v
		}
	}
	for _, want := range []string{"-o ConnectTimeout=30", "-o ServerAliveInterval=10", "-o ServerAliveCountMax=3"} {
		if !strings.Contains(ssh, want) {
			t.Errorf("GIT_SSH_COMMAND %q lacks %s", ssh, want)
		}
	}
}

// shortStall makes the silence bound d for the rest of the test.
func shortStall(t *testing.T, d time.Duration) {
	old := stallTimeout
	stallTimeout = d
	t.Cleanup(func() { stallTimeout = old })
}

// settled runs f and returns its error; a git that would wait for ever fails the
// test instead of hanging it.
func settled(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Minute): // a failure guard, not a speed budget
		t.Fatal("git still waiting on a server that sends nothing")
		return nil
	}
}

// marked puts a marker in the environment of every process the test starts, and
// at cleanup fails the test if one of them is still running.
func marked(t *testing.T) {
	k, v, _ := strings.Cut(testenv.Marker(t), "=")
	t.Setenv(k, v)
	t.Cleanup(func() {
		if left := testenv.Leftovers(t, k+"="+v); len(left) > 0 {
			t.Errorf("processes left behind: %q", left)
		}
	})
}

// wantGivenUp checks that err is a stalled remote given up on: unreachable (so
// it is retried), in one line.
func wantGivenUp(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "sent nothing for") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %v, want one line saying the remote sent nothing, unreachable", err)
	}
	if errors.Is(err, ErrRejected) || errors.Is(err, ErrRefused) {
		t.Errorf("error %v claims a verdict the remote never gave", err)
	}
}

// A git:// server that accepts the connection and never answers: git itself
// would wait for ever.
func TestASilentGitDaemonIsGivenUpOn(t *testing.T) {
	testenv.RequireCommand(t, "git")
	shortStall(t, time.Second)
	marked(t)
	srv := testenv.Stall(t)
	err := settled(t, func() error {
		r, err := Open(context.Background(), Options{URL: "git://" + srv.Addr + "/locks.git"})
		if err == nil {
			r.Close()
		}
		return err
	})
	wantGivenUp(t, err)
}

// A live sshd whose session runs a command that says nothing: ssh's keepalives
// are answered, so only the silence bound ends it.
func TestASilentSSHServerIsGivenUpOn(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // ssh keeps the test server's host key there
	shortStall(t, time.Second)
	marked(t)
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	sshd := testenv.SSHD(t, filepath.Dir(dir))
	// cat reads git's request, answers nothing, and ends with the connection.
	key := sshd.AddKeyWithCommand(t, "cat >/dev/null")
	err := settled(t, func() error {
		r, err := Open(context.Background(), Options{URL: sshd.URL(dir), Auth: Auth{PrivateKey: key}})
		if err == nil {
			r.Close()
		}
		return err
	})
	wantGivenUp(t, err)
}

// silencingProxy forwards connections to target until silence is called; from
// then on it hands them to a server that never answers.
func silencingProxy(t *testing.T, target string) (addr string, silence func()) {
	t.Helper()
	silent := testenv.Stall(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var to atomic.Value
	to.Store(target)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to.Load().(string))
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); up.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String(), func() { to.Store(silent.Addr) }
}

// After a good clone the server goes silent: every later network command is
// given up on, a shallow clone's deepening and a push included.
func TestAServerThatFallsSilentAfterTheCloneIsGivenUpOn(t *testing.T) {
	ctx := context.Background()
	for name, op := range map[string]func(r *Repo) error{
		"fetch":       func(r *Repo) error { _, err := r.Fetch(ctx); return err },
		"deepen":      func(r *Repo) error { return r.Deepen(ctx) },
		"remote head": func(r *Repo) error { _, err := r.RemoteHead(ctx); return err },
		"push": func(r *Repo) error {
			head, err := r.Head(ctx)
			if err != nil {
				return err
			}
			return r.Push(ctx, commitOn(t, r, head))
		},
	} {
		t.Run(name, func(t *testing.T) {
			shortStall(t, time.Second)
			marked(t)
			root := t.TempDir()
			remote(t, root, "locks.git", "main", 4)
			daemon := strings.TrimSuffix(strings.TrimPrefix(testenv.GitDaemon(t, root), "git://"), "/")
			addr, silence := silencingProxy(t, daemon)
			r := mustOpen(t, Options{URL: "git://" + addr + "/locks.git", Depth: 1})
			silence()
			wantGivenUp(t, settled(t, func() error { return op(r) }))
		})
	}
}

// commitOn makes an empty commit on parent in r.
func commitOn(t *testing.T, r *Repo, parent string) string {
	t.Helper()
	ctx := context.Background()
	c, err := r.Input(ctx, strings.NewReader("test"), nil, "commit-tree", parent+"^{tree}", "-p", parent, "-F", "-")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(c))
}

// hooked is a bare repository whose pre-receive hook runs script.
func hooked(t *testing.T, script string) string {
	t.Helper()
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	hook := filepath.Join(dir, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A pre-receive hook silent for longer than a push's bound: the push is given
// up on, unsettled (not a verdict), and its hook is stopped with it.
func TestAPushWhoseHookIsSilentTooLongIsGivenUpOn(t *testing.T) {
	shortStall(t, time.Second)
	marked(t)
	dir := hooked(t, "exec sleep 600")
	ctx := context.Background()
	r := mustOpen(t, Options{URL: dir})
	head, err := r.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := commitOn(t, r, head)
	wantGivenUp(t, settled(t, func() error { return PushChecked(ctx, r, head, c) }))
	if got := testenv.Git(t, dir, "rev-parse", "main"); got != head {
		t.Errorf("remote at %s, want %s: the push was not stopped", got, head)
	}
}

// A hook that is silent longer than the stall bound but less than a push's
// (twice it) is waited for: a push given up on then might land unseen.
func TestAPushWaitsForAHookSilentLongerThanTheStallBound(t *testing.T) {
	shortStall(t, 3*time.Second)
	dir := hooked(t, "sleep 4")
	ctx := context.Background()
	r := mustOpen(t, Options{URL: dir})
	head, err := r.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := commitOn(t, r, head)
	if err := settled(t, func() error { return r.Push(ctx, c) }); err != nil {
		t.Fatal(err)
	}
	if got := testenv.Git(t, dir, "rev-parse", "main"); got != c {
		t.Errorf("remote at %s, want %s", got, c)
	}
}

// What --progress prints stays out of errors; what git and the remote say does not.
func TestProgressStaysOutOfErrors(t *testing.T) {
	for _, tc := range []struct{ stderr, want string }{
		{"Cloning into bare repository 'x.git'...\nremote: Enumerating objects: 2, done.        \n" +
			"remote: Counting objects:  50% (1/2)        \rremote: Counting objects: 100% (2/2), done.        \n" +
			"remote: Total 2 (delta 0), reused 0 (delta 0), pack-reused 0        \n" +
			"Receiving objects:  50% (1/2)\rReceiving objects: 100% (2/2), 183 bytes | 183.00 KiB/s, done.\n" +
			"fatal: early EOF\n", "fatal: early EOF"},
		{"Enumerating objects: 1, done.\nWriting objects: 100% (1/1), 204 bytes | 204.00 KiB/s, done.\nTotal 1 (delta 0), reused 0 (delta 0), pack-reused 0\n" +
			"remote: Protected branch: 2 reviews needed\nTo git://host/locks.git\nerror: failed to push some refs", "remote: Protected branch: 2 reviews needed\nTo git://host/locks.git\nerror: failed to push some refs"},
	} {
		if got := withoutProgress([]byte(tc.stderr)); got != tc.want {
			t.Errorf("withoutProgress(%q) = %q, want %q", tc.stderr, got, tc.want)
		}
	}
}
