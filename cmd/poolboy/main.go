// Command poolboy keeps Concourse pool-resource lock repositories healthy.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/poolboy-ci/poolboy/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.OSEnv)
	stop()
	os.Exit(code)
}
