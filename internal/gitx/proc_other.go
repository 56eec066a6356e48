//go:build !unix

package gitx

import "os/exec"

// ownGroup: without process groups, cancelling kills git alone (exec's default).
func ownGroup(*exec.Cmd) {}

func newGroup(*exec.Cmd) {}

func killGroup(int) {}
