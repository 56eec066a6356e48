package resource

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// The resource over real SSH (Debian's sshd on loopback): private_key, and a
// passphrase-protected key through private_key_passphrase.
func TestOverSSH(t *testing.T) {
	// ssh records the test server's host key under HOME: keep it out of the real one.
	home := t.TempDir()
	t.Setenv("HOME", home)
	bare := awsRepo(t)
	sshd := testenv.SSHD(t, filepath.Dir(bare))
	url := sshd.URL(bare)
	const passphrase = "canary-passphrase-4e1d"

	t.Run("key", func(t *testing.T) {
		key := sshd.AddKey(t)
		r := mustOut(t, t.TempDir(), src(url, "private_key", string(key)), map[string]any{"acquire": true}, nil)
		if r.Version.Ref == "" {
			t.Fatalf("no version: %+v", r)
		}
		wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
		if strings.Contains(r.log, "PRIVATE KEY") {
			t.Errorf("key material in the log:\n%s", r.log)
		}
		// Under $HOME, not the passwd entry's home: a host key another server once had
		// on this port (the real known_hosts) cannot fail the connection.
		known, err := os.ReadFile(filepath.Join(home, ".ssh", "known_hosts"))
		if fields := strings.Fields(sshd.KnownHostsLine()); err != nil || len(fields) < 3 || !strings.Contains(string(known), fields[2]) {
			t.Errorf("the server's host key is not in $HOME/.ssh/known_hosts (%v):\n%s", err, known)
		}
	})
	t.Run("passphrase", func(t *testing.T) {
		key := sshd.AddKeyWithPassphrase(t, passphrase)
		dir := t.TempDir()
		writeStep(t, dir, "lock", map[string]string{"name": "env-1"})
		r := mustOut(t, dir, src(url, "private_key", string(key), "private_key_passphrase", passphrase), map[string]any{"release": "lock"}, nil)
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
		if strings.Contains(r.log, passphrase) {
			t.Errorf("passphrase in the log:\n%s", r.log)
		}

		_, err := out(t, context.Background(), t.TempDir(), src(url, "private_key", string(key), "private_key_passphrase", "wrong-"+passphrase), map[string]any{"acquire": true}, nil, nil)
		if err == nil || strings.Contains(err.Error(), passphrase) || strings.Contains(err.Error(), "\n") {
			t.Fatalf("wrong passphrase: %v", err)
		}
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
	})
}
