// Package demo builds the world `poolboy demo` runs in: a lock repository with a
// realistic history, and a stand-in for the Concourse API (internal/fakeconcourse,
// the project's one fake Concourse) that knows the builds holding its locks. The
// builds are chosen so that the timeouts alone get every one of them wrong, and
// asking Concourse gets them right: a 5-hour-old lock whose build still runs, a
// 5-minute-old lock whose build was aborted, one whose build failed, one handed
// on to a downstream job, one whose pipeline is gone.
package demo

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// Pools is the --pools value the demo uses: "licences" is left without a timeout,
// so it is reported and never cleaned.
const Pools = "aws:1h,gpu:2h"

// The stand-in Concourse's local user. It lives as long as the demo does.
const (
	User     = "demo"
	Password = "demo-password"
)

// Lock is one claimed lock of the demo and the story behind it, for the
// introduction the demo prints.
type Lock struct {
	Pool, Name string
	Age        time.Duration
	Story      string
}

// World is the demo's repository and its stand-in Concourse.
type World struct {
	Remote    string                // the bare repository
	Concourse *fakeconcourse.Server // the stand-in, on 127.0.0.1 until Close
	Locks     []Lock                // the claimed locks, pool and name order
	owner     *owner
}

// Close stops the stand-in Concourse. The repository stays: its directory is the
// caller's.
func (w *World) Close() { w.owner.close() }

// A build the stand-in knows, and the lock it claimed.
type scene struct {
	pool, lock string
	claimed    time.Duration // how long ago
	id         int
	pipeline   string
	job, name  string
	status     string
	start, end time.Duration // how long ago; end 0: not finished
	story      string
}

// The builds. Ids are fixed so the claims can name them (Poolboy-Build-Id).
var scenes = []scene{
	{"aws", "env-1", 5 * time.Hour, 4101, "deploy", "integration", "41", "started", 5*time.Hour + time.Minute, 0,
		"build started 5h ago and still running (a long soak test)"},
	{"aws", "env-2", 5 * time.Minute, 4102, "deploy", "smoke", "7", "aborted", 6 * time.Minute, 2 * time.Minute,
		"build aborted 2m ago: its ensure step never ran"},
	{"aws", "env-3", 20 * time.Minute, 4103, "deploy", "e2e", "19", "failed", 21 * time.Minute, 10 * time.Minute,
		"build failed 10m ago and died before it released the lock"},
	{"gpu", "gpu-a", 3 * time.Hour, 4104, "train", "prepare", "3", "succeeded", 3*time.Hour + time.Minute, 2*time.Hour + 50*time.Minute,
		"build succeeded and handed the lock on: train/train #3 took it (passed:) and is running"},
	{"aws", "env-4", 3 * time.Hour, 4106, "nightly", "soak", "88", "failed", 3*time.Hour + time.Minute, 2 * time.Hour,
		"pipeline nightly was destroyed since: Concourse answers 404"},
}

// The downstream build that took gpu-a's claim as an input.
const handoffID = 4105

// New starts the stand-in Concourse and builds the repository at dir/locks.git,
// its history ending at now. Close the World when done.
func New(ctx context.Context, dir string, now time.Time) (*World, error) {
	o := &owner{}
	cc := fakeconcourse.New(o)
	w := &World{Remote: filepath.Join(dir, "locks.git"), Concourse: cc, owner: o}
	fail := func(err error) (*World, error) {
		w.Close()
		return nil, err
	}
	cc.AddUser(User, Password, "main")
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, s := range scenes {
		b := fakeconcourse.Build{ID: s.id, Pipeline: s.pipeline, Job: s.job, Name: s.name, Status: s.status,
			StartTime: ago(s.start)}
		if s.end > 0 {
			b.EndTime = ago(s.end)
		}
		if s.lock == "gpu-a" {
			b.PutSteps = map[string]string{"gpu": "claim-gpu"} // put: claim-gpu, resource: gpu
		}
		cc.AddBuild(b)
	}
	cc.DeletePipeline("main", "nightly", nil)
	if err := o.err(); err != nil {
		return fail(err)
	}
	if err := fixture.Build(ctx, w.Remote, spec(now, cc.ExternalURL)); err != nil {
		return fail(err)
	}
	// The hand-off: prepare's put wrote the claim commit (its output version),
	// and train took that version as an input.
	out, err := exec.CommandContext(ctx, "git", "--git-dir", w.Remote, "log", "-1", "--format=%H", "main", "--", "gpu/claimed/gpu-a").Output()
	if err != nil {
		return fail(fmt.Errorf("finding the claim of gpu-a: %w", err))
	}
	claim := fakeconcourse.Version{Resource: "gpu", Ref: strings.TrimSpace(string(out))}
	cc.AddOutput(4104, claim)
	cc.AddBuild(fakeconcourse.Build{ID: handoffID, Pipeline: "train", Job: "train", Name: "3", Status: "started",
		StartTime: ago(2*time.Hour + 45*time.Minute), Inputs: []fakeconcourse.Version{claim}})
	if err := o.err(); err != nil {
		return fail(err)
	}
	for _, s := range scenes {
		w.Locks = append(w.Locks, Lock{Pool: s.pool, Name: s.lock, Age: s.claimed,
			Story: fmt.Sprintf("main/%s/%s #%s, %s", s.pipeline, s.job, s.name, s.story)})
	}
	w.Locks = append(w.Locks, Lock{Pool: "licences", Name: "matlab-1", Age: 48 * time.Hour,
		Story: "claimed by hand with plain git: no build, and the pool has no timeout"})
	slices.SortFunc(w.Locks, func(a, b Lock) int {
		if c := pool.CompareNames(a.Pool, b.Pool); c != 0 {
			return c
		}
		return pool.CompareNames(a.Name, b.Name)
	})
	return w, nil
}

// claimMsg is a claim commit as poolboy's resource writes it: the 2018+ first
// line, the Build URL (naming the stand-in as its Concourse), the build's id.
func claimMsg(external string, s scene) string {
	url := fmt.Sprintf("%s/teams/main/pipelines/%s/jobs/%s/builds/%s", external, s.pipeline, s.job, s.name)
	return fmt.Sprintf("main/%s/%s build %s claiming: %s\n\nBuild URL: %s\n\n"+
		"Poolboy-Build-Id: %d\nPoolboy-Build-Team: main\nPoolboy-Build-Pipeline: %s\nPoolboy-Build-Job: %s\nPoolboy-Build-Name: %s\nPoolboy-Build-Url: %s\n",
		s.pipeline, s.job, s.name, s.lock, url, s.id, s.pipeline, s.job, s.name, url)
}

// spec is the repository's history, ending just before now.
func spec(now time.Time, external string) fixture.Spec {
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	var ops []fixture.Op
	add := func(kind fixture.Kind, pool, lock string, at time.Duration, msg string) {
		ops = append(ops, fixture.Op{Kind: kind, Pool: pool, Lock: lock, At: ago(at), Message: msg,
			Content: `{"lock":"` + lock + `"}`})
	}
	for _, l := range []string{"env-1", "env-2", "env-3", "env-4", "env-10"} {
		add(fixture.Add, "aws", l, 72*time.Hour, "")
	}
	for _, l := range []string{"gpu-a", "gpu-b"} {
		add(fixture.Add, "gpu", l, 72*time.Hour, "")
	}
	add(fixture.Add, "licences", "matlab-1", 72*time.Hour, "")
	// Yesterday's traffic: claimed and released, as a busy pool looks.
	for i := range 6 {
		at := time.Duration(30-i) * time.Hour
		build := fmt.Sprintf("main/deploy/integration build 3%d", i)
		add(fixture.Claim, "aws", "env-1", at, build+" claiming: env-1")
		add(fixture.Release, "aws", "env-1", at-40*time.Minute, build+" unclaiming: env-1")
	}
	add(fixture.Claim, "licences", "matlab-1", 48*time.Hour, "claiming: matlab-1")
	byAge := slices.Clone(scenes)
	slices.SortStableFunc(byAge, func(a, b scene) int { return int(b.claimed - a.claimed) })
	for _, s := range byAge {
		add(fixture.Claim, s.pool, s.lock, s.claimed, claimMsg(external, s))
	}
	return fixture.Spec{Branch: "main", Pools: []string{"aws", "gpu", "licences"}, Start: ago(96 * time.Hour), Ops: ops}
}

// owner is the stand-in Concourse's owner outside a test: it keeps what the fake
// reports as misuse (a bug in the demo) and closes it at the end.
type owner struct {
	mu       sync.Mutex
	errs     []error
	cleanups []func()
}

func (o *owner) Helper() {}

func (o *owner) Errorf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, fmt.Errorf(format, args...))
}

func (o *owner) Cleanup(f func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cleanups = append(o.cleanups, f)
}

func (o *owner) err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return errors.Join(o.errs...)
}

// close runs the cleanups, newest first, once.
func (o *owner) close() {
	o.mu.Lock()
	fs := o.cleanups
	o.cleanups = nil
	o.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

// The queue scene: three builds want the one lock of QueuePool, held by hand.
const (
	QueuePool = "licences"
	QueueLock = "matlab-1"
)

// Waiter is a build of the queue scene.
type Waiter struct {
	ID                  int
	Pipeline, Job, Name string
	Priority            int // params.priority of its put
}

// Owner is the build as status names it.
func (w Waiter) Owner() string { return fmt.Sprintf("main/%s/%s #%s", w.Pipeline, w.Job, w.Name) }

// Env is the build's BUILD_* variables, as Concourse gives them to its put.
func (w Waiter) Env() map[string]string {
	return map[string]string{"BUILD_ID": fmt.Sprint(w.ID), "BUILD_NAME": w.Name, "BUILD_TEAM_NAME": "main",
		"BUILD_PIPELINE_NAME": w.Pipeline, "BUILD_JOB_NAME": w.Job}
}

// Waiters arrive in this order; the last has the highest priority and is served
// first, then the others in the order they came.
var Waiters = []Waiter{
	{4201, "reports", "render", "12", 0},
	{4202, "reports", "render", "13", 0},
	{4203, "release", "sign", "5", 5},
}
