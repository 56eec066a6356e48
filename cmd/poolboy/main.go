// Command poolboy keeps Concourse pool-resource lock repositories healthy. Invoked
// as check, in or out (the links in /opt/resource), it is the pool resource.
package main

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/gitx"
)

func main() {
	script := filepath.Base(os.Args[0])
	if script == gitx.WatchdogName {
		gitx.Watchdog(os.Stdin)
		return
	}
	// The watchdog cleans up after a panic or a SIGKILL; without one (the binary
	// cannot be found again), poolboy still works, unguarded.
	if exe, err := os.Executable(); err == nil {
		gitx.UseWatchdog(exe)
	}
	// SIGTERM is how Concourse aborts a step: stop waiting, push nothing more.
	ctx := cli.Signals()
	var code int
	if slices.Contains(cli.Scripts, script) {
		code = cli.Resource(ctx, script, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.OSEnv)
	} else {
		code = cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.OSEnv)
	}
	cli.Exit(code)
}
