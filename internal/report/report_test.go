package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// A pool's queue in the document: live tickets in the order they are served, then
// the expired ones; unreadable files are the pool's problems; a pool without a
// queue has "queue": []. The text escapes what the tickets say.
func TestBuildQueue(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ticket := func(id string, seq int64, prio int, ago time.Duration, live bool, job string) queue.Ticket {
		exp := at.Add(time.Minute)
		if !live {
			exp = at.Add(-time.Second)
		}
		return queue.Ticket{ID: id, Seq: seq, Priority: prio, Enqueued: at.Add(-ago), Expires: exp,
			Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Pipeline: "p", Job: job, Build: "1"}}
	}
	rep := &reaper.Report{Commit: "abc", At: at, Pools: []reaper.PoolReport{{Name: "aws"}, {Name: "gpu"}}}
	qs := Queues{"aws": {
		Tickets: []queue.Ticket{
			ticket("a", 1, 0, 5*time.Minute, true, "first"),
			ticket("b", 2, 0, 2*time.Hour, false, "gone"),
			ticket("c", 3, 1, time.Minute, true, "urgent\x1b[31m"),
		},
		Unreadable: []queue.Unreadable{{Path: ".poolboy-queue/aws/x.json", Why: "format version 2, not 1"}},
	}}
	d := Build("repo", "main", rep, nil, qs)
	aws := d.Pools[0]
	var got []string
	for _, tk := range aws.Queue {
		pos := "-"
		if tk.Position != nil {
			pos = string(rune('0' + *tk.Position))
		}
		got = append(got, pos+tk.ID)
	}
	if strings.Join(got, " ") != "1c 2a -b" {
		t.Errorf("queue %v, want 1c 2a -b", got)
	}
	if b := aws.Queue[2]; !b.Expired || b.WaitedSeconds != 7200 || b.EffectivePriority != 12 || b.Wants != "any lock" {
		t.Errorf("expired ticket %+v", b)
	}
	if len(aws.Problems) != 1 || aws.Problems[0].Pool != "aws" || aws.Problems[0].Path != ".poolboy-queue/aws/x.json" ||
		!strings.Contains(aws.Problems[0].Detail, "format version 2, not 1") {
		t.Errorf("problems %+v", aws.Problems)
	}
	var js bytes.Buffer
	if err := JSON(&js, d); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Pools []map[string]json.RawMessage `json:"pools"`
	}
	if err := json.Unmarshal(js.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if q := string(raw.Pools[1]["queue"]); q != "[]" {
		t.Errorf("gpu queue %s, want []", q)
	}
	var text bytes.Buffer
	if err := Text(&text, d); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "\x1b") {
		t.Errorf("a control character reached the text:\n%q", text.String())
	}
	if !strings.Contains(text.String(), "queue: 2 waiting, 1 expired (ignored)") || strings.Contains(text.String(), "pool gpu (no timeout): 0 claimed, 0 unclaimed, 0 stale\n  queue") {
		t.Errorf("text:\n%s", text.String())
	}
}
