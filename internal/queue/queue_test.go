package queue

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// tk is a live ticket: seq, priority, waiting for ago, wanting claim (or any lock).
func tk(id string, seq int64, prio int, ago time.Duration, claim string) Ticket {
	w := Want{Acquire: claim == "", Claim: claim}
	return Ticket{V: Version, ID: id, Seq: seq, Priority: prio, Enqueued: now.Add(-ago), Expires: now.Add(time.Minute), Want: []Want{w}}
}

func ids(ts []Ticket) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func TestOrder(t *testing.T) {
	expired := tk("dead", 1, 0, time.Hour, "")
	expired.Expires = now.Add(-time.Second)
	cases := []struct {
		name    string
		tickets []Ticket
		want    []string
	}{
		{"FIFO by seq", []Ticket{tk("c", 3, 0, 0, ""), tk("a", 1, 0, 0, ""), tk("b", 2, 0, 0, "")}, []string{"a", "b", "c"}},
		{"expired tickets are ignored", []Ticket{expired, tk("b", 2, 0, 0, "")}, []string{"b"}},
		{"higher priority first, FIFO within", []Ticket{tk("a", 1, 0, 0, ""), tk("b", 2, 5, 0, ""), tk("c", 3, 5, 0, "")}, []string{"b", "c", "a"}},
		{"aging: waited 3 steps at 0 beats a new 2", []Ticket{tk("old", 1, 0, 3*AgingStep, ""), tk("new", 2, 2, 0, "")}, []string{"old", "new"}},
		{"aging: 1 step short is not enough", []Ticket{tk("old", 1, 0, 2*AgingStep-time.Second, ""), tk("new", 2, 2, 0, "")}, []string{"new", "old"}},
		{"aging: equal effective priority, older first", []Ticket{tk("new", 2, 2, 0, ""), tk("old", 1, 0, 2*AgingStep, "")}, []string{"old", "new"}},
		{"negative priority last", []Ticket{tk("low", 1, -1, 0, ""), tk("b", 2, 0, 0, "")}, []string{"b", "low"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ids(Order(c.tickets, now)); !reflect.DeepEqual(got, c.want) {
				t.Errorf("order %v, want %v", got, c.want)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	cases := []struct {
		name    string
		ordered []Ticket
		free    []string
		want    map[string]string
	}{
		{"first come first served", []Ticket{tk("a", 1, 0, 0, ""), tk("b", 2, 0, 0, ""), tk("c", 3, 0, 0, "")}, []string{"e1", "e2"},
			map[string]string{"a": "e1", "b": "e2"}},
		{"no free lock, nothing granted", []Ticket{tk("a", 1, 0, 0, "")}, nil, map[string]string{}},
		{"claim X behind an acquire that could take X waits", []Ticket{tk("a", 1, 0, 0, ""), tk("x", 2, 0, 0, "e1")}, []string{"e1"},
			map[string]string{"a": "e1"}},
		{"claim X behind an acquire: the acquire takes another lock", []Ticket{tk("a", 1, 0, 0, ""), tk("x", 2, 0, 0, "e1")}, []string{"e1", "e2"},
			map[string]string{"a": "e2", "x": "e1"}},
		{"claim X of a claimed lock does not hold up the acquires behind it", []Ticket{tk("x", 1, 0, 0, "e9"), tk("a", 2, 0, 0, "")}, []string{"e1"},
			map[string]string{"a": "e1"}},
		{"two claims of X: the older gets it", []Ticket{tk("x1", 1, 0, 0, "e1"), tk("x2", 2, 0, 0, "e1")}, []string{"e1"},
			map[string]string{"x1": "e1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Grant(c.ordered, c.free); !reflect.DeepEqual(got, c.want) {
				t.Errorf("grants %v, want %v", got, c.want)
			}
		})
	}
}

func TestReadTicketsFromACommit(t *testing.T) {
	testenv.RequireCommand(t, "git")
	dir := t.TempDir()
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	good := tk("abc", 7, 1, time.Minute, "env-1")
	good.Holder = Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "41", BuildID: "99"}
	files := map[string]string{
		Path("aws", "abc"):              string(good.Encode()),
		Path("aws", "zzz"):              `{"v":2,"id":"zzz"}`,
		Path("aws", "mismatch"):         string(tk("other", 1, 0, 0, "").Encode()),
		Dir("aws") + "/.gitkeep":        "",
		Dir("aws") + "/notes.txt":       "hello",
		Path("gpu", "g1"):               string(tk("g1", 1, 0, 0, "").Encode()),
		"aws/unclaimed/.gitkeep":        "",
		"aws/claimed/.gitkeep":          "",
		Dir("aws a") + "/x.json":        "{}",
		Dir("aws") + "/sub/nested.json": "{}",
	}
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "queue")
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: dir, Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	head, err := repo.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ts, bad, err := Read(context.Background(), repo, head, "aws")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].ID != "abc" || ts[0].Path != Path("aws", "abc") || ts[0].Holder.Owner().String() != "main/deploy/test #41" {
		t.Errorf("tickets %+v", ts)
	}
	var why []string
	for _, b := range bad {
		why = append(why, b.Path+": "+b.Why)
	}
	got := strings.Join(why, "\n")
	for _, want := range []string{"zzz.json: format version 2", `mismatch.json: id "other" does not match`, "notes.txt: not named ID.json", "sub: not a regular file"} {
		if !strings.Contains(got, want) {
			t.Errorf("unreadable files:\n%s\nwant one with %q", got, want)
		}
	}
	if len(bad) != 4 {
		t.Errorf("%d unreadable files, want 4:\n%s", len(bad), got)
	}
}

// What a ticket waits for, for people: each want, joined.
func TestDescribe(t *testing.T) {
	for _, c := range []struct {
		want []Want
		text string
	}{
		{[]Want{{Acquire: true}}, "any lock"},
		{[]Want{{Claim: "env-1"}}, "lock env-1"},
		{[]Want{{Claim: "env-1"}, {Acquire: true}}, "lock env-1 and any lock"},
	} {
		if got := (Ticket{Want: c.want}).Describe(); got != c.text {
			t.Errorf("Describe(%+v) = %q, want %q", c.want, got, c.text)
		}
	}
}
