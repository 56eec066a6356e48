//go:build !unix

package testenv

import "os/exec"

func setProcessGroup(cmd *exec.Cmd) {}

func signalProcessGroup(cmd *exec.Cmd, graceful bool) error { return cmd.Process.Kill() }

func reservePort(port int) (release func(), err error) { return func() {}, nil }
