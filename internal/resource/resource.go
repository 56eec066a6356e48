// Package resource is poolboy as a Concourse resource: check, in and out with the
// semantics of the upstream pool resource (concourse/pool-resource), so a pipeline
// can swap the resource type's image and change nothing else. In return every
// commit names the build that made it, a release frees only the claim the build
// holds, waiting costs an ls-remote per retry_delay instead of a clone, and
// `reap: true` runs the pool boy's policy on the pool.
//
// Invariants:
//   - An operation is at most one commit, built with plumbing on the branch head it
//     was decided on (a private index, no work tree: no lock file is ever read from
//     disk, and no symlink in the repository is ever followed), and pushed
//     fast-forward only, never forced. A lost race means: fetch, decide again.
//   - Nothing is pushed once ctx is done: ctx is checked right before each push. A
//     push that has started is not killed (see outRun.push for why); if it landed a
//     claim after ctx ended, that claim is released again at once.
//   - A release frees a lock only when the lock's current claim commit is the one
//     the build holds (DIR/<step>/ref, written by in); see outRun.release.
//   - Lock names that come from files are validated before use; lock files the
//     repository holds as symlinks, directories or submodules are never touched.
//   - stdout carries only the JSON answer. No secret reaches stdout, stderr, an
//     error or a commit message.
package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/redact"
)

// Env looks up the process environment (the BUILD_* variables); os.LookupEnv fits.
type Env func(string) (string, bool)

// Check is the resource's check: the given version and the commits that touched
// the pool after it, oldest first; with no version, the newest such commit.
func Check(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, env Env) error {
	return run(ctx, stdin, stderr, func(s *script, req *request) error {
		if err := s.requireSource(nil); err != nil {
			return err
		}
		versions, err := s.check(ctx, req.Version)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(versions)
	})
}

// In is the resource's in: DIR/name and DIR/metadata of the lock the pool's newest
// lock commit at or before the version changed, and DIR/ref, the claim holding it,
// which out's release uses as its fence. It fails, as upstream's, for a claim that
// no longer holds its lock.
func In(ctx context.Context, dir string, stdin io.Reader, stdout, stderr io.Writer, env Env) error {
	return run(ctx, stdin, stderr, func(s *script, req *request) error {
		var params inParams
		if err := s.requireSource(s.decodeParams(req.Params, &params)); err != nil {
			return err
		}
		ans, err := s.in(ctx, dir, req.Version, params)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(ans)
	})
}

// Out is the resource's out: one of acquire, claim, release, add, add_claimed,
// remove, update, check, check_unclaimed, or reap, as params say.
func Out(ctx context.Context, dir string, stdin io.Reader, stdout, stderr io.Writer, env Env) error {
	return run(ctx, stdin, stderr, func(s *script, req *request) error {
		var params outParams
		perr := s.decodeParams(req.Params, &params)
		if perr == nil {
			perr = params.check()
		}
		if err := s.requireSource(perr); err != nil {
			return err
		}
		o := &outRun{script: s, params: params, dir: dir, holder: holderFrom(env)}
		ans, err := o.run(ctx)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(ans)
	})
}

// script is what every script shares: the request's source and a log without secrets.
type script struct {
	src source
	log io.Writer // stderr, secrets removed
	red *redact.Redactor
}

// run decodes the request, runs body and removes every secret from its error. An
// error once ctx has ended (Concourse's SIGTERM) is an abortedError.
func run(ctx context.Context, stdin io.Reader, stderr io.Writer, body func(*script, *request) error) error {
	red := redact.New()
	s := &script{log: red.Writer(stderr), red: red}
	var req request
	raw, err := decode(ctx, stdin, &req)
	read := err == nil // decode says itself when the abort came while reading
	if read {
		s.src = req.Source
		secrets := s.src.secrets()
		red.Add(secrets...)
		gitx.Conceal(secrets...)
		warnUnknown(s.log, "source", raw.Source, reflect.TypeFor[source]())
		err = body(s, &req)
	}
	if err == nil {
		return nil
	}
	var ab *abortedError
	if read && ctx.Err() != nil && !errors.As(err, &ab) {
		err = &abortedError{what: stoppedMidStep, cause: context.Cause(ctx), err: err}
	}
	return &scriptError{msg: red.String(err.Error()), err: err}
}

// stoppedMidStep is what an abort gave up when it stopped a command mid-way.
const stoppedMidStep = "the step was stopped before it finished"

// abortedError is how a step Concourse stopped (SIGTERM or SIGINT: ctx ended)
// ends. Its text says what was given up, in words of its own: "git clone: signal:
// killed" would not tell the user that the build was aborted, and an abort is no
// failure, so the text has no "error" in it for anyone scanning logs for one.
type abortedError struct {
	what  string
	cause error // context.Cause
	err   error // what the step was doing failed with, if anything
}

func aborted(ctx context.Context, what string) error {
	return &abortedError{what: what, cause: context.Cause(ctx)}
}

func (e *abortedError) Error() string { return "aborted: " + e.what }

func (e *abortedError) Unwrap() []error {
	if e.err == nil {
		return []error{e.cause}
	}
	return []error{e.cause, e.err}
}

// requireSource joins the source's problems with more (the params'), so one run
// reports them all, as upstream does.
func (s *script) requireSource(more error) error {
	errs := s.src.check()
	if more != nil {
		errs = append(errs, more)
	}
	return errors.Join(errs...)
}

// open clones the branch, depth commits deep (0: all of it).
func (s *script) open(ctx context.Context, depth int) (*gitx.Repo, error) {
	opts := s.src.gitOptions(depth)
	opts.Logger = slog.New(slog.DiscardHandler)
	var repo *gitx.Repo
	err := s.retryUnreachable(ctx, func() (err error) {
		repo, err = gitx.Open(ctx, opts)
		return err
	})
	return repo, err
}

// retryUnreachable runs f, and again retry_delay later while the remote cannot
// be reached, maxFailures times in all, as failed pushes are retried; a wrong
// password or a missing repository is final at once.
func (s *script) retryUnreachable(ctx context.Context, f func() error) error {
	return gitx.RetryUnreachable(ctx, maxFailures, s.src.retryDelay(), func(err error, wait time.Duration) {
		fmt.Fprintf(s.log, "warning: could not reach the repository (%v), retrying in %s\n", err, wait)
	}, f)
}

// scriptError is an error with every secret removed from its text; errors.Is still
// sees the cause (context.Canceled, say).
type scriptError struct {
	msg string
	err error
}

func (e *scriptError) Error() string { return e.msg }
func (e *scriptError) Unwrap() error { return e.err }
