//go:build unix

package testenv

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the child in its own process group so
// signalProcessGroup reaches the children it forks too.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalProcessGroup sends SIGTERM (graceful) or SIGKILL to the child's group.
func signalProcessGroup(cmd *exec.Cmd, graceful bool) error {
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	return syscall.Kill(-cmd.Process.Pid, sig)
}
