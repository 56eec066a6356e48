// Package cli is poolboy's command line: flags (each also settable by an environment
// variable), wiring, output and exit status. The work itself happens in gitx, reaper
// and report; this package only connects them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/metrics"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/redact"
	"github.com/poolboy-ci/poolboy/internal/report"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// Exit statuses.
const (
	ExitOK    = 0 // done: reported, cleaned, or nothing to clean
	ExitError = 1 // the run failed: git, network, auth, a race lost too often, a bad repository
	ExitUsage = 2 // bad flags or environment; nothing was contacted
)

// Version is set at build time with -ldflags "-X ...cli.Version=v1.2.3".
var Version = "dev"

// Env looks up an environment variable.
type Env func(string) (string, bool)

type usageError struct{ error }

// Main runs poolboy with args (without the program name) and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, env Env) int {
	root := newRoot(stdout, stderr, env)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	msg := err.Error()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) && !strings.HasPrefix(msg, "interrupted") {
		// "git clone: signal: terminated" alone does not say that poolboy was stopped.
		msg = fmt.Sprintf("interrupted (%v): %s", context.Cause(ctx), msg)
	}
	fmt.Fprintf(stderr, "poolboy: %s\n", term.Line(msg))
	var u usageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitError
}

// options are the flags every command shares.
type options struct {
	repo, branch, pools       string
	username, password        string
	keyFile, output, cacheDir string
	verbose                   bool
	depth                     int
	env                       Env

	// Concourse, for evidence about the builds that hold locks.
	ccURL, ccUser, ccPassword, ccToken string
	flyTarget, ccTeam, ccCACert        string
	ccInsecure                         bool
	ccInsecureSet                      bool // --concourse-insecure or CONCOURSE_INSECURE was given
	reapSucceeded                      string
	reapTo                             string

	pushURL string // --pushgateway-url
}

func newRoot(stdout, stderr io.Writer, env Env) *cobra.Command {
	o := &options{env: env}
	root := &cobra.Command{
		Use:   "poolboy",
		Short: "Keep Concourse pool-resource lock repositories healthy",
		Long: `poolboy reports who holds each lock of a Concourse pool-resource repository and
frees the locks whose holders are gone, one commit per lock, pushed fast-forward only.

Every flag can also be set by the environment variable named in its help.
The SSH private key itself is read only from POOL_REPO_SSH_PRIVATE_KEY.

Exit status: 0 done (including nothing to clean), 1 the run failed, 2 bad usage.`,
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags(), env); err != nil {
				return err
			}
			// Given on the command line or by its env var, it overrides a fly
			// target's insecure: true in either direction.
			o.ccInsecureSet = cmd.Flags().Changed("concourse-insecure")
			return nil
		},
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// `poolboy reap --repo X`: the mistake is the command, not the flag (which
		// only some commands have). `poolboy --verbsoe clean`: the flag.
		if args := c.Flags().Args(); c == root && len(args) > 0 {
			if sub, _, ferr := root.Find(args[:1]); ferr != nil || sub == root {
				return noArgs(root, args[:1])
			}
		}
		return usageError{err}
	})

	f := root.PersistentFlags()
	f.BoolVar(&o.verbose, "verbose", false, "log every git command and decision to stderr")
	annotate(f, "verbose", "POOLBOY_VERBOSE")

	root.AddCommand(o.repoFlags(statusCmd(o)), o.repoFlags(cleanCmd(o)), o.repoFlags(doctorCmd(o)), demoCmd(), resourceCmd(env), watchCmd(o),
		holdCmd(o), unholdCmd(o), releaseCmd(o))
	return root
}

// repoFlags gives cmd the flags of a run against one repository (status, clean):
// the watch daemon takes all of these from its config file instead.
func (o *options) repoFlags(cmd *cobra.Command) *cobra.Command {
	f := cmd.Flags()
	flag(f, &o.repo, "repo", "", "lock repository: a git URL (ssh, https, git, file://) or a local path", "POOL_REPO")
	flag(f, &o.branch, "branch", "", "branch holding the pools (default: the remote's default branch)", "POOL_BRANCH")
	flag(f, &o.pools, "pools", "", "pools and their stale timeouts: name:timeout,... (bare number = minutes, or a duration like 90m)", "POOLS")
	flag(f, &o.username, "username", "", "user name for an https repository", "POOL_REPO_USERNAME")
	flag(f, &o.password, "password", "", "password or token for an https repository (prefer the env var)", "POOL_REPO_PASSWORD")
	flag(f, &o.keyFile, "private-key-file", "", "SSH private key file (or put the key itself in POOL_REPO_SSH_PRIVATE_KEY)", "POOL_REPO_SSH_PRIVATE_KEY_FILE")
	flag(f, &o.output, "output", "text", "output format: text or json", "POOLBOY_OUTPUT")
	flag(f, &o.cacheDir, "cache-dir", "", "keep the local clone here and reuse it next run (default: a temporary clone)", "POOLBOY_CACHE_DIR")
	f.IntVar(&o.depth, "depth", 256, "commits of history the first clone of a network remote fetches; more are fetched as needed (0 = all)")
	annotate(f, "depth", "POOLBOY_DEPTH")

	flag(f, &o.ccURL, "concourse-url", "", "Concourse to ask whether the builds holding locks are alive (without it, timeouts decide alone)", "CONCOURSE_BASE_URL", "CONCOURSE_URL")
	flag(f, &o.ccUser, "concourse-username", "", "Concourse local user (password grant)", "CONCOURSE_USERNAME")
	flag(f, &o.ccPassword, "concourse-password", "", "its password (prefer the env var)", "CONCOURSE_PASSWORD")
	flag(f, &o.ccToken, "concourse-token", "", "a Concourse bearer token instead of a user (prefer the env var)", "CONCOURSE_TOKEN")
	flag(f, &o.flyTarget, "fly-target", "", "reuse these fly login targets (comma-separated, e.g. prod,staging) from ~/.flyrc ($FLY_HOME/.flyrc): each one's api, team, token, insecure and ca_cert; each claim is judged by the Concourse its Build URL names", "FLY_TARGET")
	flag(f, &o.ccTeam, "concourse-team", "", "team of claims written before team names were recorded (default: the fly target's team, else main)", "CONCOURSE_TEAM")
	f.BoolVar(&o.ccInsecure, "concourse-insecure", false, "do not verify Concourse's TLS certificate")
	annotate(f, "concourse-insecure", "CONCOURSE_INSECURE")
	flag(f, &o.ccCACert, "concourse-ca-cert", "", "PEM file of a CA to trust for Concourse, on top of the system's", "CONCOURSE_CA_CERT")
	flag(f, &o.pushURL, "pushgateway-url", "", "after the run, push its metrics (the watch daemon's poolboy_* families) to this Prometheus Pushgateway, job poolboy, grouping key repo; user:password@ in it is sent as basic auth", "POOLBOY_PUSHGATEWAY_URL")
	flag(f, &o.reapTo, "reap-to", "", "pools (from --pools) whose reaped locks go to a quarantine pool's unclaimed/ instead of their own, for a janitor job to clean: pool:quarantine,...", "POOLBOY_REAP_TO")
	flag(f, &o.reapSucceeded, "reap-on-success", "", "pools (comma-separated, from --pools) whose locks are freed as soon as their build succeeded, for jobs that never pass locks on", "POOLBOY_REAP_ON_SUCCESS")
	return cmd
}

func flag(f *pflag.FlagSet, p *string, name, value, usage string, env ...string) {
	f.StringVar(p, name, value, usage)
	annotate(f, name, env...)
}

// annotate records which env vars set a flag, and says so in its help.
func annotate(f *pflag.FlagSet, name string, env ...string) {
	fl := f.Lookup(name)
	fl.Usage += " (env " + strings.Join(env, ", ") + ")"
	_ = f.SetAnnotation(name, "env", env)
}

// applyEnv gives each flag not set on the command line the value of its env var.
func applyEnv(f *pflag.FlagSet, env Env) error {
	var err error
	f.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || err != nil {
			return
		}
		for _, name := range fl.Annotations["env"] {
			if v, ok := env(name); ok && v != "" {
				// f.Set marks the flag changed, as the command line would.
				if serr := f.Set(fl.Name, v); serr != nil {
					// The value may be a secret: name the variable, not its content.
					err = usageError{fmt.Errorf("%s: invalid value for --%s", name, fl.Name)}
				}
				return
			}
		}
	})
	return err
}

// setup validates everything that can be checked without the network, then opens
// the repository.
func (o *options) setup(ctx context.Context, stderr io.Writer) (*gitx.Repo, reaper.Config, error) {
	var cfg reaper.Config
	timeouts, err := policy.ParseTimeouts(o.pools)
	if err != nil {
		return nil, cfg, usageError{err}
	}
	cfg.Timeouts = timeouts
	if cfg.ReapSucceeded, err = parseReapSucceeded(o.reapSucceeded, timeouts); err != nil {
		return nil, cfg, usageError{err}
	}
	if cfg.ReapTo, err = parseReapTo(o.reapTo, timeouts); err != nil {
		return nil, cfg, usageError{err}
	}
	if o.output != "text" && o.output != "json" {
		return nil, cfg, usageError{fmt.Errorf("--output %q: want text or json", o.output)}
	}
	if o.repo == "" {
		return nil, cfg, usageError{errors.New("no repository: give --repo or POOL_REPO")}
	}
	if o.depth < 0 {
		return nil, cfg, usageError{fmt.Errorf("--depth %d: must be 0 or more", o.depth)}
	}
	if o.pushURL != "" {
		if err := metrics.CheckGateway(o.pushURL); err != nil {
			return nil, cfg, usageError{fmt.Errorf("--pushgateway-url: %w", err)}
		}
	}
	if strings.HasPrefix(o.repo, "-") {
		return nil, cfg, usageError{fmt.Errorf("--repo %q must not start with '-'", redact.URL(o.repo))}
	}
	if strings.HasPrefix(o.branch, "-") {
		return nil, cfg, usageError{fmt.Errorf("--branch %q must not start with '-'", o.branch)}
	}
	key, _ := o.env("POOL_REPO_SSH_PRIVATE_KEY")
	passphrase, _ := o.env("POOL_REPO_SSH_PRIVATE_KEY_PASSPHRASE")
	// No process poolboy starts inherits a variable holding any of these.
	gitx.Conceal(append(redact.URLPasswords(o.repo, o.ccURL, o.pushURL),
		append(redact.KeyLines(key), key, passphrase, o.password, o.ccPassword, o.ccToken)...)...)
	if o.keyFile != "" {
		if key != "" {
			return nil, cfg, usageError{errors.New("give the SSH key either with --private-key-file or in POOL_REPO_SSH_PRIVATE_KEY, not both")}
		}
		if _, err := os.Stat(o.keyFile); err != nil {
			return nil, cfg, usageError{fmt.Errorf("private key file: %w", err)}
		}
	}
	log, decisions := o.loggers(stderr)
	cfg.Log = decisions
	// Everything local (the Concourse settings too) is checked before the network.
	if cfg.Witness, err = o.witness(decisions); err != nil {
		return nil, cfg, err
	}
	// A server that cannot be reached gets three tries, two seconds apart: a
	// restart or a network blink should not fail a periodic clean. The retries are
	// told with --verbose only; a failure stays one line.
	var repo *gitx.Repo
	err = gitx.RetryUnreachable(ctx, 3, 2*time.Second, func(err error, wait time.Duration) {
		log.Debug("could not reach the repository; retrying", "err", err, "wait", wait)
	}, func() (err error) {
		repo, err = gitx.Open(ctx, gitx.Options{
			URL:    o.repo,
			Branch: o.branch,
			Auth: gitx.Auth{Username: o.username, Password: o.password,
				PrivateKey: []byte(key), PrivateKeyFile: o.keyFile, PrivateKeyPassphrase: passphrase},
			CacheDir: o.cacheDir,
			Depth:    o.depth,
			Logger:   log,
		})
		return err
	})
	if err != nil {
		return nil, cfg, err
	}
	// A cached clone keeps the claims found (see claims.Index) for the next run; a
	// temporary one keeps them for this run's later decisions (clean's batches).
	index := ""
	if o.cacheDir != "" {
		index = filepath.Join(repo.Dir(), claims.IndexFile)
	}
	cfg.Index = claims.OpenIndex(index)
	return repo, cfg, nil
}

// loggers are the run's two loggers on stderr: git's, which also tells of waits
// a person should know about (another poolboy holds the cache dir), and the
// decisions', which tells only warnings: what was decided is on stdout already.
// With --verbose both log everything.
func (o *options) loggers(stderr io.Writer) (git, decisions *slog.Logger) {
	gitLevel, level := slog.LevelInfo, slog.LevelWarn
	if o.verbose {
		gitLevel, level = slog.LevelDebug, slog.LevelDebug
	}
	git = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: gitLevel}))
	decisions = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return git, decisions
}

func (o *options) render(w io.Writer, doc report.Doc) error {
	if o.output == "json" {
		return report.JSON(w, doc)
	}
	return report.Text(w, doc)
}

func statusCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Report every pool: who holds each lock, since when, and whether it is stale",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			var doc *report.Doc
			defer o.pushAfter(cmd.Context(), cmd.ErrOrStderr(), time.Now(), &doc, &err)()
			repo, cfg, err := o.setup(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer repo.Close()
			rep, err := reaper.Status(cmd.Context(), repo, cfg)
			if err != nil {
				return err
			}
			d, err := report.Read(cmd.Context(), repo, repo.URL(), repo.Branch(), rep, nil)
			if err != nil {
				return err
			}
			doc = &d
			return o.render(cmd.OutOrStdout(), d)
		},
	}
}

func cleanCmd(o *options) *cobra.Command {
	var dryRun bool
	var attempts int
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Free stale locks in the pools given with --pools, one commit per lock",
		Long: `clean moves every stale lock of the pools given with --pools from claimed/ to
unclaimed/, one commit per lock ("unclaiming: LOCK", with the reason and trailers),
pushed fast-forward only (with --reap-to, a pool's stale locks go to its quarantine
pool's unclaimed/ instead), and deletes those pools' queue tickets whose build ended
or that expired, one commit each. When someone else pushes first, it fetches and
decides again from the new state. Pools without a timeout are never touched; a lock
on hold (poolboy hold) is kept until its hold expires.
It prints what it freed, then the pools as they are after its push.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			var doc *report.Doc
			defer o.pushAfter(cmd.Context(), cmd.ErrOrStderr(), time.Now(), &doc, &err)()
			if attempts < 1 {
				return usageError{fmt.Errorf("--max-attempts %d: must be at least 1", attempts)}
			}
			if strings.TrimSpace(o.pools) == "" {
				return usageError{errors.New("clean needs --pools (or POOLS): name:timeout,... for the pools to clean")}
			}
			repo, cfg, err := o.setup(cmd.Context(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer repo.Close()
			cfg.MaxAttempts = attempts
			res, err := reaper.Clean(cmd.Context(), repo, cfg, dryRun)
			if err != nil {
				return err
			}
			d, err := report.Read(cmd.Context(), repo, repo.URL(), repo.Branch(), res.Report, res)
			if err != nil {
				return err
			}
			doc = &d
			if o.output == "json" {
				return report.JSON(cmd.OutOrStdout(), d)
			}
			return cleanText(cmd.Context(), cmd.OutOrStdout(), repo, cfg, d)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "decide and show what would be freed, push nothing")
	annotate(cmd.Flags(), "dry-run", "POOLBOY_DRY_RUN")
	cmd.Flags().IntVar(&attempts, "max-attempts", 5, "pushes to try when others keep pushing first")
	annotate(cmd.Flags(), "max-attempts", "POOLBOY_MAX_ATTEMPTS")
	return cmd
}

// cleanText prints what clean did, then the pools as they are now: after the
// push, read again (the witness's answers are cached for the run), so a person
// reads each lock once, in its present state.
func cleanText(ctx context.Context, w io.Writer, repo *gitx.Repo, cfg reaper.Config, d report.Doc) error {
	if err := report.CleanText(w, d.Clean); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if d.Clean.DryRun || len(d.Clean.Freed) == 0 {
		return report.Text(w, d) // nothing was pushed: the pools are as decided
	}
	now, err := reaper.Status(ctx, repo, cfg)
	if err != nil {
		return fmt.Errorf("freed %d %s, then could not read the pools again: %w", len(d.Clean.Freed), plural(len(d.Clean.Freed), "lock"), err)
	}
	after, err := report.Read(ctx, repo, repo.URL(), repo.Branch(), now, nil)
	if err != nil {
		return fmt.Errorf("freed %d %s, then could not read the queues again: %w", len(d.Clean.Freed), plural(len(d.Clean.Freed), "lock"), err)
	}
	return report.Text(w, after)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// noArgs rejects positional arguments (and, on the root, unknown commands) as bad usage.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return usageError{fmt.Errorf("unknown command %q (commands: status, clean, doctor, hold, unhold, release, demo, resource, watch)", args[0])}
	}
	return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.Name(), args[0])}
}

// OSEnv is the process environment.
func OSEnv(name string) (string, bool) { return os.LookupEnv(name) }
