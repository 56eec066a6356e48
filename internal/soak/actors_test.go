package soak

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/policy"
)

// Pools of the soak repository and their stale timeouts. Builds hold locks for
// well under a second plus the release, so the 2 minute timeouts are never
// reached while a build is alive, even while Concourse cannot answer: a reap of a
// live build's lock is then always a bug, never the policy. scratch is used only
// by orphans (builds Concourse does not know), whose locks the timeout frees.
var timeouts = map[string]time.Duration{"envs": 2 * time.Minute, "devices": 2 * time.Minute, "queue": 2 * time.Minute, "scratch": 3 * time.Second}

// poolsFlag is timeouts as `poolboy clean --pools` takes them.
func poolsFlag() string {
	var parts []string
	for _, pool := range slices.Sorted(maps.Keys(timeouts)) {
		parts = append(parts, pool+":"+timeouts[pool].String())
	}
	return strings.Join(parts, ",")
}

// pause waits up to max, or until ctx ends. It paces an actor (simulated work,
// think time), it never stands in for waiting on another actor.
func pause(ctx context.Context, max time.Duration) {
	t := time.NewTimer(rand.N(max) + 1)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// actor is one concurrent user of the lock repository.
type actor struct {
	w    *world
	name string
	home string // HOME of its processes
	dir  string // scratch space for build directories
	seq  int
}

func (w *world) newActor(base, name string) *actor {
	a := &actor{w: w, name: name, home: filepath.Join(base, name, "home"), dir: filepath.Join(base, name, "builds")}
	for _, d := range []string{a.home, a.dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			w.t.Fatal(err)
		}
	}
	// No automatic gc in the actors' clones: a detached one could outlive the test
	// and race the removal of its directories.
	if err := os.WriteFile(filepath.Join(a.home, ".gitconfig"), []byte("[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n"), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return a
}

// buildDir is a fresh build directory, as a Concourse container has.
func (a *actor) buildDir() string {
	a.seq++
	d := filepath.Join(a.dir, fmt.Sprint(a.seq))
	if err := os.MkdirAll(d, 0o755); err != nil {
		a.w.t.Errorf("%s: %v", a.name, err)
	}
	return d
}

// retryDelay is each pool's retry_delay: the queue pool's waiters near the front
// look every twentieth to tenth of it, so 1 s would have them fetch 10 to 20
// times a second on the shared machine.
func retryDelay(pool string) time.Duration {
	if pool == "queue" {
		return 2 * time.Second
	}
	return time.Second
}

func (w *world) source(pool string) map[string]any {
	return map[string]any{"uri": w.url, "branch": "main", "pool": pool, "retry_delay": retryDelay(pool).String()}
}

// put runs out for build b with dir as the build's directory. It returns the
// version's ref and lock name, or the error line. Every step is followed by a
// check of the invariants.
func (a *actor) put(ctx context.Context, b *build, dir, pool, op string, params map[string]any) (ref, lock, errLine string, interrupted bool) {
	ref, lock, errLine, r := a.putTriggered(ctx, b, dir, pool, op, params, trigger{})
	return ref, lock, errLine, r.interrupted
}

// putTriggered is put, with the process signalled as tr says; it returns how the
// process ended. A put that may have left its ticket in the queue (killed, or
// its withdrawal failed) is recorded as such.
func (a *actor) putTriggered(ctx context.Context, b *build, dir, pool, op string, params map[string]any, tr trigger) (ref, lock, errLine string, r result) {
	req, _ := json.Marshal(map[string]any{"source": a.w.source(pool), "params": params})
	r = a.w.runTriggered(ctx, filepath.Join(a.w.res, "out"), []string{dir}, req, a.w.env(b, a.home), tr)
	what := fmt.Sprintf("%s: out %s (%s #%s)", a.name, op, b.job, b.name)
	a.w.stats.countLines(r.stderr)
	if !r.killed.IsZero() || strings.Contains(r.stderr, "could not withdraw its ticket") {
		a.w.ticketMayStay(b, pool, r.killed)
	}
	if errLine = a.w.judge(what, r); errLine == "" {
		var ans struct {
			Version  struct{ Ref string } `json:"version"`
			Metadata []struct{ Name, Value string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &ans); err != nil || len(ans.Version.Ref) != 40 {
			a.w.violate("%s: answer %q is not a version: %v", what, r.stdout, err)
			errLine = "bad answer"
		}
		ref = ans.Version.Ref
		for _, m := range ans.Metadata {
			if m.Name == "lock_name" {
				lock = m.Value
			}
		}
	}
	a.w.stats.add(outcome("out "+op, errLine), 1)
	a.w.checkStep(what)
	return ref, lock, errLine, r
}

// get runs in for version ref into dir/step, as the get after a put (or a
// downstream job's get) does; it returns the error line.
func (a *actor) get(ctx context.Context, b *build, dir, pool, ref string) (string, bool) {
	req, _ := json.Marshal(map[string]any{"source": a.w.source(pool), "version": map[string]string{"ref": ref}})
	r := a.w.run(ctx, filepath.Join(a.w.res, "in"), []string{filepath.Join(dir, resName)}, req, a.w.env(b, a.home))
	what := fmt.Sprintf("%s: in (%s #%s)", a.name, b.job, b.name)
	errLine := a.w.judge(what, r)
	a.w.stats.add(outcome("in", errLine), 1)
	a.w.checkStep(what)
	return errLine, r.interrupted
}

func outcome(op, errLine string) string {
	if errLine == "" {
		return op + " ok"
	}
	return op + " failed"
}

// failed is the status Concourse gives a build whose step failed: aborted when
// the step was interrupted by the abort, errored otherwise.
func failed(interrupted bool) string {
	if interrupted {
		return "aborted"
	}
	return "errored"
}

// ended is the status of a build whose last step ended with errLine.
func ended(errLine string, interrupted bool) string {
	if errLine == "" {
		return "succeeded"
	}
	return failed(interrupted)
}

// holding is a lock a build got: claimed by ref, fetched into dir/lock.
type holding struct {
	pool, lock, ref, dir string
	epoch                uint64
}

// acquire puts (acquire or claim) and gets the claimed version, as a pipeline's
// put step does. On any failure the build ends (errored, or aborted) and nil is
// returned.
func (a *actor) acquire(ctx context.Context, b *build, pool, op string, params map[string]any) *holding {
	dir := a.buildDir()
	ref, lock, bad, intr := a.put(ctx, b, dir, pool, op, params)
	if bad != "" {
		a.w.finish(b, failed(intr))
		return nil
	}
	a.w.output(b, ref)
	h := &holding{pool: pool, lock: lock, ref: ref, dir: dir, epoch: a.w.hold(a.name, pool, lock, ref)}
	if bad, intr := a.get(ctx, b, dir, pool, ref); bad != "" {
		a.w.drop(h.epoch)
		a.w.finish(b, failed(intr))
		return nil
	}
	return h
}

// release puts release for the lock fetched into dir/lock, then ends the build.
func (a *actor) release(ctx context.Context, b *build, h *holding, dir string) {
	a.w.drop(h.epoch)
	_, _, bad, intr := a.put(ctx, b, dir, h.pool, "release", map[string]any{"release": resName})
	if bad != "" {
		a.w.finish(b, failed(intr))
		return
	}
	a.w.finish(b, "succeeded")
}

// scenario is one build's life; builders run them round-robin, so every kind
// happens on every run (the plain acquire-release twice: it is the common case).
type scenario struct {
	name string
	run  func(ctx context.Context, a *actor)
}

var scenarios = []scenario{
	{"acquire, release, succeed", acquireRelease},
	{"acquire, hand off to a downstream job that releases", func(ctx context.Context, a *actor) { a.handOff(ctx, 0) }},
	{"acquire, abort", func(ctx context.Context, a *actor) {
		b := a.w.startBuild("deploy")
		if h := a.acquire(ctx, b, "envs", "acquire", map[string]any{"acquire": true}); h != nil {
			pause(ctx, 500*time.Millisecond)
			a.w.drop(h.epoch)
			a.w.finish(b, "aborted")
		}
	}},
	{"claim a named lock, release", func(ctx context.Context, a *actor) {
		b := a.w.startBuild("flash")
		name := fmt.Sprintf("dev-%d", 1+rand.IntN(4))
		if h := a.acquire(ctx, b, "devices", "claim", map[string]any{"claim": name}); h != nil {
			pause(ctx, 500*time.Millisecond)
			a.release(ctx, b, h, h.dir)
		}
	}},
	{"acquire, release, succeed", acquireRelease},
	{"abort while acquiring", func(ctx context.Context, a *actor) {
		b := a.w.startBuild("deploy")
		actx, cancel := context.WithTimeout(ctx, 50*time.Millisecond+rand.N(800*time.Millisecond))
		defer cancel()
		dir := a.buildDir()
		ref, _, _, intr := a.put(actx, b, dir, "envs", "acquire", map[string]any{"acquire": true})
		if ref != "" {
			a.w.output(b, ref)
		}
		if intr {
			a.w.stats.add("steps aborted by SIGTERM", 1)
		}
		a.w.finish(b, "aborted")
	}},
	{"acquire, hand off, downstream aborted, re-run releases", func(ctx context.Context, a *actor) { a.handOff(ctx, 1) }},
	{"acquire, fail", func(ctx context.Context, a *actor) {
		b := a.w.startBuild("deploy")
		if h := a.acquire(ctx, b, "envs", "acquire", map[string]any{"acquire": true}); h != nil {
			pause(ctx, 500*time.Millisecond)
			a.w.drop(h.epoch)
			a.w.finish(b, "failed")
		}
	}},
}

func acquireRelease(ctx context.Context, a *actor) {
	b := a.w.startBuild("deploy")
	if h := a.acquire(ctx, b, "envs", "acquire", map[string]any{"acquire": true}); h != nil {
		pause(ctx, 500*time.Millisecond)
		a.release(ctx, b, h, h.dir)
	}
}

// handOff: job "build" acquires and succeeds without releasing; job "test" takes
// the claim as an input (passed:) and releases it. The first aborts downstream
// builds are aborted before releasing and re-run, as a person would; a downstream
// build whose get or put fails is re-run too, three times at most.
func (a *actor) handOff(ctx context.Context, aborts int) {
	up := a.w.startBuild("build")
	h := a.acquire(ctx, up, "envs", "acquire", map[string]any{"acquire": true})
	if h == nil {
		return
	}
	pause(ctx, 300*time.Millisecond)
	a.w.finish(up, "succeeded")
	for try := 0; try < 3+aborts; try++ {
		down := a.w.startBuild("test", h.ref)
		dir := a.buildDir()
		if bad, intr := a.get(ctx, down, dir, h.pool, h.ref); bad != "" {
			a.w.finish(down, failed(intr))
			continue
		}
		pause(ctx, 300*time.Millisecond)
		if try < aborts {
			a.w.finish(down, "aborted")
			continue
		}
		a.w.drop(h.epoch)
		_, _, bad, intr := a.put(ctx, down, dir, h.pool, "release", map[string]any{"release": resName})
		a.w.finish(down, ended(bad, intr))
		if bad != "" {
			a.w.leaveToTimeout(h.ref)
		}
		return
	}
	// Every re-run failed: the lock waits for its pool's timeout, as the policy says.
	a.w.drop(h.epoch)
	a.w.leaveToTimeout(h.ref)
}

// builder runs scenarios until stop; ctx ends (aborting what runs) only after
// a grace period.
func (a *actor) builder(ctx context.Context, first int, stop time.Time) {
	for i := first; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		scenarios[i%len(scenarios)].run(ctx, a)
	}
}

// queuer takes the locks of pool queue (2 locks, 3 queuers each holding one for
// up to 2 s), so most of its puts wait in the queue: acquires, and every third
// a claim of a named lock. Every fourth put is aborted (SIGTERM) once it says
// where it stands in the queue. queuer-1 first plays deadTicket.
func (a *actor) queuer(ctx context.Context, first int, stop time.Time) {
	if first == 0 {
		a.deadTicket(ctx)
	}
	for i := first; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		b := a.w.startBuild("queue")
		op, params := "acquire", map[string]any{"acquire": true}
		if i%3 == 2 {
			name := fmt.Sprintf("q-%d", 1+rand.IntN(2))
			op, params = "claim", map[string]any{"claim": name}
		}
		var tr trigger
		if i%4 == 3 {
			tr = trigger{text: "waiting for " + map[string]string{"acquire": "a lock", "claim": "lock " + fmt.Sprint(params["claim"])}[op], signal: syscall.SIGTERM}
		}
		a.queuedPut(ctx, b, op, params, tr, 2*time.Second)
	}
}

// deadTicket leaves a dead ticket at the head of lock q-1's line, whatever the
// machine's speed: build A claims q-1 and holds it; B claims it too, waits, and
// is SIGKILLed there (its worker vanished: its ticket stays); C claims it, waits
// and is aborted (SIGTERM: it withdraws its ticket); A releases; D claims it and
// gets it once B's ticket expired (or at once, if it has already); E's claim
// after D deletes B's ticket. The replay checks that nobody honoured B's ticket past
// its expiry, and that its expiry was within what the README documents.
func (a *actor) deadTicket(ctx context.Context) {
	claim := map[string]any{"claim": "q-1"}
	waiting := "waiting for lock q-1 in pool queue"
	// A claim that failed (an injected fault) is tried again, by a new build.
	var bA *build
	var dir, ref, lock, bad string
	for try := 0; try < 5; try++ {
		var r result
		bA, dir = a.w.startBuild("queue"), a.buildDir()
		if ref, lock, bad, r = a.putTriggered(ctx, bA, dir, "queue", "claim", claim, trigger{}); bad == "" {
			break
		}
		a.w.finish(bA, failed(r.interrupted))
		if ctx.Err() != nil {
			return
		}
	}
	if bad != "" {
		return
	}
	a.w.output(bA, ref)
	h := &holding{pool: "queue", lock: lock, ref: ref, dir: dir, epoch: a.w.hold(a.name, "queue", lock, ref)}
	if bad, intr := a.get(ctx, bA, dir, "queue", ref); bad != "" {
		a.w.drop(h.epoch)
		a.w.finish(bA, failed(intr))
		return
	}
	// B's worker is lost: Concourse errors its build only once it notices, after
	// the scene (until then it says started, and a reaper keeps B's ticket), so
	// that the ticket is left to its expiry and to E's claim.
	var lost *build
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		// A put that failed before it waited (an injected fault) is tried again.
		for try := 0; try < 5 && ctx.Err() == nil; try++ {
			b := a.w.startBuild("queue")
			if sig == syscall.SIGKILL {
				lost = b
			}
			if a.queuedPut(ctx, b, "claim", claim, trigger{text: waiting, signal: sig, lateEnd: sig == syscall.SIGKILL}, 0) {
				break
			}
		}
	}
	defer func() {
		if lost != nil && lost.endLate {
			a.w.finish(lost, "errored")
		}
	}()
	a.release(ctx, bA, h, h.dir)
	// D gets q-1 once B's ticket expired, and holds it past policy.TicketGrace (the
	// scene's schedule); E, waiting behind D, claims it then, and its claim
	// deletes B's ticket (a claim deletes only tickets expired for the grace).
	a.queuedPut(ctx, a.w.startBuild("queue"), "claim", claim, trigger{}, policy.TicketGrace+2*time.Second)
	a.queuedPut(ctx, a.w.startBuild("queue"), "claim", claim, trigger{}, 0)
}

// queuedPut is build b's put on pool queue, signalled as tr says; when it gets
// the lock, b holds it for up to hold and releases it. It reports whether tr's
// signal was sent.
func (a *actor) queuedPut(ctx context.Context, b *build, op string, params map[string]any, tr trigger, hold time.Duration) (signalled bool) {
	dir := a.buildDir()
	ref, lock, bad, r := a.putTriggered(ctx, b, dir, "queue", op, params, tr)
	switch {
	case !r.killed.IsZero():
		a.w.stats.add("queue: waiters killed (SIGKILL) in the queue", 1)
		if tr.lateEnd {
			b.endLate = true // the caller errors it later
		} else {
			a.w.finish(b, "errored") // a worker lost mid-step
		}
		return true
	case tr.signal == syscall.SIGTERM && r.interrupted:
		signalled = true
		a.w.stats.add("queue: waiters aborted (SIGTERM) in the queue", 1)
	}
	if bad != "" {
		a.w.finish(b, failed(r.interrupted))
		return signalled
	}
	a.w.output(b, ref)
	h := &holding{pool: "queue", lock: lock, ref: ref, dir: dir, epoch: a.w.hold(a.name, "queue", lock, ref)}
	if bad, intr := a.get(ctx, b, dir, "queue", ref); bad != "" {
		a.w.drop(h.epoch)
		a.w.finish(b, failed(intr))
		return
	}
	if hold > 0 {
		pause(ctx, hold)
	}
	a.release(ctx, b, h, h.dir)
	return signalled
}

// orphan claims scratch locks as builds of a pipeline Concourse no longer has.
// Every other claim it abandons (its container vanished): only the pool's
// timeout frees it, by the final clean at the latest, so every run sees timeout
// reaps. The others it holds for up to twice the timeout before releasing: about
// half are reaped first, and the release then finds the lock free (a warning) or
// claimed again by the other orphan (refused: the fence).
func (a *actor) orphan(ctx context.Context, stop time.Time) {
	for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		b := a.w.startOrphan()
		dir := a.buildDir()
		ref, _, bad, intr := a.put(ctx, b, dir, "scratch", "acquire", map[string]any{"acquire": true})
		if bad != "" {
			a.w.finish(b, failed(intr))
			continue
		}
		if i%2 == 0 {
			a.w.finish(b, "aborted")
			continue
		}
		if bad, intr := a.get(ctx, b, dir, "scratch", ref); bad != "" {
			a.w.finish(b, failed(intr))
			continue
		}
		pause(ctx, 2*timeouts["scratch"])
		_, _, bad, intr = a.put(ctx, b, dir, "scratch", "release", map[string]any{"release": resName})
		a.w.finish(b, ended(bad, intr))
	}
}

// admin adds locks, updates metadata and decommissions locks it added (claim,
// then remove, as the pool resource requires), each as a build of job admin.
func (a *actor) admin(ctx context.Context, stop time.Time) {
	n := 0
	for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		pause(ctx, time.Second)
		b := a.w.startBuild("admin")
		switch i % 4 {
		case 0, 1:
			n++
			pool, name := []string{"envs", "devices"}[n%2], fmt.Sprintf("extra-%d", n)
			dir := a.buildDir()
			writeStep(a, dir, name, fmt.Sprintf(`{"added":%d}`, n))
			_, _, bad, intr := a.put(ctx, b, dir, pool, "add", map[string]any{"add": "step"})
			if bad == "" {
				a.w.adminChange(func(added, _ map[string]string) { added[name] = pool })
			}
			a.w.finish(b, ended(bad, intr))
		case 2:
			name := fmt.Sprintf("dev-%d", 1+rand.IntN(4))
			dir := a.buildDir()
			writeStep(a, dir, name, fmt.Sprintf(`{"firmware":%d}`, i))
			// update waits while the lock is claimed; an admin gives up after 20s.
			uctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			_, _, bad, intr := a.put(uctx, b, dir, "devices", "update", map[string]any{"update": "step"})
			cancel()
			a.w.finish(b, ended(bad, intr))
		case 3:
			a.decommission(ctx, b)
		}
	}
}

// decommission claims one of the locks the admin added and removes it.
func (a *actor) decommission(ctx context.Context, b *build) {
	_, added, _, _ := a.w.snapshot()
	names := slices.Sorted(maps.Keys(added))
	if len(names) == 0 {
		a.w.finish(b, "succeeded")
		return
	}
	name := names[rand.IntN(len(names))]
	pool := added[name]
	// From here the admin no longer promises the lock exists.
	a.w.adminChange(func(added, _ map[string]string) { delete(added, name) })
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	h := a.acquire(cctx, b, pool, "claim", map[string]any{"claim": name})
	if h == nil {
		return
	}
	a.w.drop(h.epoch)
	_, _, bad, intr := a.put(ctx, b, h.dir, pool, "remove", map[string]any{"remove": resName})
	if bad == "" {
		a.w.adminChange(func(_, removed map[string]string) { removed[name] = pool })
	}
	a.w.finish(b, ended(bad, intr))
}

// writeStep writes dir/step/{name,metadata}, the files add and update read.
func writeStep(a *actor, dir, name, metadata string) {
	d := filepath.Join(dir, "step")
	err := os.MkdirAll(d, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(d, "name"), []byte(name), 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(d, "metadata"), []byte(metadata), 0o644)
	}
	if err != nil {
		a.w.t.Errorf("%s: %v", a.name, err)
	}
}

// reaper runs `poolboy clean` in a loop, with Concourse evidence, until ctx ends.
func (a *actor) reaper(ctx context.Context) {
	cache := filepath.Join(a.dir, "cache")
	for ctx.Err() == nil {
		a.clean(context.WithoutCancel(ctx), cache)
		pause(ctx, 500*time.Millisecond)
	}
}

// clean runs one `poolboy clean` and counts what it freed; it reports whether it
// succeeded.
func (a *actor) clean(ctx context.Context, cache string) bool {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + a.home, "TMPDIR=" + os.TempDir(),
		"CONCOURSE_USERNAME=" + a.w.ccUser, "CONCOURSE_PASSWORD=" + a.w.ccPass}
	args := []string{"clean", "--repo", a.w.url, "--branch", "main", "--pools", poolsFlag(),
		"--concourse-url", a.w.cc.URL, "--output", "json", "--cache-dir", cache, "--verbose"}
	r := a.w.run(ctx, a.w.poolboy, args, nil, env)
	what := a.name + ": poolboy clean"
	a.w.stats.countLines(r.stderr)
	bad := a.w.judge(what, r)
	switch {
	case bad == "":
		var doc struct {
			Clean struct {
				Freed []struct{ Pool, Lock, Rule string }
			}
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			a.w.violate("%s: output is not JSON: %v", what, err)
		}
		for _, f := range doc.Clean.Freed {
			a.w.stats.add("reaps reported by clean: "+f.Rule, 1)
		}
		if strings.Contains(r.stderr, "level=WARN") {
			a.w.stats.add("clean runs ok, with a Concourse warning", 1)
		} else {
			a.w.stats.add("clean runs ok", 1)
		}
	case !strings.HasPrefix(bad, "poolboy: "):
		a.w.violate("%s: the error line %q does not start with \"poolboy: \"", what, bad)
	}
	if bad != "" {
		a.w.stats.add("clean runs failed", 1)
	}
	a.w.checkStep(what)
	return bad == ""
}

// fault is one kind of injected fault: it starts, lasts a while, and heals.
type fault struct {
	name  string
	start func(w *world)
	heal  func(w *world)
	lasts time.Duration // at most
}

var faults = []fault{
	{"pushes declined by the pre-receive hook", func(w *world) { w.setRejecting(true) }, func(w *world) { w.setRejecting(false) }, 4 * time.Second},
	{"Concourse answers 500", func(w *world) { w.cc.SetFault(fakeconcourse.Fault{Status: 500, Body: `{"errors":["boom"]}`}) }, healCC, 4 * time.Second},
	{"git server stopped and restarted", func(w *world) { w.daemon.Stop() }, func(w *world) { w.restartDaemon() }, 1500 * time.Millisecond},
	{"Concourse answers 401", func(w *world) { w.cc.SetFault(fakeconcourse.Fault{Status: 401, Body: "not authorized"}) }, healCC, 4 * time.Second},
	{"Concourse answers garbage", func(w *world) { w.cc.SetFault(fakeconcourse.Fault{Status: 200, Body: "<html>\x00\xff garbage"}) }, healCC, 4 * time.Second},
	{"Concourse slow (3 s an answer, within the client's timeout)", func(w *world) { w.cc.SetFault(fakeconcourse.Fault{Delay: 3 * time.Second}) }, healCC, 3 * time.Second},
	{"Concourse times out (15 s, past the client's 10 s)", func(w *world) { w.cc.SetFault(fakeconcourse.Fault{Delay: 15 * time.Second}) }, healCC, 2 * time.Second},
}

func healCC(w *world) { w.cc.SetFault(fakeconcourse.Fault{}) }

// injector injects the faults in turn, each for a random time, with healthy
// stretches between them, until stop.
func (w *world) injector(ctx context.Context, stop time.Time) {
	for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
		pause(ctx, 3*time.Second)
		f := faults[i%len(faults)]
		f.start(w)
		w.stats.add("fault: "+f.name, 1)
		pause(ctx, f.lasts)
		f.heal(w)
	}
}

// restartDaemon starts the git server again; the port is ours, so a failure is
// the harness's problem, reported as such.
func (w *world) restartDaemon() {
	var err error
	for i := range 3 {
		if err = w.daemon.Start(); err == nil {
			return
		}
		time.Sleep(time.Duration(i+1) * 500 * time.Millisecond) // backoff before trying again, not synchronisation
	}
	w.t.Errorf("harness: git daemon did not restart: %v", err)
}

func (w *world) setRejecting(on bool) {
	flag := filepath.Join(w.bare, "soak-reject")
	var err error
	if on {
		err = os.WriteFile(flag, nil, 0o644)
	} else if err = os.Remove(flag); os.IsNotExist(err) {
		err = nil
	}
	if err != nil {
		w.t.Errorf("harness: %v", err)
	}
}
