package testenv

import (
	"fmt"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// serve starts a server process in its own process group and polls ready until
// it succeeds, for at most wait. On success the whole group is stopped at cleanup
// (beforeStop, if set, runs first with the server's pid, for processes that left
// the group), or earlier by calling the returned stop, which waits for the server
// to exit: graceful sends SIGTERM, so the server and the children serving
// connections clean up (git removes its ref lock files), else SIGKILL. On failure
// it is stopped already. output collects what it printed.
func serve(t testing.TB, name string, cmd *exec.Cmd, output *lockedBuffer, wait time.Duration, ready func() error, beforeStop func(pid int)) (stop func(graceful bool), err error) {
	t.Helper()
	cmd.WaitDelay = 5 * time.Second
	// Own process group: servers fork a child per connection, and stopping must
	// take those with it.
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop = func(graceful bool) {
		once.Do(func() {
			if beforeStop != nil {
				beforeStop(pid)
			}
			_ = signalProcessGroup(cmd, graceful)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Errorf("%s (pid %d) did not exit after kill", name, pid)
			}
		})
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready()
		if err == nil {
			t.Cleanup(func() {
				stop(false)
				if t.Failed() {
					t.Logf("%s output:\n%s", name, output.String())
				}
			})
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop(false)
			return nil, fmt.Errorf("%s not ready after %s: %v\n%s", name, wait, err, output.String())
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited early: %v\n%s", name, waitErr, output.String())
		case <-tick.C:
		}
	}
}
