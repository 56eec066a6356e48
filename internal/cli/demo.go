package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/poolboy-ci/poolboy/internal/demo"
	"github.com/poolboy-ci/poolboy/internal/fixture"
)

func demoCmd() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Build a throwaway lock repository with realistic history, then run status and clean on it",
		Long: `demo needs nothing but git: it builds a bare lock repository in a temporary
directory (three pools, claims in several historical message formats, some fresh,
some hours old), then runs "status", "clean" and "status" again against it
through file://, exactly as you would against your own repository.`,
		Args: noArgs,
		// The demo ignores the caller's POOL_* and POOLBOY_* settings: it replaces the
		// root's hook that applies them.
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := os.MkdirTemp("", "poolboy-demo-")
			if err != nil {
				return err
			}
			if !keep {
				defer os.RemoveAll(dir)
			}
			remote := filepath.Join(dir, "locks.git")
			if err := fixture.Build(cmd.Context(), remote, demo.Spec(time.Now())); err != nil {
				return err
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			url := "file://" + remote
			// The demo must not pick up the caller's POOL_* settings.
			noEnv := func(string) (string, bool) { return "", false }
			for _, args := range [][]string{
				{"status", "--repo", url, "--pools", demo.Pools},
				{"clean", "--repo", url, "--pools", demo.Pools},
				{"status", "--repo", url, "--pools", demo.Pools},
			} {
				fmt.Fprintf(out, "$ poolboy %s --repo %s --pools %s\n", args[0], url, demo.Pools)
				root := newRoot(out, errOut, noEnv)
				root.SetArgs(args)
				if err := root.ExecuteContext(cmd.Context()); err != nil {
					return err
				}
				fmt.Fprintln(out)
			}
			if keep {
				fmt.Fprintf(out, "the demo repository is kept at %s\n", remote)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo repository and print where it is")
	return cmd
}
