package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/poolboy-ci/poolboy/internal/resource"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// Scripts are the names under which the binary acts as the pool resource:
// /opt/resource/{check,in,out} are links to it.
var Scripts = []string{"check", "in", "out"}

// Resource runs the pool resource's script (check, in or out) with Concourse's
// arguments: in and out take the build's directory. It returns the exit status,
// 1 for every failure (bad payloads included, as upstream's scripts);
// the answer goes to stdout, everything else to stderr.
func Resource(ctx context.Context, script string, args []string, stdin io.Reader, stdout, stderr io.Writer, env Env) int {
	err := runScript(ctx, script, args, stdin, stdout, stderr, resource.Env(env))
	if err != nil {
		fmt.Fprintf(stderr, "%s\n", term.Line(err.Error()))
		return ExitError
	}
	return ExitOK
}

func runScript(ctx context.Context, script string, args []string, stdin io.Reader, stdout, stderr io.Writer, env resource.Env) error {
	switch {
	case script == "check" && len(args) <= 1: // Concourse passes no argument to check; tolerate one
		return resource.Check(ctx, stdin, stdout, stderr, env)
	case script == "in" && len(args) == 1:
		return resource.In(ctx, args[0], stdin, stdout, stderr, env)
	case script == "out" && len(args) == 1:
		return resource.Out(ctx, args[0], stdin, stdout, stderr, env)
	case script == "in" || script == "out":
		return fmt.Errorf("usage: %s DIR (the build's directory), request JSON on stdin", script)
	}
	return fmt.Errorf("unknown resource script %q (want check, in or out)", script)
}

func resourceCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resource check|in|out [DIR]",
		Short: "Act as the Concourse pool resource's check, in or out script",
		Long: `resource runs one script of the pool resource, exactly as /opt/resource/check,
/opt/resource/in and /opt/resource/out do in the image (they are links to this
binary): the request JSON on stdin, the answer JSON on stdout, logs on stderr.
Exit status: 0 done, 1 for every failure, a bad request or bad usage included
(as the upstream pool resource's scripts).`,
		Args: cobra.RangeArgs(1, 2),
		// The scripts take their settings from the request, not from POOL_* variables.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			return runScript(cmd.Context(), args[0], args[1:], cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), resource.Env(env))
		},
	}
	// The scripts exit 1 for every failure, bad usage included, as upstream's do:
	// Concourse only tells 0 from the rest, and `poolboy resource` is the same script.
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return err })
	return cmd
}
