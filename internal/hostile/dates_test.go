package hostile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/report"
	"github.com/poolboy-ci/poolboy/internal/testenv"
	"github.com/poolboy-ci/poolboy/internal/watch"
)

// dateRepo is pool aws with env-1 free and env-9 claimed at claimAt, and then, in a
// commit of their own, the files extra returns (given env-9's claim commit).
func dateRepo(t *testing.T, claimAt time.Time, extra func(claim string) map[string]string) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	bare := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: now.Add(-10 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", Content: "one", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-9", Content: "nine", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-9", At: claimAt},
	}}
	if err := fixture.Build(context.Background(), bare, spec); err != nil {
		t.Fatal(err)
	}
	if extra == nil {
		return bare
	}
	c := testenv.NewClone(t, "file://"+bare, "main")
	claim := strings.TrimSpace(testenv.Git(t, c.Dir, "rev-parse", "HEAD"))
	for p, content := range extra(claim) {
		full := filepath.Join(c.Dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "hostile dates")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/main")
	return bare
}

// Security review: a time that leaves the years 0 to 9999 once in UTC, pushed by
// anyone who can push, made every JSON document holding it fail to encode:
// `status --output json` failed, and /api/pools answered 200 with an empty body
// for every repository. Such a claim date is no readable date (the lock is
// unknown), such a ticket is unreadable (a problem of its pool), such a hold holds
// nothing; the other repository is served as usual.
func TestOutOfRangeDatesNeverBlankTheReport(t *testing.T) {
	recent := time.Now().Add(-10 * time.Minute)
	ticket := func(id, enqueued, expires string) func(string) map[string]string {
		return func(string) map[string]string {
			return map[string]string{queue.Path("aws", id): fmt.Sprintf(
				`{"v":1,"id":%q,"seq":1,"enqueued":%q,"expires":%q,"want":[{"acquire":true}],"holder":{"team":"main"}}`, id, enqueued, expires)}
		}
	}
	hold := func(since, until string) func(string) map[string]string {
		return func(claim string) map[string]string {
			return map[string]string{holds.Path("aws", "env-9"): fmt.Sprintf(
				`{"v":1,"pool":"aws","lock":"env-9","claim_commit":%q,"by":"mallory","reason":"x","since":%q,"until":%q}`, claim, since, until)}
		}
	}
	cases := []struct {
		name    string
		claimAt time.Time
		extra   func(claim string) map[string]string
		check   func(t *testing.T, p report.Pool)
	}{
		{name: "claim committed in year 10000", claimAt: time.Unix(253402400800, 0), check: func(t *testing.T, p report.Pool) {
			l := lockOf(t, p, "env-9")
			if l.Verdict != "unknown" || l.ClaimedAt != nil {
				t.Errorf("env-9: verdict %q, claimed at %v; want unknown, no date", l.Verdict, l.ClaimedAt)
			}
			contains(t, "env-9's reason", l.Reason, "age is unknown")
		}},
		{name: "ticket expiring past 9999 in UTC", claimAt: recent,
			extra: ticket("late", "2026-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"), check: func(t *testing.T, p report.Pool) {
				wantProblem(t, p, queue.Path("aws", "late"), "outside the years 0 to 9999")
			}},
		{name: "ticket enqueued before year 0 in UTC", claimAt: recent,
			extra: ticket("early", "0000-01-01T00:00:00+01:00", "2999-01-01T00:00:00Z"), check: func(t *testing.T, p report.Pool) {
				wantProblem(t, p, queue.Path("aws", "early"), "outside the years 0 to 9999")
			}},
		{name: "hold until past 9999 in UTC", claimAt: recent,
			extra: hold("2026-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59"), check: func(t *testing.T, p report.Pool) {
				if l := lockOf(t, p, "env-9"); l.Hold != nil || l.Verdict != "held" {
					t.Errorf("env-9: verdict %q, hold %+v; want held by its claim, no hold", l.Verdict, l.Hold)
				}
			}},
		{name: "hold since before year 0 in UTC", claimAt: recent,
			extra: hold("0000-01-01T00:00:00+01:00", "2999-01-01T00:00:00Z"), check: func(t *testing.T, p report.Pool) {
				if l := lockOf(t, p, "env-9"); l.Hold != nil || l.Verdict != "held" {
					t.Errorf("env-9: verdict %q, hold %+v; want held by its claim, no hold", l.Verdict, l.Hold)
				}
			}},
	}
	good := dateRepo(t, recent, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := dateRepo(t, c.claimAt, c.extra)

			r := runCLI(t, nil, "status", "--repo", "file://"+bad, "--pools", "aws:1h", "--output", "json")
			if r.code != 0 {
				t.Fatalf("status --output json: exit %d: %s", r.code, clip(r.stderr))
			}
			var doc report.Doc
			if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || len(doc.Pools) != 1 {
				t.Fatalf("status --output json: %v: %s", err, clip(r.stdout))
			}
			c.check(t, doc.Pools[0])
			if r := runCLI(t, nil, "status", "--repo", "file://"+bad, "--pools", "aws:1h"); r.code != 0 {
				t.Errorf("status: exit %d: %s", r.code, clip(r.stderr))
			}

			api := watchPools(t, good, bad)
			if len(api.Repos) != 2 {
				t.Fatalf("/api/pools has %d repos, want 2", len(api.Repos))
			}
			for _, rd := range api.Repos {
				if rd.LastError != "" || rd.Status == nil || len(rd.Status.Pools) != 1 {
					t.Fatalf("/api/pools: repo %s: error %q, status %+v", rd.Name, rd.LastError, rd.Status)
				}
			}
			if l := lockOf(t, api.Repos[0].Status.Pools[0], "env-9"); l.Verdict != "held" {
				t.Errorf("/api/pools: the good repo's env-9 is %q, want held", l.Verdict)
			}
			c.check(t, api.Repos[1].Status.Pools[0])
		})
	}
}

// watchPools runs the daemon on repos good and bad until each had a cycle, and
// returns its /api/pools.
func watchPools(t *testing.T, good, bad string) watch.PoolsDoc {
	t.Helper()
	y := fmt.Sprintf("interval: 1h\ncache_dir: %s\nrepos:\n  - name: good\n    uri: file://%s\n    pools: {aws: 1h}\n  - name: bad\n    uri: file://%s\n    pools: {aws: 1h}\n",
		t.TempDir(), good, bad)
	cfg, err := watch.Parse("watch.yaml", []byte(y), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	d, err := watch.New(cfg, watch.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	end := time.Now().Add(time.Minute) // a bound against a hang, not a budget
	for _, name := range []string{"good", "bad"} {
		for st, _ := d.State(name); st.Cycles == 0; st, _ = d.State(name) {
			if time.Now().After(end) {
				t.Fatalf("no cycle of %s", name)
			}
			time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
		}
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/pools")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc watch.PoolsDoc
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("/api/pools: %s: %q", resp.Status, clip(string(body)))
	}
	return doc
}

func lockOf(t *testing.T, p report.Pool, name string) report.Lock {
	t.Helper()
	for _, l := range p.Locks {
		if l.Name == name {
			return l
		}
	}
	t.Fatalf("pool %s has no claimed lock %s", p.Name, name)
	return report.Lock{}
}

func wantProblem(t *testing.T, p report.Pool, path, detail string) {
	t.Helper()
	var all []string
	for _, pr := range p.Problems {
		if pr.Path == path && strings.Contains(pr.Detail, detail) {
			return
		}
		all = append(all, pr.String())
	}
	t.Errorf("pool %s: no problem of %s mentioning %q; problems: %q", p.Name, path, detail, all)
}
