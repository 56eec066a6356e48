package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A watch cycle deletes the queue ticket of a build Concourse says was aborted,
// and keeps a running build's.
func TestWatchDeletesTheTicketOfAnAbortedBuild(t *testing.T) {
	cc := fakeconcourse.New(t)
	cc.AddUser("admin", "admin-pw", "main")
	cc.AddBuild(fakeconcourse.Build{ID: 41, Pipeline: "deploy", Job: "test", Name: "41", Status: "aborted"})
	cc.AddBuild(fakeconcourse.Build{ID: 42, Pipeline: "deploy", Job: "test", Name: "42", Status: "started"})
	now := time.Now()
	dir := remote(t, fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute), Message: "main/deploy/test build 42 claiming: env-1"})
	c := testenv.NewClone(t, "file://"+dir, "main")
	for _, name := range []string{"41", "42"} {
		tk := queue.Ticket{ID: "b" + name, Seq: 1, Enqueued: now.Add(-time.Minute), Expires: now.Add(time.Hour),
			Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: name, BuildID: name}}
		p := filepath.Join(c.Dir, filepath.FromSlash(queue.Path("aws", tk.ID)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, tk.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "waiters")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")

	cfg := config(t, dir, time.Hour)
	cfg.Concourse = []concourse.Target{{URL: cc.URL, Token: cc.Token("admin")}}
	d := start(t, cfg, Options{})
	if st := d.waitCycles(t, "locks", 1); st.LastError != "" {
		t.Fatalf("cycle: %s", st.LastError)
	}
	left := testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "main", "--", queue.Dir("aws")+"/")
	if left != queue.Path("aws", "b42") {
		t.Errorf("tickets left: %q, want only the running build's", left)
	}
	msg := testenv.Git(t, dir, "log", "-1", "--format=%B", "main")
	if !strings.HasPrefix(msg, "leaving queue: aws\n") || !strings.Contains(msg, "Poolboy-Rule: build-aborted") {
		t.Errorf("last commit:\n%s", msg)
	}
	if !exists(t, dir, "aws/claimed/env-1") {
		t.Error("the running build's lock was freed")
	}
}
