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
//   - Evidence is about the claim's own build or it is none: an answer from
//     another Concourse than the Build URL's, or about a build with another id
//     than the recorded one, is Foreign, and the timeout decides.
//   - When the answer may be about another build, the evidence may keep the
//     lock, never free it early (KeepOnly): the claim does not say which team
//     or which Concourse (older formats), its first line and Build URL name
//     different builds, the build ended before the claim or started after it
//     (the claim's time is the worker's clock, which may be off), or Concourse
//     recorded the build's puts and the claim is not among them. A claim time
//     off the claim's own build's times (the recorded id on the Build URL's
//     Concourse) is only a warning.
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
	Info(ctx context.Context) (*concourse.Info, error)
	JobBuild(ctx context.Context, p concourse.Pipeline, job, name string) (*concourse.Build, error)
	Build(ctx context.Context, id int) (*concourse.Build, error)
	BuildResources(ctx context.Context, id int) (*concourse.BuildResources, error)
	PutResources(ctx context.Context, id int) (map[string]string, error)
	VersionID(ctx context.Context, p concourse.Pipeline, resource, ref string) (int, error)
	InputTo(ctx context.Context, p concourse.Pipeline, resource string, versionID int) ([]concourse.Build, error)
}

// ClockSkew is how far the claim commit's time (the worker's clock) may lie
// outside its build's start and end times (the web node's clock) and the build
// still count as the claim's own.
const ClockSkew = 5 * time.Minute

// Claim is a lock's claim commit and the build its message names.
type Claim struct {
	Commit string
	Time   time.Time // the commit's time; zero: unknown, the build's times are not compared
	Owner  commitmsg.Owner
	// Waiting marks a build waiting in a queue (Commit is then its ticket's
	// path): it holds nothing yet, so no hand-off is looked for.
	Waiting bool
}

// Source is one Concourse to ask.
type Source struct {
	Client Client
	Team   string // team of claims written before team names were recorded; default "main"
	URL    string // its API address: names it in warnings, and build links when it says no external URL
}

// Options bound the cost of asking.
type Options struct {
	Concurrency int           // requests at once; default 4
	Deadline    time.Duration // for a whole Evidence call; default 60s
	Log         *slog.Logger
}

// Witness gathers evidence for one run.
type Witness struct {
	srcs []*source
	opts Options
}

// source is a Source with its answers of this run.
type source struct {
	Source
	info      result[*concourse.Info]
	mu        sync.Mutex
	builds    map[string]*result[*concourse.Build]
	resources map[int]*result[*concourse.BuildResources]
	plans     map[int]*result[map[string]string]
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

// New returns a Witness asking the sources.
func New(opts Options, srcs ...Source) *Witness {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Deadline <= 0 {
		opts.Deadline = 60 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	w := &Witness{opts: opts}
	for _, s := range srcs {
		if s.Team == "" {
			s.Team = "main"
		}
		w.srcs = append(w.srcs, &source{Source: s,
			builds:    map[string]*result[*concourse.Build]{},
			resources: map[int]*result[*concourse.BuildResources]{},
			plans:     map[int]*result[map[string]string]{}})
	}
	return w
}

// Dial is the one way a Concourse is wired, for the command line, the watch
// daemon and the resource alike: it resolves each target (without the network)
// and builds its client.
func Dial(targets []concourse.Target, log *slog.Logger) ([]Source, error) {
	var srcs []Source
	for _, t := range targets {
		cfg, team, err := t.Resolve(log)
		if err != nil {
			return nil, err
		}
		c, err := concourse.New(cfg)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, Source{Client: c, Team: team, URL: cfg.URL})
	}
	return srcs, nil
}

// Connect returns a Witness asking the targets (Dial, then New).
func Connect(targets []concourse.Target, opts Options) (*Witness, error) {
	srcs, err := Dial(targets, opts.Log)
	if err != nil {
		return nil, err
	}
	return New(opts, srcs...), nil
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
		if !c.Owner.Known() || len(w.srcs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := w.one(ctx, sem, c)
			switch {
			case ev.Err != "":
				w.opts.Log.Warn("Concourse could not say whether a lock's build is alive; the timeout decides",
					"build", ev.Name, "claim", c.Commit, "error", ev.Err)
			case ev.Foreign != "":
				w.opts.Log.Warn("Concourse's answer is not about the build that claimed the lock; the timeout decides",
					"build", ev.Name, "claim", c.Commit, "why", ev.Foreign)
			}
			mu.Lock()
			out[c.Commit] = ev
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// one gathers the evidence of one claim from the Concourse its Build URL names;
// a claim that names none is asked of the only one, or of all of them.
func (w *Witness) one(ctx context.Context, sem chan struct{}, c Claim) *policy.Build {
	ev := w.ask(ctx, sem, c)
	if c.Owner.Conflict != "" {
		keepOnly(ev, "the claim does not say which build made it: "+c.Owner.Conflict)
	}
	return ev
}

// ask is one before the claim's own doubts are added.
func (w *Witness) ask(ctx context.Context, sem chan struct{}, c Claim) *policy.Build {
	srcs, ev := w.sourcesFor(ctx, sem, c)
	if ev != nil {
		return ev
	}
	if len(srcs) == 1 {
		ev := w.judge(ctx, sem, srcs[0], c)
		if c.Owner.Team == "" && !c.Owner.IsOneOff() {
			keepOnly(ev, "the claim names no team, so team "+srcs[0].Team+"'s build of that name may be another's")
		}
		return ev
	}
	// Several Concourses and nothing says which: any of them may keep the lock,
	// none may free it early, since each may be answering about another build.
	var kept *policy.Build
	for _, s := range srcs {
		ev := w.judge(ctx, sem, s, c)
		if ev.Foreign == "" && ev.Err == "" && (policy.Running(ev.Status) || ev.HandedOffTo != "") {
			return ev
		}
		if kept == nil || (kept.Err == "" && ev.Err != "") {
			kept = ev
		}
	}
	keepOnly(kept, "the claim names no Concourse and several are configured")
	return kept
}

// keepOnly adds why ev may be about another build than the claim's.
func keepOnly(ev *policy.Build, why string) {
	if ev.KeepOnly != "" {
		why = ev.KeepOnly + "; " + why
	}
	ev.KeepOnly = why
}

// sourcesFor picks the Concourse whose external URL the claim's Build URL
// names. Without a match it returns the evidence instead: a lookup failure,
// or a claim from a Concourse that is not configured.
func (w *Witness) sourcesFor(ctx context.Context, sem chan struct{}, c Claim) ([]*source, *policy.Build) {
	if c.Owner.Server == "" {
		return w.srcs, nil
	}
	var failed []string
	for _, s := range w.srcs {
		s.info.once.Do(func() {
			s.info.err = w.request(ctx, sem, func() error {
				var err error
				s.info.val, err = s.Client.Info(ctx)
				if err == nil && s.info.val.ExternalURL == "" {
					err = errors.New("GET /api/v1/info: the answer has no external_url")
				}
				return err
			})
		})
		if s.info.err != nil {
			failed = append(failed, s.URL+": "+s.info.err.Error())
			continue
		}
		if commitmsg.SameServer(s.info.val.ExternalURL, c.Owner.Server) {
			return []*source{s}, nil
		}
	}
	ev := &policy.Build{Name: c.Owner.String()}
	if len(failed) > 0 {
		ev.Err = "asking which Concourse wrote its Build URL: " + strings.Join(failed, "; ")
	} else {
		ev.Foreign = "its Build URL names " + c.Owner.Server + ", which is not a configured Concourse"
	}
	return nil, ev
}

// judge asks s about the claim's build.
func (w *Witness) judge(ctx context.Context, sem chan struct{}, s *source, c Claim) *policy.Build {
	ev := &policy.Build{Name: c.Owner.String()}
	where := ""
	if len(w.srcs) > 1 {
		where = s.URL + ": "
	}
	b, err := w.build(ctx, sem, s, c.Owner)
	if err != nil {
		if errors.Is(err, concourse.ErrNotFound) {
			ev.NotFound = true
		} else {
			ev.Err = where + err.Error()
		}
		return ev
	}
	if c.Owner.ID != "" && c.Owner.ID != strconv.Itoa(b.ID) {
		ev.Foreign = where + fmt.Sprintf("Concourse's %s has build id %d, the claim was written by build id %s (pipeline re-created?)",
			b.Display(), b.ID, c.Owner.ID)
		return ev
	}
	ev.Name, ev.Status = b.Display(), b.Status
	ev.URL = s.page(b.ID)
	if why := outsideTimes(b, c); why != "" {
		// The claim's time is the worker's clock: a slow one must not make a
		// running build's answer foreign (freeing its lock by the timeout on
		// that clock's date). The recorded id on the Build URL's Concourse is
		// the claim's own build whatever its time; without both, the build
		// may be another of that name, so it may keep the lock only.
		if c.Owner.ID != "" && c.Owner.Server != "" {
			ev.Warning = where + why + ": the worker's clock is off"
		} else {
			keepOnly(ev, where+why+", so it may be another build of that name")
		}
	}
	if policy.Running(b.Status) || b.PipelineName == "" || c.Waiting {
		return ev // running, a one-off build, or a waiter: nothing can have taken the lock on
	}
	res, err := cached(ctx, w, sem, &s.mu, s.resources, b.ID, s.Client.BuildResources)
	if err != nil {
		ev.Err = where + "checking for a hand-off: " + err.Error()
		return ev
	}
	if why := putOthers(res, c.Commit); why != "" {
		keepOnly(ev, where+why)
		return ev
	}
	to, err := w.handoff(ctx, sem, s, b, res, c.Commit)
	if err != nil {
		ev.Err = where + "checking for a hand-off: " + err.Error()
	}
	ev.HandedOffTo = to
	return ev
}

// putOthers says why Concourse's record of b's puts says b may not have
// written commit, "" when it may have: b recorded outputs and commit is not
// among them. A build that died after its put pushed the claim has no output
// recorded for it, so no outputs at all says nothing; but a build that put
// other commits (prod's build of a pipeline staging runs too, claiming another
// lock of the shared repository) may be another's build of that name. It may
// still be the writer (a build that put something else before its claim's put
// died), so this keeps, never frees early, rather than being foreign.
func putOthers(res *concourse.BuildResources, commit string) string {
	var others []string
	for _, out := range res.Outputs {
		ref := out.Version["ref"]
		if ref == commit {
			return ""
		}
		others = append(others, out.Name+" as "+ref)
	}
	if len(others) == 0 {
		return ""
	}
	return "Concourse recorded its put " + strings.Join(others, ", ") + ", not this claim, so it may not be the build that wrote it"
}

// outsideTimes says how the claim's time lies outside build b's, "" when it
// does not: no build writes a claim before it starts or after it ends.
func outsideTimes(b *concourse.Build, c Claim) string {
	if c.Time.IsZero() {
		return ""
	}
	at := c.Time.UTC().Format(time.RFC3339)
	if b.EndTime != 0 && time.Unix(b.EndTime, 0).Add(ClockSkew).Before(c.Time) {
		return fmt.Sprintf("Concourse's %s ended at %s, before the claim (%s)", b.Display(), time.Unix(b.EndTime, 0).UTC().Format(time.RFC3339), at)
	}
	if b.StartTime != 0 && time.Unix(b.StartTime, 0).Add(-ClockSkew).After(c.Time) {
		return fmt.Sprintf("Concourse's %s started at %s, after the claim (%s)", b.Display(), time.Unix(b.StartTime, 0).UTC().Format(time.RFC3339), at)
	}
	return ""
}

// page is the build's page, under the address poolboy asks.
func (s *source) page(id int) string {
	if s.URL == "" {
		return ""
	}
	return strings.TrimRight(s.URL, "/") + "/builds/" + strconv.Itoa(id)
}

// build looks up the build a claim names, once per build.
func (w *Witness) build(ctx context.Context, sem chan struct{}, s *source, o commitmsg.Owner) (*concourse.Build, error) {
	team := o.Team
	if team == "" {
		team = s.Team
	}
	key := "id " + o.BuildID
	if !o.IsOneOff() {
		key = strings.Join([]string{team, o.Pipeline, o.VarsJSON(), o.Job, o.Build}, "\x00")
	}
	r := lookup(&s.mu, s.builds, key)
	r.once.Do(func() {
		r.err = w.request(ctx, sem, func() error {
			var err error
			if !o.IsOneOff() {
				p := concourse.Pipeline{Team: team, Name: o.Pipeline, Vars: o.Vars}
				r.val, err = s.Client.JobBuild(ctx, p, o.Job, o.Build)
				return err
			}
			id, err := strconv.Atoi(o.BuildID)
			if err != nil {
				return fmt.Errorf("one-off build id %q is not a number", o.BuildID)
			}
			r.val, err = s.Client.Build(ctx, id)
			return err
		})
	})
	return r.val, r.err
}

// handoff names a running build that took the claim commit as an input after b
// put it: res (GET /builds/ID/resources) gives the put step that wrote the
// commit, the plan the resource that step puts to, then its version id, and input_to the
// builds that took that version. Every lookup that fails — a 404 for a version
// the put made included — is an error, never "nobody took it".
func (w *Witness) handoff(ctx context.Context, sem chan struct{}, s *source, b *concourse.Build, res *concourse.BuildResources, commit string) (string, error) {
	p := concourse.Pipeline{Team: b.TeamName, Name: b.PipelineName, Vars: b.PipelineInstanceVars}
	for _, out := range res.Outputs {
		if out.Version["ref"] != commit {
			continue
		}
		puts, err := cached(ctx, w, sem, &s.mu, s.plans, b.ID, s.Client.PutResources)
		if err != nil {
			return "", fmt.Errorf("finding the resource of put step %s: %w", out.Name, err)
		}
		resource, ok := puts[out.Name]
		if !ok {
			return "", fmt.Errorf("the plan of build %d has no put step %s", b.ID, out.Name)
		}
		var builds []concourse.Build
		err = w.request(ctx, sem, func() error {
			vid, err := s.Client.VersionID(ctx, p, resource, commit)
			if err != nil {
				return err
			}
			builds, err = s.Client.InputTo(ctx, p, resource, vid)
			return err
		})
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

// cached runs fetch(id) once per id per run.
func cached[T any](ctx context.Context, w *Witness, sem chan struct{}, mu *sync.Mutex, cache map[int]*result[T], id int,
	fetch func(context.Context, int) (T, error)) (T, error) {
	r := lookup(mu, cache, id)
	r.once.Do(func() {
		r.err = w.request(ctx, sem, func() error {
			var err error
			r.val, err = fetch(ctx, id)
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
