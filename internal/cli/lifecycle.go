package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// maxReason bounds --reason: it goes in a commit message and a hold file.
const maxReason = 500

// parseReapTo reads --reap-to "pool:quarantine,..." (see policy.CheckReapTo).
func parseReapTo(spec string, timeouts policy.Timeouts) (map[string]string, error) {
	to := map[string]string{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, dest, ok := strings.Cut(part, ":")
		from, dest = strings.TrimSpace(from), strings.TrimSpace(dest)
		if !ok || from == "" || dest == "" {
			return nil, fmt.Errorf("--reap-to: %q: want POOL:QUARANTINE", part)
		}
		if _, dup := to[from]; dup {
			return nil, fmt.Errorf("--reap-to: pool %q is given twice", from)
		}
		if _, ok := timeouts[from]; !ok {
			return nil, fmt.Errorf("--reap-to: pool %q is not in --pools", from)
		}
		to[from] = dest
	}
	if err := policy.CheckReapTo(to, timeouts); err != nil {
		return nil, fmt.Errorf("--reap-to: %w", err)
	}
	return to, nil
}

// personFlags are the arguments of hold, unhold and release: POOL/LOCK, and why.
type personFlags struct {
	reason string
	pool   string
	lock   string
}

func (p *personFlags) parse(args []string, needReason bool) error {
	if len(args) != 1 {
		return usageError{errors.New("give the lock as POOL/LOCK (one argument)")}
	}
	var err error
	if p.pool, p.lock, err = holds.ParseTarget(args[0]); err != nil {
		return usageError{err}
	}
	r := strings.TrimSpace(p.reason)
	switch {
	case needReason && r == "":
		return usageError{errors.New("--reason is required: say why (it goes in the commit)")}
	case len(r) > maxReason:
		return usageError{fmt.Errorf("--reason is longer than %d bytes", maxReason)}
	case strings.ContainsFunc(r, unicode.IsControl):
		return usageError{errors.New("--reason must be one line, without control characters")}
	}
	p.reason = r
	return nil
}

// person is who runs poolboy, for the commit: git's user.name and user.email when
// configured, else $USER. Never a credential: nothing from a URL or a token.
func (o *options) person(ctx context.Context, repo *gitx.Repo, reason string) reaper.Person {
	get := func(key string) string {
		out, err := repo.Output(ctx, "config", "--get", key)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	name, email := get("user.name"), get("user.email")
	user, _ := o.env("USER")
	who := strings.TrimSpace(user)
	switch {
	case name != "" && email != "":
		who = name + " <" + email + ">"
	case name != "":
		who = name
	}
	if who == "" {
		who = "unknown"
	}
	if strings.ContainsFunc(who, unicode.IsControl) {
		who = term.Line(who)
	}
	return reaper.Person{By: who, Reason: reason}
}

// personCmd builds hold, unhold and release: validate, open, act, say what landed.
func (o *options) personCmd(cmd *cobra.Command, p *personFlags, needReason bool, check func() error,
	act func(context.Context, *gitx.Repo, reaper.Config, reaper.Person) (*reaper.Done, error), said func(*reaper.Done) string) *cobra.Command {
	var attempts int
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := p.parse(args, needReason); err != nil {
			return err
		}
		if attempts < 1 {
			return usageError{fmt.Errorf("--max-attempts %d: must be at least 1", attempts)}
		}
		if err := check(); err != nil {
			return usageError{err}
		}
		repo, cfg, err := o.setup(cmd.Context(), cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		defer repo.Close()
		cfg.MaxAttempts = attempts
		done, err := act(cmd.Context(), repo, cfg, o.person(cmd.Context(), repo, p.reason))
		if err != nil {
			return err
		}
		if o.output == "json" {
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(map[string]string{"command": cmd.Name(), "pool": p.pool, "lock": p.lock,
				"commit": done.Commit, "claim_commit": done.Lock.ClaimCommit})
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s in %s\n", term.Escape(said(done)), short(done.Commit))
		return err
	}
	cmd.Flags().IntVar(&attempts, "max-attempts", 5, "pushes to try when others keep pushing first")
	annotate(cmd.Flags(), "max-attempts", "POOLBOY_MAX_ATTEMPTS")
	return o.repoFlags(cmd)
}

func short(commit string) string { return commit[:min(len(commit), 10)] }

func holdCmd(o *options) *cobra.Command {
	p := &personFlags{}
	var d time.Duration
	cmd := &cobra.Command{
		Use:   "hold POOL/LOCK --for DURATION --reason WHY",
		Short: "Keep a claimed lock from every reap until the hold expires (someone is debugging its environment)",
		Long: `hold marks a claimed lock as kept on purpose: clean, watch and the resource's reap
leave it claimed, whatever its age or its build's state, until the hold expires
(then it is decided as before). The hold is a file .poolboy-holds/POOL/LOCK.json
on the branch, outside every pool, written in one commit, and keeps only the lock's
current claim: once the lock is released and claimed again it holds nothing.
Holding a held lock replaces its hold. poolboy unhold ends it early.`,
	}
	cmd.Flags().DurationVar(&d, "for", 0, "how long to hold it: a Go duration such as 90m or 2h")
	cmd.Flags().StringVar(&p.reason, "reason", "", "why (required; it goes in the commit and the status)")
	check := func() error {
		if !cmd.Flags().Changed("for") {
			return errors.New("--for is required: how long to hold the lock (e.g. 2h)")
		}
		if d <= 0 {
			return fmt.Errorf("--for %s: must be positive", d)
		}
		return nil
	}
	return o.personCmd(cmd, p, true, check, func(ctx context.Context, repo *gitx.Repo, cfg reaper.Config, who reaper.Person) (*reaper.Done, error) {
		return reaper.Hold(ctx, repo, cfg, p.pool, p.lock, d, who)
	}, func(done *reaper.Done) string {
		return fmt.Sprintf("held %s/%s for %s (claim %s)", p.pool, p.lock, policy.Human(d), short(done.Lock.ClaimCommit))
	})
}

func unholdCmd(o *options) *cobra.Command {
	p := &personFlags{}
	cmd := &cobra.Command{
		Use:   "unhold POOL/LOCK",
		Short: "End a lock's hold: it is reaped again as any other",
	}
	cmd.Flags().StringVar(&p.reason, "reason", "", "why (optional)")
	return o.personCmd(cmd, p, false, func() error { return nil }, func(ctx context.Context, repo *gitx.Repo, cfg reaper.Config, who reaper.Person) (*reaper.Done, error) {
		return reaper.Unhold(ctx, repo, cfg, p.pool, p.lock, who)
	}, func(*reaper.Done) string { return fmt.Sprintf("ended the hold of %s/%s", p.pool, p.lock) })
}

func releaseCmd(o *options) *cobra.Command {
	p := &personFlags{}
	cmd := &cobra.Command{
		Use:   "release POOL/LOCK --reason WHY",
		Short: "Free a claimed lock by hand: one commit saying who and why",
		Long: `release moves a claimed lock to its pool's unclaimed/ in one commit that says who
(git's user.name and user.email, else $USER) and why (--reason), pushed
fast-forward only; its hold, if any, is deleted in the same commit. It refuses a
lock that is not claimed, one with an integrity problem or no claim commit, one
whose build Concourse says is running (with --concourse-url or --fly-target), and
one released and claimed again while it was pushing.`,
	}
	cmd.Flags().StringVar(&p.reason, "reason", "", "why (required; it goes in the commit)")
	return o.personCmd(cmd, p, true, func() error { return nil }, func(ctx context.Context, repo *gitx.Repo, cfg reaper.Config, who reaper.Person) (*reaper.Done, error) {
		return reaper.Release(ctx, repo, cfg, p.pool, p.lock, who)
	}, func(done *reaper.Done) string {
		return fmt.Sprintf("released %s/%s (claimed by %s)", p.pool, p.lock, done.Lock.Owner)
	})
}
