package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
)

// cycle triggers one cycle of repo locks and waits for it.
func (r *running) cycle(t *testing.T) RepoState {
	t.Helper()
	n := r.state(t, "locks").Cycles
	r.Trigger("locks")
	return r.waitCycles(t, "locks", n+1)
}

func lockIn(t *testing.T, st RepoState, name string) (verdict, buildErr string) {
	t.Helper()
	if st.Report == nil {
		t.Fatalf("no report: %s", st.LastError)
	}
	for _, p := range st.Report.Pools {
		for _, l := range p.Locks {
			if l.Name == name {
				if l.Build != nil {
					buildErr = l.Build.Error
				}
				return l.Verdict, buildErr
			}
		}
	}
	return "", ""
}

// gauge reads the value of the first series of metric in a /metrics answer;
// ok is false when there is none.
func gauge(t *testing.T, metrics, metric string) (v float64, ok bool) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + metric + `\{[^}]*\} (\S+)$`).FindStringSubmatch(metrics)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// Three days of cycles, an hour apart by an injected clock, with Concourse's
// daily tokens. Twice the token endpoint answers 502 for hours while each
// token's refresh is due: the old token serves meanwhile, the refresh
// succeeds once the endpoint is back, and no cycle ever lacks an answer
// about the running build: its lock stays alive, whatever its age. (Before,
// the client logged in at most twice: from the second expiry on every lookup
// failed and the timeout freed the running build's lock.)
func TestMultiDayRunKeepsARunningBuildsLock(t *testing.T) {
	clock := fakeconcourse.NewClock(time.Now())
	cc := fakeconcourse.New(t, fakeconcourse.WithClock(clock.Now))
	cc.AddUser("admin", "admin-pw", "main")
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "soak", Name: "1", Status: "started"})
	short := cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "2", Status: "started"})
	now := time.Now()
	dir := remote(t,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute),
			Message: "main/deploy/soak build 1 claiming: env-1"},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: now.Add(-time.Minute),
			Message: "main/deploy/test build 2 claiming: env-2"})
	cfg := config(t, dir, time.Hour) // the interval never fires: the test drives the cycles
	cfg.Concourse = []concourse.Target{{URL: cc.URL, Username: "admin", Password: "admin-pw"}}
	d := start(t, cfg, Options{now: clock.Now})
	d.waitCycles(t, "locks", 1)

	// Tokens: hour 0 (refresh due at 18, expires at 24), then the hour the
	// refresh gets through (+18, +24).
	outages := [][2]int{{17, 23}, {40, 46}}
	failedLogins := 0
	for hour := 1; hour <= 72; hour++ {
		down := false
		for _, o := range outages {
			down = down || (hour >= o[0] && hour < o[1])
		}
		if down {
			cc.SetFault(fakeconcourse.Fault{Path: "/sky/issuer/token", Status: 502})
		} else {
			cc.SetFault(fakeconcourse.Fault{})
		}
		if hour == 30 {
			cc.SetStatus(short, "aborted")
		}
		clock.Advance(time.Hour)
		st := d.cycle(t)
		if st.LastError != "" {
			t.Fatalf("hour %d: cycle failed: %s", hour, st.LastError)
		}
		if v, berr := lockIn(t, st, "env-1"); v != "alive" || berr != "" || !exists(t, dir, "aws/claimed/env-1") {
			t.Fatalf("hour %d: the running build's lock: verdict %q (\"\": freed), lookup error %q", hour, v, berr)
		}
		if hour < 30 {
			if v, _ := lockIn(t, st, "env-2"); v != "alive" {
				t.Fatalf("hour %d: env-2 %q", hour, v)
			}
		}
	}
	for _, r := range cc.Requests() {
		if r.Path == "/sky/issuer/token" && r.Status == 502 {
			failedLogins++
		}
	}
	if failedLogins < 2 {
		t.Errorf("%d failed logins: the outages did not hit a refresh", failedLogins)
	}
	if n := cc.TokensIssued(); n < 3 || n > 5 {
		t.Errorf("%d tokens in 3 days", n)
	}
	freed := checkConsistent(t, dir)
	if freed["env-1"] != 0 || freed["env-2"] != 1 {
		t.Errorf("freed %v: want env-2 (aborted) once, never env-1 (running)", freed)
	}
	if rs := d.state(t, "locks").Reaps; len(rs) != 1 || rs[0].Rule != "build-aborted" {
		t.Errorf("reaps %+v", rs)
	}
	_, m := d.get(t, "/metrics")
	if up, ok := gauge(t, m, "poolboy_concourse_up"); !ok || up != 1 {
		t.Errorf("poolboy_concourse_up %v (present %v), want 1", up, ok)
	}
}

// When Concourse stops answering, the metrics, /readyz, /api/pools and the
// status page say so; cleaning goes on by the timeouts and readiness does not
// fail for it; when it answers again the warnings go.
func TestAConcourseOutageIsVisible(t *testing.T) {
	clock := fakeconcourse.NewClock(time.Now())
	cc := fakeconcourse.New(t, fakeconcourse.WithClock(clock.Now))
	cc.AddUser("admin", "admin-pw", "main")
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "12", Status: "started"})
	now := time.Now()
	dir := remote(t,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute),
			Message: "main/deploy/test build 12 claiming: env-1"})
	cfg := config(t, dir, time.Hour)
	cfg.Concourse = []concourse.Target{{URL: cc.URL + "/", Username: "admin", Password: "admin-pw"}}
	// Before any lookup the gauges have no series: the first cycle waits.
	gate := make(chan struct{})
	d := start(t, cfg, Options{beforeGit: func(_ context.Context, kind string) {
		if kind == "open" {
			<-gate
		}
	}, now: clock.Now})
	_, m := d.get(t, "/metrics")
	if _, ok := gauge(t, m, "poolboy_concourse_up"); ok {
		t.Error("poolboy_concourse_up has a value before any lookup")
	}
	if _, ok := gauge(t, m, "poolboy_concourse_last_success_timestamp_seconds"); ok {
		t.Error("poolboy_concourse_last_success_timestamp_seconds has a value before any lookup")
	}
	if _, body := d.get(t, "/api/pools"); !strings.Contains(body, `"up": null`) {
		t.Errorf("/api/pools before a lookup: %s", body)
	}
	close(gate)
	d.waitCycles(t, "locks", 1)
	goodAt := clock.Now()

	check := func(when string, wantUp bool) {
		t.Helper()
		_, m := d.get(t, "/metrics")
		up, ok := gauge(t, m, "poolboy_concourse_up")
		if !ok || up != map[bool]float64{true: 1, false: 0}[wantUp] {
			t.Errorf("%s: poolboy_concourse_up %v (present %v)", when, up, ok)
		}
		if !strings.Contains(m, fmt.Sprintf(`poolboy_concourse_up{concourse=%q}`, cc.URL)) {
			t.Errorf("%s: poolboy_concourse_up not labelled with the Concourse URL:\n%s", when, m)
		}
		last, ok := gauge(t, m, "poolboy_concourse_last_success_timestamp_seconds")
		if !ok || last != float64(goodAt.UnixNano())/1e9 {
			t.Errorf("%s: last success %v (present %v), want %v", when, last, ok, float64(goodAt.UnixNano())/1e9)
		}
		code, ready := d.get(t, "/readyz")
		if code != 200 {
			t.Errorf("%s: /readyz %d %q: a Concourse outage must not fail readiness", when, code, ready)
		}
		_, page := d.get(t, "/")
		_, api := d.get(t, "/api/pools")
		var doc PoolsDoc
		if err := json.Unmarshal([]byte(api), &doc); err != nil || len(doc.Concourse) != 1 || doc.Concourse[0].Up == nil {
			t.Fatalf("%s: /api/pools: %v %s", when, err, api)
		}
		c := doc.Concourse[0]
		if c.URL != cc.URL || *c.Up != wantUp || c.LastSuccess == nil || !c.LastSuccess.Equal(goodAt.UTC()) {
			t.Errorf("%s: /api/pools concourse %+v", when, c)
		}
		if wantUp {
			if strings.Contains(ready, "warning") || strings.Contains(page, "concourse-down") || c.DownSince != nil || c.LastError != "" {
				t.Errorf("%s: a warning while Concourse answers: /readyz %q, api %+v", when, ready, c)
			}
			return
		}
		// The page as a person sees it, in a browser.
		seen := visibleText(string(chromium(t, d.srv.URL+"/", "--dump-dom")))
		if !strings.Contains(seen, "Concourse is not answering.") {
			t.Errorf("%s: chromium shows no Concourse warning:\n%s", when, seen)
		}
		for what, body := range map[string]string{"/readyz": ready, "page": visibleText(page), "chromium": seen} {
			if !strings.Contains(body, "Concourse "+cc.URL+" has not answered since") || !strings.Contains(body, "502") ||
				!strings.Contains(body, "last good answer 2h ago") || !strings.Contains(body, "the timeouts decide alone") {
				t.Errorf("%s: %s does not name the outage:\n%s", when, what, body)
			}
		}
		if !strings.Contains(page, `id="concourse-down"`) {
			t.Errorf("%s: the page has no Concourse warning", when)
		}
		if c.DownSince == nil || !strings.Contains(c.LastError, "502") {
			t.Errorf("%s: /api/pools concourse %+v", when, c)
		}
	}
	check("after a good cycle", true)

	cc.SetFault(fakeconcourse.Fault{Status: 502})
	clock.Advance(30 * time.Minute)
	st := d.cycle(t)
	clock.Advance(90 * time.Minute)
	if st.LastError != "" {
		t.Fatalf("a Concourse outage failed the cycle: %s", st.LastError)
	}
	if v, berr := lockIn(t, st, "env-1"); v != "held" || berr == "" {
		t.Errorf("during the outage: verdict %q, lookup error %q: want the timeout to decide", v, berr)
	}
	check("during the outage", false)

	cc.SetFault(fakeconcourse.Fault{})
	goodAt = clock.Now()
	d.cycle(t)
	check("after the outage", true)
}

// What counts as Concourse answering: a build, or a 404/400/403 about the
// thing asked for; not an unreachable server, a 5xx, a failed login or a 401.
// A lookup cancelled by the daemon's shutdown says nothing.
func TestConcourseHealthRecord(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		err  error
		up   bool
	}{
		{"a build", nil, true},
		{"404", &concourse.StatusError{Code: 404, Method: "GET", Path: "/api/v1/builds/1"}, true},
		{"no such version", fmt.Errorf("concourse: no version: %w", concourse.ErrNotFound), true},
		{"403", &concourse.StatusError{Code: 403, Method: "GET", Path: "/api/v1/builds/1"}, true},
		{"401", &concourse.StatusError{Code: 401, Method: "GET", Path: "/api/v1/builds/1"}, false},
		{"502", &concourse.StatusError{Code: 502, Method: "GET", Path: "/api/v1/builds/1"}, false},
		{"login failed", errors.New("concourse: login as bot failed: 502"), false},
		{"timeout", fmt.Errorf("concourse: GET /api/v1/builds/1: %w", context.DeadlineExceeded), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &ccHealth{url: "https://ci.example.com", ccGauges: newCCGauges(prometheus.NewRegistry())}
			h.record(t0, errors.New("concourse: GET /api/v1/builds/1: connection refused"))
			h.record(t0.Add(time.Minute), tc.err)
			h.record(t0.Add(2*time.Minute), context.Canceled)
			d := h.doc()
			if d.Up == nil || *d.Up != tc.up {
				t.Fatalf("up %v, want %v", d.Up, tc.up)
			}
			var m dto.Metric
			if err := h.up.WithLabelValues("https://ci.example.com").Write(&m); err != nil || m.GetGauge().GetValue() != map[bool]float64{true: 1}[tc.up] {
				t.Errorf("poolboy_concourse_up %v (%v)", m.GetGauge().GetValue(), err)
			}
			if tc.up {
				if d.LastSuccess == nil || !d.LastSuccess.Equal(t0.Add(time.Minute)) || d.DownSince != nil {
					t.Errorf("doc %+v", d)
				}
				return
			}
			if d.LastSuccess != nil || d.DownSince == nil || !d.DownSince.Equal(t0) || d.LastError != tc.err.Error() {
				t.Errorf("doc %+v: down since the first failure, with the last error", d)
			}
		})
	}
}
