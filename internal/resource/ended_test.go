package resource

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A claim that lands for a build Concourse says ended while its put waited (a lost
// worker: nobody signalled the put) is given back; a running build keeps it, and
// an error from Concourse is no evidence: the lock is kept, with a warning. A put
// that did not wait does not ask.
func TestClaimForABuildThatEndedIsGivenBack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		queue    bool
		wait     bool
		status   string // the build's status once its put waits
		fault    bool
		wantErr  string
		wantLog  string
		wantFree bool // env-1 is free at the end
	}{
		{name: "aborted while queued", queue: true, wait: true, status: "aborted",
			wantErr: "Concourse says main/deploy/test #1 aborted while this put waited for a lock; gave lock env-1 back", wantFree: true},
		{name: "errored while waiting without the queue", wait: true, status: "errored",
			wantErr: "Concourse says main/deploy/test #1 errored while this put waited for a lock; gave lock env-1 back", wantFree: true},
		{name: "running", queue: true, wait: true, status: "started"},
		{name: "Concourse fails", queue: true, wait: true, status: "aborted", fault: true,
			wantLog: "warning: could not ask Concourse whether this build is still running"},
		{name: "did not wait", queue: true, status: "aborted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cc := fakeconcourse.New(t)
			cc.AddUser("bot", "bot-pw", "main")
			id := cc.AddBuild(fakeconcourse.Build{ID: 1001, Pipeline: "deploy", Job: "test", Name: "1", Status: "started"})
			bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1", claimed: c.wait})
			source := qsrc(bare, "queue", c.queue, "concourse_url", cc.URL, "concourse_username", "bot", "concourse_password", "bot-pw")
			if !c.wait {
				cc.SetStatus(id, c.status)
			}
			w := startOut(t, context.Background(), source, map[string]any{"acquire": true}, build(1))
			if c.wait {
				waiting := "position 1 of 1"
				if !c.queue {
					waiting = "no lock available in pool aws, retrying in"
				}
				await(t, w.log.notify(waiting), "the put to wait")
				cc.SetStatus(id, c.status)
				if c.fault {
					cc.SetFault(fakeconcourse.Fault{Path: "/api/v1/teams/main/pipelines/deploy/jobs/test/builds/1", Status: 500, Body: "boom"})
				}
				upstream(t, bare, "unclaiming: env-1", gitMove(t, "aws/claimed/env-1", "aws/unclaimed/env-1"))
			}
			w.wait(t, "the put")
			switch {
			case c.wantErr != "" && (w.err == nil || !strings.Contains(w.err.Error(), c.wantErr)):
				t.Fatalf("err %v, want %q\n%s", w.err, c.wantErr, w.log)
			case c.wantErr == "" && (w.err != nil || w.res.lock() != "env-1"):
				t.Fatalf("put: %+v %v\n%s", w.res, w.err, w.log)
			}
			if !strings.Contains(w.log.String(), c.wantLog) {
				t.Errorf("log lacks %q:\n%s", c.wantLog, w.log)
			}
			if tr := tree(t, bare); tr["aws/unclaimed/env-1"] != c.wantFree || tr["aws/claimed/env-1"] == c.wantFree {
				t.Errorf("tree %v, want env-1 free: %v", keys(tr), c.wantFree)
			}
			if c.wantFree {
				last := testenv.Git(t, bare, "log", "-1", "--format=%s", "main")
				if last != "main/deploy/test build 1 unclaiming: env-1" {
					t.Errorf("last commit %q", last)
				}
			}
			if len(tickets(t, bare)) != 0 {
				t.Errorf("tickets left: %v", tickets(t, bare))
			}
			asked := false
			for _, r := range cc.Requests() {
				asked = asked || strings.Contains(r.Path, "/builds/")
			}
			if asked == !c.wait {
				t.Errorf("asked Concourse about the build: %v, want %v", asked, c.wait)
			}
		})
	}
}

// The reap put deletes the pool's expired queue tickets too, and says so.
func TestReapDeletesExpiredTickets(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"aws"}, lock{pool: "aws", name: "env-1"})
	now := time.Now()
	pushTicket(t, bare, queue.Ticket{ID: "dead", Seq: 1, Enqueued: now.Add(-time.Hour), Expires: now.Add(-time.Minute),
		Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "41", BuildID: "41"}})
	log := &logBuffer{}
	if _, err := out(t, context.Background(), t.TempDir(), src(fileURL(bare), "stale_timeout", "1h"), map[string]any{"reap": true}, jobEnv, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "deleted queue ticket dead of main/deploy/test #41: expired") {
		t.Errorf("log:\n%s", log)
	}
	if tk := tickets(t, bare); len(tk) != 0 {
		t.Errorf("tickets left: %v", tk)
	}
}
