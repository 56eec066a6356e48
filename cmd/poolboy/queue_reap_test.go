package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// Issue 13: the queue's dead tickets, with the real binary as Concourse runs it
// (out with the request on stdin) and as a person runs it (clean), on a git
// daemon remote.

// putGuard is how long a background put may take before the test calls it hung:
// a failure guard, not a speed budget.
const putGuard = 2 * time.Minute

// watchedLog is a put's stderr; notify signals when a text has appeared in it.
type watchedLog struct {
	mu      sync.Mutex
	b       strings.Builder
	watches map[string]chan struct{}
}

func (l *watchedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	for text, ch := range l.watches {
		if strings.Contains(l.b.String(), text) {
			close(ch)
			delete(l.watches, text)
		}
	}
	return len(p), nil
}

func (l *watchedLog) notify(text string) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(l.b.String(), text) {
		close(ch)
		return ch
	}
	if l.watches == nil {
		l.watches = map[string]chan struct{}{}
	}
	if old, ok := l.watches[text]; ok {
		return old
	}
	l.watches[text] = ch
	return ch
}

func (l *watchedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bgPut is the out script running in the background.
type bgPut struct {
	name   string
	cmd    *exec.Cmd
	stdout bytes.Buffer
	log    watchedLog
	done   chan struct{}
}

// startPut runs out in a fresh build directory as build name of main/deploy/test.
func startPut(t *testing.T, w *world, source, params map[string]any, name string) *bgPut {
	t.Helper()
	body, err := json.Marshal(map[string]any{"source": source, "params": params})
	if err != nil {
		t.Fatal(err)
	}
	p := &bgPut{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(w.res, "out"), t.TempDir())
	p.cmd.Stdin = bytes.NewReader(body)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, jobBuild(name)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// await waits until ch is closed, failing if the put ended first or at the guard.
func (p *bgPut) await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-p.done:
		select {
		case <-ch:
		default:
			t.Fatalf("build %s's put ended before %s:\n%s", p.name, what, p.log.String())
		}
	case <-time.After(putGuard):
		t.Fatalf("no %s within %s:\n%s", what, putGuard, p.log.String())
	}
}

// answer waits for the put to end and decodes its answer.
func (p *bgPut) answer(t *testing.T) answerJSON {
	t.Helper()
	a, err := p.result()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// result is answer for goroutines other than the test's: it fails nothing.
func (p *bgPut) result() (answerJSON, error) {
	var a answerJSON
	select {
	case <-p.done:
	case <-time.After(putGuard):
		return a, fmt.Errorf("build %s's put did not end within %s:\n%s", p.name, putGuard, p.log.String())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || json.Unmarshal(p.stdout.Bytes(), &a) != nil || a.Version["ref"] == "" {
		return a, fmt.Errorf("build %s's put: exit %d, stdout %s\n%s", p.name, code, p.stdout.String(), p.log.String())
	}
	return a, nil
}

// kill is kill -9: the waiter dies without withdrawing its ticket.
func (p *bgPut) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// gitChange changes the remote as upstream's out (or a person) does: a fresh
// clone, a change, a commit and a fast-forward push, all again when someone
// pushed first. change returns the commit message, "" when there is nothing to do
// yet; gitChange returns the message of the change that landed, "" for none.
func gitChange(t *testing.T, url string, change func(dir string) string) string {
	t.Helper()
	for range 50 {
		dir := t.TempDir()
		testenv.Git(t, "", "clone", "-q", "-b", "main", url, dir)
		msg := change(dir)
		if msg == "" {
			return ""
		}
		testenv.Git(t, dir, "commit", "-q", "-m", msg)
		push := exec.Command("git", "push", "-q", "origin", "HEAD:main")
		push.Dir = dir
		out, err := push.CombinedOutput()
		if err == nil {
			return msg
		}
		if !strings.Contains(string(out), "rejected") && !strings.Contains(string(out), "fetch first") {
			t.Errorf("push: %v: %s", err, out)
			return ""
		}
	}
	t.Errorf("rejected 50 times")
	return ""
}

func gitMv(t *testing.T, from, to, msg string) func(dir string) string {
	return func(dir string) string { testenv.Git(t, dir, "mv", from, to); return msg }
}

// queueTickets reads pool aws's tickets at the remote's head.
func queueTickets(t *testing.T, w *world) map[string]queue.Ticket {
	t.Helper()
	out := map[string]queue.Ticket{}
	for _, p := range strings.Fields(testenv.Git(t, w.bare, "ls-tree", "-r", "--name-only", "main", "--", queue.Dir("aws")+"/")) {
		var tk queue.Ticket
		if err := json.Unmarshal([]byte(testenv.Git(t, w.bare, "cat-file", "-p", "main:"+p)), &tk); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[tk.Holder.Build] = tk
	}
	return out
}

// changedFiles lists what commit changed.
func changedFiles(t *testing.T, w *world, commit string) []string {
	t.Helper()
	return strings.Fields(testenv.Git(t, w.bare, "diff-tree", "--no-commit-id", "--name-only", "-r", commit))
}

// cleanCmd is poolboy clean against w, asking cc as user reaper.
func cleanCmd(w *world, bin string, cc *fakeconcourse.Server, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"clean", "--repo", w.url, "--pools", "aws:1h", "--concourse-url", cc.URL}, args...)...)
	cmd.Env = append(os.Environ(), "CONCOURSE_USERNAME=reaper", "CONCOURSE_PASSWORD=reaper-pw")
	return cmd
}

// newConcourse is the fake Concourse the builds of jobBuild run on (its external
// URL is ATC_EXTERNAL_URL's), knowing the builds given (name → status).
func newConcourse(t *testing.T, builds map[string]string) *fakeconcourse.Server {
	cc := fakeconcourse.New(t, fakeconcourse.WithExternalURL("https://ci.example.com"))
	cc.AddUser("reaper", "reaper-pw", "main")
	for name, status := range builds {
		var id int
		fmt.Sscan(name, &id)
		cc.AddBuild(fakeconcourse.Build{ID: id, Pipeline: "deploy", Job: "test", Name: name, Status: status})
	}
	return cc
}

// checkLocks checks every commit since from on the (linear) branch: each lock
// in exactly one of claimed/ and unclaimed/, the same locks throughout (none lost,
// none duplicated), and every claim made of a lock that was free.
func checkLocks(t *testing.T, w *world, from string, locks ...string) {
	t.Helper()
	if merges := testenv.Git(t, w.bare, "rev-list", "--merges", from+"..main"); merges != "" {
		t.Errorf("merge commits: %s", merges)
	}
	prev := map[string]bool{}
	for _, c := range append([]string{from}, strings.Fields(testenv.Git(t, w.bare, "rev-list", "--reverse", from+"..main"))...) {
		state := map[string]bool{} // lock → claimed
		seen := map[string]int{}
		for _, p := range strings.Fields(testenv.Git(t, w.bare, "ls-tree", "-r", "--name-only", c, "--", "aws/")) {
			dir, name := filepath.Split(p)
			if strings.HasPrefix(name, ".") {
				continue
			}
			seen[name]++
			state[name] = dir == "aws/claimed/"
		}
		var names []string
		for n, k := range seen {
			names = append(names, n)
			if k != 1 {
				t.Errorf("commit %s has lock %s %d times", c, n, k)
			}
		}
		slices.Sort(names)
		if !slices.Equal(names, locks) {
			t.Errorf("commit %s has locks %v, want %v", c, names, locks)
		}
		if m := commitmsg.Parse(testenv.Git(t, w.bare, "log", "-1", "--format=%B", c)); c != from && m.Op == commitmsg.OpClaim {
			if prev[m.Lock] || !state[m.Lock] {
				t.Errorf("commit %s claims %s, claimed before: %v, after: %v", c, m.Lock, prev[m.Lock], state[m.Lock])
			}
		}
		prev = state
	}
}

// A waiter SIGKILLed at the head of the queue leaves its ticket. (a) The next
// waiter is granted once that ticket expired (6 × the dead waiter's retry_delay,
// at least 10 s), and a claim deletes the ticket once it has been expired for
// policy.TicketGrace. (b) poolboy clean, Concourse saying
// that build was aborted, deletes the ticket at once (the dead waiter's ticket
// would live for hours), and the next waiter proceeds.
func TestSIGKILLedHeadOfTheQueue(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	bin := filepath.Join(filepath.Dir(filepath.Dir(res)), "poolboy")
	claimed := fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", Message: "main/deploy/test build 40 claiming: env-1"}

	// headDies queues build 41 at the head (retry_delay deadDelay), then build 42
	// behind it, kills 41 with SIGKILL, and returns 42's put and 41's ticket.
	headDies := func(t *testing.T, w *world, deadDelay string) (*bgPut, queue.Ticket) {
		head := startPut(t, w, w.source("aws", "retry_delay", deadDelay), map[string]any{"acquire": true}, "41")
		head.await(t, head.log.notify("waiting for a lock in pool aws: position 1 of 1"), "build 41 to queue")
		next := startPut(t, w, w.source("aws", "retry_delay", "200ms"), map[string]any{"acquire": true}, "42")
		next.await(t, next.log.notify("position 2 of 2 (ahead: main/deploy/test #41)"), "build 42 to queue behind 41")
		head.kill(t)
		dead, ok := queueTickets(t, w)["41"]
		if !ok {
			t.Fatalf("the killed waiter's ticket is not in the queue: %v", queueTickets(t, w))
		}
		gitChange(t, w.url, gitMv(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "main/deploy/test build 40 unclaiming: env-1"))
		return next, dead
	}

	t.Run("the dead ticket expires", func(t *testing.T) {
		w := newWorld(t, res, "git-daemon", []string{"aws"}, add("aws", "env-1"), claimed)
		next, dead := headDies(t, w, "500ms")
		a := next.answer(t)
		if a.meta("lock_name") != "env-1" {
			t.Fatalf("build 42 got %+v", a)
		}
		claim := a.Version["ref"]
		at, err := time.Parse(time.RFC3339, testenv.Git(t, w.bare, "log", "-1", "--format=%cI", claim))
		if err != nil {
			t.Fatal(err)
		}
		if at.Before(dead.Expires.Truncate(time.Second)) {
			t.Errorf("build 42 claimed at %s, before the dead head's ticket expired at %s", at, dead.Expires)
		}
		// The claim deletes the expired ticket once it has been expired for
		// policy.TicketGrace (the deleter's clock may run ahead); claimed sooner,
		// it leaves it, ignored.
		deleted := slices.Contains(changedFiles(t, w, claim), queue.Path("aws", dead.ID))
		switch late := !at.Before(dead.Expires.Add(policy.TicketGrace + time.Second)); {
		case late && !deleted:
			t.Errorf("the claim at %s did not delete the ticket expired at %s", at, dead.Expires)
		case !at.After(dead.Expires.Add(policy.TicketGrace-time.Second)) && deleted:
			t.Errorf("the claim at %s deleted the ticket expired at %s, within the grace", at, dead.Expires)
		}
	})

	t.Run("clean deletes it at once", func(t *testing.T) {
		w := newWorld(t, res, "git-daemon", []string{"aws"}, add("aws", "env-1"), claimed)
		cc := newConcourse(t, map[string]string{"41": "started", "42": "started"})
		next, dead := headDies(t, w, "1h")
		cc.SetStatus(41, "aborted")

		// A dry run says so and deletes nothing.
		out, err := cleanCmd(w, bin, cc, "--dry-run", "--output", "json").Output()
		var doc struct {
			Clean struct {
				Tickets []struct{ Pool, Ticket, Waiter, Commit, Rule string } `json:"tickets_deleted"`
			}
		}
		if err != nil || json.Unmarshal(out, &doc) != nil || len(doc.Clean.Tickets) != 1 {
			t.Fatalf("clean --dry-run: %v\n%s", err, out)
		}
		if d := doc.Clean.Tickets[0]; d.Ticket != dead.ID || d.Rule != "build-aborted" || d.Commit != "" || d.Waiter != "main/deploy/test #41" {
			t.Errorf("dry run: %+v", d)
		}
		if _, ok := queueTickets(t, w)["41"]; !ok {
			t.Fatal("a dry run deleted the ticket")
		}

		out, err = cleanCmd(w, bin, cc).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "deleted queue ticket aws/"+dead.ID+" of main/deploy/test #41 in ") {
			t.Fatalf("clean: %v\n%s", err, out)
		}
		deletion := testenv.Git(t, w.bare, "log", "-1", "--format=%H", "main", "--", queue.Path("aws", dead.ID))
		msg := testenv.Git(t, w.bare, "log", "-1", "--format=%B", deletion)
		if commitmsg.Trailer(msg, "Poolboy-Rule") != "build-aborted" || commitmsg.Trailer(msg, "Poolboy-Ticket") != dead.ID {
			t.Errorf("the deletion's message:\n%s", msg)
		}
		if files := changedFiles(t, w, deletion); !slices.Equal(files, []string{queue.Path("aws", dead.ID)}) {
			t.Errorf("the deletion changed %v", files)
		}
		a := next.answer(t)
		if a.meta("lock_name") != "env-1" {
			t.Fatalf("build 42 got %+v", a)
		}
		testenv.Git(t, w.bare, "merge-base", "--is-ancestor", deletion, a.Version["ref"])
		at, err := time.Parse(time.RFC3339, testenv.Git(t, w.bare, "log", "-1", "--format=%cI", a.Version["ref"]))
		if err != nil || !at.Before(dead.Expires) {
			t.Errorf("build 42 claimed at %s, the dead ticket expires at %s: %v", at, dead.Expires, err)
		}
		if left := queueTickets(t, w); len(left) != 0 {
			t.Errorf("tickets left: %v", left)
		}
	})
}

// holdAndRelease is a build's acquire, its implicit get, and its release.
func holdAndRelease(t *testing.T, w *world, source map[string]any, name string) {
	p := startPut(t, w, source, map[string]any{"acquire": true}, name)
	a, err := p.result()
	if err != nil {
		t.Error(err)
		return
	}
	work := p.cmd.Args[1]
	req := map[string]any{"source": source, "version": a.Version}
	if g := run(t, filepath.Join(w.res, "in"), req, jobBuild(name), filepath.Join(work, "lock")); g.code != 0 {
		t.Errorf("build %s's get: %+v", name, g)
		return
	}
	rel := run(t, filepath.Join(w.res, "out"), map[string]any{"source": source, "params": map[string]any{"release": "lock"}}, jobBuild(name), work)
	if rel.code != 0 {
		t.Errorf("build %s's release: %+v", name, rel)
	}
}

// upstreamActor acquires and releases a lock rounds times with plain git, as
// upstream's resource does (git mv, commit, push; again when rejected), looking
// again while no lock is free (upstream's own polling).
func upstreamActor(t *testing.T, w *world, rounds int) {
	for r := range rounds {
		var got string
		for got == "" && !t.Failed() {
			gitChange(t, w.url, func(dir string) string {
				got = ""
				for _, p := range strings.Fields(testenv.Git(t, dir, "ls-tree", "--name-only", "HEAD", "aws/unclaimed/")) {
					if name := filepath.Base(p); !strings.HasPrefix(name, ".") {
						got = name
						testenv.Git(t, dir, "mv", p, "aws/claimed/"+name)
						return fmt.Sprintf("main/up/acq build %d claiming: %s", r, name)
					}
				}
				return ""
			})
		}
		if t.Failed() {
			return
		}
		gitChange(t, w.url, gitMv(t, "aws/claimed/"+got, "aws/unclaimed/"+got, fmt.Sprintf("main/up/acq build %d unclaiming: %s", r, got)))
	}
}

// An upstream acquirer (plain git mv, commit, push) and poolboy waiters queueing
// in one pool at once: no lock is ever held twice, none is lost, and every
// ticket is gone at the end.
func TestQueueBesideAnUpstreamAcquirer(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	w := newWorld(t, res, "git-daemon", []string{"aws"}, add("aws", "env-1"), add("aws", "env-2"))
	start := testenv.Git(t, w.bare, "rev-parse", "main")
	source := w.source("aws", "retry_delay", "200ms")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { holdAndRelease(t, w, source, fmt.Sprint(50+i)) })
	}
	wg.Go(func() { upstreamActor(t, w, 4) })
	wg.Wait()
	checkLocks(t, w, start, "env-1", "env-2")
	claims := 0
	for _, c := range strings.Fields(testenv.Git(t, w.bare, "rev-list", start+"..main")) {
		if commitmsg.Parse(testenv.Git(t, w.bare, "log", "-1", "--format=%s", c)).Op == commitmsg.OpClaim {
			claims++
		}
	}
	if claims != 8 {
		t.Errorf("%d claims, want 8 (4 poolboy builds, 4 upstream rounds)", claims)
	}
	if left := queueTickets(t, w); len(left) != 0 {
		t.Errorf("tickets left: %v", left)
	}
	wantTreeFree(t, w, "env-1", "env-2")
}

func wantTreeFree(t *testing.T, w *world, locks ...string) {
	t.Helper()
	for _, l := range locks {
		testenv.Git(t, w.bare, "rev-parse", "--verify", "-q", "main:aws/unclaimed/"+l)
	}
}

// Two poolboy reapers (clean runs, at once, against one remote) while builds
// queue and a waiter SIGKILLed at the head leaves its ticket: the dead ticket is
// deleted once, the aborted build's lock freed once, no ticket of a running
// build is deleted, and no lock is lost or duplicated.
func TestTwoReapersAndTheQueue(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	bin := filepath.Join(filepath.Dir(filepath.Dir(res)), "poolboy")
	w := newWorld(t, res, "git-daemon", []string{"aws"}, add("aws", "env-1"), add("aws", "env-2"),
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", Message: "main/deploy/test build 40 claiming: env-1"},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", Message: "main/deploy/test build 39 claiming: env-2"})
	start := testenv.Git(t, w.bare, "rev-parse", "main")
	live := []string{"50", "51", "52", "53"}
	builds := map[string]string{"39": "started", "40": "aborted", "41": "started"}
	for _, b := range live {
		builds[b] = "started"
	}
	cc := newConcourse(t, builds)

	dead := startPut(t, w, w.source("aws", "retry_delay", "1h"), map[string]any{"acquire": true}, "41")
	dead.await(t, dead.log.notify("waiting for a lock in pool aws: position 1 of 1"), "build 41 to queue")
	dead.kill(t)
	cc.SetStatus(41, "aborted")
	deadTicket, ok := queueTickets(t, w)["41"]
	if !ok {
		t.Fatal("the killed waiter's ticket is not in the queue")
	}

	source := w.source("aws", "retry_delay", "200ms")
	var wg sync.WaitGroup
	for _, b := range live {
		wg.Go(func() { holdAndRelease(t, w, source, b) })
	}
	for r := range 2 {
		wg.Go(func() {
			for range 3 {
				if out, err := cleanCmd(w, bin, cc, "--max-attempts", "50").CombinedOutput(); err != nil {
					t.Errorf("reaper %d: %v\n%s", r, err, out)
				}
			}
		})
	}
	wg.Go(func() {
		gitChange(t, w.url, gitMv(t, "aws/claimed/env-2", "aws/unclaimed/env-2", "main/deploy/test build 39 unclaiming: env-2"))
	})
	wg.Wait()

	checkLocks(t, w, start, "env-1", "env-2")
	var deletions, frees []string
	for _, c := range strings.Fields(testenv.Git(t, w.bare, "rev-list", start+"..main")) {
		msg := testenv.Git(t, w.bare, "log", "-1", "--format=%B", c)
		switch rule := commitmsg.Trailer(msg, "Poolboy-Rule"); {
		case commitmsg.Trailer(msg, "Poolboy-Ticket") != "":
			deletions = append(deletions, commitmsg.Trailer(msg, "Poolboy-Waiter")+" "+rule)
		case rule != "":
			frees = append(frees, commitmsg.Trailer(msg, "Poolboy-Lock")+" "+commitmsg.Trailer(msg, "Poolboy-Owner")+" "+rule)
		}
	}
	if !slices.Equal(deletions, []string{"main/deploy/test #41 build-aborted"}) {
		t.Errorf("ticket deletions: %q, want only the killed waiter's", deletions)
	}
	if !slices.Equal(frees, []string{"env-1 main/deploy/test #40 build-aborted"}) {
		t.Errorf("frees: %q, want only the aborted build's lock", frees)
	}
	if left := queueTickets(t, w); len(left) != 0 {
		t.Errorf("tickets left: %v (the dead one was %s)", left, deadTicket.ID)
	}
	wantTreeFree(t, w, "env-1", "env-2")
}
