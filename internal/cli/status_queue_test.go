package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// queueDoc is a pool's queue in the poolboy.status/v2 document, as a consumer
// would declare it.
type queueDoc struct {
	Name  string `json:"name"`
	Queue []struct {
		Position *int   `json:"position"`
		ID       string `json:"id"`
		Holder   *struct {
			Display string `json:"display"`
			Team    string `json:"team"`
			Job     string `json:"job"`
			Build   string `json:"build"`
		} `json:"holder"`
		Enqueued          time.Time `json:"enqueued"`
		WaitedSeconds     int64     `json:"waited_seconds"`
		Expired           bool      `json:"expired"`
		Priority          int       `json:"priority"`
		EffectivePriority int       `json:"effective_priority"`
		Want              []struct {
			Acquire bool   `json:"acquire"`
			Claim   string `json:"claim"`
		} `json:"want"`
		Wants string `json:"wants"`
	} `json:"queue"`
	Problems []struct {
		Path   string `json:"path"`
		Detail string `json:"detail"`
	} `json:"problems"`
}

// pushTickets writes files into the repository's queue directories, as waiting
// puts (and a stranger) would, in one commit.
func pushTickets(t *testing.T, r *lockRepo, files map[string][]byte) {
	t.Helper()
	c := testenv.NewClone(t, "file://"+r.dir, r.branch)
	for path, data := range files {
		full := filepath.Join(c.Dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "tickets")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/"+r.branch)
}

func ticket(id string, seq int64, prio int, enqueued, expires time.Time, want queue.Want, job, build string) queue.Ticket {
	return queue.Ticket{ID: id, Seq: seq, Priority: prio, Enqueued: enqueued, Expires: expires, Want: []queue.Want{want},
		Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: job, Build: build}}
}

// Issue 13 (visible everywhere): status shows each pool's queue, in the order the
// tickets are served (priority with aging, then arrival), each with its holder,
// enqueue time, priority and effective priority, what it wants; expired tickets
// last, marked; a file it cannot read is an integrity problem of the pool, and
// status still succeeds.
func TestStatusShowsQueue(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	now := time.Now()
	live := now.Add(time.Hour)
	pushTickets(t, r, map[string][]byte{
		// first in, priority 0: second in line.
		queue.Path("aws", "aaa"): ticket("aaa", 1, 0, now.Add(-5*time.Minute), live, queue.Want{Acquire: true}, "test", "41").Encode(),
		// later, priority 2: first.
		queue.Path("aws", "bbb"): ticket("bbb", 2, 2, now.Add(-2*time.Minute), live, queue.Want{Claim: "env-1"}, "smoke", "7").Encode(),
		// enqueued 25m ago at -3, aged by 2 to -1: last.
		queue.Path("aws", "ccc"): ticket("ccc", 3, -3, now.Add(-25*time.Minute), live, queue.Want{Acquire: true}, "e2e", "3").Encode(),
		// its waiter stopped renewing it.
		queue.Path("aws", "ddd"): ticket("ddd", 4, 9, now.Add(-time.Hour), now.Add(-time.Minute), queue.Want{Acquire: true}, "gone", "1").Encode(),
		queue.Path("aws", "eee"): []byte("{not json"),
		queue.Path("gpu", "fff"): ticket("fff", 1, 0, now.Add(-time.Minute), live, queue.Want{Claim: "gpu-a"}, "train", "5").Encode(),
	})

	res := mustRun(t, nil, "status", "--repo", "file://"+r.dir, "--pools", "aws:1h", "--output", "json")
	var d struct {
		Schema string     `json:"schema"`
		Pools  []queueDoc `json:"pools"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatalf("%v:\n%s", err, res.stdout)
	}
	if d.Schema != "poolboy.status/v2" {
		t.Errorf("schema %q, want poolboy.status/v2", d.Schema)
	}
	byName := map[string]queueDoc{}
	for _, p := range d.Pools {
		byName[p.Name] = p
	}
	aws := byName["aws"]
	type row struct {
		pos               int // 0: null
		id, holder, wants string
		prio, eff         int
		expired           bool
	}
	var got []row
	for _, q := range aws.Queue {
		r := row{id: q.ID, wants: q.Wants, prio: q.Priority, eff: q.EffectivePriority, expired: q.Expired}
		if q.Position != nil {
			r.pos = *q.Position
		}
		if q.Holder != nil {
			r.holder = q.Holder.Display
		}
		got = append(got, r)
	}
	want := []row{
		{1, "bbb", "main/deploy/smoke #7", "lock env-1", 2, 2, false},
		{2, "aaa", "main/deploy/test #41", "any lock", 0, 0, false},
		{3, "ccc", "main/deploy/e2e #3", "any lock", -3, -1, false},
		{0, "ddd", "main/deploy/gone #1", "any lock", 9, 15, true},
	}
	if len(got) != len(want) {
		t.Fatalf("aws queue %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("aws queue[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if q := aws.Queue[1]; len(q.Want) != 1 || !q.Want[0].Acquire || q.Holder.Team != "main" || q.Holder.Job != "test" ||
		!q.Enqueued.Equal(now.Add(-5*time.Minute)) {
		t.Errorf("aaa: want %+v holder %+v enqueued %v", q.Want, q.Holder, q.Enqueued)
	}
	within(t, "aaa waited", aws.Queue[1].WaitedSeconds, 5*time.Minute, 2*time.Minute)
	if len(aws.Problems) != 1 || aws.Problems[0].Path != ".poolboy-queue/aws/eee.json" ||
		!strings.Contains(aws.Problems[0].Detail, "not a queue ticket this version can read") {
		t.Errorf("aws problems %+v, want the unreadable eee.json", aws.Problems)
	}
	if g := byName["gpu"]; len(g.Queue) != 1 || g.Queue[0].ID != "fff" || g.Queue[0].Wants != "lock gpu-a" || len(g.Problems) != 0 {
		t.Errorf("gpu queue %+v problems %+v", g.Queue, g.Problems)
	}

	res = mustRun(t, nil, "status", "--repo", "file://"+r.dir, "--pools", "aws:1h")
	block := textBlocks(res.stdout)["aws"]
	var lines []string
	for _, l := range block {
		if f := columns.Split(strings.TrimSpace(l), -1); len(f) == 6 && f[0] != "POS" {
			lines = append(lines, f[0]+" "+f[1]+" "+f[2]+" "+f[5])
		}
	}
	wantLines := []string{
		"1 main/deploy/smoke #7 lock env-1 2",
		"2 main/deploy/test #41 any lock 0",
		"3 main/deploy/e2e #3 any lock -3 (now -1)",
		"expired main/deploy/gone #1 any lock 9 (now 15)",
	}
	if strings.Join(lines, "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("aws queue rows:\n%s\nwant:\n%s\nstatus:\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"), res.stdout)
	}
	for _, w := range []string{"  queue: 3 waiting, 1 expired (ignored)", "  problem: .poolboy-queue/aws/eee.json: not a queue ticket"} {
		if !strings.Contains(res.stdout, w) {
			t.Errorf("status lacks %q:\n%s", w, res.stdout)
		}
	}
}
