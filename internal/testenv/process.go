package testenv

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
)

// serve starts a server process in its own process group and polls ready until
// it succeeds, for at most wait. On success the whole group is stopped at cleanup
// (beforeStop, if set, runs first with the server's pid, for processes that left
// the group); on failure it is stopped already. output collects what it printed.
func serve(t testing.TB, name string, cmd *exec.Cmd, output *lockedBuffer, wait time.Duration, ready func() error, beforeStop func(pid int)) error {
	t.Helper()
	cmd.WaitDelay = 5 * time.Second
	// Own process group: servers fork a child per connection, and stopping must
	// take those with it.
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() {
		if beforeStop != nil {
			beforeStop(pid)
		}
		_ = killProcessGroup(cmd)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not exit after kill", name, pid)
		}
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("%s output:\n%s", name, output.String())
				}
			})
			return nil
		}
		if time.Now().After(deadline) {
			stop()
			return fmt.Errorf("%s not ready after %s: %v\n%s", name, wait, err, output.String())
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited early: %v\n%s", name, waitErr, output.String())
		case <-tick.C:
		}
	}
}
