package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/poolboy-ci/poolboy/internal/doctor"
)

func doctorCmd(o *options) *cobra.Command {
	var fix bool
	var attempts int
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "List every integrity problem with the history that explains it; --fix repairs the ones with one safe answer",
		Long: `doctor lists every integrity problem of the lock repository (a lock in both
claimed/ and unclaimed/, a lock claimed on two branches that were merged, a missing
claimed/, unclaimed/ or .gitkeep, something that is not a lock file where a lock
should be, a name that cannot be a lock's), each with the commit that last touched
it. With --fix it repairs the problems that have one safe answer, one commit each,
saying why, pushed fast-forward only (decided again when someone pushes first):

  - a missing .gitkeep, or a pool missing one of claimed/ and unclaimed/: added;
  - a lock in both states whose claimed copy has no live holder (its build ended,
    as Concourse says, or its claim is older than the pool's --pools timeout) and
    whose copies are the same file: the claimed copy is removed.

Anything else is left for a person, with the git commands that resolve it.

Exit status: 0 no problems (or all repaired), 1 problems remain or the run failed,
2 bad usage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if attempts < 1 {
				return usageError{fmt.Errorf("--max-attempts %d: must be at least 1", attempts)}
			}
			repo, rc, err := o.setup(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer repo.Close()
			cfg := doctor.Config{Timeouts: rc.Timeouts, ReapSucceeded: rc.ReapSucceeded, Witness: rc.Witness,
				Log: rc.Log, MaxAttempts: attempts}
			var res *doctor.Result
			if fix {
				res, err = doctor.Fix(cmd.Context(), repo, cfg)
			} else {
				res, err = doctor.Check(cmd.Context(), repo, cfg)
			}
			if err != nil {
				return err
			}
			if o.output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(res)
			} else {
				err = doctor.Text(cmd.OutOrStdout(), repo.URL(), repo.Branch(), res)
			}
			if err != nil {
				return err
			}
			if n := res.Left(); n > 0 {
				return fmt.Errorf("%d integrity %s left", n, plural(n, "problem"))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "repair the problems that have one safe answer, one commit each")
	cmd.Flags().IntVar(&attempts, "max-attempts", 5, "pushes to try when others keep pushing first")
	annotate(cmd.Flags(), "max-attempts", "POOLBOY_MAX_ATTEMPTS")
	return cmd
}
