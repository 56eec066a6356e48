package watch

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// stalledConfig is a config of one repository on a server that accepts the
// connection and never answers, over transport (http or ssh).
func stalledConfig(t *testing.T, transport string) (*Config, *testenv.StallServer) {
	t.Helper()
	testenv.RequireCommand(t, "git")
	srv := testenv.Stall(t)
	repo := Repo{Name: "locks", URI: "http://" + srv.Addr + "/locks.git", Branch: "main",
		Timeouts: policy.Timeouts{"aws": time.Hour}, ReapOnSuccess: map[string]bool{}}
	if transport == "ssh" {
		testenv.RequireCommand(t, "ssh")
		key := filepath.Join(t.TempDir(), "key")
		if out, err := exec.Command(testenv.RequireCommand(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		b, err := os.ReadFile(key)
		if err != nil {
			t.Fatal(err)
		}
		repo.URI = "ssh://git@" + srv.Addr + "/locks.git"
		repo.Auth.PrivateKey = b
	}
	return &Config{File: "test.yaml", Interval: time.Hour, CacheDir: t.TempDir(), Repos: []Repo{repo}}, srv
}

// SIGTERM while a cycle is stuck on a server that never answers: the daemon
// stops once its grace is over (plus git's 2 s from SIGTERM to SIGKILL), and no
// git, git-remote-http or ssh is left running.
func TestShutdownWithinTheGraceWhileACycleIsStuck(t *testing.T) {
	for _, transport := range []string{"http", "ssh"} {
		t.Run(transport, func(t *testing.T) {
			marker := testenv.Marker(t)
			name, value, _ := strings.Cut(marker, "=")
			t.Setenv(name, value) // git inherits it
			cfg, srv := stalledConfig(t, transport)
			d := start(t, cfg, Options{ShutdownGrace: 500 * time.Millisecond})
			select {
			case <-srv.Connected():
			case <-time.After(deadline):
				t.Fatal("the cycle never reached the server")
			}
			d.stop(t) // fails the test if Run does not return within the deadline
			if st := d.state(t, "locks"); st.Running || st.Cycles != 1 {
				t.Errorf("after shutdown: %+v", st)
			}
			if left := testenv.Leftovers(t, marker); len(left) > 0 {
				t.Errorf("processes left running after shutdown:\n%s", strings.Join(left, "\n"))
			}
		})
	}
}

// A cycle stuck on a server that never answers fails at cycle_timeout, saying
// so, and the repository's cycles go on.
func TestACycleStuckOnAStalledServerFailsAtItsDeadline(t *testing.T) {
	cfg, _ := stalledConfig(t, "http")
	cfg.CycleTimeout = 200 * time.Millisecond
	d := start(t, cfg, Options{MaxBackoff: 10 * time.Millisecond})
	st := d.waitCycles(t, "locks", 2)
	if !strings.HasPrefix(st.LastError, "the cycle took longer than cycle_timeout (200ms): ") {
		t.Errorf("last error %q, want it to name the deadline", st.LastError)
	}
}
