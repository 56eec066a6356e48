package gitx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A server that refuses poolboy's key and offers password authentication (a
// typo'd host, a hijacked name: StrictHostKeyChecking=accept-new lets poolboy
// reach it) never receives the key's passphrase as a password: ssh with a key
// from poolboy authenticates with public keys only, and the clone fails with
// ssh's own one-line reason.
func TestAKeysPassphraseIsNeverSentAsAPassword(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // a first contact: no known host key
	root := t.TempDir()
	remote(t, root, "locks.git", "main", 1)
	sshd := testenv.SSHDWithPasswords(t, root)
	const passphrase = "canary-passphrase-never-a-password-3c9"
	key := sshd.UnauthorizedKey(t, passphrase)

	r, err := Open(context.Background(), Options{URL: sshd.URL("locks.git"), Auth: Auth{PrivateKey: key, PrivateKeyPassphrase: passphrase}})
	if err == nil {
		r.Close()
		t.Fatal("clone with a key the server refuses succeeded")
	}
	log := sshd.Stop()
	msg := err.Error()
	if !strings.Contains(msg, "Permission denied (publickey,password)") || strings.Contains(msg, "\n") || strings.Contains(msg, passphrase) {
		t.Errorf("error %q, want one line naming ssh's refusal, without the passphrase", msg)
	}
	// The connection is in the log (sshd saw the key and refused it), so the log
	// would show a password attempt had there been one.
	if !strings.Contains(log, "Failed publickey for "+sshd.User) {
		t.Fatalf("sshd did not log the refused key:\n%s", log)
	}
	for _, attempt := range []string{"Failed password", "Failed keyboard-interactive"} {
		if strings.Contains(log, attempt) {
			t.Errorf("ssh tried another authentication than public keys (%s):\n%s", attempt, log)
		}
	}
}

// The askpass scripts answer only the prompt their secret is for: ssh's for the
// key's passphrase, git's for the HTTP username and password. Any other prompt
// (a server's password or keyboard-interactive one, a host key question) gets
// nothing and a failure, so ssh gives up on it.
func TestAskpassAnswersOnlyItsOwnPrompt(t *testing.T) {
	const passphrase, username, password = "askpass-passphrase-81d", "bot", "askpass-password-2fe"
	r := &Repo{opts: Options{Auth: Auth{PrivateKey: []byte("key\n"), PrivateKeyPassphrase: passphrase, Username: username, Password: password}}}
	if err := r.prepareAuth(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	env := map[string]string{}
	for _, kv := range r.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, tc := range []struct {
		script, prompt, answer string // answer "" for a refused prompt
	}{
		{"SSH_ASKPASS", "Enter passphrase for key '/proc/1/fd/3': ", passphrase},
		{"SSH_ASKPASS", "root@127.0.0.1's password: ", ""},
		{"SSH_ASKPASS", "(root@127.0.0.1) Password: ", ""},
		{"SSH_ASKPASS", "(root@127.0.0.1) Enter passphrase for key '/proc/1/fd/3': ", ""},
		{"SSH_ASKPASS", "Are you sure you want to continue connecting (yes/no/[fingerprint])? ", ""},
		{"SSH_ASKPASS", "", ""},
		{"GIT_ASKPASS", "Username for 'https://git.example.com': ", username},
		{"GIT_ASKPASS", "Password for 'https://bot@git.example.com': ", password},
		{"GIT_ASKPASS", "Enter passphrase for key '/proc/1/fd/3': ", ""},
		{"GIT_ASKPASS", "root@127.0.0.1's password: ", ""},
	} {
		t.Run(fmt.Sprintf("%s %q", tc.script, tc.prompt), func(t *testing.T) {
			cmd := exec.Command(env[tc.script], tc.prompt)
			cmd.Env = append(os.Environ(), r.env...)
			out, err := cmd.Output()
			if tc.answer != "" {
				if err != nil || strings.TrimSuffix(string(out), "\n") != tc.answer {
					t.Errorf("answer %q (%v), want %q", out, err, tc.answer)
				}
				return
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) || len(out) != 0 {
				t.Errorf("answer %q (%v), want none and a non-zero exit", out, err)
			}
		})
	}
}

// ssh's notes (the host key it added on a first contact) stay out of poolboy's
// one-line errors; its errors stay in.
func TestSSHErrorsCarryNoWarnings(t *testing.T) {
	root := t.TempDir()
	remote(t, root, "locks.git", "main", 1)
	sshd := testenv.SSHD(t, root)
	closed := fmt.Sprintf("ssh://%s@127.0.0.1:%d/locks.git", sshd.User, testenv.FreePort(t))
	for _, tc := range []struct {
		name, url string
		key       []byte
		want      string
	}{
		{"refused key", sshd.URL("locks.git"), sshd.UnauthorizedKey(t, ""), "Permission denied (publickey)"},
		{"no such repository", sshd.URL("missing.git"), sshd.AddKey(t), "does not appear to be a git repository"},
		{"nothing listening", closed, sshd.AddKey(t), "Connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("HOME", t.TempDir()) // a first contact: no known host key
			r, err := Open(context.Background(), Options{URL: tc.url, Auth: Auth{PrivateKey: tc.key}})
			if err == nil {
				r.Close()
				t.Fatal("clone succeeded")
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "Permanently added") || strings.Contains(msg, "list of known hosts") {
				t.Errorf("error %q, want %q and no warning", msg, tc.want)
			}
		})
	}
}
