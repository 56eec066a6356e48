package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/poolboy-ci/poolboy/internal/backoff"
	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/report"
)

// Options tune the daemon; the zero value is the production setting.
type Options struct {
	Log *slog.Logger
	// MaxBackoff caps the wait before retrying a failed cycle (default 5m; never
	// more than the interval).
	MaxBackoff time.Duration
	// ShutdownGrace is how long a cycle in progress may go on after the context is
	// cancelled, to finish its push (default 10s; negative: abandon at once).
	ShutdownGrace time.Duration
	// RecentReaps is how many reaps per repo /api/pools keeps (default 50).
	RecentReaps int
	// Depth is the history the first clone of a network remote fetches (default 256).
	Depth int

	now         func() time.Time
	beforeGit   func(ctx context.Context, kind string) // tests: called before each network git operation
	beforeCycle func(repo string)                      // tests: called as each cycle of repo starts
}

// Daemon keeps the repos of a Config healthy. Run it once; serve Handler.
type Daemon struct {
	cfg     *Config
	opts    Options
	log     *slog.Logger
	cc      []liveness.Source // none: no Concourse
	health  []*ccHealth       // what each of cc has answered lately
	workers []*worker
	byName  map[string]*worker
	metrics *metrics
}

// New checks the Concourse settings (without the network) and prepares the daemon.
func New(cfg *Config, opts Options) (*Daemon, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Minute
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 10 * time.Second
	}
	if opts.RecentReaps <= 0 {
		opts.RecentReaps = 50
	}
	if opts.Depth == 0 {
		opts.Depth = 256
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	d := &Daemon{cfg: cfg, opts: opts, log: opts.Log, byName: map[string]*worker{}}
	// The clients (and their tokens) are shared by every cycle, on the daemon's clock.
	targets := slices.Clone(cfg.Concourse)
	for i := range targets {
		targets[i].Now = opts.now
	}
	cc, err := liveness.Dial(targets, opts.Log)
	if err != nil {
		return nil, err
	}
	d.cc = cc
	for _, r := range cfg.Repos {
		w := &worker{d: d, cfg: r, trigger: make(chan struct{}, 1), log: opts.Log.With("repo", r.Name),
			branch: r.Branch, reaps: make([]Reap, 0, opts.RecentReaps)}
		d.workers = append(d.workers, w)
		d.byName[r.Name] = w
	}
	d.metrics = newMetrics(d)
	if len(d.cc) > 0 {
		g := newCCGauges(d.metrics.reg)
		for _, s := range d.cc {
			d.health = append(d.health, &ccHealth{url: strings.TrimRight(s.URL, "/"), ccGauges: g})
		}
	}
	return d, nil
}

func (d *Daemon) now() time.Time { return d.opts.now() }

// Trigger asks for a cycle of the named repo at once: the next one if a cycle is
// running (however many triggers arrive meanwhile, one follow-up cycle). It says
// whether the repo exists.
func (d *Daemon) Trigger(name string) bool {
	w := d.byName[name]
	if w == nil {
		return false
	}
	select {
	case w.trigger <- struct{}{}:
	default: // one is pending already
	}
	return true
}

// Run runs every repo's cycles until ctx is cancelled, then waits for the cycles
// in progress to finish or be abandoned, and closes the clones.
func (d *Daemon) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range d.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Reap is one lock freed by the daemon.
type Reap struct {
	At     time.Time `json:"at"`
	Pool   string    `json:"pool"`
	Lock   string    `json:"lock"`
	Commit string    `json:"commit"`
	Rule   string    `json:"rule"`
	Reason string    `json:"reason"`
	Owner  string    `json:"owner,omitempty"`
}

// RepoState is what the daemon knows about one repo.
type RepoState struct {
	Name        string
	Branch      string
	Cycles      int // finished, successful or not
	Running     bool
	LastStart   time.Time
	LastEnd     time.Time
	LastSuccess time.Time // zero: none yet
	LastError   string    // of the last cycle; "" when it succeeded
	Report      *report.Doc
	Reaps       []Reap // most recent last
}

type worker struct {
	d       *Daemon
	cfg     Repo
	log     *slog.Logger
	trigger chan struct{}
	repo    *gitx.Repo    // owned by the run goroutine
	index   *claims.Index // the claims found so far, kept in the clone: owned by the run goroutine

	mu        sync.Mutex
	branch    string
	cycles    int
	running   bool
	lastStart time.Time
	lastEnd   time.Time
	lastOK    time.Time
	lastErr   string
	doc       *report.Doc
	reaps     []Reap // ring: the newest RecentReaps, oldest first
}

func (w *worker) snapshot() RepoState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return RepoState{Name: w.cfg.Name, Branch: w.branch, Cycles: w.cycles, Running: w.running,
		LastStart: w.lastStart, LastEnd: w.lastEnd, LastSuccess: w.lastOK, LastError: w.lastErr,
		Report: w.doc, Reaps: append([]Reap(nil), w.reaps...)}
}

// State returns what the daemon knows about repo name.
func (d *Daemon) State(name string) (RepoState, bool) {
	w := d.byName[name]
	if w == nil {
		return RepoState{}, false
	}
	return w.snapshot(), true
}

func (w *worker) run(ctx context.Context) {
	defer func() {
		if w.repo != nil {
			w.repo.Close()
		}
	}()
	timer := time.NewTimer(0) // the first cycle at once
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-w.trigger:
		}
		// select picks at random among ready cases: a timer or trigger that was ready
		// together with the cancellation must not start a cycle after it.
		if ctx.Err() != nil {
			return
		}
		err := w.cycle(ctx)
		if ctx.Err() != nil {
			if err != nil {
				w.log.Info("stopped: cycle abandoned", "error", err)
			}
			return
		}
		next := w.d.cfg.Interval
		if err != nil {
			failures++
			next = w.d.backoff(failures)
			w.log.Warn("cycle failed; retrying", "error", err, "failures", failures, "retry_in", next.Round(time.Millisecond))
		} else {
			failures = 0
		}
		timer.Reset(next)
	}
}

// backoff is the wait after the n-th failure in a row: 1s, 2s, 4s, ... capped at
// MaxBackoff and the interval, scaled by a random factor in [0.5, 1.5) so replicas
// and repos do not retry in lock-step.
func (d *Daemon) backoff(n int) time.Duration {
	return backoff.Exp(n, time.Second, min(d.opts.MaxBackoff, d.cfg.Interval))
}

// errCycleTimeout ends a cycle that ran past cycle_timeout.
var errCycleTimeout = errors.New("the cycle took longer than cycle_timeout")

// cycle is one fetch-decide-push of the repo, given cycle_timeout at most. A
// cancelled ctx gives the cycle ShutdownGrace to finish before it is abandoned.
func (w *worker) cycle(ctx context.Context) (err error) {
	start := w.d.now()
	w.mu.Lock()
	w.running, w.lastStart = true, start
	w.mu.Unlock()

	timeout := w.d.cfg.CycleTimeout
	if timeout <= 0 {
		timeout = DefaultCycleTimeout
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	cctx, cancelTimeout := context.WithTimeoutCause(cctx, timeout, errCycleTimeout)
	defer cancelTimeout()
	stop := context.AfterFunc(ctx, func() {
		if w.d.opts.ShutdownGrace < 0 {
			cancel()
			return
		}
		t := time.AfterFunc(w.d.opts.ShutdownGrace, cancel)
		context.AfterFunc(cctx, func() { t.Stop() })
	})
	defer stop()

	doc, reaps, err := w.safeReap(cctx)
	if err != nil && errors.Is(context.Cause(cctx), errCycleTimeout) {
		err = fmt.Errorf("%w (%s): %w", errCycleTimeout, timeout, err)
	}

	end := w.d.now()
	m := w.d.metrics
	m.CycleDone(w.cfg.Name, start, end, outcome(err))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running, w.lastEnd = false, end
	w.cycles++
	for _, r := range reaps {
		m.Reaped(w.cfg.Name, r.Pool, r.Rule)
		if len(w.reaps) == cap(w.reaps) {
			copy(w.reaps, w.reaps[1:])
			w.reaps = w.reaps[:len(w.reaps)-1]
		}
		w.reaps = append(w.reaps, r)
	}
	if err != nil {
		w.lastErr = err.Error()
		return err
	}
	w.lastErr, w.lastOK, w.doc = "", end, doc
	m.Observe(w.cfg.Name, *doc)
	return nil
}

// safeReap is reap with a panic turned into the cycle's error: a bug met in one
// repository's content fails that repository's cycle, not the daemon.
func (w *worker) safeReap(ctx context.Context) (doc *report.Doc, reaps []Reap, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("cycle panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			doc, err = nil, fmt.Errorf("the cycle panicked: %v", p)
		}
	}()
	return w.reap(ctx)
}

// reap brings the clone up to date, frees the stale locks and reports the pools
// as they are after it. Reaps already pushed are returned even with an error.
func (w *worker) reap(ctx context.Context) (*report.Doc, []Reap, error) {
	d := w.d
	if d.opts.beforeCycle != nil {
		d.opts.beforeCycle(w.cfg.Name)
	}
	if w.repo == nil {
		var repo *gitx.Repo
		err := meteredRepo{d: d}.op(ctx, "open", func() error {
			var err error
			repo, err = gitx.Open(ctx, gitx.Options{
				URL: w.cfg.URI, Branch: w.cfg.Branch, Auth: w.cfg.Auth,
				CacheDir: filepath.Join(d.cfg.CacheDir, w.cfg.Name),
				Depth:    d.opts.Depth, Logger: w.log,
			})
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		w.repo = repo
		w.index = claims.OpenIndex(filepath.Join(repo.Dir(), claims.IndexFile))
		w.mu.Lock()
		w.branch = repo.Branch()
		w.mu.Unlock()
	} else if _, err := (meteredRepo{w.repo, d}).Fetch(ctx); err != nil {
		return nil, nil, err
	}
	repo := meteredRepo{w.repo, d}
	cfg := reaper.Config{Timeouts: w.cfg.Timeouts, ReapSucceeded: w.cfg.ReapOnSuccess, ReapTo: w.cfg.ReapTo, Log: w.log, Now: d.now, Index: w.index}
	if len(d.cc) > 0 {
		// A witness lives for one cycle: its answers are cached for that long only.
		srcs := make([]liveness.Source, len(d.cc))
		for i, s := range d.cc {
			s.Client = meteredConcourse{s.Client, d, d.health[i]}
			srcs[i] = s
		}
		cfg.Witness = liveness.New(liveness.Options{Log: w.log}, srcs...)
	}
	res, err := reaper.Clean(ctx, repo, cfg, false)
	var reaps []Reap
	if res != nil { // also when Clean gave up: the batches that landed are reaps
		for _, f := range res.Freed {
			reaps = append(reaps, Reap{At: res.Report.At, Pool: f.Pool, Lock: f.Name, Commit: f.Commit,
				Rule: f.Verdict.Rule, Reason: f.Verdict.Reason, Owner: ownerString(f.LockReport)})
		}
	}
	if err != nil {
		return nil, reaps, err
	}
	rep := res.Report
	if len(res.Freed) > 0 {
		// Report the pools as the push left them (the witness's answers are cached).
		after, err := reaper.Status(ctx, repo, cfg)
		if err != nil {
			return nil, reaps, fmt.Errorf("after freeing %d locks: %w", len(reaps), err)
		}
		rep = after
	}
	doc, err := report.Read(ctx, repo, w.repo.URL(), w.repo.Branch(), rep, res)
	if err != nil {
		return nil, reaps, err
	}
	return &doc, reaps, nil
}

func ownerString(l reaper.LockReport) string {
	if !l.Owner.Known() {
		return ""
	}
	return l.Owner.String()
}

// ready says whether every repo had a successful cycle within 3 intervals; when
// not, why, naming the repo.
func (d *Daemon) ready() error {
	now := d.now()
	var errs []error
	for _, w := range d.workers {
		st := w.snapshot()
		switch {
		case st.LastSuccess.IsZero() && st.LastError != "":
			errs = append(errs, fmt.Errorf("repo %s: no successful cycle yet: %s", st.Name, st.LastError))
		case st.LastSuccess.IsZero():
			errs = append(errs, fmt.Errorf("repo %s: no successful cycle yet", st.Name))
		case now.Sub(st.LastSuccess) > 3*d.cfg.Interval:
			e := fmt.Sprintf("repo %s: last successful cycle %s ago (more than 3 × the %s interval)",
				st.Name, now.Sub(st.LastSuccess).Round(time.Second), d.cfg.Interval)
			if st.LastError != "" {
				e += ": " + st.LastError
			}
			errs = append(errs, errors.New(e))
		}
	}
	return errors.Join(errs...)
}
