package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// qsrc is a source for queue tests: a retry_delay long enough that waiters near
// the front do not poll in a busy loop on a shared machine.
func qsrc(bare string, extra ...any) map[string]any {
	return src(fileURL(bare), append([]any{"retry_delay", "200ms"}, extra...)...)
}

func build(n int) map[string]string {
	return map[string]string{"BUILD_ID": fmt.Sprint(1000 + n), "BUILD_NAME": fmt.Sprint(n), "BUILD_TEAM_NAME": "main",
		"BUILD_PIPELINE_NAME": "deploy", "BUILD_JOB_NAME": "test"}
}

// waiter is an out running in the background.
type waiter struct {
	dir  string
	log  *logBuffer
	done chan struct{}
	res  result
	err  error
}

func startOut(t *testing.T, ctx context.Context, source, params map[string]any, env map[string]string) *waiter {
	t.Helper()
	w := &waiter{dir: t.TempDir(), log: &logBuffer{}, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.res, w.err = out(t, ctx, w.dir, source, params, env, w.log)
	}()
	return w
}

// wait waits for the out to end.
func (w *waiter) wait(t *testing.T, what string) {
	t.Helper()
	await(t, w.done, what)
}

// release does what Concourse does after the waiter's put: get, then release.
func (w *waiter) release(t *testing.T, source map[string]any, env map[string]string) {
	t.Helper()
	get(t, w.dir, "lock", source, w.res.Version.Ref)
	mustOut(t, w.dir, source, map[string]any{"release": "lock"}, env)
}

// tickets lists the ticket files of pool aws at the head of bare.
func tickets(t *testing.T, bare string) []string {
	t.Helper()
	var out []string
	for _, p := range strings.Split(testenv.Git(t, bare, "ls-tree", "-r", "--name-only", "main", "--", queue.Dir("aws")+"/"), "\n") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// claimsInHistory lists the builds whose claims of pool aws landed after from, oldest first.
func claimsInHistory(t *testing.T, bare, from string) []string {
	t.Helper()
	var builds []string
	for _, c := range strings.Fields(testenv.Git(t, bare, "rev-list", "--reverse", from+"..main")) {
		if m := commitmsg.Parse(message(t, bare, c)); m.Op == commitmsg.OpClaim {
			builds = append(builds, m.Owner.Build+":"+m.Lock)
		}
	}
	return builds
}

// pushTicket writes a ticket with plain git, as a waiter that then died (SIGKILL,
// a lost worker) leaves it behind.
func pushTicket(t *testing.T, bare string, tk queue.Ticket) {
	t.Helper()
	upstream(t, bare, "a waiter's ticket", func(dir string) {
		p := filepath.Join(dir, filepath.FromSlash(queue.Path("aws", tk.ID)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, tk.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.Git(t, dir, "add", "-A")
	})
}

// upstream changes the repository as upstream's out (or a person) does: a fresh
// clone, a change, a commit and a push, all again when someone pushed first.
func upstream(t *testing.T, bare, msg string, change func(dir string)) {
	t.Helper()
	for range 20 {
		dir := t.TempDir()
		testenv.Git(t, "", "clone", "-q", "-b", "main", fileURL(bare), dir)
		change(dir)
		testenv.Git(t, dir, "commit", "-q", "-m", msg)
		push := exec.Command("git", "push", "-q", "origin", "HEAD:main")
		push.Dir = dir
		if out, err := push.CombinedOutput(); err == nil {
			return
		} else if !strings.Contains(string(out), "rejected") && !strings.Contains(string(out), "fetch first") {
			t.Fatalf("push: %v: %s", err, out)
		}
	}
	t.Fatal("upstream's push was rejected 20 times")
}

func gitMove(t *testing.T, from, to string) func(dir string) {
	return func(dir string) { testenv.Git(t, dir, "mv", from, to) }
}

// Builds arriving one after another (each once the one before is in the queue)
// get the lock in the order they arrived.
func TestQueueFIFOUnderStaggeredArrivals(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	start := head(t, bare)
	const n = 4
	var ws []*waiter
	for i := range n {
		w := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true}, build(i+1))
		await(t, w.log.notify(fmt.Sprintf("waiting for a lock in pool aws: position %d of %d", i+1, i+1)), fmt.Sprintf("build %d to queue", i+1))
		ws = append(ws, w)
	}
	if !strings.Contains(ws[3].log.String(), "position 4 of 4 (ahead: main/deploy/test #1, main/deploy/test #2, main/deploy/test #3)") {
		t.Errorf("the fourth build's log:\n%s", ws[3].log)
	}
	upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
	for i, w := range ws {
		w.wait(t, fmt.Sprintf("build %d to get the lock", i+1))
		if w.err != nil {
			t.Fatalf("build %d: %v\n%s", i+1, w.err, w.log)
		}
		for _, other := range ws[i+1:] {
			select {
			case <-other.done:
				t.Fatalf("a build behind %d ended while it held the lock: %v\n%s", i+1, other.err, other.log)
			default:
			}
		}
		w.release(t, qsrc(bare), build(i+1))
	}
	if got, want := strings.Join(claimsInHistory(t, bare, start), " "), "1:env-1 2:env-1 3:env-1 4:env-1"; got != want {
		t.Errorf("claims %s, want %s", got, want)
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
	// Each claim removed its build's ticket in the same commit.
	for _, c := range strings.Fields(testenv.Git(t, bare, "rev-list", start+"..main")) {
		m := commitmsg.Parse(message(t, bare, c))
		files := testenv.Git(t, bare, "diff-tree", "--no-commit-id", "--name-only", "-r", c)
		if m.Op == commitmsg.OpClaim && m.Owner.Build != "1" && !strings.Contains(files, queue.Root+"/aws/") {
			t.Errorf("claim %s of build %s removed no ticket: %s", c, m.Owner.Build, files)
		}
	}
}

// A claim of lock X waits behind an older acquire that could take X.
func TestQueueClaimWaitsBehindAnOlderAcquire(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true}, lock{pool: "aws", name: "env-2", claimed: true})
	start := head(t, bare)
	a := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true}, build(1))
	await(t, a.log.notify("position 1 of 1"), "the acquire to queue")
	x := startOut(t, context.Background(), qsrc(bare), map[string]any{"claim": "env-1"}, build(2))
	await(t, x.log.notify("waiting for lock env-1 in pool aws: position 2 of 2 (ahead: main/deploy/test #1)"), "the claim to queue")
	upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
	a.wait(t, "the acquire")
	if a.err != nil || a.res.lock() != "env-1" {
		t.Fatalf("acquire: %+v %v\n%s", a.res, a.err, a.log)
	}
	select {
	case <-x.done:
		t.Fatalf("the claim ended while the acquire held env-1: %v\n%s", x.err, x.log)
	default:
	}
	a.release(t, qsrc(bare), build(1))
	x.wait(t, "the claim")
	if x.err != nil || x.res.lock() != "env-1" {
		t.Fatalf("claim: %+v %v\n%s", x.res, x.err, x.log)
	}
	if got := strings.Join(claimsInHistory(t, bare, start), " "); got != "1:env-1 2:env-1" {
		t.Errorf("claims %s", got)
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
}

// The head of the queue is aborted while a lock is free that it has not noticed
// yet: it withdraws its ticket, and the next build takes the lock at once instead
// of waiting for the ticket to expire (hours, with this retry_delay).
func TestQueueAbortOfTheHeadLetsTheNextOneIn(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow := startOut(t, ctx, qsrc(bare, "retry_delay", "1h"), map[string]any{"acquire": true}, build(1))
	await(t, slow.log.notify("position 1 of 1"), "the head to queue")
	next := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true}, build(2))
	await(t, next.log.notify("position 2 of 2"), "the next one to queue")
	upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
	cancel()
	slow.wait(t, "the head to end")
	var ab *abortedError
	if !errors.As(slow.err, &ab) || !strings.Contains(slow.err.Error(), "; withdrew its ticket from the queue") {
		t.Errorf("the aborted head: %v\n%s", slow.err, slow.log)
	}
	next.wait(t, "the next one to get the lock")
	if next.err != nil || next.res.lock() != "env-1" {
		t.Fatalf("next: %+v %v\n%s", next.res, next.err, next.log)
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
}

// A waiter that died at the head of the queue without withdrawing (SIGKILL, a lost
// worker) leaves its ticket: the others ignore it once it expired, and a claim
// deletes it once it has been expired for policy.TicketGrace (the deleter's clock
// may run ahead): here one that expired long ago goes, one that just did stays.
func TestQueueDeadTicketAtTheHeadExpires(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"})
	now := time.Now()
	holder := queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "41", BuildID: "41"}
	dead := queue.Ticket{ID: "dead", Seq: 1, Enqueued: now.Add(-time.Minute), Expires: now.Add(5 * time.Second),
		Want: []queue.Want{{Acquire: true}}, Holder: holder}
	long := queue.Ticket{ID: "long", Seq: 0, Enqueued: now.Add(-time.Hour), Expires: now.Add(-time.Minute),
		Want: []queue.Want{{Acquire: true}}, Holder: holder}
	pushTicket(t, bare, dead)
	pushTicket(t, bare, long)
	w := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true}, build(2))
	await(t, w.log.notify("position 2 of 2 (ahead: main/deploy/test #41)"), "the build to queue behind the dead ticket")
	w.wait(t, "the build to get the lock")
	if w.err != nil || w.res.lock() != "env-1" {
		t.Fatalf("acquire: %+v %v\n%s", w.res, w.err, w.log)
	}
	claimedAt, err := time.Parse(time.RFC3339, testenv.Git(t, bare, "log", "-1", "--format=%cI", w.res.Version.Ref))
	if err != nil {
		t.Fatal(err)
	}
	if claimedAt.Before(dead.Expires.Truncate(time.Second)) {
		t.Errorf("claimed at %s, before the dead ticket expired at %s", claimedAt, dead.Expires)
	}
	files := testenv.Git(t, bare, "diff-tree", "--no-commit-id", "--name-only", "-r", w.res.Version.Ref)
	if !strings.Contains(files, queue.Path("aws", "long")) {
		t.Errorf("the claim did not delete the ticket expired a minute ago: %s", files)
	}
	if claimedAt.Before(dead.Expires.Add(policy.TicketGrace - time.Second)) {
		if tk := tickets(t, bare); !slices.Equal(tk, []string{queue.Path("aws", "dead")}) {
			t.Errorf("tickets left: %v, want the one that expired within the grace", tk)
		}
	}
}

func TestQueueWaitTimeout(t *testing.T) {
	t.Parallel()
	for _, queued := range []bool{true, false} {
		t.Run(fmt.Sprintf("queue=%v", queued), func(t *testing.T) {
			t.Parallel()
			bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
			before := head(t, bare)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // only turns a hang into a failure
			defer cancel()
			_, err := out(t, ctx, t.TempDir(), qsrc(bare, "queue", queued), map[string]any{"acquire": true, "wait_timeout": "1s"}, build(1), nil)
			want := "gave up after waiting 1s (params.wait_timeout): no lock available in pool aws"
			if queued {
				want += "; withdrew its ticket from the queue"
			}
			if ctx.Err() != nil || err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
			if d := testenv.Git(t, bare, "diff", "--stat", before, "main"); d != "" {
				t.Errorf("the tree changed: %s", d)
			}
		})
	}
	t.Run("not a duration", func(t *testing.T) {
		t.Parallel()
		bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
		before := head(t, bare)
		_, err := out(t, context.Background(), t.TempDir(), qsrc(bare), map[string]any{"acquire": true, "wait_timeout": "soon"}, nil, nil)
		if err == nil || err.Error() != `invalid payload: params.wait_timeout "soon" is not a positive duration like "30m"` {
			t.Errorf("error %v", err)
		}
		if head(t, bare) != before {
			t.Error("something was pushed")
		}
	})
}

// Higher priority goes first; a ticket that has waited long enough overtakes
// newer ones of higher priority (queue.AgingStep a point).
func TestQueuePriorityAndAging(t *testing.T) {
	t.Parallel()
	t.Run("higher priority first", func(t *testing.T) {
		t.Parallel()
		bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
		start := head(t, bare)
		low := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true}, build(1))
		await(t, low.log.notify("position 1 of 1"), "the low one to queue")
		high := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true, "priority": 5}, build(2))
		await(t, high.log.notify("position 1 of 2"), "the high one to queue ahead")
		await(t, low.log.notify("position 2 of 2 (ahead: main/deploy/test #2)"), "the low one to move back")
		upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
		high.wait(t, "the high one")
		if high.err != nil {
			t.Fatalf("high: %v\n%s", high.err, high.log)
		}
		high.release(t, qsrc(bare), build(2))
		low.wait(t, "the low one")
		if low.err != nil {
			t.Fatalf("low: %v\n%s", low.err, low.log)
		}
		if got := strings.Join(claimsInHistory(t, bare, start), " "); got != "2:env-1 1:env-1" {
			t.Errorf("claims %s", got)
		}
	})
	t.Run("an old ticket overtakes a newer higher one", func(t *testing.T) {
		t.Parallel()
		bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
		now := time.Now()
		old := queue.Ticket{ID: "old", Seq: 1, Priority: 0, Enqueued: now.Add(-3 * queue.AgingStep), Expires: now.Add(time.Hour),
			Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "41"}}
		pushTicket(t, bare, old)
		ctx, cancel := context.WithCancel(context.Background())
		w := startOut(t, ctx, qsrc(bare), map[string]any{"acquire": true, "priority": 2}, build(2))
		await(t, w.log.notify("position 2 of 2 (ahead: main/deploy/test #41)"), "the build to queue behind the old ticket")
		cancel()
		w.wait(t, "the build to end")
	})
	t.Run("not an integer", func(t *testing.T) {
		t.Parallel()
		bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"})
		_, err := out(t, context.Background(), t.TempDir(), qsrc(bare), map[string]any{"acquire": true, "priority": 1.5}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "params.priority must be an integer") || strings.Contains(err.Error(), "\n") {
			t.Errorf("error %v", err)
		}
	})
}

// An upstream resource on the same pool ignores the queue (a git mv and a push), and
// its check never sees queue traffic as new versions of the pool.
func TestQueueWithAnUpstreamAcquirer(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"}, lock{pool: "aws", name: "env-2", claimed: true})
	before := head(t, bare)
	w := startOut(t, context.Background(), qsrc(bare), map[string]any{"claim": "env-2"}, build(1))
	await(t, w.log.notify("waiting for lock env-2 in pool aws: position 1 of 1 (lock env-2 is claimed)"), "the claim to queue")
	if len(tickets(t, bare)) != 1 {
		t.Fatalf("no ticket while waiting: %v", tree(t, bare))
	}
	var stdout bytes.Buffer
	if err := Check(context.Background(), marshal(t, map[string]any{"source": qsrc(bare), "version": map[string]string{"ref": before}}), &stdout, &bytes.Buffer{}, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	var vs []version
	if err := json.Unmarshal(stdout.Bytes(), &vs); err != nil || len(vs) != 1 || vs[0].Ref != before {
		t.Errorf("check from before the queue: %s, want only %s", stdout.String(), before)
	}
	upstream(t, bare, "main/up/job build 7 claiming: env-1", gitMove(t, "aws/unclaimed/env-1", "aws/claimed/env-1"))
	upstream(t, bare, "main/up/job build 7 unclaiming: env-2", gitMove(t, "aws/claimed/env-2", "aws/unclaimed/env-2"))
	w.wait(t, "the claim")
	if w.err != nil || w.res.lock() != "env-2" {
		t.Fatalf("claim: %+v %v\n%s", w.res, w.err, w.log)
	}
	wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
}

// With queue: false nothing is written to the queue.
func TestQueueOff(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	w := startOut(t, context.Background(), qsrc(bare, "queue", false), map[string]any{"acquire": true}, build(1))
	await(t, w.log.notify("no lock available in pool aws, retrying in"), "the acquire to wait")
	upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
	released := head(t, bare)
	w.wait(t, "the acquire")
	if w.err != nil || testenv.Git(t, bare, "rev-parse", w.res.Version.Ref+"^") != released {
		t.Fatalf("acquire: %+v %v\n%s", w.res, w.err, w.log)
	}
	if strings.Contains(testenv.Git(t, bare, "log", "--all", "--format=%s"), "queue") {
		t.Error("a queue commit was pushed")
	}
}

// gatewayValue is the value of the sample line that starts with series in a
// Pushgateway's /metrics, and whether there is one.
func gatewayValue(t *testing.T, text, series string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			return v, true
		}
	}
	return 0, false
}

// Issue 13: an acquire through the queue pushes how long it waited there with its
// execution time: 0 when granted at once, and for a put that queued, at least the
// time between its being in the queue and the lock's release; a put without the
// queue pushes no wait.
func TestMetricsQueueWait(t *testing.T) {
	t.Parallel()
	gw := testenv.Pushgateway(t)
	const labels = `{branch="main",instance="",job="concourse_resource_pool",operation="acquire_lock",pool="aws"}`
	sum, count := "poolboy_queue_wait_seconds_sum"+labels, "poolboy_queue_wait_seconds_count"+labels

	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"}, lock{pool: "aws", name: "env-2"})
	mustOut(t, t.TempDir(), qsrc(bare, "prometheus_push_gateway", gw.URL, "queue", false), map[string]any{"acquire": true}, build(1))
	if text := gw.Metrics(t); !strings.Contains(text, "resource_pool_execution_time_count"+labels+" 1") || strings.Contains(text, "poolboy_queue_wait_seconds") {
		t.Fatalf("a put without the queue: want its execution time and no wait:\n%s", text)
	}

	mustOut(t, t.TempDir(), qsrc(bare, "prometheus_push_gateway", gw.URL), map[string]any{"acquire": true}, build(2))
	text := gw.Metrics(t)
	if v, ok := gatewayValue(t, text, count); !ok || v != 1 {
		t.Fatalf("granted at once: %s = %v (%v), want 1:\n%s", count, v, ok, text)
	}
	if v, _ := gatewayValue(t, text, sum); v != 0 {
		t.Errorf("granted at once: waited %vs, want 0", v)
	}

	begin := time.Now()
	w := startOut(t, context.Background(), qsrc(bare, "prometheus_push_gateway", gw.URL), map[string]any{"acquire": true}, build(3))
	await(t, w.log.notify("waiting for a lock in pool aws: position 1 of 1"), "build 3 to queue")
	queued := time.Now()
	upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
	released := time.Now()
	w.wait(t, "build 3 to get the lock")
	if w.err != nil {
		t.Fatalf("build 3: %v\n%s", w.err, w.log)
	}
	elapsed := time.Since(begin)
	text = gw.Metrics(t)
	v, ok := gatewayValue(t, text, sum)
	if c, _ := gatewayValue(t, text, count); !ok || c != 1 {
		t.Fatalf("after a wait: %s = %v, want 1:\n%s", count, c, text)
	}
	if lo := released.Sub(queued).Seconds(); v < lo || v > elapsed.Seconds() {
		t.Errorf("build 3 waited %vs by the gateway, want between %vs (queued to released) and %vs (the whole put)", v, lo, elapsed.Seconds())
	}
}

// A ticket whose push lost a race never was in the queue: the waiter queues
// again on the new head without saying its ticket expired (found by the queue
// benchmark, where most first tickets lose a race).
func TestQueueLostTicketRaceIsNoExpiry(t *testing.T) {
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	fired := false
	beforePush = func() {
		if !fired {
			fired = true
			// Another build's ticket lands first.
			pushTicket(t, bare, queue.Ticket{ID: "other", Seq: 1, Enqueued: time.Now(), Expires: time.Now().Add(time.Hour),
				Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "9", BuildID: "1009"}})
		}
	}
	defer func() { beforePush = func() {} }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startOut(t, ctx, qsrc(bare), map[string]any{"acquire": true}, build(1))
	await(t, w.log.notify("position 2 of 2"), "the build to queue behind the other ticket")
	cancel()
	w.wait(t, "the build to end")
	if log := w.log.String(); !fired || !strings.Contains(log, "someone else pushed first") || strings.Contains(log, "expired") {
		t.Errorf("log of a build whose first ticket lost a race:\n%s", log)
	}
}

// Builds queued one after another on a pool of two locks get them in the order
// they queued, whichever lock frees first (the order assertion of the queue
// benchmark's staggered arrivals, without its clock).
func TestQueueFIFOAcrossTwoLocks(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true}, lock{pool: "aws", name: "env-2", claimed: true})
	start := head(t, bare)
	const n = 5
	var ws []*waiter
	for i := range n {
		w := startOut(t, context.Background(), qsrc(bare), map[string]any{"acquire": true}, build(i+1))
		await(t, w.log.notify(fmt.Sprintf("waiting for a lock in pool aws: position %d of %d", i+1, i+1)), fmt.Sprintf("build %d to queue", i+1))
		ws = append(ws, w)
	}
	// env-2 frees first, then env-1; from then on each holder releases in turn.
	upstream(t, bare, "unclaiming: env-2", gitMove(t, "aws/claimed/env-2", "aws/unclaimed/env-2"))
	ws[0].wait(t, "build 1 to get env-2")
	upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
	ws[1].wait(t, "build 2 to get env-1")
	for i, w := range ws {
		if w.err != nil {
			t.Fatalf("build %d: %v\n%s", i+1, w.err, w.log)
		}
		for _, other := range ws[min(i+2, n):] {
			select {
			case <-other.done:
				t.Fatalf("build %d got a lock before build %d (%v)\n%s", slices.Index(ws, other)+1, i+1, other.err, other.log)
			default:
			}
		}
		w.release(t, qsrc(bare), build(i+1))
		if i+2 < n {
			ws[i+2].wait(t, fmt.Sprintf("build %d to get the lock build %d released", i+3, i+1))
		}
	}
	if got, want := strings.Join(claimsInHistory(t, bare, start), " "), "1:env-2 2:env-1 3:env-2 4:env-1 5:env-2"; got != want {
		t.Errorf("claims %s, want %s", got, want)
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
}

// An abort that stops a git command of the waiting loop (not its sleep) still says
// what became of the ticket: the withdrawal's note was lost behind "the step was
// stopped before it finished" (found by the 50-waiter benchmark's mass abort).
func TestQueueAbortMidCommandSaysItWithdrew(t *testing.T) {
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fired := false
	beforePush = func() {
		if !fired {
			fired = true
			cancel() // the ticket's push is on the wire and lands; what follows is stopped
		}
	}
	defer func() { beforePush = func() {} }()
	_, err := out(t, ctx, t.TempDir(), qsrc(bare), map[string]any{"acquire": true}, build(1), nil)
	var ab *abortedError
	if !errors.As(err, &ab) || !strings.Contains(err.Error(), "withdrew its ticket from the queue") {
		t.Errorf("an abort after the ticket landed: %v", err)
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
}

func TestLookEvery(t *testing.T) {
	const d = 10 * time.Second
	for _, tc := range []struct {
		ahead  int
		lo, hi time.Duration
	}{
		{0, 500 * time.Millisecond, time.Second},
		{1, time.Second, 2 * time.Second},
		{2, 2 * time.Second, 4 * time.Second},
		{3, 4 * time.Second, 8 * time.Second},
		{4, 5 * time.Second, 10 * time.Second},
		{1000, 5 * time.Second, 10 * time.Second},
	} {
		if lo, hi := lookEvery(d, tc.ahead); lo != tc.lo || hi != tc.hi {
			t.Errorf("lookEvery(%s, %d) = %s, %s; want %s, %s", d, tc.ahead, lo, hi, tc.lo, tc.hi)
		}
	}
}

// Waiters aborted together withdraw together, and their withdrawals lose races to
// each other: a withdrawal tries again (after a backoff) until its time is up, not
// a fixed number of times (found by the 50-waiter benchmark's mass abort, where 39
// of 50 tickets stayed).
func TestQueueWithdrawOutlastsLostRaces(t *testing.T) {
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	var aborting atomic.Bool
	lost := 0
	beforePush = func() {
		if aborting.Load() && lost < maxFailures+1 {
			lost++
			// Another waiter's withdrawal (here: a ticket) lands first.
			pushTicket(t, bare, queue.Ticket{ID: fmt.Sprintf("other-%d", lost), Seq: 1, Enqueued: time.Now(), Expires: time.Now().Add(time.Hour),
				Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "9", BuildID: "1009"}})
		}
	}
	defer func() { beforePush = func() {} }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startOut(t, ctx, qsrc(bare), map[string]any{"acquire": true}, build(1))
	await(t, w.log.notify("position 1 of 1"), "the build to queue")
	aborting.Store(true)
	cancel()
	w.wait(t, "the build to end")
	if !strings.Contains(fmt.Sprint(w.err), "withdrew its ticket from the queue") {
		t.Errorf("abort after %d lost withdrawal races: %v\n%s", lost, w.err, w.log)
	}
	for _, tk := range tickets(t, bare) {
		if !strings.Contains(tk, "other-") {
			t.Errorf("the aborted build's ticket %s is left", tk)
		}
	}
	if lost != maxFailures+1 {
		t.Errorf("%d lost races, want %d", lost, maxFailures+1)
	}
}

func TestRoundsAhead(t *testing.T) {
	acq := queue.Ticket{Pool: "aws", Want: []queue.Want{{Acquire: true}}}
	claim := func(pool, lock string) queue.Ticket {
		return queue.Ticket{Pool: "aws", Want: []queue.Want{{Pool: pool, Claim: lock}}}
	}
	line := []queue.Ticket{acq, claim("", "env-2"), claim("", "env-1"), acq, claim("gpu", "env-1"), claim("", "env-1"), acq}
	env1 := &queue.Lock{Pool: "aws", Name: "env-1"}
	for _, tc := range []struct {
		name       string
		pos, locks int
		claim      *queue.Lock
		want       int
	}{
		{"the front of one lock", 1, 1, nil, 0},
		{"second of one lock", 2, 1, nil, 1},
		{"within the first round", 2, 2, nil, 0},
		{"third round", 7, 3, nil, 2},
		{"no locks", 3, 0, nil, 2},
		{"not in the line", 0, 2, nil, 0},
		{"a claim passes acquires and other locks' claims", 3, 2, env1, 0},
		{"a claim waits for the claims of its lock", 7, 2, env1, 2}, // pos 3 and 6; gpu's env-1 is another lock
	} {
		if got := roundsAhead(line, tc.pos, tc.locks, tc.claim); got != tc.want {
			t.Errorf("%s: roundsAhead(pos %d, %d locks) = %d, want %d", tc.name, tc.pos, tc.locks, got, tc.want)
		}
	}
}

// A withdrawal the remote refuses (a hook, a protected branch) is not tried again:
// only lost races and an unreachable remote are worth the 8 s.
func TestQueueWithdrawRefusedStopsAtOnce(t *testing.T) {
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := startOut(t, ctx, qsrc(bare), map[string]any{"acquire": true}, build(1))
	await(t, w.log.notify("position 1 of 1"), "the build to queue")
	calls := filepath.Join(t.TempDir(), "calls")
	hook := filepath.Join(bare, "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho refused >> '"+calls+"'\necho 'protected branch' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cancel()
	w.wait(t, "the build to end")
	if !strings.Contains(fmt.Sprint(w.err), "could not withdraw its ticket from the queue") {
		t.Errorf("abort with a refused withdrawal: %v\n%s", w.err, w.log)
	}
	if b, err := os.ReadFile(calls); err != nil || strings.Count(string(b), "refused") != 1 {
		t.Errorf("the remote was asked %q (%v), want once", b, err)
	}
}

// A ticket is its queue and its id: a copy of a waiter's id in another pool's
// queue (anyone who can push can write one) is another ticket. The waiter used to
// take that ticket's grant: a single acquire crashed on the other pool, and a
// request for several locks claimed only the other pool's lock (found by a review).
func TestQueueTicketIDCopiedIntoAnotherQueue(t *testing.T) {
	for _, several := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "several"}[several], func(t *testing.T) {
			bare := newRepo(t, []string{"aws", "gpu"}, lock{pool: "aws", name: "env-1", claimed: true}, lock{pool: "gpu", name: "g-1"})
			params := map[string]any{"acquire": true}
			want := []string{"aws/claimed/env-1"}
			if several {
				params["with"] = []any{map[string]any{"pool": "gpu"}}
				want = append(want, "gpu/claimed/g-1")
			}
			w := startOut(t, context.Background(), qsrc(bare), params, build(1))
			await(t, w.log.notify("position 1 of 1"), "the build to queue")
			id := strings.TrimSuffix(filepath.Base(tickets(t, bare)[0]), ".json")
			copied := filepath.FromSlash(queue.Path("gpu", id))
			now := time.Now()
			upstream(t, bare, "a copy of the waiter's ticket id in pool gpu's queue", func(dir string) {
				p := filepath.Join(dir, copied)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				tk := queue.Ticket{ID: id, Seq: 0, Enqueued: now.Add(-time.Hour), Expires: now.Add(time.Hour), Want: []queue.Want{{Acquire: true}}}
				if err := os.WriteFile(p, tk.Encode(), 0o644); err != nil {
					t.Fatal(err)
				}
				testenv.Git(t, dir, "add", "-A")
			})
			if several {
				// The copy is an older ticket of gpu's queue: it is served first,
				// and the request for both waits behind it, claiming nothing.
				await(t, w.log.notify("position 2 of 2"), "the build to queue behind the copy")
				upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
				await(t, w.log.notify("not enough locks available"), "the build to see env-1 free and g-1 promised")
				if tr := tree(t, bare); !tr["aws/unclaimed/env-1"] || !tr["gpu/unclaimed/g-1"] {
					t.Fatalf("the request for both claimed a part: %v\n%s", keys(tr), w.log)
				}
				upstream(t, bare, "the copy is gone", func(dir string) { testenv.Git(t, dir, "rm", "-q", copied) })
			} else {
				upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
			}
			w.wait(t, "the build to get its locks")
			if w.err != nil {
				t.Fatalf("acquire: %v\n%s", w.err, w.log)
			}
			got := strings.Fields(testenv.Git(t, bare, "diff-tree", "--no-commit-id", "--name-only", "-r", "--diff-filter=A", w.res.Version.Ref))
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("the claim %s added %v, want %v\n%s", w.res.Version.Ref, got, want, w.log)
			}
		})
	}
}
