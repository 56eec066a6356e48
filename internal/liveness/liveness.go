// Package liveness asks Concourse about the builds that claimed locks and turns the
// answers into evidence for the policy: is the build still running, did it hand the
// lock on to a build that is, or is it gone.
//
// Invariants:
//   - One lookup per distinct build (and per build's resources) per Witness: a
//     Witness lives for one run, so every lock of one build costs one request.
//   - At most Concurrency requests at once, and the whole gathering ends by
//     Deadline: a slow or dead Concourse delays a run by a bounded time.
//   - Every failure is reported as an error in the evidence, never as a status:
//     an error is never evidence that a build is dead.
package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/policy"
)

// Client is the part of the Concourse API the evidence needs.
type Client interface {
	JobBuild(ctx context.Context, p concourse.Pipeline, job, name string) (*concourse.Build, error)
	Build(ctx context.Context, id int) (*concourse.Build, error)
	BuildResources(ctx context.Context, id int) (*concourse.BuildResources, error)
	VersionID(ctx context.Context, p concourse.Pipeline, resource, ref string) (int, error)
	InputTo(ctx context.Context, p concourse.Pipeline, resource string, versionID int) ([]concourse.Build, error)
}

// Claim is a lock's claim commit and the build its message names.
type Claim struct {
	Commit string
	Owner  commitmsg.Owner
}

// Options bound the cost of asking.
type Options struct {
	Team        string        // team of claims written before team names were recorded; default "main"
	WebURL      string        // Concourse's address, for build links in reports
	Concurrency int           // requests at once; default 4
	Deadline    time.Duration // for a whole Evidence call; default 60s
	Log         *slog.Logger
}

// Witness gathers evidence for one run.
type Witness struct {
	c    Client
	opts Options

	mu        sync.Mutex
	builds    map[string]*result[*concourse.Build]
	resources map[int]*result[*concourse.BuildResources]
}

// result is one lookup, made once however many locks need it.
type result[T any] struct {
	once sync.Once
	val  T
	err  error
}

// lookup returns the cache entry for key, adding an empty one on first use.
func lookup[K comparable, T any](mu *sync.Mutex, cache map[K]*result[T], key K) *result[T] {
	mu.Lock()
	defer mu.Unlock()
	r, ok := cache[key]
	if !ok {
		r = &result[T]{}
		cache[key] = r
	}
	return r
}

// New returns a Witness asking c.
func New(c Client, opts Options) *Witness {
	if opts.Team == "" {
		opts.Team = "main"
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Deadline <= 0 {
		opts.Deadline = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Witness{c: c, opts: opts,
		builds:    map[string]*result[*concourse.Build]{},
		resources: map[int]*result[*concourse.BuildResources]{}}
}

// Connect returns a Witness asking the Concourse cfg describes; build links point
// at cfg.URL unless opts.WebURL says otherwise.
func Connect(cfg concourse.Config, opts Options) (*Witness, error) {
	c, err := concourse.New(cfg)
	if err != nil {
		return nil, err
	}
	if opts.WebURL == "" {
		opts.WebURL = cfg.URL
	}
	return New(c, opts), nil
}

// Evidence returns, by claim commit, what Concourse says about each claim's build.
// Claims that name no build get no entry: for them only the timeout decides.
func (w *Witness) Evidence(ctx context.Context, claims []Claim) map[string]*policy.Build {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Deadline)
	defer cancel()
	out := map[string]*policy.Build{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, w.opts.Concurrency)
	for _, c := range claims {
		if !c.Owner.Known() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := w.one(ctx, sem, c)
			if ev.Err != "" {
				w.opts.Log.Warn("Concourse could not say whether a lock's build is alive; the timeout decides",
					"build", ev.Name, "claim", c.Commit, "error", ev.Err)
			}
			mu.Lock()
			out[c.Commit] = ev
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func (w *Witness) one(ctx context.Context, sem chan struct{}, c Claim) *policy.Build {
	ev := &policy.Build{Name: c.Owner.String()}
	b, err := w.build(ctx, sem, c.Owner)
	if err != nil {
		if errors.Is(err, concourse.ErrNotFound) {
			ev.NotFound = true
		} else {
			ev.Err = err.Error()
		}
		return ev
	}
	ev.Name, ev.Status = b.Display(), b.Status
	if w.opts.WebURL != "" {
		ev.URL = strings.TrimRight(w.opts.WebURL, "/") + "/builds/" + strconv.Itoa(b.ID)
	}
	if policy.Running(b.Status) || b.PipelineName == "" {
		return ev // running, or a one-off build: nothing can have taken the lock on
	}
	to, err := w.handoff(ctx, sem, b, c.Commit)
	if err != nil {
		ev.Err = "checking for a hand-off: " + err.Error()
	}
	ev.HandedOffTo = to
	return ev
}

// build looks up the build a claim names, once per build.
func (w *Witness) build(ctx context.Context, sem chan struct{}, o commitmsg.Owner) (*concourse.Build, error) {
	team := o.Team
	if team == "" {
		team = w.opts.Team
	}
	key := "id " + o.BuildID
	if !o.IsOneOff() {
		key = strings.Join([]string{team, o.Pipeline, o.VarsJSON(), o.Job, o.Build}, "\x00")
	}
	r := lookup(&w.mu, w.builds, key)
	r.once.Do(func() {
		r.err = w.request(ctx, sem, func() error {
			var err error
			if !o.IsOneOff() {
				p := concourse.Pipeline{Team: team, Name: o.Pipeline, Vars: o.Vars}
				r.val, err = w.c.JobBuild(ctx, p, o.Job, o.Build)
				return err
			}
			id, err := strconv.Atoi(o.BuildID)
			if err != nil {
				return fmt.Errorf("one-off build id %q is not a number", o.BuildID)
			}
			r.val, err = w.c.Build(ctx, id)
			return err
		})
	})
	return r.val, r.err
}

// handoff names a running build that took the claim commit as an input after b
// put it: GET /builds/ID/resources gives the resource b wrote the commit to, its
// version id, and input_to the builds that took that version.
func (w *Witness) handoff(ctx context.Context, sem chan struct{}, b *concourse.Build, commit string) (string, error) {
	res, err := w.buildResources(ctx, sem, b.ID)
	if err != nil {
		return "", err
	}
	p := concourse.Pipeline{Team: b.TeamName, Name: b.PipelineName, Vars: b.PipelineInstanceVars}
	for _, out := range res.Outputs {
		if out.Version["ref"] != commit {
			continue
		}
		var vid int
		var builds []concourse.Build
		err := w.request(ctx, sem, func() error {
			var err error
			if vid, err = w.c.VersionID(ctx, p, out.Name, commit); err != nil {
				return err
			}
			builds, err = w.c.InputTo(ctx, p, out.Name, vid)
			return err
		})
		if errors.Is(err, concourse.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		for _, nb := range builds {
			if nb.Running() {
				return nb.Display(), nil
			}
		}
	}
	return "", nil
}

func (w *Witness) buildResources(ctx context.Context, sem chan struct{}, id int) (*concourse.BuildResources, error) {
	r := lookup(&w.mu, w.resources, id)
	r.once.Do(func() {
		r.err = w.request(ctx, sem, func() error {
			var err error
			r.val, err = w.c.BuildResources(ctx, id)
			return err
		})
	})
	return r.val, r.err
}

// request runs fn holding a concurrency slot.
func (w *Witness) request(ctx context.Context, sem chan struct{}, fn func() error) error {
	release := acquire(ctx, sem)
	defer release()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("concourse: gave up waiting: %w", err)
	}
	return fn()
}

// acquire takes a slot, or gives up when ctx ends; release is always safe to call.
func acquire(ctx context.Context, sem chan struct{}) (release func()) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }
	case <-ctx.Done():
		return func() {}
	}
}
