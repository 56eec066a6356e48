package resource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

func TestFencedRelease(t *testing.T) {
	t.Parallel()
	other := map[string]string{"BUILD_ID": "99", "BUILD_NAME": "7", "BUILD_TEAM_NAME": "main",
		"BUILD_PIPELINE_NAME": "other", "BUILD_JOB_NAME": "grab"}

	t.Run("the build still holds its claim", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		rel := mustOut(t, dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv)
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
		msg := message(t, bare, rel.Version.Ref)
		if m := commitmsg.Parse(msg); m.Op != commitmsg.OpUnclaim || m.Lock != "env-1" || m.Owner.Job != "test" ||
			!strings.Contains(msg, "Poolboy-Claim-Commit: "+acq.Version.Ref) {
			t.Errorf("release message %q", msg)
		}
	})

	t.Run("reaped and still free: success with a warning", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		reaper := testenv.NewClone(t, fileURL(bare), "main")
		reaper.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "unclaiming: env-1")
		reaped := head(t, bare)
		rel := mustOut(t, dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv)
		if rel.Version.Ref != reaped || head(t, bare) != reaped || rel.lock() != "env-1" {
			t.Errorf("answer %+v, head %s, want the reaped head %s and nothing pushed", rel, head(t, bare), reaped)
		}
		if !strings.Contains(rel.log, "warning: lock env-1 is not claimed any more") {
			t.Errorf("log = %q", rel.log)
		}
	})

	t.Run("reaped and claimed again: refused, left claimed", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		c := testenv.NewClone(t, fileURL(bare), "main")
		c.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "unclaiming: env-1")
		mustOut(t, t.TempDir(), src(fileURL(bare)), map[string]any{"claim": "env-1"}, other)
		reclaimed := head(t, bare)
		_, err := out(t, context.Background(), dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv, nil)
		if err == nil || strings.Contains(err.Error(), "\n") ||
			!strings.Contains(err.Error(), `lock "env-1" was claimed by this build (`+acq.Version.Ref+`), then was released by an unknown build in `) ||
			!strings.Contains(err.Error(), `and is now claimed by main/other/grab #7`) {
			t.Errorf("error = %v", err)
		}
		if head(t, bare) != reclaimed {
			t.Error("something was pushed")
		}
		wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
	})

	t.Run("no ref file: released as upstream, with a warning", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		writeStep(t, dir, "lock", map[string]string{"name": "env-2\n", "metadata": "two"})
		rel := mustOut(t, dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv)
		if !strings.Contains(rel.log, "warning: no ref file for lock env-2") {
			t.Errorf("log = %q", rel.log)
		}
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/unclaimed/env-2")
	})

	t.Run("claim far back in history: the shallow clone deepens", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
		c := testenv.NewClone(t, fileURL(bare), "main")
		for range 200 { // more than releaseDepth
			testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "noise")
		}
		testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
		mustOut(t, dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv)
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
	})
}

func TestWaitingAcquireGetsTheReleasedLock(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
	log := &logBuffer{}
	waiting := log.notify("waiting for a lock in pool aws: position 1 of 1 (no lock available in pool aws)")
	done := make(chan result)
	var err error
	go func() {
		r, e := out(t, context.Background(), t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv, log)
		err = e
		done <- r
	}()
	await(t, waiting, "the acquire to wait")
	c := testenv.NewClone(t, fileURL(bare), "main")
	c.Move(t, "aws/claimed/env-1", "aws/unclaimed/env-1", "other/pipe/job build 3 unclaiming: env-1")
	released := head(t, bare)
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the acquire did not end after the release")
	}
	if err != nil {
		t.Fatalf("acquire: %v\n%s", err, log)
	}
	if r.lock() != "env-1" || testenv.Git(t, bare, "rev-parse", r.Version.Ref+"^") != released {
		t.Errorf("answer %+v, want env-1 claimed on top of the release", r)
	}
	wantTree(t, bare, "aws/claimed/env-1")
}

// Without the queue a cancelled wait pushes nothing; with it, the ticket it pushed
// is withdrawn before the put ends.
func TestCancelWhileWaitingReturnsAtOnceAndPushesNothing(t *testing.T) {
	t.Parallel()
	for _, queued := range []bool{false, true} {
		t.Run(fmt.Sprintf("queue=%v", queued), func(t *testing.T) {
			t.Parallel()
			bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: true})
			before := head(t, bare)
			for _, params := range []map[string]any{{"acquire": true}, {"claim": "env-1"}} {
				ctx, cancel := context.WithCancel(context.Background())
				log := &logBuffer{}
				waiting := log.notify("retrying in")
				if queued {
					waiting = log.notify("waiting for ")
				}
				done := make(chan error)
				go func() {
					_, err := out(t, ctx, t.TempDir(), src(fileURL(bare), "retry_delay", "1h", "queue", queued), params, jobEnv, log)
					done <- err
				}()
				await(t, waiting, "the put to wait")
				cancel()
				select {
				case err := <-done:
					if !errors.Is(err, context.Canceled) {
						t.Errorf("%v: error %v, want context.Canceled", params, err)
					}
					if queued && !strings.Contains(fmt.Sprint(err), "; withdrew its ticket from the queue") {
						t.Errorf("%v: error %v, want it to say the ticket was withdrawn", params, err)
					}
				case <-time.After(10 * time.Second): // a retry_delay of 1h: only cancellation ends it
					t.Fatalf("%v: still waiting after the cancellation", params)
				}
			}
			if !queued && head(t, bare) != before {
				t.Error("something was pushed")
			}
			if queued {
				if got := testenv.Git(t, bare, "log", "--format=%s", before+"..main"); strings.Count(got, "queueing: aws") != 2 || strings.Count(got, "leaving queue: aws") != 2 {
					t.Errorf("commits since: %s", got)
				}
				if d := testenv.Git(t, bare, "diff", "--stat", before, "main"); d != "" {
					t.Errorf("the tree changed: %s", d)
				}
			}
		})
	}
}

// An abort that comes before the clone finished says it was an abort, not just
// what git said about the context. (The context is cancelled before Out starts,
// so the abort may also be seen while the request is read: that says so too.)
func TestAbortBeforeTheCloneSaysAborted(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"})
	before := head(t, bare)
	ctx, cancel := context.WithCancelCause(context.Background())
	sigterm := errors.New("terminated signal received")
	cancel(sigterm)
	_, err := out(t, ctx, t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv, &logBuffer{})
	if err == nil || !(err.Error() == "aborted: the step was stopped before it finished" ||
		err.Error() == "aborted while reading the request (terminated signal received)") || !errors.Is(err, sigterm) {
		t.Errorf("error %v, want it to say the step was aborted and wrap its cause", err)
	}
	if head(t, bare) != before {
		t.Error("something was pushed")
	}
}

// TestClaimLandingAfterCancellationIsGivenBack cancels at the last moment: after
// the final check, as the push starts. The push is let finish, and the claim that
// landed is released at once.
func TestClaimLandingAfterCancellationIsGivenBack(t *testing.T) {
	bare := awsRepo(t)
	before := head(t, bare)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	beforePush = cancel
	defer func() { beforePush = func() {} }()
	r, err := out(t, ctx, t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if !strings.Contains(r.log, `gave lock "env-1" back`) {
		t.Errorf("log = %q", r.log)
	}
	subjects := testenv.Git(t, bare, "log", "--format=%s", before+"..main")
	if subjects != "main/deploy/test build 12 unclaiming: env-1\nmain/deploy/test build 12 claiming: env-1" {
		t.Errorf("pushed %q", subjects)
	}
	wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
}

func TestOperations(t *testing.T) {
	t.Parallel()
	s := func(bare string) map[string]any { return src(fileURL(bare)) }

	t.Run("claim a named lock", func(t *testing.T) {
		t.Parallel()
		bare := awsRepo(t)
		r := mustOut(t, t.TempDir(), s(bare), map[string]any{"claim": "env-1"}, jobEnv)
		wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2")
		if r.lock() != "env-1" || !strings.HasPrefix(message(t, bare, r.Version.Ref), "main/deploy/test build 12 claiming: env-1\n") {
			t.Errorf("answer %+v, message %q", r, message(t, bare, r.Version.Ref))
		}
	})

	t.Run("add and add_claimed, binary metadata read back by in", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		var binary []byte
		for i := range 256 {
			binary = append(binary, byte(i))
		}
		writeStep(t, dir, "new", map[string]string{"name": "env-3\n", "metadata": string(binary)})
		writeStep(t, dir, "held", map[string]string{"name": "env-4", "metadata": "four"})
		add := mustOut(t, dir, s(bare), map[string]any{"add": "new"}, jobEnv)
		mustOut(t, dir, s(bare), map[string]any{"add_claimed": "held"}, jobEnv)
		wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2", "aws/unclaimed/env-3", "aws/claimed/env-4")
		if subject := testenv.Git(t, bare, "log", "-1", "--format=%s", "main"); subject != "main/deploy/test build 12 adding claimed: env-4" {
			t.Errorf("subject %q", subject)
		}
		got := get(t, dir, "fetched", s(bare), add.Version.Ref)
		data, err := os.ReadFile(filepath.Join(dir, "fetched", "metadata"))
		if err != nil || string(data) != string(binary) || got.lock() != "env-3" {
			t.Errorf("in: %+v, metadata %q (%v)", got, data, err)
		}
		before := head(t, bare)
		if _, err := out(t, context.Background(), dir, s(bare), map[string]any{"add": "held"}, nil, nil); err == nil ||
			!strings.Contains(err.Error(), `lock "env-4" already exists in pool "aws" (claimed)`) {
			t.Errorf("adding an existing lock: %v", err)
		}
		if head(t, bare) != before {
			t.Error("something was pushed")
		}
	})

	t.Run("remove a claimed lock; an unclaimed one is refused", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		writeStep(t, dir, "two", map[string]string{"name": "env-2"})
		writeStep(t, dir, "one", map[string]string{"name": "env-1"})
		mustOut(t, dir, s(bare), map[string]any{"remove": "two"}, nil)
		wantTree(t, bare, "aws/unclaimed/env-1")
		if _, err := out(t, context.Background(), dir, s(bare), map[string]any{"remove": "one"}, nil, nil); err == nil ||
			!strings.Contains(err.Error(), "is not claimed") {
			t.Errorf("removing an unclaimed lock: %v", err)
		}
		wantTree(t, bare, "aws/unclaimed/env-1")
	})

	t.Run("update: replaces, adds, waits while claimed", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		writeStep(t, dir, "one", map[string]string{"name": "env-1", "metadata": "new one"})
		writeStep(t, dir, "five", map[string]string{"name": "env-5", "metadata": "five"})
		writeStep(t, dir, "two", map[string]string{"name": "env-2", "metadata": "new two"})
		u := mustOut(t, dir, s(bare), map[string]any{"update": "one"}, nil)
		if got := testenv.Git(t, bare, "show", u.Version.Ref+":aws/unclaimed/env-1"); got != "new one" {
			t.Errorf("env-1 = %q", got)
		}
		again := mustOut(t, dir, s(bare), map[string]any{"update": "one"}, nil)
		if again.Version.Ref != u.Version.Ref {
			t.Error("an update to the same metadata pushed a commit")
		}
		mustOut(t, dir, s(bare), map[string]any{"update": "five"}, nil)
		if subject := testenv.Git(t, bare, "log", "-1", "--format=%s", "main"); subject != "adding unclaimed: env-5" {
			t.Errorf("subject %q", subject)
		}

		log := &logBuffer{}
		waiting := log.notify("lock env-2 is claimed, retrying in")
		done := make(chan error)
		go func() {
			_, err := out(t, context.Background(), dir, s(bare), map[string]any{"update": "two"}, nil, log)
			done <- err
		}()
		await(t, waiting, "the update to wait")
		testenv.NewClone(t, fileURL(bare), "main").Move(t, "aws/claimed/env-2", "aws/unclaimed/env-2", "unclaiming: env-2")
		if err := <-done; err != nil {
			t.Fatalf("update: %v\n%s", err, log)
		}
		if got := testenv.Git(t, bare, "show", "main:aws/unclaimed/env-2"); got != "new two" {
			t.Errorf("env-2 = %q", got)
		}
	})

	t.Run("check waits while claimed, check_unclaimed while unclaimed; neither pushes", func(t *testing.T) {
		t.Parallel()
		bare, dir := awsRepo(t), t.TempDir()
		writeStep(t, dir, "one", map[string]string{"name": "env-1"})
		writeStep(t, dir, "two", map[string]string{"name": "env-2"})
		for _, c := range []struct {
			param, step, waitFor, from, to string
		}{
			{"check", "two", "lock env-2 is claimed", "aws/claimed/env-2", "aws/unclaimed/env-2"},
			{"check_unclaimed", "one", "lock env-1 is unclaimed", "aws/unclaimed/env-1", "aws/claimed/env-1"},
		} {
			log := &logBuffer{}
			waiting := log.notify(c.waitFor)
			done := make(chan result)
			var err error
			go func() {
				r, e := out(t, context.Background(), dir, s(bare), map[string]any{c.param: c.step}, nil, log)
				err = e
				done <- r
			}()
			await(t, waiting, c.param+" to wait")
			testenv.NewClone(t, fileURL(bare), "main").Move(t, c.from, c.to, "moved by hand")
			moved := head(t, bare)
			r := <-done
			if err != nil || r.Version.Ref != moved || head(t, bare) != moved {
				t.Errorf("%s: answer %+v (%v), want the head %s and nothing pushed", c.param, r, err, moved)
			}
		}
	})
}

func TestLockNamesAreValidated(t *testing.T) {
	t.Parallel()
	bare := awsRepo(t)
	// A symlink where a lock should be, pointing out of the repository.
	c := testenv.NewClone(t, fileURL(bare), "main")
	if err := os.Symlink("/etc/passwd", filepath.Join(c.Dir, "aws", "unclaimed", "link")); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "adding: link")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
	before := head(t, bare)

	dir := t.TempDir()
	writeStep(t, dir, "dots", map[string]string{"name": "..", "metadata": "x"})
	writeStep(t, dir, "control", map[string]string{"name": "env\x1b[31m", "metadata": "x"})
	writeStep(t, dir, "slash", map[string]string{"name": "claimed/env-2", "metadata": "x"})
	writeStep(t, dir, "link", map[string]string{"name": "link", "metadata": "x"})
	writeStep(t, dir, "big", map[string]string{"name": "big", "metadata": strings.Repeat("x", maxMetadata+1)})
	writeStep(t, dir, "escape", nil)
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "escape", "name")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"add": "dots"}, `".." is not a lock name: lock name starts with '.'`},
		{map[string]any{"add": "control"}, `"env\x1b[31m" is not a lock name: lock name contains a control character`},
		{map[string]any{"release": "slash"}, `lock name contains '/'`},
		{map[string]any{"claim": "../x"}, `params.claim: "../x" is not a lock name`},
		{map[string]any{"claim": "link"}, `lock "link" in pool "aws": a symlink where a lock should be (never followed)`},
		{map[string]any{"update": "link"}, `a symlink where a lock should be`},
		{map[string]any{"release": "link"}, `a symlink where a lock should be`},
		{map[string]any{"add": "big"}, "is larger than 1048576 bytes"},
		{map[string]any{"release": "escape"}, "could not read the name file of your lock"},
		{map[string]any{"release": "../elsewhere"}, `params.release: "../elsewhere" must be a path inside the put step's directory`},
	} {
		_, err := out(t, context.Background(), dir, src(fileURL(bare)), c.params, nil, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line with %q", c.params, err, c.want)
		}
	}
	if head(t, bare) != before {
		t.Error("something was pushed")
	}

	// acquire never takes the symlink: with env-1 gone, the pool has nothing free.
	mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	log := &logBuffer{}
	waiting := log.notify("no lock available in pool aws")
	done := make(chan error)
	go func() {
		_, err := out(t, ctx, dir, src(fileURL(bare)), map[string]any{"acquire": true}, nil, log)
		done <- err
	}()
	await(t, waiting, "the second acquire to wait")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("second acquire: %v", err)
	}
	wantTree(t, bare, "aws/claimed/env-1", "aws/claimed/env-2", "aws/unclaimed/link")
	if got := testenv.Git(t, bare, "ls-tree", "main", "aws/unclaimed/link"); !strings.HasPrefix(got, "120000") {
		t.Errorf("the symlink changed: %q", got)
	}
}

func TestReapFreesStaleLocksOfThisPoolOnly(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws", "gpu"},
		lock{pool: "aws", name: "old", claimed: true, age: 5 * time.Hour},
		lock{pool: "aws", name: "fresh", claimed: true, age: time.Minute},
		lock{pool: "gpu", name: "old-gpu", claimed: true, age: 5 * time.Hour})
	r := mustOut(t, t.TempDir(), src(fileURL(bare), "stale_timeout", "1h"), map[string]any{"reap": true}, jobEnv)
	wantTree(t, bare, "aws/unclaimed/old", "aws/claimed/fresh", "gpu/claimed/old-gpu")
	if r.lock() != "old" || r.Version.Ref != head(t, bare) {
		t.Errorf("answer %+v", r)
	}
	if !strings.Contains(r.log, "freed lock old: held 5h") {
		t.Errorf("log = %q", r.log)
	}
	again := mustOut(t, t.TempDir(), src(fileURL(bare), "stale_timeout", 60), map[string]any{"reap": true}, nil)
	if again.lock() != "" || again.Version.Ref != r.Version.Ref {
		t.Errorf("second reap: %+v", again)
	}
	if _, err := out(t, context.Background(), t.TempDir(), src(fileURL(bare)), map[string]any{"reap": true}, nil, nil); err == nil ||
		!strings.Contains(err.Error(), "reap: true needs source.stale_timeout") {
		t.Errorf("reap without a timeout: %v", err)
	}
}

// Metrics go to a real Pushgateway; one that is down is a warning, never a failed put.
func TestMetrics(t *testing.T) {
	gw := testenv.Pushgateway(t)
	bare := awsRepo(t)
	s := src(fileURL(bare), "prometheus_push_gateway", gw.URL)
	mustOut(t, t.TempDir(), s, map[string]any{"acquire": true}, nil)
	got := gw.Metrics(t)
	for _, want := range []string{
		`resource_pool_num_claimed_locks{branch="main",instance="",job="concourse_resource_pool",pool="aws"} 2`,
		`resource_pool_num_available_locks{branch="main",instance="",job="concourse_resource_pool",pool="aws"} 0`,
		`resource_pool_execution_time_count{branch="main",instance="",job="concourse_resource_pool",operation="acquire_lock",pool="aws"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("gateway lacks %s", want)
		}
	}

	down := "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	dir := t.TempDir()
	writeStep(t, dir, "lock", map[string]string{"name": "env-1"})
	r := mustOut(t, dir, src(fileURL(bare), "prometheus_push_gateway", down), map[string]any{"release": "lock"}, nil)
	if !strings.Contains(r.log, "warning: could not push metrics to "+down) {
		t.Errorf("log = %q", r.log)
	}
	wantTree(t, bare, "aws/unclaimed/env-1", "aws/claimed/env-2")
}

// A git server that is down when the put starts costs it retries, not the build:
// the put waits retry_delay between tries (2s: four of them leave the restart
// ample time) and claims once the server is back. A
// server that answers "no such repository" is not retried.
func TestPutRidesOutAGitServerRestart(t *testing.T) {
	root := t.TempDir()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"})
	if err := os.Rename(bare, filepath.Join(root, "locks.git")); err != nil {
		t.Fatal(err)
	}
	daemon := testenv.StartGitDaemon(t, root)
	daemon.Stop()
	log := &logBuffer{}
	retrying := log.notify("could not reach the repository")
	done := make(chan error)
	go func() {
		_, err := out(t, context.Background(), t.TempDir(), src(daemon.URL+"locks.git", "retry_delay", "2s"), map[string]any{"acquire": true}, jobEnv, log)
		done <- err
	}()
	await(t, retrying, "the put to retry")
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("put after the restart: %v\n%s", err, log)
	}
	wantTree(t, filepath.Join(root, "locks.git"), "aws/claimed/env-1")

	log = &logBuffer{}
	_, err := out(t, context.Background(), t.TempDir(), src(daemon.URL+"nope.git", "retry_delay", "1h"), map[string]any{"acquire": true}, jobEnv, log)
	if err == nil || strings.Contains(log.String(), "retrying") {
		t.Errorf("put to a missing repository: %v, log:\n%s; want an error at once", err, log)
	}
}
