// Command poolboy keeps Concourse pool-resource lock repositories healthy. Invoked
// as check, in or out (the links in /opt/resource), it is the pool resource.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/poolboy-ci/poolboy/internal/cli"
)

func main() {
	// SIGTERM is how Concourse aborts a step: stop waiting, push nothing more. The
	// handler stays until os.Exit: a SIGTERM that arrives once the work is done
	// must not kill the process and hide the exit status it has earned.
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var code int
	if script := filepath.Base(os.Args[0]); slices.Contains(cli.Scripts, script) {
		code = cli.Resource(ctx, script, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.OSEnv)
	} else {
		code = cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.OSEnv)
	}
	os.Exit(code)
}
