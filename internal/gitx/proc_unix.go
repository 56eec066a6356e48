//go:build unix

package gitx

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// ownGroup runs cmd in a process group of its own, and makes cancelling it send
// SIGTERM to the whole group: git's helpers (git-remote-http, sh -c ssh, ssh)
// hold its pipes open, and killing git alone leaves them waiting on a stalled
// server forever. SIGTERM, not SIGKILL, so git removes its lock files.
func ownGroup(cmd *exec.Cmd) {
	newGroup(cmd)
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
}

// newGroup makes cmd the leader of a new process group.
func newGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killGroup sends SIGKILL to what is left of the group led by pid.
func killGroup(pid int) { _ = signalGroup(pid, syscall.SIGKILL) }

func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
