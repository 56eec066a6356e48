// Package gitx is poolboy's git transport: it keeps a bare local clone of one branch of
// a lock repository in step with its remote, runs git commands in it, and pushes
// fast-forward only. It shells out to the git CLI, so every transport git knows
// (local path, file://, git://, ssh, http(s)) works the way the user's git does.
//
// Secrets never reach a process argument or environment: an SSH key, an HTTP user name and
// password, a key passphrase and git settings go to in-memory files (on Linux;
// 0600 files elsewhere) that ssh, the askpass scripts and git read, and every
// error and log line is passed through Redact.
package gitx

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/poolboy-ci/poolboy/internal/redact"
)

// ErrRejected means a push lost the race: the remote branch moved since the last fetch.
var ErrRejected = errors.New("push rejected: the remote branch moved (fetch first)")

// ErrUnreachable means git could not reach the remote, or lost the connection:
// the server may be restarting, the network blinking. Trying again may work.
var ErrUnreachable = errors.New("the remote could not be reached")

// RetryUnreachable runs f, and again wait later while it fails with
// ErrUnreachable, at most tries times in all: a git server restarting or a
// network blinking then costs seconds instead of a failed run. Any other error
// is returned at once, as is the last one; note (if not nil) hears of each
// failure that is retried. It stops waiting when ctx ends.
func RetryUnreachable(ctx context.Context, tries int, wait time.Duration, note func(err error, wait time.Duration), f func() error) error {
	for try := 1; ; try++ {
		err := f()
		if err == nil || !errors.Is(err, ErrUnreachable) || try >= tries || ctx.Err() != nil {
			return err
		}
		if note != nil {
			note(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// ErrRefused means the remote refused a push for a reason other than a lost race
// (a hook, a protected branch): the push did not land.
var ErrRefused = errors.New("the remote refused the push")

// ErrEmpty means the remote has no branch at all.
var ErrEmpty = errors.New("the repository is empty: it has no branch")

// Auth holds credentials. Its fields are never logged.
type Auth struct {
	Username             string
	Password             string
	PrivateKey           []byte // key material, e.g. from POOL_REPO_SSH_PRIVATE_KEY
	PrivateKeyFile       string
	PrivateKeyPassphrase string // for an encrypted key; reaches ssh through SSH_ASKPASS
	SSHUser              string // ssh's User option (the pool resource's private_key_user)
	ForwardAgent         bool
}

// ConfigEntry is one git configuration setting, applied to every git command.
type ConfigEntry struct{ Name, Value string }

// Options says which repository to mirror and how.
type Options struct {
	URL      string
	Branch   string // "" means the remote's default branch
	Auth     Auth
	CacheDir string // "" means a temporary clone removed by Close
	// Depth is the history the first clone of a network remote downloads; Deepen
	// fetches more when the walk needs it. 0 means all history. A local-path remote
	// is always cloned whole: git hard-links its objects, so there is nothing to save.
	Depth  int
	Logger *slog.Logger

	SkipSSLVerify bool          // do not verify an https remote's certificate
	GitConfig     []ConfigEntry // extra git settings (the pool resource's git_config)
	HTTPSProxy    string        // proxy URL for http(s) remotes; may hold credentials
}

// Repo is a bare local clone of one branch. refs/heads/<branch> mirrors the remote.
type Repo struct {
	opts    Options
	display string // the URL as given, its user information masked
	dir     string
	branch  string
	env     []string
	red     *redact.Redactor
	depth   int // history fetched so far, when shallow
	cleanup []func()
	log     *slog.Logger
}

// Open prepares credentials and clones the remote, or updates the cached clone.
func Open(ctx context.Context, opts Options) (*Repo, error) {
	if opts.URL == "" {
		return nil, errors.New("no repository given (--repo or POOL_REPO)")
	}
	if strings.HasPrefix(opts.URL, "-") {
		return nil, fmt.Errorf("repository %q must not start with '-'", redact.URL(opts.URL))
	}
	if strings.HasPrefix(opts.Branch, "-") {
		return nil, fmt.Errorf("branch %q must not start with '-'", opts.Branch)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	raw := opts.URL
	if err := passwordOnCommandLine(opts.URL); err != nil {
		return nil, err
	}
	display := redact.URL(opts.URL)
	opts = moveURLCredentials(opts)
	if opts.CacheDir != "" {
		// git runs in the clone, so a relative cache dir (a Concourse task's
		// `caches:`) must be resolved against our working directory first.
		abs, err := filepath.Abs(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("cache dir: %w", err)
		}
		opts.CacheDir = abs
	}
	r := &Repo{opts: opts, display: display, log: opts.Logger}
	secrets := secretsOf(raw, opts.HTTPSProxy, opts.Auth)
	r.red = redact.New(secrets...)
	Conceal(secrets...)
	if err := r.prepareAuth(); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.openClone(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Close removes the temporary clone (not a cached one) and all key material.
func (r *Repo) Close() error {
	for i := len(r.cleanup) - 1; i >= 0; i-- {
		r.cleanup[i]()
	}
	r.cleanup = nil
	return nil
}

// Dir is the bare clone's directory.
func (r *Repo) Dir() string { return r.dir }

// Branch is the branch being mirrored (the remote's default when none was asked for).
func (r *Repo) Branch() string { return r.branch }

// URL is the remote for logs and reports: any user information (a password, a
// token given as the user name) masked, and any other secret removed.
func (r *Repo) URL() string { return r.Redact(r.display) }

func (r *Repo) ref() string { return "refs/heads/" + r.branch }

// Head is the commit the local mirror of the branch points at.
func (r *Repo) Head(ctx context.Context) (string, error) {
	out, err := r.Output(ctx, "rev-parse", "--verify", "--quiet", r.ref()+"^{commit}")
	switch {
	case err != nil && ctx.Err() != nil:
		return "", err // git was killed: that says nothing about the branch
	case err != nil:
		return "", fmt.Errorf("branch %q has no commit", r.branch)
	}
	return strings.TrimSpace(string(out)), nil
}

// RemoteHead asks the remote where the branch is now, without fetching anything:
// the cheap way to tell whether anything changed. "" means the branch is gone.
func (r *Repo) RemoteHead(ctx context.Context) (string, error) {
	out, err := r.Output(ctx, "ls-remote", "--", "origin", r.ref())
	if err != nil {
		return "", err
	}
	sha, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	return sha, nil
}

// Fetch brings the mirror up to date with the remote and returns the new head.
func (r *Repo) Fetch(ctx context.Context) (string, error) {
	if _, err := r.Output(ctx, r.fetchArgs()...); err != nil {
		return "", err
	}
	return r.Head(ctx)
}

// Deepen makes a shallow clone's history four times as deep (and fetches any new
// commits on the branch). Growing geometrically bounds both the rounds (log₄ of the
// history needed) and the excess downloaded. It is a no-op on a complete clone.
//
// A remote that is itself a shallow mirror may have no more history to give: the
// fetch succeeds and the boundary stays where it was. That is ErrNoMoreHistory, so
// that no caller asks again for ever.
func (r *Repo) Deepen(ctx context.Context) error {
	if !r.IsShallow() {
		return nil
	}
	before, err := r.Shallow()
	if err != nil {
		return err
	}
	more := 3 * max(r.depth, 1)
	if _, err := r.Output(ctx, append(r.fetchArgs(), fmt.Sprintf("--deepen=%d", more))...); err != nil {
		return err
	}
	r.depth += more
	after, err := r.Shallow()
	if err != nil {
		return err
	}
	if len(after) > 0 && maps.Equal(before, after) {
		return ErrNoMoreHistory
	}
	return nil
}

// ErrNoMoreHistory is a shallow clone whose remote has no more history to give.
var ErrNoMoreHistory = errors.New("the remote has no more history to give (is it a shallow mirror?)")

// IsShallow says whether the clone lacks part of the history.
func (r *Repo) IsShallow() bool {
	_, err := os.Stat(filepath.Join(r.dir, "shallow"))
	return err == nil
}

// Shallow returns the boundary commits of a shallow clone: their parents are missing,
// so git shows everything in them as "added".
func (r *Repo) Shallow() (map[string]bool, error) {
	data, err := os.ReadFile(filepath.Join(r.dir, "shallow"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, l := range strings.Fields(string(data)) {
		set[l] = true
	}
	return set, nil
}

// Push makes commit the new tip of the remote branch, fast-forward only. It returns
// an error wrapping ErrRejected when someone else pushed first.
func (r *Repo) Push(ctx context.Context, commit string) error {
	out, err := r.run(ctx, nil, nil, "push", "--porcelain", "--progress", "--no-verify", "origin", commit+":"+r.ref())
	if err != nil {
		// --porcelain puts the verdict on stdout: "!\tsrc:dst\t[rejected] (fetch first)".
		s := string(out)
		switch {
		case strings.Contains(s, "[rejected]") && (strings.Contains(s, "fetch first") || strings.Contains(s, "non-fast-forward")),
			// Two pushes that both passed the fast-forward check: the remote moved the
			// ref for the other one first, and ours did not land. The porcelain line
			// says "(failed to update ref)" or "(cannot lock ref ...)"; the remote's
			// "is at X but expected Y" tells this race from a stale ref lock file,
			// which is a server problem that retrying does not cure.
			strings.Contains(s, "[remote rejected]") && errors.Is(err, errLostRefUpdate):
			return fmt.Errorf("%w", ErrRejected)
		case strings.Contains(s, "[rejected]") || strings.Contains(s, "[remote rejected]"):
			// A verdict (a hook, a protected branch, a stale lock): it did not land.
			return classify(err, ErrRefused)
		}
		return err
	}
	_, err = r.Output(ctx, "update-ref", r.ref(), commit)
	return err
}

// errLostRefUpdate classifies git errors that lostRefUpdate recognises.
var errLostRefUpdate = errors.New("another push updated the ref first")

// lostRefUpdate says whether git's message is receive-pack finding the branch
// moved by another push between its fast-forward check and its ref update.
func lostRefUpdate(msg string) bool {
	return strings.Contains(msg, "cannot lock ref") && strings.Contains(msg, "but expected")
}

// Output runs a git command in the clone and returns its stdout.
func (r *Repo) Output(ctx context.Context, args ...string) ([]byte, error) {
	return r.run(ctx, nil, nil, args...)
}

// Input runs a git command with stdin and extra environment entries.
func (r *Repo) Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	return r.run(ctx, stdin, env, args...)
}

// Stream runs a git command and hands its stdout to fn as it is produced. When fn
// returns before the end of the output (it has read all it needs), the command is
// stopped and that is not an error: this is what lets a history walk end as soon as
// it has its answer. A command that fails on its own is still an error.
func (r *Repo) Stream(ctx context.Context, fn func(io.Reader) error, args ...string) error {
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := r.command(stop, nil, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	wait, err := started(stop, cmd)
	if err != nil {
		return fmt.Errorf("git %s: %w", args[0], err)
	}
	out := bufio.NewReaderSize(stdout, 1<<16)
	ferr := fn(out)
	_, more := out.Peek(1)
	early := more == nil
	if early {
		cancel()
		// Drain so git is not blocked on a full pipe while being stopped.
		_, _ = io.Copy(io.Discard, out)
	}
	werr := wait()
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("git", "args", r.redactArgs(args), "took", time.Since(start).Round(time.Millisecond), "stopped_early", early)
	}
	switch {
	case ferr != nil:
		return ferr
	case ctx.Err() != nil:
		return ctx.Err()
	case werr != nil && !early:
		return r.gitError(args, werr, stderr.Bytes())
	}
	return nil
}

func (r *Repo) run(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	gctx, quiet := watchSilence(ctx, silenceBound(args[0]))
	defer quiet.stop()
	temps := r.temps(args[0])
	cmd := r.command(gctx, env, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = quiet.watch(&stdout), quiet.watch(&stderr)
	start := time.Now()
	wait, err := started(gctx, cmd)
	if err == nil {
		err = wait()
	}
	// Redacting the arguments costs time in proportion to their size: only for a log that is kept.
	if r.log.Enabled(ctx, slog.LevelDebug) {
		r.log.Debug("git", "args", r.redactArgs(args), "took", time.Since(start).Round(time.Millisecond))
	}
	if err != nil {
		r.removeTemps(args[0], temps)
		e := r.gitError(args, err, stderr.Bytes())
		switch {
		case ctx.Err() != nil:
			// git was killed, or never started, because ctx ended.
			e = classify(e, ctx.Err())
		case quiet.fired():
			e = classify(fmt.Errorf("git %s: %s sent nothing for %s; gave up", args[0], r.URL(), quiet.bound), ErrUnreachable)
		}
		return stdout.Bytes(), e
	}
	return stdout.Bytes(), nil
}

// packWriters are the commands poolboy runs that write a pack into the clone
// under a temporary name first (a fetch through its index-pack, and the gc --auto
// it may run) and leave it there when they fail or die.
var packWriters = map[string]bool{"fetch": true, "index-pack": true}

// temps lists the temporary pack files in the clone before cmd runs, when cmd
// writes packs.
func (r *Repo) temps(cmd string) map[string]bool {
	if r.dir == "" || !packWriters[cmd] {
		return nil
	}
	seen := map[string]bool{}
	for _, pattern := range []string{"tmp_*", ".tmp-*"} {
		files, _ := filepath.Glob(filepath.Join(r.dir, "objects", "pack", pattern))
		for _, f := range files {
			seen[f] = true
		}
	}
	return seen
}

// removeTemps deletes the temporary pack files that cmd, failed or stopped, left
// in the clone: those that were not there before it (before, from temps). No
// other git writes in the clone meanwhile: the cache is locked, and git's upkeep
// runs inside the command that starts it.
func (r *Repo) removeTemps(cmd string, before map[string]bool) {
	if before == nil {
		return
	}
	for f := range r.temps(cmd) {
		if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() && !before[f] {
			_ = os.Remove(f)
		}
	}
}

// stallTimeout is how long a network git command may go without a byte of output
// (see silenceBound); a variable so that tests can shorten it.
var stallTimeout = StallTimeout

// silenceBound is how long the git command cmd may print nothing before it is
// stopped, 0 for none: this is the one stall bound of every transport (git://,
// ssh whatever its settings, http(s), local). clone, fetch and push run with
// --progress, so a remote that is counting, compressing or sending objects keeps
// them talking, and so does a download (ls-remote has nothing to show before its
// answer, which a live server sends at once). A push may be silent twice as long: once
// the server has the pack, a pre-receive hook may run a while without a word,
// and a push given up on then may land all the same (PushChecked settles that).
func silenceBound(cmd string) time.Duration {
	switch cmd {
	case "clone", "fetch", "ls-remote":
		return stallTimeout
	case "push":
		return 2 * stallTimeout
	}
	return 0
}

// silence stops a command whose output stops for longer than its bound. A nil
// *silence bounds nothing.
type silence struct {
	bound  time.Duration
	start  time.Time
	last   atomic.Int64 // when the last byte came, as time since start
	done   chan struct{}
	cancel context.CancelFunc
	gaveUp atomic.Bool
}

// watchSilence returns the context to run a command on, which ends when ctx does
// or when the command's output (passed through watch) has stopped for bound.
func watchSilence(ctx context.Context, bound time.Duration) (context.Context, *silence) {
	if bound <= 0 {
		return ctx, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &silence{bound: bound, start: time.Now(), done: make(chan struct{}), cancel: cancel}
	go func() {
		t := time.NewTimer(bound)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				idle := time.Since(s.start) - time.Duration(s.last.Load())
				if idle < bound {
					t.Reset(bound - idle)
					continue
				}
				s.gaveUp.Store(true)
				cancel() // SIGTERM to git's process group, as when ctx ends
				return
			}
		}
	}()
	return ctx, s
}

// watch passes w's writes through, each one counting as a sign of life.
func (s *silence) watch(w io.Writer) io.Writer {
	if s == nil {
		return w
	}
	return heard{w, s}
}

// fired says whether the command was stopped for its silence.
func (s *silence) fired() bool { return s != nil && s.gaveUp.Load() }

func (s *silence) stop() {
	if s != nil {
		close(s.done)
		s.cancel()
	}
}

// progressLine matches what --progress prints, the remote's included ("remote:
// Counting objects: 50% (1/2)", "Receiving objects: 100% (2/2), 183 bytes",
// "Total 2 (delta 0), ..."), and clone's "Cloning into ...": no part of an error.
var progressLine = regexp.MustCompile(`^(remote: )?([A-Z][a-z]+( [a-z]+)*: +(\d+% \(\d+/\d+\)|\d+)(,|$)|Total \d+ \(delta \d+\)|Cloning into )`)

// withoutProgress is git's stderr without its progress reports.
func withoutProgress(stderr []byte) string {
	var keep []string
	for _, l := range strings.FieldsFunc(string(stderr), func(c rune) bool { return c == '\n' || c == '\r' }) {
		if !progressLine.MatchString(strings.TrimSpace(l)) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

type heard struct {
	w io.Writer
	s *silence
}

func (h heard) Write(p []byte) (int, error) {
	h.s.last.Store(int64(time.Since(h.s.start)))
	return h.w.Write(p)
}

// killDelay is how long git and its helpers have, once ctx ends, to stop after
// SIGTERM before they are killed and their pipes closed.
const killDelay = 2 * time.Second

func (r *Repo) command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", args...)
	ownGroup(cmd)
	cmd.WaitDelay = killDelay
	cmd.Dir = r.dir
	cmd.Env = append(append(childEnv(), r.env...), env...)
	if r.dir != "" {
		cmd.Env = append(cmd.Env, "GIT_DIR="+r.dir)
	}
	return cmd
}

// started starts cmd and returns the function that waits for it. When ctx has
// ended, whatever git started that is still running is killed: nothing outlives
// a cancelled command.
func started(ctx context.Context, cmd *exec.Cmd) (wait func() error, err error) {
	starting()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := cmd.Process.Pid
	groupStarted(pid)
	return func() error {
		err := cmd.Wait()
		if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success() {
			// git succeeded; something it left running (an ssh ControlPersist
			// master, say) still held its stderr. git's own output was read.
			err = nil
		}
		if ctx.Err() != nil {
			killGroup(pid)
		}
		groupDone(pid)
		return err
	}, nil
}

// concealed is every secret the program has read, in gitx or outside it.
var concealed = redact.New()

// Conceal tells gitx of secrets read outside it (Concourse credentials, a
// Pushgateway password, values of the watch config's *_env variables): no
// process gitx starts (git, and through it ssh and the askpass helpers)
// inherits a variable whose value holds one. Open conceals the Repo's own.
func Conceal(secrets ...string) { concealed.Add(secrets...) }

// childEnv is the environment git runs with: the caller's, without poolboy's own
// secret variables and without any variable holding a secret it read (git has
// no use for them), and set up so git never prompts, speaks one language, and
// reads pathspecs literally (lock names may contain '*').
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case "POOL_REPO", "POOL_REPO_PASSWORD", "POOL_REPO_SSH_PRIVATE_KEY", "POOL_REPO_SSH_PRIVATE_KEY_PASSPHRASE", "CONCOURSE_PASSWORD", "CONCOURSE_TOKEN",
			"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "LC_ALL", "LANG", "LANGUAGE",
			"GIT_CONFIG_COUNT", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE":
			continue
		}
		switch name {
		case "PATH", "HOME":
			// git cannot work without them, and a short secret that is a word of
			// a path there (a password "bin" or "admin") is a coincidence, not a copy.
			if concealed.HoldsLong(value) {
				continue
			}
		default:
			if concealed.Holds(value) {
				continue
			}
		}
		env = append(env, kv)
	}
	return append(env,
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
		"GIT_LITERAL_PATHSPECS=1",
		"GIT_AUTHOR_NAME=poolboy", "GIT_AUTHOR_EMAIL=poolboy@localhost",
		"GIT_COMMITTER_NAME=poolboy", "GIT_COMMITTER_EMAIL=poolboy@localhost",
	)
}

func (r *Repo) fetchArgs() []string {
	// --progress, not --quiet: the progress is what tells a download from a
	// stalled remote (silenceBound); gitError leaves it out of errors.
	args := []string{"fetch", "--progress", "--no-tags", "--update-head-ok"}
	if r.opts.CacheDir == "" {
		// A clone that is deleted when the run ends needs no upkeep: without this
		// every fetch (a waiting put's every look) starts a git maintenance.
		args = append(args, "--no-auto-maintenance")
	}
	return append(args, "origin", "+"+r.ref()+":"+r.ref())
}

func (r *Repo) openClone(ctx context.Context) error {
	if r.opts.CacheDir == "" {
		tmp, remove, err := tempDir("poolboy-clone-")
		if err != nil {
			return err
		}
		r.cleanup = append(r.cleanup, remove)
		return r.clone(ctx, filepath.Join(tmp, "repo.git"))
	}
	if err := os.MkdirAll(r.opts.CacheDir, 0o700); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	if err := r.lockCache(ctx); err != nil {
		return err
	}
	// One clone per remote and branch, so runs against different repos never mix.
	sum := sha256.Sum256([]byte(r.opts.URL + "\x00" + r.opts.Branch))
	dir := filepath.Join(r.opts.CacheDir, hex.EncodeToString(sum[:8])+".git")
	if r.reuse(ctx, dir) {
		moved, err := r.defaultMoved(ctx)
		if err != nil {
			return err
		}
		if !moved {
			_, err = r.Fetch(ctx)
			return err
		}
		r.dir = ""
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	return r.clone(ctx, dir)
}

// reuse adopts an existing cached clone of the same remote.
func (r *Repo) reuse(ctx context.Context, dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return false
	}
	r.dir = dir
	url, err := r.Output(ctx, "config", "--get", "remote.origin.url")
	if err != nil || strings.TrimSpace(string(url)) != r.opts.URL {
		r.dir = ""
		return false
	}
	head, err := r.Output(ctx, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		r.dir = ""
		return false
	}
	r.branch = strings.TrimSpace(string(head))
	if r.IsShallow() {
		// Deepen grows from the history here: a clone deepened on an earlier run
		// goes on from its depth, not from nothing.
		n, err := r.Output(ctx, "rev-list", "--count", r.ref())
		if r.depth, _ = strconv.Atoi(strings.TrimSpace(string(n))); err != nil || r.depth < r.opts.Depth {
			r.depth = r.opts.Depth
		}
	}
	return true
}

func (r *Repo) clone(ctx context.Context, dir string) error {
	args := []string{"clone", "--progress", "--bare", "--single-branch", "--no-tags"}
	if r.opts.Branch != "" {
		args = append(args, "--branch", r.opts.Branch)
	}
	if r.opts.Depth > 0 && !isLocalPath(r.opts.URL) {
		args = append(args, fmt.Sprintf("--depth=%d", r.opts.Depth))
		r.depth = r.opts.Depth
	}
	args = append(args, "--", r.opts.URL, dir)
	if _, err := r.Output(ctx, args...); err != nil {
		if r.opts.Branch != "" && strings.Contains(err.Error(), "not found in upstream") {
			return fmt.Errorf("branch %q does not exist in %s", r.opts.Branch, r.URL())
		}
		return err
	}
	r.dir = dir
	refs, err := r.Output(ctx, "for-each-ref", "--format=%(refname)", "refs/heads/")
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(refs)) == 0 {
		if r.opts.Branch != "" {
			// clone --branch takes a tag too, and then brings no branch.
			return fmt.Errorf("branch %q does not exist in %s (a tag of that name does; locks live on a branch)", r.opts.Branch, r.URL())
		}
		return fmt.Errorf("%s: %w", r.URL(), ErrEmpty)
	}
	head, err := r.Output(ctx, "symbolic-ref", "--short", "HEAD")
	if err != nil {
		return err
	}
	r.branch = strings.TrimSpace(string(head))
	// Keep the refspec to the one branch so a later plain fetch stays small.
	_, err = r.Output(ctx, "config", "remote.origin.fetch", "+"+r.ref()+":"+r.ref())
	return err
}

// moveURLCredentials takes the user information out of an http(s) URL and gives it
// to git through askpass like any other credential, so that it reaches neither a
// process argument nor the clone's config: a password, and a lone user name too
// (a token is often given as the user name). The URL is rebuilt by cutting the
// user information out of the text, so the rest stays exactly as git reads it.
// The caller's own password, if any, wins; the URL's user name is the one git used.
func moveURLCredentials(opts Options) Options {
	u := redact.SplitURL(opts.URL)
	if !u.HTTP() || !u.HasUserinfo {
		return opts
	}
	user, pw, _ := u.User()
	if opts.Auth.Password == "" {
		opts.Auth.Password = pw
	}
	if user != "" {
		opts.Auth.Username = user
	}
	opts.URL = u.WithoutUserinfo()
	return opts
}

// passwordOnCommandLine refuses a URL whose password only a command line could
// carry: git passes ssh:// and scp-like URLs to ssh as arguments (ssh takes no
// password from them anyway), and git://, file:// and local paths have no use for
// one. Only http(s) credentials can be moved out of the URL (moveURLCredentials).
func passwordOnCommandLine(raw string) error {
	const why = "a password in a %s URL would reach a command line: use an SSH key, or an https URL with --password/POOL_REPO_PASSWORD"
	u := redact.SplitURL(raw)
	if _, _, ok := u.User(); !ok || u.HTTP() {
		return nil
	}
	if u.Scheme == "" {
		return fmt.Errorf(why, "user@host:path")
	}
	return fmt.Errorf(why, u.Scheme+"://")
}

// isLocalPath tells a path on this machine from a URL, the way git does: anything
// with "://" is a URL, and "host:path" (a colon before any slash) is scp-like SSH.
func isLocalPath(u string) bool { return redact.SplitURL(u).Local }
