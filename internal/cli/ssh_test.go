package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// status over SSH with a passphrase-protected key, as the resource can: the key in
// POOL_REPO_SSH_PRIVATE_KEY, its passphrase in POOL_REPO_SSH_PRIVATE_KEY_PASSPHRASE.
func TestStatusOverSSHWithAPassphraseKey(t *testing.T) {
	t.Setenv("HOME", t.TempDir()) // ssh records the test server's host key under HOME
	r := newLockRepo(t, "main")
	sshd := testenv.SSHD(t, filepath.Dir(r.dir))
	const passphrase = "canary-passphrase-91b2"
	key := sshd.AddKeyWithPassphrase(t, passphrase)
	env := map[string]string{"POOL_REPO_SSH_PRIVATE_KEY": string(key), "HOME": t.TempDir()}

	res := run(t, env, "status", "--repo", sshd.URL(r.dir))
	if res.code == 0 {
		t.Fatalf("status without the passphrase succeeded: %s", res)
	}
	env["POOL_REPO_SSH_PRIVATE_KEY_PASSPHRASE"] = passphrase
	res = mustRun(t, env, "status", "--repo", sshd.URL(r.dir))
	if !strings.Contains(res.stdout, "env-1") || strings.Contains(res.stdout+res.stderr, passphrase) {
		t.Errorf("status: %s", res)
	}
}
