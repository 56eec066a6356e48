package hostile_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/metrics"
	"github.com/poolboy-ci/poolboy/internal/report"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// rawControl returns the first character of s a terminal would interpret (a C0 or
// C1 control other than newline, DEL) or a byte that is not UTF-8, and whether
// there is one.
func rawControl(s string) (string, bool) {
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return s[i : i+1], true
		}
		if r != '\n' && unicode.IsControl(r) {
			return string(r), true
		}
	}
	return "", false
}

// wholeCase is one piece of hostile repository content next to an ordinary pool:
// aws, with env-1 free and env-2 claimed 5h ago (stale for aws:1m).
type wholeCase struct {
	name    string
	pools   []string
	ops     []fixture.Op
	problem string // a problem of the report must mention this ("": no problem expected)
	reason  string // env-9's reason must mention this, when set
}

// wholeRepoCases: one commit must never stop poolboy for a whole repository. The
// rest is reported and cleaned as usual, the bad part is an integrity problem with
// a clear reason, and no control character reaches the terminal.
func wholeRepoCases(t *testing.T) []hcase {
	now := time.Now()
	ago := func(h int) time.Time { return now.Add(-time.Duration(h) * time.Hour) }
	claim := func(lock, msg string, at time.Time) []fixture.Op {
		return []fixture.Op{
			{Kind: fixture.Add, Pool: "aws", Lock: lock, Content: "x", At: ago(9)},
			{Kind: fixture.Claim, Pool: "aws", Lock: lock, Message: msg, At: at},
		}
	}
	big := strings.Repeat("All work and no play makes Jack a dull boy.\n", (17<<20)/44)
	esc := "main/deploy\x1b]0;pwned\x07/test\x1b[2J\x1b[31m build 3 claiming: env-9"
	cases := []wholeCase{
		{name: "17 MiB claim message", ops: claim("env-9", "claiming: env-9\n\n"+big, ago(4))},
		{name: "17 MiB message earlier in claimed history", ops: []fixture.Op{
			{Kind: fixture.Add, Pool: "aws", Lock: "env-9", Content: "x", At: ago(9)},
			{Kind: fixture.Claim, Pool: "aws", Lock: "env-9", Message: "claiming: env-9\n\n" + big, At: ago(8)},
			{Kind: fixture.Update, Pool: "aws", Lock: "env-9", Content: "y", Message: "updating: env-9\n\n" + big, At: ago(7)},
		}},
		{name: "pool name starting with a control character", pools: []string{"\x01evil", "\x1b[31mred"},
			ops: []fixture.Op{
				{Kind: fixture.AddClaimed, Pool: "\x01evil", Lock: "x", At: ago(6)},
				{Kind: fixture.AddClaimed, Pool: "\x1b[31mred", Lock: "y", At: ago(6)},
			}, problem: "not a valid pool name"},
		{name: "two non-UTF-8 pools", pools: []string{"p\xff", "p\xfe"},
			ops: []fixture.Op{
				{Kind: fixture.AddClaimed, Pool: "p\xff", Lock: "x", At: ago(6)},
				{Kind: fixture.AddClaimed, Pool: "p\xfe", Lock: "x", At: ago(6)},
			}, problem: "not valid UTF-8"},
		{name: "lock names with leading or trailing white space", ops: []fixture.Op{
			{Kind: fixture.Add, Pool: "aws", Lock: " env-7", At: ago(9)},
			{Kind: fixture.AddClaimed, Pool: "aws", Lock: "env-8 ", At: ago(6)},
			{Kind: fixture.AddClaimed, Pool: "aws", Lock: "env-6\u00a0", At: ago(6)},
		}, problem: "white space"},
		{name: "lock name with a control character", ops: []fixture.Op{
			{Kind: fixture.AddClaimed, Pool: "aws", Lock: "a\x1b[2Jb", At: ago(6)},
		}, problem: "control character"},
		{name: "owner with terminal escape sequences", ops: claim("env-9", esc, ago(4))},
		{name: "1 MiB first line", ops: claim("env-9", strings.Repeat("x/y build claiming: ", 1<<20/20)+"\n", ago(4))},
		{name: "claim dated 9999-12-31", ops: claim("env-9", "", time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)), reason: "in the future"},
	}
	var out []hcase
	for _, c := range cases {
		var once sync.Once
		var bare string
		get := func() string {
			once.Do(func() {
				spec := fixture.Spec{Branch: "main", Pools: append([]string{"aws"}, c.pools...), Start: ago(10), Ops: append([]fixture.Op{
					{Kind: fixture.Add, Pool: "aws", Lock: "env-1", Content: "one", At: ago(9)},
					{Kind: fixture.Add, Pool: "aws", Lock: "env-2", Content: "two", At: ago(9)},
					{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: ago(5)},
				}, c.ops...)}
				bare = filepath.Join(t.TempDir(), "locks.git")
				if err := fixture.Build(context.Background(), bare, spec); err != nil {
					t.Fatal(err)
				}
			})
			return bare
		}
		noRaw := func(t *testing.T, what, s string) {
			t.Helper()
			if ch, ok := rawControl(s); ok {
				t.Errorf("%s prints %q raw: %q", what, ch, clip(s))
			}
		}
		out = append(out,
			hcase{name: "whole/status text " + c.name, bare: get, run: func(t *testing.T) {
				r := runCLI(t, nil, "status", "--repo", "file://"+get(), "--pools", "aws:1m")
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, clip(r.stderr))
				}
				contains(t, "status", r.stdout, "env-2", "stale")
				if c.problem != "" {
					contains(t, "status", r.stdout, c.problem)
				}
				if c.reason != "" {
					contains(t, "status", r.stdout, c.reason)
				}
				noRaw(t, "status", r.stdout+r.stderr)
			}},
			hcase{name: "whole/status json " + c.name, bare: get, run: func(t *testing.T) {
				r := runCLI(t, nil, "status", "--repo", "file://"+get(), "--pools", "aws:1m", "--output", "json")
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, clip(r.stderr))
				}
				var doc report.Doc
				if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
					t.Fatalf("not JSON: %v", err)
				}
				var problems []string
				stale := false
				for _, p := range doc.Pools {
					for _, pr := range p.Problems {
						problems = append(problems, pr.String())
					}
					for _, l := range p.Locks {
						if p.Name == "aws" && l.Name == "env-2" && l.Verdict == "stale" {
							stale = true
						}
						if l.Name == "env-9" && c.reason != "" {
							contains(t, "env-9's reason", l.Reason, c.reason)
							if strings.Contains(l.Reason, "-9223372036") {
								t.Errorf("env-9's reason overflows: %q", l.Reason)
							}
						}
					}
				}
				if !stale {
					t.Errorf("aws/env-2 is not reported stale: %s", clip(r.stdout))
				}
				if c.problem != "" {
					contains(t, "problems", strings.Join(problems, "; "), c.problem)
				}
			}},
			hcase{name: "whole/clean " + c.name, run: func(t *testing.T) {
				r := runCLI(t, nil, "clean", "--repo", "file://"+get(), "--pools", "aws:1m")
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, clip(r.stderr))
				}
				noRaw(t, "clean", r.stdout+r.stderr)
				if ls := testenv.Git(t, get(), "ls-tree", "-r", "--name-only", "main", "aws/unclaimed/"); !strings.Contains(ls, "aws/unclaimed/env-2") {
					t.Errorf("clean did not free aws/env-2: %s", ls)
				}
			}},
		)
	}
	out = append(out, hcase{name: "whole/metrics two non-UTF-8 pools", run: func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m := metrics.NewPoolMetrics(reg, nil)
		at := now.Add(-time.Hour)
		m.Observe("locks", report.Doc{Pools: []report.Pool{
			{Name: "aws", Claimed: 1, Locks: []report.Lock{{Name: "env-2", ClaimedAt: &at}}},
			{Name: "p\xff", Claimed: 1, Locks: []report.Lock{{Name: "x", ClaimedAt: &at}}},
			{Name: "p\xfe", Claimed: 1, Locks: []report.Lock{{Name: "x", ClaimedAt: &at}}},
			{Name: "p\uFFFD", Claimed: 1},
		}})
		m.Reaped("locks", "p\xff", "timeout")
		srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		defer srv.Close()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := new(strings.Builder)
		if _, err := io.Copy(body, resp.Body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %s: %s", resp.Status, clip(body.String()))
		}
		if n := strings.Count(body.String(), `poolboy_locks{`); n != 8 {
			t.Errorf("%d poolboy_locks series, want 8 (4 pools × 2 states): %s", n, clip(body.String()))
		}
		contains(t, "/metrics", body.String(), `pool="aws"`, `poolboy_reaps_total`)
	}})
	return out
}
