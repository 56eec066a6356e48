// Command poolboy keeps Concourse pool-resource lock repositories healthy. Invoked
// as check, in or out (the links in /opt/resource), it is the pool resource.
package main

import (
	"os"
	"path/filepath"
	"slices"

	"github.com/poolboy-ci/poolboy/internal/cli"
)

func main() {
	// SIGTERM is how Concourse aborts a step: stop waiting, push nothing more.
	ctx := cli.Signals()
	var code int
	if script := filepath.Base(os.Args[0]); slices.Contains(cli.Scripts, script) {
		code = cli.Resource(ctx, script, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, cli.OSEnv)
	} else {
		code = cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.OSEnv)
	}
	os.Exit(code)
}
