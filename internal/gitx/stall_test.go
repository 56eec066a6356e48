package gitx

import (
	"context"
	"errors"
	"strings"
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
