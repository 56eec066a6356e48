package soak

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// The pipeline the soak's builds belong to, the name its pool resource has in
// that pipeline, and a pipeline Concourse does not know (its builds answer 404).
const (
	pipeline = "soak"
	resName  = "lock"
	retired  = "retired"
)

// world is what the actors share: the repository, the fake Concourse, the
// builds and their status history, what each actor believes it holds, and the
// counters. Build statuses change only through world, which records each change
// just before Concourse can see it, so the checks can ask "what was this build
// doing at time T" of any moment of the run.
type world struct {
	t       *testing.T
	res     string // directory holding check, in and out (links to the binary)
	poolboy string // the binary
	url     string // the lock repository, git://127.0.0.1:PORT/locks.git
	bare    string // the server's repository on disk
	hookLog string // every push attempt, written by the pre-receive hook
	daemon  *testenv.GitDaemonServer
	cc      *fakeconcourse.Server
	ccUser  string
	ccPass  string
	stats   stats

	mu        sync.Mutex
	builds    map[string]*build // by BUILD_ID
	jobSeq    map[string]int
	orphanSeq int
	beliefs   map[uint64]belief
	epoch     uint64
	// The admin actor's view: locks it added (and is not removing), locks it removed.
	added, removed map[string]string // lock -> pool
	adminGen       uint64            // bumped on every change of added/removed
	// Claims left to their pool's timeout: their hand-off's release never worked.
	leftToTimeout map[string]bool
	// Builds whose put may have left a ticket behind (SIGKILLed, or its withdrawal
	// failed), by BUILD_ID.
	ticketLeft map[string]kill
	queue      *queueReplay
	violations []string
}

// build is a Concourse build of the soak pipeline, or an orphan: a build of a
// pipeline Concourse no longer has.
type build struct {
	id     int
	job    string
	name   string
	orphan bool
	inputs []string // claim commits it got through a get (a hand-off)
	trans  []transition
	// endLate: killed (a lost worker) with its end left to the actor that ran it
	// (trigger.lateEnd); only that actor reads or writes it.
	endLate bool
}

type transition struct {
	at     time.Time
	status string
}

// belief is "actor holds lock pool/name through claim ref".
type belief struct {
	actor, pool, lock, ref string
}

func newWorld(t *testing.T) *world {
	return &world{
		t:       t,
		builds:  map[string]*build{},
		jobSeq:  map[string]int{},
		beliefs: map[uint64]belief{},
		added:   map[string]string{},
		removed: map[string]string{},
		stats:   newStats(),

		leftToTimeout: map[string]bool{},
		ticketLeft:    map[string]kill{},
		queue:         &queueReplay{tickets: map[string]ticket{}, maxExpires: map[string]time.Time{}},
	}
}

// violate records a broken invariant; the test fails at the end with all of them.
func (w *world) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.mu.Lock()
	w.violations = append(w.violations, msg)
	w.mu.Unlock()
	w.t.Errorf("VIOLATION: %s", msg)
}

// startBuild starts a build of job in Concourse, with the claims it takes as inputs.
func (w *world) startBuild(job string, inputs ...string) *build {
	w.mu.Lock()
	w.jobSeq[job]++
	b := &build{job: job, name: strconv.Itoa(w.jobSeq[job]), inputs: inputs}
	w.mu.Unlock()
	var vs []fakeconcourse.Version
	for _, ref := range inputs {
		vs = append(vs, fakeconcourse.Version{Resource: resName, Ref: ref})
	}
	id := w.cc.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: pipeline, Job: job, Name: b.name, Status: "started", Inputs: vs})
	// Recorded once Concourse has it: a reaper that asked just before cannot
	// have known of it, so the checks must not count it as running earlier.
	w.mu.Lock()
	b.id = id
	b.trans = []transition{{time.Now(), "started"}}
	w.builds[strconv.Itoa(id)] = b
	w.mu.Unlock()
	return b
}

// startOrphan starts a build Concourse knows nothing about (its pipeline is gone).
func (w *world) startOrphan() *build {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.orphanSeq++
	b := &build{id: 1_000_000 + w.orphanSeq, job: "nightly", name: strconv.Itoa(w.orphanSeq), orphan: true,
		trans: []transition{{time.Now(), "started"}}}
	w.builds[strconv.Itoa(b.id)] = b
	return b
}

// finish ends a build. The change is recorded before Concourse answers with it, so
// no reaper can have seen it earlier than the record says.
func (w *world) finish(b *build, status string) {
	w.mu.Lock()
	b.trans = append(b.trans, transition{time.Now(), status})
	w.mu.Unlock()
	if !b.orphan {
		w.cc.SetStatus(b.id, status)
	}
	w.stats.add("builds "+status, 1)
}

// leaveToTimeout records a claim nobody will release: its pool's timeout frees it.
func (w *world) leaveToTimeout(claim string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.leftToTimeout[claim] = true
	w.stats.add("hand-offs left to the timeout", 1)
}

// kill is a put that may have left its ticket in pool's queue: killed at at (zero:
// its withdrawal failed).
type kill struct {
	pool string
	at   time.Time
}

// ticketMayStay records that b's put on pool may have left its ticket in the queue.
func (w *world) ticketMayStay(b *build, pool string, killed time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ticketLeft[strconv.Itoa(b.id)] = kill{pool, killed}
}

// output records the version a put step of b produced, as Concourse does.
func (w *world) output(b *build, ref string) {
	if !b.orphan {
		w.cc.AddOutput(b.id, fakeconcourse.Version{Resource: resName, Ref: ref})
	}
}

func (w *world) buildByID(id string) *build {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.builds[id]
}

// statusAt is b's status at time at ("" before it started).
func (w *world) statusAt(b *build, at time.Time) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := ""
	for _, tr := range b.trans {
		if !tr.at.After(at) {
			s = tr.status
		}
	}
	return s
}

// aliveAt says whether the claim's holder, or a build it handed the claim to,
// was running at time at: the lock was not free to take then.
func (w *world) aliveAt(holder *build, claim string, at time.Time) (bool, string) {
	if s := w.statusAt(holder, at); policy.Running(s) {
		return true, fmt.Sprintf("%s #%s was %s", holder.job, holder.name, s)
	}
	w.mu.Lock()
	var takers []*build
	for _, b := range w.builds {
		if slices.Contains(b.inputs, claim) {
			takers = append(takers, b)
		}
	}
	w.mu.Unlock()
	for _, b := range takers {
		if s := w.statusAt(b, at); policy.Running(s) {
			return true, fmt.Sprintf("it was handed to %s #%s, which was %s", b.job, b.name, s)
		}
	}
	return false, ""
}

// env is the environment Concourse gives b's resource steps.
func (w *world) env(b *build, home string) []string {
	pipe := pipeline
	if b.orphan {
		pipe = retired
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"TMPDIR=" + os.TempDir(),
		"BUILD_ID=" + strconv.Itoa(b.id),
		"BUILD_NAME=" + b.name,
		"BUILD_TEAM_NAME=main",
		"BUILD_PIPELINE_NAME=" + pipe,
		"BUILD_JOB_NAME=" + b.job,
		"ATC_EXTERNAL_URL=" + w.cc.URL,
	}
}

// hold records that actor now holds a lock; the returned epoch drops it.
func (w *world) hold(actor, pool, lock, ref string) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.epoch++
	w.beliefs[w.epoch] = belief{actor, pool, lock, ref}
	return w.epoch
}

// drop ends a belief, before the actor lets go of the lock (release, abort).
func (w *world) drop(epoch uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.beliefs, epoch)
}

func (w *world) snapshot() (map[uint64]belief, map[string]string, map[string]string, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.beliefs), maps.Clone(w.added), maps.Clone(w.removed), w.adminGen
}

// adminChange applies a change to the admin actor's view.
func (w *world) adminChange(f func(added, removed map[string]string)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w.added, w.removed)
	w.adminGen++
}

// result is how one resource or poolboy process ended.
type result struct {
	stdout, stderr string
	code           int       // exit status; -1 when killed by a signal
	interrupted    bool      // the test sent it SIGTERM (an abort)
	killed         time.Time // when the test sent it SIGKILL (a lost worker); zero: never
}

func (r result) lastLine() string {
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// trigger signals a process once its stderr says text: SIGTERM (an abort of a
// step in that state) or SIGKILL (its worker vanished).
type trigger struct {
	text   string
	signal syscall.Signal
	// lateEnd: a build SIGKILLed by the trigger (a lost worker) keeps its status
	// until its caller ends it (Concourse has not noticed yet).
	lateEnd bool
}

// run runs the binary as Concourse runs a resource script: request on stdin, the
// build's directory as argument. When ctx ends it gets SIGTERM, as an aborted
// step does, and SIGKILL two minutes later.
func (w *world) run(ctx context.Context, path string, args []string, stdin []byte, env []string) result {
	return w.runTriggered(ctx, path, args, stdin, env, trigger{})
}

// runTriggered is run, with the process also signalled as tr says.
func (w *world) runTriggered(ctx context.Context, path string, args []string, stdin []byte, env []string, tr trigger) result {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout bytes.Buffer
	var interrupted atomic.Bool
	var killedAt atomic.Int64
	stderr := &watchedBuffer{text: tr.text, fire: func() {
		if tr.signal == syscall.SIGTERM {
			interrupted.Store(true)
		}
		if tr.signal == syscall.SIGKILL {
			killedAt.Store(time.Now().UnixNano())
		}
		_ = cmd.Process.Signal(tr.signal)
	}}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.Cancel = func() error {
		interrupted.Store(true)
		return cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.WaitDelay = 2 * time.Minute
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), interrupted: interrupted.Load()}
	if ns := killedAt.Load(); ns != 0 {
		r.killed = time.Unix(0, ns)
	}
	// After a SIGTERM, Run reports ctx's error even when the process went on to
	// exit 0; the exit status is in ProcessState.
	switch {
	case cmd.ProcessState != nil:
		r.code = cmd.ProcessState.ExitCode()
	case ctx.Err() != nil:
		// ctx had ended before the start: an abort that came first.
		r.code, r.interrupted = -1, true
	case err != nil:
		r.code = -1
		r.stderr += "\n(test: " + err.Error() + ")"
	}
	return r
}

// watchedBuffer keeps a process's stderr and calls fire once text was written
// (never when text is empty). Writes come only after the process started.
type watchedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	text  string
	fire  func()
	fired bool
}

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.text != "" && !b.fired && bytes.Contains(b.buf.Bytes(), []byte(b.text)) {
		b.fired = true
		b.fire()
	}
	return len(p), nil
}

func (b *watchedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// judge checks that a process ended well: success, or a clear error — exit 1,
// nothing on stdout, a last stderr line that says what went wrong — and never a
// panic or a data race. It returns the error line ("" on success).
func (w *world) judge(what string, r result) string {
	for _, bad := range []string{"DATA RACE", "panic:", "fatal error:", "goroutine "} {
		if strings.Contains(r.stderr, bad) {
			w.violate("%s: %q in its stderr:\n%s", what, bad, r.stderr)
			return "crash"
		}
	}
	if r.code == 0 {
		return ""
	}
	line := r.lastLine()
	switch {
	case !r.killed.IsZero():
		// The test killed it: whatever it printed last is not its own ending.
		line = "killed by SIGKILL (a lost worker)"
	case r.interrupted && r.code == -1 && strings.TrimSpace(r.stdout+r.stderr) == "":
		// SIGTERM came before Go had installed the handler: the process did
		// nothing (it printed nothing), and died of the signal, as any would.
		line = "aborted: killed by SIGTERM before it started"
	case r.code != 1:
		w.violate("%s: exit status %d, want 0 or 1; stderr:\n%s", what, r.code, r.stderr)
	case strings.TrimSpace(r.stdout) != "":
		w.violate("%s failed but wrote to stdout: %q", what, r.stdout)
	case line == "":
		w.violate("%s failed without saying why", what)
	}
	if line == "" {
		line = "(no message)"
	}
	w.stats.errorSeen(what, line)
	return line
}

// stats are the soak's figures.
type stats struct {
	mu       sync.Mutex
	counts   map[string]int
	examples map[string]string
}

func newStats() stats {
	return stats{counts: map[string]int{}, examples: map[string]string{}}
}

func (s *stats) add(key string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[key] += n
}

func (s *stats) get(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[key]
}

// errorSeen counts an error by the fault that caused it, keeping one example.
func (s *stats) errorSeen(what, line string) {
	class := classify(line)
	key := "error: " + class
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts[key]++
	if _, ok := s.examples[key]; !ok {
		s.examples[key] = what + ": " + line
	}
}

// classify names the cause of an error line, for the report.
func classify(line string) string {
	l := strings.ToLower(line)
	switch {
	case strings.HasPrefix(l, "aborted: "):
		return "aborted by SIGTERM"
	case strings.HasPrefix(l, "killed by sigkill"):
		return "killed by SIGKILL (the test's, in the queue)"
	case strings.Contains(l, "connection refused") || strings.Contains(l, "connection reset") ||
		strings.Contains(l, "hung up") || strings.Contains(l, "early eof") || strings.Contains(l, "broken pipe"):
		return "git server down"
	case strings.Contains(l, "declined") || strings.Contains(l, "injected fault"):
		return "push declined by the server"
	case strings.Contains(l, "not releasing it"):
		return "fenced release refused (reaped and claimed again)"
	case strings.Contains(l, "branch kept moving"):
		return "clean gave up: the branch kept moving"
	}
	return "other"
}

// countLines adds to the figures what a process's stderr says it got over.
func (s *stats) countLines(stderr string) {
	s.add("conflicts resolved", strings.Count(stderr, "someone else pushed first")+strings.Count(stderr, "lost a push race"))
	s.add("retries after a failure", strings.Count(stderr, "failed to push (")+strings.Count(stderr, "could not look at the remote branch")+
		strings.Count(stderr, "could not reach the repository"))
}
