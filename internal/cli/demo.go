package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/poolboy-ci/poolboy/internal/demo"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/report"
	"github.com/poolboy-ci/poolboy/internal/term"
)

func demoCmd() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show what poolboy decides, on a throwaway lock repository and a stand-in Concourse",
		Long: `demo needs nothing but git: it builds a bare lock repository in a temporary
directory and starts, in this process on 127.0.0.1, a stand-in for the Concourse
API that knows the builds holding its locks (one running for 5 hours, one aborted,
one failed, one that handed its lock on to a downstream job, one whose pipeline is
gone). Then it runs "status" with the timeouts only, "status" asking Concourse,
and "clean", through file://, exactly as you would against your own repository.
Last, three builds put acquire on the licences pool, whose one lock is held: they
wait in its queue, "status" shows where each stands, and the lock goes to them
in that order once it is released.`,
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
			w, err := demo.New(cmd.Context(), dir, time.Now())
			if err != nil {
				return err
			}
			defer w.Close()
			return runDemo(cmd, w, keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the demo repository and print the commands to run against it by hand")
	return cmd
}

func runDemo(cmd *cobra.Command, w *demo.World, keep bool) error {
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	repo := "file://" + w.Remote
	base := []string{"--repo", repo, "--pools", demo.Pools}
	cc := []string{"--concourse-url", w.Concourse.URL, "--concourse-username", demo.User}
	// run shows the command and runs it with stdout to stdout; extra are flags
	// not shown (status's --output json, which the demo renders as text itself).
	// The demo must not pick up the caller's settings: its environment is empty,
	// but for the stand-in's password, which reaches poolboy as yours should.
	run := func(stdout io.Writer, args []string, extra ...string) error {
		shown := strings.Join(args, " ")
		var env map[string]string
		if strings.Contains(shown, "--concourse-url") {
			shown += "   # and CONCOURSE_PASSWORD"
			env = map[string]string{"CONCOURSE_PASSWORD": demo.Password}
		}
		fmt.Fprintf(out, "$ poolboy %s\n", shown)
		root := newRoot(stdout, errOut, func(name string) (string, bool) {
			v, ok := env[name]
			return v, ok
		})
		root.SetArgs(append(args, extra...))
		return root.ExecuteContext(cmd.Context())
	}
	// status renders the run's JSON document as status's text, and keeps it to
	// compare.
	status := func(args ...string) (report.Doc, error) {
		var buf bytes.Buffer
		var d report.Doc
		if err := run(&buf, args, "--output", "json"); err != nil {
			return d, err
		}
		if err := json.Unmarshal(buf.Bytes(), &d); err != nil {
			return d, err
		}
		return d, report.Text(out, d)
	}

	fmt.Fprintf(out, "poolboy demo\n\n")
	fmt.Fprintf(out, "lock repository: %s (a throwaway, built just now)\n", repo)
	fmt.Fprintf(out, "Concourse:       %s: a STAND-IN for the Concourse API, running inside this demo\n", w.Concourse.URL)
	fmt.Fprintf(out, "                 (poolboy's test double, not a real Concourse; it is gone when the demo ends)\n")
	fmt.Fprintf(out, "pools:           %s (licences has no timeout)\n\n", demo.Pools)
	fmt.Fprintln(out, "the claimed locks, and what really happened to their builds:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, l := range w.Locks {
		fmt.Fprintf(tw, "  %s/%s\t%s ago\t%s\n", l.Pool, l.Name, policy.Human(l.Age), l.Story)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n== 1. the timeouts alone (what a reaper without Concourse does) ==\n\n")
	before, err := status(append([]string{"status"}, base...)...)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== 2. asking Concourse about the build that wrote each claim ==\n\n")
	asked, err := status(append(append([]string{"status"}, base...), cc...)...)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== what asking changed ==\n\n")
	if err := compare(out, before, asked); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== 3. clean, asking Concourse: frees what is stale, one commit each ==\n\n")
	if err := run(out, append(append([]string{"clean"}, base...), cc...)); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== 4. fair waiting: three builds want %s/%s, held by hand ==\n\n", demo.QueuePool, demo.QueueLock)
	err = queueScene(cmd.Context(), out, repo, func() error { return run(out, append(append([]string{"status"}, base...), cc...)) })
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(out, "\nthe demo repository is kept at %s\n", w.Remote)
		fmt.Fprintln(out, "the stand-in Concourse stops with the demo, so by hand only the timeouts decide:")
		for _, c := range []string{"status", "clean --dry-run", "doctor"} {
			fmt.Fprintf(out, "  poolboy %s --repo %s --pools %s\n", c, repo, demo.Pools)
		}
	}
	return nil
}

// compare prints, lock by lock, the verdict of the timeouts alone next to the
// one with Concourse's evidence, and why.
func compare(w io.Writer, before, asked report.Doc) error {
	was := map[string]string{}
	for _, p := range before.Pools {
		for _, l := range p.Locks {
			was[p.Name+"/"+l.Name] = l.Verdict
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  LOCK\tTIMEOUTS ONLY\tWITH CONCOURSE\tWHY")
	for _, p := range asked.Pools {
		for _, l := range p.Locks {
			name := p.Name + "/" + l.Name
			mark := ""
			if was[name] != l.Verdict {
				mark = "  <- changed"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s%s\n", term.Escape(name), was[name], l.Verdict, term.Escape(l.Reason), mark)
		}
	}
	return tw.Flush()
}
