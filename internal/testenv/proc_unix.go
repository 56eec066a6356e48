//go:build unix

package testenv

import (
	"os/exec"
	"sync"
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

// reservePort binds 127.0.0.1:port without listening on it. Connections to the
// port are then refused, as by a stopped server, but no other socket can take
// the port (the kernel never picks an explicitly bound port for an outgoing
// connection), while a server that sets SO_REUSEADDR can still bind and listen.
func reservePort(port int) (release func(), err error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	var once sync.Once // a second close could close a reused descriptor
	return func() { once.Do(func() { syscall.Close(fd) }) }, nil
}
