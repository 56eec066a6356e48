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
	return Ticket{V: Version, ID: id, Seq: seq, Priority: prio, Enqueued: now.Add(-ago), Expires: now.Add(time.Minute), Want: []Want{w}, Pool: "aws"}
}

// multi is a live ticket of pool aws wanting several locks at once.
func multi(id string, seq int64, wants ...Want) Ticket {
	t := tk(id, seq, 0, 0, "")
	t.Want = wants
	return t
}

// granted renders shares as "id: pool/lock ..." ("id held: ..." for locks held back).
func granted(shares map[Key]Share) map[string]string {
	out := map[string]string{}
	for k, s := range shares {
		var ls []string
		for _, l := range s.Locks {
			ls = append(ls, l.Pool+"/"+l.Name)
		}
		key := k.ID
		if k.Pool != "aws" {
			key = k.Pool + ":" + key
		}
		if !s.Granted {
			key += " held"
		}
		out[key] = strings.Join(ls, " ")
	}
	return out
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
	acq, gpu := Want{Acquire: true}, Want{Pool: "gpu", Acquire: true}
	cases := []struct {
		name    string
		ordered []Ticket
		free    []string
		gpu     []string // free locks of pool gpu
		want    map[string]string
	}{
		{"first come first served", []Ticket{tk("a", 1, 0, 0, ""), tk("b", 2, 0, 0, ""), tk("c", 3, 0, 0, "")}, []string{"e1", "e2"}, nil,
			map[string]string{"a": "aws/e1", "b": "aws/e2"}},
		{"no free lock, nothing granted", []Ticket{tk("a", 1, 0, 0, "")}, nil, nil, map[string]string{}},
		{"claim X behind an acquire that could take X waits", []Ticket{tk("a", 1, 0, 0, ""), tk("x", 2, 0, 0, "e1")}, []string{"e1"}, nil,
			map[string]string{"a": "aws/e1"}},
		{"claim X behind an acquire: the acquire takes another lock", []Ticket{tk("a", 1, 0, 0, ""), tk("x", 2, 0, 0, "e1")}, []string{"e1", "e2"}, nil,
			map[string]string{"a": "aws/e2", "x": "aws/e1"}},
		{"claim X of a claimed lock does not hold up the acquires behind it", []Ticket{tk("x", 1, 0, 0, "e9"), tk("a", 2, 0, 0, "")}, []string{"e1"}, nil,
			map[string]string{"a": "aws/e1"}},
		{"two claims of X: the older gets it", []Ticket{tk("x1", 1, 0, 0, "e1"), tk("x2", 2, 0, 0, "e1")}, []string{"e1"}, nil,
			map[string]string{"x1": "aws/e1"}},
		{"three at once when three are free", []Ticket{multi("m", 1, acq, acq, acq), tk("a", 2, 0, 0, "")}, []string{"e1", "e2", "e3"}, nil,
			map[string]string{"m": "aws/e1 aws/e2 aws/e3"}},
		{"a request for three holds back the free ones from the ones behind it", []Ticket{multi("m", 1, acq, acq, acq), tk("a", 2, 0, 0, ""), tk("x", 3, 0, 0, "e2")},
			[]string{"e1", "e2"}, nil, map[string]string{"m held": "aws/e1 aws/e2"}},
		{"tickets ahead of a request for three are served first", []Ticket{tk("a", 1, 0, 0, ""), multi("m", 2, acq, acq, acq)},
			[]string{"e1", "e2", "e3"}, nil, map[string]string{"a": "aws/e1", "m held": "aws/e2 aws/e3"}},
		{"across pools: all or nothing", []Ticket{multi("m", 1, acq, gpu), {ID: "g", Pool: "gpu", Want: []Want{acq}}},
			nil, []string{"g1"}, map[string]string{"m held": "gpu/g1"}},
		{"across pools: granted together", []Ticket{multi("m", 1, acq, gpu, Want{Pool: "gpu", Claim: "g2"})},
			[]string{"e1"}, []string{"g2", "g1"}, map[string]string{"m": "gpu/g2 aws/e1 gpu/g1"}},
		{"a claim of a claimed lock holds back nothing it cannot take", []Ticket{multi("m", 1, Want{Claim: "e9"}, acq), tk("a", 2, 0, 0, "e2")},
			[]string{"e1", "e2"}, nil, map[string]string{"m held": "aws/e1", "a": "aws/e2"}},
		{"one id in two queues is two tickets", []Ticket{tk("a", 1, 0, 0, ""), {ID: "a", Seq: 2, Pool: "gpu", Want: []Want{acq}}},
			[]string{"e1"}, []string{"g1"}, map[string]string{"a": "aws/e1", "gpu:a": "gpu/g1"}},
		{"an acquire of a ticket does not take the lock it claims", []Ticket{multi("m", 1, acq, Want{Claim: "e1"})},
			[]string{"e1", "e2"}, nil, map[string]string{"m": "aws/e1 aws/e2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := granted(Grant(c.ordered, map[string][]string{"aws": c.free, "gpu": c.gpu})); !reflect.DeepEqual(got, c.want) {
				t.Errorf("grants %v, want %v", got, c.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	cases := []struct {
		want []Want
		say  string
	}{
		{[]Want{{Acquire: true}}, "any lock"},
		{[]Want{{Claim: "env-1"}}, "lock env-1"},
		{[]Want{{Pool: "gpu", Claim: "g-1"}}, "lock g-1 of pool gpu"},
		{[]Want{{Acquire: true}, {Acquire: true}, {Pool: "gpu", Acquire: true}}, "3 locks at once: 2 × any lock, any lock of pool gpu"},
	}
	for _, c := range cases {
		if got := (Ticket{Want: c.want}).Describe(); got != c.say {
			t.Errorf("Describe(%+v) = %q, want %q", c.want, got, c.say)
		}
	}
}

func TestReadTicketsFromACommit(t *testing.T) {
	good := tk("abc", 7, 1, time.Minute, "env-1")
	good.Holder = Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "41", BuildID: "99"}
	files := map[string]string{
		Path("aws", "abc"):              string(good.Encode()),
		Path("aws", "zzz"):              `{"v":2,"id":"zzz"}`,
		Path("aws", "mismatch"):         string(tk("other", 1, 0, 0, "").Encode()),
		Path("aws", "loud"):             string(tk("loud", 1, MaxPriority+1, 0, "").Encode()),
		Path("aws", "huge"):             string(tk("huge", 1, 0, 0, "").Encode()) + strings.Repeat(" ", maxTicket),
		Dir("aws") + "/.gitkeep":        "",
		Dir("aws") + "/notes.txt":       "hello",
		Path("gpu", "g1"):               string(tk("g1", 1, 0, 0, "").Encode()),
		"aws/unclaimed/.gitkeep":        "",
		"aws/claimed/.gitkeep":          "",
		Dir("aws a") + "/x.json":        "{}",
		Dir("aws") + "/sub/nested.json": "{}",
		// RFC 3339 times that leave the years 0 to 9999 in UTC, which no JSON can write.
		Path("aws", "late"):  `{"v":1,"id":"late","seq":2,"enqueued":"2026-01-01T00:00:00Z","expires":"9999-12-31T23:59:59-23:59","want":[{"acquire":true}]}`,
		Path("aws", "early"): `{"v":1,"id":"early","seq":3,"enqueued":"0000-01-01T00:00:00+01:00","expires":"2999-01-01T00:00:00Z","want":[{"acquire":true}]}`,
	}
	repo, head := commitFiles(t, files)
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
	for _, want := range []string{"zzz.json: format version 2", `mismatch.json: id "other" does not match`, "notes.txt: not named ID.json", "sub: not a regular file",
		"loud.json: priority 1000001 is beyond ±1000000", "huge.json: larger than 65536 bytes",
		"late.json: enqueue or expiry time outside the years 0 to 9999 (UTC)", "early.json: enqueue or expiry time outside the years 0 to 9999 (UTC)"} {
		if !strings.Contains(got, want) {
			t.Errorf("unreadable files:\n%s\nwant one with %q", got, want)
		}
	}
	if len(bad) != 8 {
		t.Errorf("%d unreadable files, want 8:\n%s", len(bad), got)
	}
}

func TestReadAllReadsEveryQueue(t *testing.T) {
	m := multi("m", 2, Want{Acquire: true}, Want{Pool: "gpu", Acquire: true})
	files := map[string]string{
		Path("aws", "m"):     string(m.Encode()),
		Path("gpu", "g1"):    string(tk("g1", 1, 0, 0, "").Encode()),
		Root + "/stray.json": "{}",
	}
	repo, head := commitFiles(t, files)
	ts, bad, err := ReadAll(context.Background(), repo, head)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 2 || ts[0].ID != "g1" || ts[0].Pool != "gpu" || ts[1].ID != "m" || ts[1].Pool != "aws" || !reflect.DeepEqual(ts[1].Want, m.Want) {
		t.Errorf("tickets %+v", ts)
	}
	if len(bad) != 1 || bad[0].Path != Root+"/stray.json" {
		t.Errorf("unreadable %+v, want the stray file", bad)
	}
}

// commitFiles commits files (path → content) as the one commit of branch main of a
// new repository, and opens it: the repository and its head.
func commitFiles(t *testing.T, files map[string]string) (*gitx.Repo, string) {
	t.Helper()
	testenv.RequireCommand(t, "git")
	dir := t.TempDir()
	testenv.Git(t, dir, "init", "-q", "-b", "main")
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
	t.Cleanup(func() { repo.Close() })
	head, err := repo.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return repo, head
}
