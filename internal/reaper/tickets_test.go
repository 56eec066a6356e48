package reaper_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// commitFiles writes files (path → content; nil deletes) in a fresh state of c's
// branch, commits and pushes fast-forward, as another user of the repository.
func commitFiles(t *testing.T, c *testenv.Clone, msg string, files map[string][]byte) {
	t.Helper()
	testenv.Git(t, c.Dir, "fetch", "-q", "origin")
	testenv.Git(t, c.Dir, "reset", "-q", "--hard", "origin/main")
	for p, content := range files {
		full := filepath.Join(c.Dir, filepath.FromSlash(p))
		if content == nil {
			testenv.Git(t, c.Dir, "rm", "-q", p)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, content, 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.Git(t, c.Dir, "add", p)
	}
	testenv.Git(t, c.Dir, "commit", "-q", "-m", msg)
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
}

// ticket is a ticket of build name (id 100+name) of main/deploy/test, expiring at expires.
func ticket(id, name string, expires time.Time) queue.Ticket {
	return queue.Ticket{ID: id, Seq: 1, Enqueued: time.Now().Add(-time.Minute), Expires: expires,
		Want:   []queue.Want{{Acquire: true}},
		Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: name, BuildID: "10" + name}}
}

// queueFiles lists the files of pool's queue at the remote's head.
func queueFiles(t *testing.T, c *testenv.Clone, pool string) []string {
	t.Helper()
	testenv.Git(t, c.Dir, "fetch", "-q", "origin")
	var out []string
	for _, p := range strings.Split(testenv.Git(t, c.Dir, "ls-tree", "-r", "--name-only", "origin/main", "--", queue.Dir(pool)+"/"), "\n") {
		if p != "" {
			out = append(out, strings.TrimPrefix(p, queue.Dir(pool)+"/"))
		}
	}
	return out
}

// A clean deletes the tickets nobody waits on, by the evidence rules of claims:
// its build ended (Concourse says so, about this very build), or it expired. It
// keeps a running build's ticket even when expired, a ticket whose build
// Concourse cannot answer for (an error, a 404, another build id) until it
// expires, every file that is not a ticket it reads, and the queue of a pool it
// does not clean.
func TestCleanDeletesDeadTickets(t *testing.T) {
	url, _ := lockRepo(t)
	cc := fakeconcourse.New(t)
	cc.AddUser("reaper", "reaper-pw", "main")
	for name, status := range map[string]string{"1": "aborted", "2": "started", "3": "succeeded", "4": "failed", "6": "errored", "8": "aborted"} {
		id := 100 + int(name[0]-'0')
		if name == "8" {
			id = 999 // the pipeline was re-created: not the ticket's build
		}
		cc.AddBuild(fakeconcourse.Build{ID: id, Pipeline: "deploy", Job: "test", Name: name, Status: status})
	}
	cc.SetFault(fakeconcourse.Fault{Path: "/api/v1/teams/main/pipelines/deploy/jobs/test/builds/6", Status: 500, Body: "boom"})
	live, expired := time.Now().Add(time.Hour), time.Now().Add(-time.Minute)
	noOwner := ticket("noowner", "", expired)
	noOwner.Holder = queue.Holder{}
	other := testenv.NewClone(t, url, "main")
	commitFiles(t, other, "waiters", map[string][]byte{
		queue.Path("aws", "aborted"):       ticket("aborted", "1", live).Encode(),
		queue.Path("aws", "running"):       ticket("running", "2", expired).Encode(),
		queue.Path("aws", "succeeded"):     ticket("succeeded", "3", live).Encode(),
		queue.Path("aws", "failed"):        ticket("failed", "4", live).Encode(),
		queue.Path("aws", "unknown"):       ticket("unknown", "5", live).Encode(), // 404
		queue.Path("aws", "error"):         ticket("error", "6", live).Encode(),   // 500
		queue.Path("aws", "unknownexp"):    ticket("unknownexp", "7", expired).Encode(),
		queue.Path("aws", "recreated"):     ticket("recreated", "8", live).Encode(),
		queue.Path("aws", "noowner"):       noOwner.Encode(),
		queue.Path("aws", "bad"):           []byte(`{"v": 1, "id": "bad", "expires": "2000-01-01T00:00:00Z"`),
		queue.Path("aws", "v2"):            []byte(`{"v": 2, "id": "v2", "expires": "2000-01-01T00:00:00Z"}`),
		queue.Path("aws", "notaticket"):    []byte("x"),
		queue.Path("gpu", "aborted"):       ticket("aborted", "1", expired).Encode(),
		"aws/unclaimed/.gitkeep":           {},
		queue.Dir("aws") + "/README.json~": []byte("x"),
	})
	w, err := liveness.Connect([]concourse.Target{{URL: cc.URL, Username: "reaper", Password: "reaper-pw"}}, liveness.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := config()
	cfg.Witness = w
	before := other.RemoteHead(t)

	dry, err := reaper.Clean(context.Background(), open(t, url), cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	if other.RemoteHead(t) != before {
		t.Fatal("a dry run pushed")
	}
	want := []string{"aborted", "failed", "noowner", "succeeded", "unknownexp"}
	if got := ticketIDs(dry.Tickets); !slices.Equal(got, want) {
		t.Errorf("dry run would delete %v, want %v", got, want)
	}

	res, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := ticketIDs(res.Tickets); !slices.Equal(got, want) {
		t.Errorf("deleted %v, want %v", got, want)
	}
	left := queueFiles(t, other, "aws")
	for _, keep := range []string{"running.json", "unknown.json", "error.json", "recreated.json", "bad.json", "v2.json", "notaticket.json", "README.json~"} {
		if !slices.Contains(left, keep) {
			t.Errorf("%s was deleted; left: %v", keep, left)
		}
	}
	if len(left) != 8 {
		t.Errorf("left in the queue: %v", left)
	}
	if g := queueFiles(t, other, "gpu"); len(g) != 1 {
		t.Errorf("the queue of pool gpu (not cleaned) was touched: %v", g)
	}
	// One commit per ticket (after the two frees), each saying why.
	rules := map[string]string{}
	for _, c := range strings.Fields(testenv.Git(t, other.Dir, "rev-list", before+"..origin/main")) {
		msg := testenv.Git(t, other.Dir, "log", "-1", "--format=%B", c)
		if !strings.HasPrefix(msg, "leaving queue: aws\n") {
			continue
		}
		files := strings.Fields(testenv.Git(t, other.Dir, "diff-tree", "--no-commit-id", "--name-only", "-r", c))
		id := commitmsg.Trailer(msg, "Poolboy-Ticket")
		if len(files) != 1 || files[0] != queue.Path("aws", id) {
			t.Errorf("commit %s changes %v, want only ticket %s", c, files, id)
		}
		rules[id] = commitmsg.Trailer(msg, "Poolboy-Rule")
		if o := commitmsg.Parse(msg).Owner; o.Known() || o.URL != "" {
			t.Errorf("the deletion is attributed to %+v:\n%s", o, msg)
		}
		if !strings.Contains(msg, "poolboy deleted this queue ticket: ") || !strings.Contains(msg, "Poolboy-Waiter: ") {
			t.Errorf("message:\n%s", msg)
		}
	}
	wantRules := map[string]string{"aborted": "build-aborted", "failed": "build-failed", "succeeded": "build-succeeded",
		"noowner": "ticket-expired", "unknownexp": "ticket-expired"}
	if len(rules) != len(wantRules) {
		t.Errorf("deletion commits: %v", rules)
	}
	for id, r := range wantRules {
		if rules[id] != r {
			t.Errorf("ticket %s deleted by rule %q, want %q", id, rules[id], r)
		}
	}
	if got := strings.Join(freedNames(res), ","); got != "env-1" { // build 2 is running
		t.Errorf("freed %s", got)
	}

	// A waiter holds nothing yet: no hand-off is looked for (builds 1 and 3 also
	// claimed locks; build 4 only waits).
	for _, r := range cc.Requests() {
		if r.Path == "/api/v1/builds/104/resources" {
			t.Errorf("asked for a waiting build's hand-off: %s", r.Path)
		}
	}

	again, err := reaper.Clean(context.Background(), open(t, url), cfg, false)
	if err != nil || len(again.Tickets)+len(again.Freed) != 0 {
		t.Errorf("a second clean: %v, %+v", err, again)
	}
}

func ticketIDs(ts []reaper.DeletedTicket) []string {
	var ids []string
	for _, d := range ts {
		ids = append(ids, d.Ticket.ID)
	}
	slices.Sort(ids)
	return ids
}

// A ticket expired when clean decided, renewed by its waiter before clean's push
// landed: the push is rejected, clean decides again on the new state and keeps it.
func TestCleanRaceRenewedTicketIsKept(t *testing.T) {
	url, _ := lockRepo(t)
	other := testenv.NewClone(t, url, "main")
	tk := ticket("waiter", "1", time.Now().Add(-time.Second))
	commitFiles(t, other, "queueing", map[string][]byte{queue.Path("aws", tk.ID): tk.Encode()})
	repo := &racingRepo{Repo: open(t, url)}
	repo.beforePush = func(attempt int) {
		if attempt == 1 {
			tk.Expires = time.Now().Add(time.Hour)
			commitFiles(t, other, "renewing queue ticket", map[string][]byte{queue.Path("aws", tk.ID): tk.Encode()})
		}
	}
	res, err := reaper.Clean(context.Background(), repo, config(), false)
	if err != nil {
		t.Fatal(err)
	}
	// The lost race halves the batch: the two frees land one by one after it.
	if res.Attempts != 3 || len(res.Tickets) != 0 || len(res.Freed) != 2 {
		t.Errorf("attempts %d, tickets %v, freed %v", res.Attempts, ticketIDs(res.Tickets), freedNames(res))
	}
	if left := queueFiles(t, other, "aws"); !slices.Equal(left, []string{"waiter.json"}) {
		t.Errorf("the renewed ticket is gone: %v", left)
	}
}
