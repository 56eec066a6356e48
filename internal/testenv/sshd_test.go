//go:build unix

package testenv

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sshFixture starts sshd over a root holding a seeded bare locks.git.
func sshFixture(t *testing.T) (srv *SSHServer, root, bare string) {
	t.Helper()
	root = t.TempDir()
	bare = newBare(t, root, "locks.git")
	seed(t, bare, nil) // local path: SSH is what is under test
	return SSHD(t, root), root, bare
}

func TestSSHDCloneAndPushWithKey(t *testing.T) {
	srv, root, bare := sshFixture(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("ssh://%s@127.0.0.1:%d%s/locks.git", u.Username, srv.Port, root)
	if got := srv.URL("locks.git"); got != want {
		t.Errorf("URL(locks.git) = %q, want %q", got, want)
	}
	if got := srv.URL(bare); got != want {
		t.Errorf("URL(%s) = %q, want %q", bare, got, want)
	}
	if kh := srv.KnownHostsLine(); !strings.HasPrefix(kh, fmt.Sprintf("[127.0.0.1]:%d ssh-ed25519 AAAA", srv.Port)) {
		t.Errorf("KnownHostsLine = %q", kh)
	}

	key := srv.AddKey(t)
	if !bytes.HasPrefix(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
		t.Fatalf("AddKey returned %.40q..., want an OpenSSH private key", key)
	}
	if cipher := keyCipher(t, key); cipher != "none" {
		t.Errorf("AddKey key cipher = %q, want none", cipher)
	}
	env := []string{"GIT_SSH_COMMAND=" + srv.GitSSHCommand(t, key)}

	dir := filepath.Join(t.TempDir(), "clone")
	GitEnv(t, "", env, "clone", "-q", srv.URL("locks.git"), dir)
	if _, err := os.Stat(filepath.Join(dir, "free", "a")); err != nil {
		t.Fatalf("clone over ssh has no free/a: %v", err)
	}
	// Clone's Move (fetch, reset, mv, commit, push) over ssh. NewClone
	// cannot take Env before its first ls-remote, so build it directly.
	c := &Clone{Dir: dir, Env: env, branch: "main"}
	c.Move(t, "free/a", "claimed/a", "claim a")
	if got, want := Git(t, bare, "rev-parse", "main"), Git(t, dir, "rev-parse", "HEAD"); got != want {
		t.Errorf("bare main = %s, pushed %s", got, want)
	}
	if got, want := c.RemoteHead(t), Git(t, bare, "rev-parse", "main"); got != want {
		t.Errorf("RemoteHead over ssh = %q, want %q", got, want)
	}
}

func TestSSHDRejectsWrongKeyAndWrongHostKey(t *testing.T) {
	srv, root, _ := sshFixture(t)
	good := srv.AddKey(t)
	url := srv.URL("locks.git")

	// A key sshd never authorized.
	other := SSHD(t, root)
	stranger := other.AddKey(t)
	_, stderr, err := runGit(t, "", []string{"GIT_SSH_COMMAND=" + srv.GitSSHCommand(t, stranger)},
		"ls-remote", url)
	if err == nil {
		t.Fatal("ls-remote with an unauthorized key succeeded")
	}
	if !strings.Contains(stderr, "Permission denied (publickey)") {
		t.Errorf("unauthorized key stderr = %q, want Permission denied (publickey)", stderr)
	}

	// The right key, but known_hosts holds another server's host key:
	// StrictHostKeyChecking=yes must refuse before authenticating.
	_, stderr, err = runGit(t, "", []string{"GIT_SSH_COMMAND=" + other.GitSSHCommand(t, good)},
		"ls-remote", url)
	if err == nil {
		t.Fatal("ls-remote with a mismatching known_hosts succeeded")
	}
	if !strings.Contains(stderr, "Host key verification failed") {
		t.Errorf("wrong host key stderr = %q, want Host key verification failed", stderr)
	}

	// And the right key with the right known_hosts works.
	if _, stderr, err := runGit(t, "", []string{"GIT_SSH_COMMAND=" + srv.GitSSHCommand(t, good)},
		"ls-remote", url); err != nil {
		t.Fatalf("ls-remote with the authorized key: %v\n%s", err, stderr)
	}
}

// sshAskpass writes a 0700 SSH_ASKPASS script printing $TEST_SSH_PASSPHRASE,
// so the passphrase never appears in argv.
func sshAskpass(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ssh-askpass.sh")
	script := "#!" + RequireCommand(t, "sh") + "\nprintf '%s\\n' \"$TEST_SSH_PASSPHRASE\"\n"
	if err := os.WriteFile(p, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

// runGitNoTTY runs git in a new session, so ssh has no controlling
// terminal to prompt on even when go test runs from one; DISPLAY is
// removed so ssh falls back to no default askpass program either.
func runGitNoTTY(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, RequireCommand(t, "git"), args...)
	for _, kv := range gitEnv(t, env) {
		if !strings.HasPrefix(kv, "DISPLAY=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSSHDPassphraseKey(t *testing.T) {
	srv, _, _ := sshFixture(t)
	const pass = "correct horse battery staple"
	key := srv.AddKeyWithPassphrase(t, pass)
	if cipher := keyCipher(t, key); cipher == "none" {
		t.Fatal("AddKeyWithPassphrase returned an unencrypted key")
	}
	if bytes.Contains(key, []byte(pass)) {
		t.Fatal("private key contains the passphrase in clear")
	}
	sshCmd := "GIT_SSH_COMMAND=" + srv.GitSSHCommand(t, key)
	ask := sshAskpass(t)
	url := srv.URL("locks.git")

	// With the passphrase through SSH_ASKPASS (forced: no DISPLAY needed).
	dir := filepath.Join(t.TempDir(), "clone")
	if out, err := runGitNoTTY(t, []string{sshCmd, "SSH_ASKPASS=" + ask, "SSH_ASKPASS_REQUIRE=force",
		"TEST_SSH_PASSPHRASE=" + pass}, "clone", "-q", url, dir); err != nil {
		t.Fatalf("clone with passphrase via SSH_ASKPASS: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "free", "a")); err != nil {
		t.Fatalf("clone has no free/a: %v", err)
	}

	// Without any way to get the passphrase.
	out, err := runGitNoTTY(t, []string{sshCmd}, "ls-remote", url)
	if err == nil {
		t.Fatal("ls-remote with an encrypted key and no askpass succeeded")
	}
	if !strings.Contains(out, "Permission denied (publickey)") {
		t.Errorf("no askpass output = %q, want Permission denied (publickey)", out)
	}

	// With the wrong passphrase.
	out, err = runGitNoTTY(t, []string{sshCmd, "SSH_ASKPASS=" + ask, "SSH_ASKPASS_REQUIRE=force",
		"TEST_SSH_PASSPHRASE=wrong"}, "ls-remote", url)
	if err == nil {
		t.Fatal("ls-remote with the wrong passphrase succeeded")
	}
	if !strings.Contains(out, "Permission denied (publickey)") {
		t.Errorf("wrong passphrase output = %q, want Permission denied (publickey)", out)
	}
}

func TestSSHDConcurrentConnections(t *testing.T) {
	srv, _, bare := sshFixture(t)
	env := []string{"GIT_SSH_COMMAND=" + srv.GitSSHCommand(t, srv.AddKey(t))}
	want := Git(t, bare, "rev-parse", "main")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, stderr, err := runGit(t, "", env, "ls-remote", srv.URL("locks.git"), "refs/heads/main")
			if err != nil || !strings.HasPrefix(out, want) {
				errs <- fmt.Sprintf("ls-remote = %q, %v: %s", out, err, stderr)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestSSHDStoppedAtCleanup(t *testing.T) {
	root := t.TempDir()
	newBare(t, root, "locks.git")
	var addr string
	t.Run("serve", func(t *testing.T) {
		srv := SSHD(t, root)
		addr = srv.Addr
		GitEnv(t, "", []string{"GIT_SSH_COMMAND=" + srv.GitSSHCommand(t, srv.AddKey(t))},
			"ls-remote", srv.URL("locks.git"))
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("sshd still accepting on %s after cleanup", addr)
	}
}

func TestSSHDMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := sshdCandidates
	sshdCandidates = []string{filepath.Join(t.TempDir(), "no-sshd")}
	defer func() { sshdCandidates = saved }()

	t.Setenv("CI", "true")
	f := runFake(t, func(tb testing.TB) { SSHD(tb, t.TempDir()) })
	if f.fatal == "" || f.skip != "" || !strings.Contains(f.fatal, "openssh-server") {
		t.Errorf("CI=true: fatal=%q skip=%q, want a fatal naming openssh-server", f.fatal, f.skip)
	}
	t.Setenv("CI", "")
	f = runFake(t, func(tb testing.TB) { SSHD(tb, t.TempDir()) })
	if f.skip == "" || f.fatal != "" {
		t.Errorf("CI unset: fatal=%q skip=%q, want a skip", f.fatal, f.skip)
	}
}

// keyCipher returns the cipher name of an OpenSSH-format private key
// ("none" when it has no passphrase).
func keyCipher(t *testing.T, pemKey []byte) string {
	t.Helper()
	s := string(pemKey)
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "-----BEGIN OPENSSH PRIVATE KEY-----")
	s = strings.TrimSuffix(s, "-----END OPENSSH PRIVATE KEY-----")
	raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatalf("decode private key: %v", err)
	}
	const magic = "openssh-key-v1\x00"
	if !bytes.HasPrefix(raw, []byte(magic)) || len(raw) < len(magic)+4 {
		t.Fatalf("not an openssh-key-v1 key")
	}
	raw = raw[len(magic):]
	n := int(raw[0])<<24 | int(raw[1])<<16 | int(raw[2])<<8 | int(raw[3])
	if len(raw) < 4+n {
		t.Fatalf("truncated private key")
	}
	return string(raw[4 : 4+n])
}
