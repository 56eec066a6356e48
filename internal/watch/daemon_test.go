package watch

// Daemon tests against real git remotes (bare repositories built by internal/fixture,
// reached over file://) and the fake Concourse. Nothing sleeps to synchronise: tests
// poll what they can observe (the remote, the daemon's state, HTTP answers) against a
// deadline, or block the daemon in a hook.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

const deadline = 30 * time.Second

// eventually polls cond until it holds, failing the test at the deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// remote builds a bare lock repository with pool aws and returns its path.
func remote(t *testing.T, ops ...fixture.Op) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: time.Now().Add(-10 * time.Hour), Ops: ops}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	return dir
}

// staleLocks are n locks of pool aws, each claimed 5 hours ago.
func staleLocks(n int) []fixture.Op {
	var ops []fixture.Op
	at := time.Now().Add(-9 * time.Hour)
	for i := 1; i <= n; i++ {
		ops = append(ops, fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: fmt.Sprintf("env-%d", i), At: at})
	}
	for i := 1; i <= n; i++ {
		ops = append(ops, fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: fmt.Sprintf("env-%d", i), At: time.Now().Add(-5 * time.Hour)})
	}
	return ops
}

func config(t *testing.T, dir string, interval time.Duration) *Config {
	return &Config{File: "test.yaml", Interval: interval, CacheDir: t.TempDir(), Repos: []Repo{{
		Name: "locks", URI: "file://" + dir, Branch: "main",
		Timeouts: policy.Timeouts{"aws": time.Hour}, ReapOnSuccess: map[string]bool{},
		WebhookSecret: []byte("hook-secret"),
	}}}
}

// running is a started daemon and its HTTP server.
type running struct {
	*Daemon
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, cfg *Config, opts Options) *running {
	t.Helper()
	if opts.Log == nil {
		opts.Log = testLogger(t)
	}
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Daemon: d, srv: httptest.NewServer(d.Handler()), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		_ = d.Run(ctx)
	}()
	t.Cleanup(func() {
		r.stop(t)
		r.srv.Close()
	})
	return r
}

// stop cancels the daemon and waits for Run to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(deadline):
		t.Fatal("Run did not return after cancel")
	}
}

func (r *running) state(t *testing.T, name string) RepoState {
	t.Helper()
	st, ok := r.State(name)
	if !ok {
		t.Fatalf("no repo %s", name)
	}
	return st
}

// waitCycles waits until repo name has finished n cycles, and returns its state.
func (r *running) waitCycles(t *testing.T, name string, n int) RepoState {
	t.Helper()
	var st RepoState
	eventually(t, fmt.Sprintf("%d cycles of %s", n, name), func() bool {
		st = r.state(t, name)
		return st.Cycles >= n
	})
	return st
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// testLogger logs to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// exists says whether path exists on the remote's main branch.
func exists(t *testing.T, dir, path string) bool {
	t.Helper()
	return testenv.Git(t, dir, "ls-tree", "--name-only", "main", "--", path) != ""
}

// checkConsistent checks the remote after any number of daemons: history linear,
// every lock in exactly one place, each claim freed by at most one commit, and
// returns how many times each lock was freed.
func checkConsistent(t *testing.T, dir string) map[string]int {
	t.Helper()
	if merges := testenv.Git(t, dir, "rev-list", "--merges", "main"); merges != "" {
		t.Errorf("history is not linear: merges %s", merges)
	}
	where := map[string]int{}
	for _, p := range strings.Split(testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "main"), "\n") {
		if base := filepath.Base(p); !strings.HasPrefix(base, ".") {
			where[base]++
		}
	}
	for lock, n := range where {
		if n != 1 {
			t.Errorf("lock %s is in %d places", lock, n)
		}
	}
	claimed := map[string]bool{}
	freed := map[string]int{}
	for _, s := range strings.Split(testenv.Git(t, dir, "log", "--reverse", "--first-parent", "--format=%s", "main"), "\n") {
		_, lock, _ := strings.Cut(s, ": ")
		switch {
		case strings.HasPrefix(s, "unclaiming: "):
			if !claimed[lock] {
				t.Errorf("%s freed while free: %q", lock, s)
			}
			claimed[lock] = false
			freed[lock]++
		case strings.HasSuffix(strings.SplitN(s, ": ", 2)[0], "claiming"):
			if claimed[lock] {
				t.Errorf("%s claimed while claimed", lock)
			}
			claimed[lock] = true
		}
	}
	return freed
}

// A lock whose build is aborted is freed as soon as the webhook arrives, with an
// interval of an hour.
func TestWebhookFreesALockOfAnAbortedBuildAtOnce(t *testing.T) {
	cc := fakeconcourse.New(t)
	cc.AddUser("admin", "admin-pw", "main")
	id := cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "12", Status: "started"})
	now := time.Now()
	dir := remote(t,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute),
			Message: "main/deploy/test build 12 claiming: env-1"})
	cfg := config(t, dir, time.Hour)
	cfg.Concourse = []concourse.Target{{URL: cc.URL, Token: cc.Token("admin")}}
	d := start(t, cfg, Options{})

	st := d.waitCycles(t, "locks", 1)
	if st.LastError != "" || !exists(t, dir, "aws/claimed/env-1") {
		t.Fatalf("first cycle: error %q; the lock of a running build must stay claimed", st.LastError)
	}
	if l := st.Report.Pools[0].Locks[0]; l.Verdict != "alive" {
		t.Errorf("verdict %s (%s), want alive", l.Verdict, l.Reason)
	}

	cc.SetStatus(id, "aborted")
	body := []byte(`{"ref":"refs/heads/main","after":"0123"}`)
	code, answer := d.webhook(t, "locks", body, githubHeaders(body, "hook-secret"))
	if code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", code, answer)
	}
	eventually(t, "the lock freed", func() bool { return exists(t, dir, "aws/unclaimed/env-1") })
	if rule := testenv.Git(t, dir, "log", "-1", "--format=%(trailers:key=Poolboy-Rule,valueonly)", "main"); rule != "build-aborted" {
		t.Errorf("rule %q", rule)
	}
	st = d.waitCycles(t, "locks", 2)
	if len(st.Reaps) != 1 || st.Reaps[0].Rule != "build-aborted" || st.Reaps[0].Lock != "env-1" {
		t.Errorf("recent reaps: %+v", st.Reaps)
	}
	if st.Cycles != 2 {
		t.Errorf("%d cycles: only the first and the triggered one should have run", st.Cycles)
	}
	if freed := checkConsistent(t, dir); freed["env-1"] != 1 {
		t.Errorf("freed %v", freed)
	}
}

// Without a webhook, the interval frees it.
func TestTheIntervalCoversALostWebhook(t *testing.T) {
	cc := fakeconcourse.New(t)
	cc.AddUser("admin", "admin-pw", "main")
	id := cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "12", Status: "started"})
	now := time.Now()
	dir := remote(t,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute),
			Message: "main/deploy/test build 12 claiming: env-1"})
	cfg := config(t, dir, 50*time.Millisecond)
	cfg.Concourse = []concourse.Target{{URL: cc.URL, Username: "admin", Password: "admin-pw"}}
	d := start(t, cfg, Options{})
	d.waitCycles(t, "locks", 1)
	if !exists(t, dir, "aws/claimed/env-1") {
		t.Fatal("the lock of a running build was freed")
	}
	cc.SetStatus(id, "aborted")
	eventually(t, "the lock freed by an interval cycle", func() bool { return exists(t, dir, "aws/unclaimed/env-1") })
	if got := cc.TokensIssued(); got != 1 {
		t.Errorf("%d logins: the Concourse client must be shared by every cycle", got)
	}
}

// Two daemons on the same repository, made to push at the same moment, free each
// stale lock exactly once.
func TestTwoReplicasNeverDoubleReap(t *testing.T) {
	dir := remote(t, staleLocks(8)...)
	// Both replicas decide on the same state and push together: one loses the race.
	var arrived sync.WaitGroup
	arrived.Add(2)
	gate := make(chan struct{})
	var once [2]sync.Once
	hook := func(i int) func(context.Context, string) {
		return func(_ context.Context, kind string) {
			if kind != "push" {
				return
			}
			once[i].Do(func() {
				arrived.Done()
				<-gate
			})
		}
	}
	var ds [2]*running
	for i := range ds {
		ds[i] = start(t, config(t, dir, 20*time.Millisecond), Options{beforeGit: hook(i)})
	}
	waited := make(chan struct{})
	go func() { arrived.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(deadline):
		t.Fatal("the replicas did not both reach their push")
	}
	close(gate)
	for _, d := range ds {
		d.waitCycles(t, "locks", 4)
	}
	freed := checkConsistent(t, dir)
	for i := 1; i <= 8; i++ {
		lock := fmt.Sprintf("env-%d", i)
		if freed[lock] != 1 || !exists(t, dir, "aws/unclaimed/"+lock) {
			t.Errorf("%s freed %d times", lock, freed[lock])
		}
	}
	var total, lost int
	for _, d := range ds {
		total += len(d.state(t, "locks").Reaps)
		_, m := d.get(t, "/metrics")
		// Losing the race is "rejected" when git saw the branch had moved, "error"
		// when both pushes passed that check and the remote's ref lock decided.
		lost += len(regexp.MustCompile(`poolboy_git_operations_total\{kind="push",outcome="(rejected|error)"\} 1`).FindAllString(m, -1))
	}
	if total != 8 || lost != 1 {
		t.Errorf("reaps recorded by the replicas: %d (want 8); replicas that lost a push: %d (want 1)", total, lost)
	}
}

// Cancelling the daemon while a cycle is about to push leaves the repository
// consistent: with a grace period the push lands whole, without one nothing lands;
// a daemon started again on the same cache finishes the job.
func TestCancelMidCycleLeavesTheRepoConsistent(t *testing.T) {
	for _, c := range []struct {
		name  string
		grace time.Duration
		freed int
	}{{"finish within the grace period", 10 * time.Second, 1}, {"abandon", -1, 0}} {
		t.Run(c.name, func(t *testing.T) {
			dir := remote(t, staleLocks(5)...)
			cfg := config(t, dir, time.Hour)
			before := testenv.Git(t, dir, "rev-parse", "main")
			got := make(chan *running, 1)
			cancelled := make(chan struct{})
			d := start(t, cfg, Options{ShutdownGrace: c.grace, beforeGit: func(ctx context.Context, kind string) {
				if kind != "push" {
					return
				}
				(<-got).cancel() // SIGTERM, just before the push
				close(cancelled)
				if c.grace < 0 {
					<-ctx.Done() // the cycle is cancelled at once: its push cannot start
				}
			}})
			got <- d
			select {
			case <-cancelled:
			case <-time.After(deadline):
				t.Fatal("the cycle never reached its push")
			}
			d.stop(t)
			st := d.state(t, "locks")
			freed := checkConsistent(t, dir)
			for lock, n := range freed {
				if n > c.freed {
					t.Errorf("%s freed %d times", lock, n)
				}
			}
			if c.freed == 0 && testenv.Git(t, dir, "rev-parse", "main") != before {
				t.Errorf("an abandoned cycle pushed")
			}
			if c.freed == 1 && (len(freed) != 5 || st.LastError != "") {
				t.Errorf("finished cycle: freed %v, state %+v", freed, st)
			}
			// Again, on the same cache directory: the clone is reused and consistent.
			d2 := start(t, cfg, Options{})
			st = d2.waitCycles(t, "locks", 1)
			if st.LastError != "" {
				t.Fatalf("restart: %s", st.LastError)
			}
			for lock, n := range checkConsistent(t, dir) {
				if n != 1 {
					t.Errorf("after restart %s freed %d times", lock, n)
				}
			}
		})
	}
}

func TestReadyzFlips(t *testing.T) {
	dir := remote(t, staleLocks(1)...)
	cfg := config(t, dir, 100*time.Millisecond)
	d := start(t, cfg, Options{MaxBackoff: 20 * time.Millisecond})
	eventually(t, "/readyz 200", func() bool { code, _ := d.get(t, "/readyz"); return code == 200 })
	if code, _ := d.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	var body string
	eventually(t, "/readyz 503", func() bool {
		var code int
		code, body = d.get(t, "/readyz")
		return code == 503
	})
	if !strings.Contains(body, "repo locks: last successful cycle") {
		t.Errorf("/readyz body %q does not name the repo", body)
	}
	if code, _ := d.get(t, "/healthz"); code != 200 {
		t.Errorf("/healthz %d while not ready", code)
	}
	if err := os.Rename(moved, dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz 200 again", func() bool { code, _ := d.get(t, "/readyz"); return code == 200 })
}

// A repo that never works is not ready from the start, and does not hold up another.
func TestABrokenRepoNeverStopsTheOthers(t *testing.T) {
	dir := remote(t, staleLocks(2)...)
	cfg := config(t, dir, 50*time.Millisecond)
	cfg.Repos = append(cfg.Repos, Repo{Name: "broken", URI: "file://" + filepath.Join(t.TempDir(), "nope.git"),
		Timeouts: policy.Timeouts{"aws": time.Hour}})
	d := start(t, cfg, Options{MaxBackoff: 10 * time.Millisecond})
	d.waitCycles(t, "broken", 3)
	d.waitCycles(t, "locks", 3)
	code, body := d.get(t, "/readyz")
	if code != 503 || !strings.Contains(body, "repo broken: no successful cycle yet") || strings.Contains(body, "repo locks") {
		t.Errorf("/readyz %d %q", code, body)
	}
	if !exists(t, dir, "aws/unclaimed/env-1") || !exists(t, dir, "aws/unclaimed/env-2") {
		t.Error("the working repo was not cleaned")
	}
}

func TestMetricsAndAPI(t *testing.T) {
	cc := fakeconcourse.New(t)
	cc.AddUser("admin", "admin-pw", "main")
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "13", Status: "started"})
	now := time.Now()
	ops := append(staleLocks(1),
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-3", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: now.Add(-time.Minute),
			Message: "main/deploy/test build 13 claiming: env-2"})
	dir := remote(t, ops...)
	cfg := config(t, dir, time.Hour)
	cfg.Concourse = []concourse.Target{{URL: cc.URL, Token: cc.Token("admin")}}
	d := start(t, cfg, Options{})
	d.waitCycles(t, "locks", 1)

	_, m := d.get(t, "/metrics")
	for _, want := range []string{
		`# TYPE poolboy_locks gauge`,
		`poolboy_locks{pool="aws",repo="locks",state="claimed"} 1`,
		`poolboy_locks{pool="aws",repo="locks",state="unclaimed"} 2`,
		`poolboy_stale_locks{pool="aws",repo="locks"} 0`,
		`poolboy_pool_timeout_seconds{pool="aws",repo="locks"} 3600`,
		`poolboy_lock_claim_age_seconds{lock="env-2",pool="aws",repo="locks"} `,
		`# TYPE poolboy_reaps_total counter`,
		`poolboy_reaps_total{pool="aws",repo="locks",rule="timeout"} 1`,
		`# TYPE poolboy_cycle_duration_seconds histogram`,
		`poolboy_cycle_duration_seconds_count{repo="locks"} 1`,
		`poolboy_cycles_total{outcome="success",repo="locks"} 1`,
		`poolboy_last_successful_cycle_timestamp_seconds{repo="locks"} `,
		`poolboy_concourse_requests_total{outcome="success"} `,
		`poolboy_git_operations_total{kind="open",outcome="success"} 1`,
		`poolboy_git_operations_total{kind="push",outcome="success"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if regexp.MustCompile(`poolboy_lock_claim_age_seconds\{lock="env-1"`).MatchString(m) {
		t.Error("a freed lock still has a claim age")
	}

	_, body := d.get(t, "/api/pools")
	var doc struct {
		Schema string
		Repos  []struct {
			Name        string
			LastSuccess *time.Time `json:"last_success"`
			Status      struct {
				Schema string
				Pools  []struct {
					Name    string
					Claimed int
					Locks   []struct{ Name, Verdict string }
				}
				Clean struct{ Freed []struct{ Lock, Rule string } }
			}
			RecentReaps []Reap `json:"recent_reaps"`
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if doc.Schema != APISchema || len(doc.Repos) != 1 {
		t.Fatalf("document: %s", body)
	}
	r := doc.Repos[0]
	if r.Name != "locks" || r.LastSuccess == nil || r.Status.Schema != "poolboy.status/v2" ||
		len(r.Status.Pools) != 1 || r.Status.Pools[0].Claimed != 1 || r.Status.Pools[0].Locks[0].Verdict != "alive" ||
		len(r.Status.Clean.Freed) != 1 || len(r.RecentReaps) != 1 || r.RecentReaps[0].Lock != "env-1" || r.RecentReaps[0].Rule != "timeout" {
		t.Errorf("repo document: %s", body)
	}
}

// Triggers arriving during a cycle collapse into one follow-up cycle.
func TestTriggersDuringACycleCollapseIntoOne(t *testing.T) {
	dir := remote(t, staleLocks(1)...)
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	var fetches int
	var mu sync.Mutex
	d := start(t, config(t, dir, time.Hour), Options{beforeGit: func(_ context.Context, kind string) {
		if kind != "fetch" {
			return
		}
		mu.Lock()
		fetches++
		first := fetches == 1
		mu.Unlock()
		if first {
			entered <- struct{}{}
			<-release
		}
	}})
	d.waitCycles(t, "locks", 1) // the first cycle opens the clone: no fetch
	d.Trigger("locks")
	<-entered // the second cycle is running, blocked in its fetch
	for range 5 {
		d.Trigger("locks")
	}
	close(release)
	d.waitCycles(t, "locks", 3)
	// Nothing else wakes it within the hour: a fourth cycle would need a trigger.
	d.Trigger("locks")
	st := d.waitCycles(t, "locks", 4)
	if st.Cycles != 4 {
		t.Errorf("%d cycles, want 4: the five triggers during cycle 2 must make exactly one more", st.Cycles)
	}
}

func githubHeaders(body []byte, secret string) http.Header {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}, "X-Github-Event": {"push"}}
}

func giteaHeaders(body []byte, secret string) http.Header {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return http.Header{"X-Gitea-Signature": {hex.EncodeToString(mac.Sum(nil))}, "X-Gitea-Event": {"push"}}
}

func gitlabHeaders(_ []byte, secret string) http.Header {
	return http.Header{"X-Gitlab-Token": {secret}, "X-Gitlab-Event": {"Push Hook"}}
}

func (r *running) webhook(t *testing.T, name string, body []byte, h http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.srv.URL+"/webhook/"+name, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// The signature schemes of the three forges, on a daemon that is not running (so
// a trigger stays pending where the test can see it).
func TestWebhookSignatures(t *testing.T) {
	cfg := &Config{Interval: time.Hour, CacheDir: t.TempDir(), Repos: []Repo{
		{Name: "locks", URI: "/nowhere", Branch: "main", WebhookSecret: []byte("hook-secret")},
		{Name: "nohook", URI: "/nowhere", Branch: "main"},
	}}
	d, err := New(cfg, Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{Daemon: d, srv: httptest.NewServer(d.Handler())}
	defer r.srv.Close()
	triggered := func() bool {
		select {
		case <-d.byName["locks"].trigger:
			return true
		default:
			return false
		}
	}
	push := []byte(`{"ref":"refs/heads/main","before":"a","after":"b"}`)
	other := []byte(`{"ref":"refs/heads/feature","before":"a","after":"b"}`)
	for _, f := range []struct {
		name    string
		headers func([]byte, string) http.Header
	}{{"github", githubHeaders}, {"gitea", giteaHeaders}, {"gitlab", gitlabHeaders}} {
		t.Run(f.name, func(t *testing.T) {
			if code, body := r.webhook(t, "locks", push, f.headers(push, "hook-secret")); code != 202 || !triggered() {
				t.Errorf("valid push: %d %q", code, body)
			}
			if code, body := r.webhook(t, "locks", push, f.headers(push, "wrong-secret")); code != 401 || triggered() {
				t.Errorf("wrong secret: %d %q", code, body)
			}
			// A signature of another body (GitLab has none: its token is the secret).
			if f.name != "gitlab" {
				if code, _ := r.webhook(t, "locks", push, f.headers(other, "hook-secret")); code != 401 || triggered() {
					t.Errorf("signature of another payload: %d", code)
				}
			}
			if code, body := r.webhook(t, "locks", other, f.headers(other, "hook-secret")); code != 202 || triggered() ||
				!strings.Contains(body, "ignored") {
				t.Errorf("push to another branch: %d %q", code, body)
			}
			h := f.headers(push, "hook-secret")
			for k := range h {
				if strings.HasSuffix(k, "Event") {
					h[k] = []string{"issues"}
				}
			}
			if code, body := r.webhook(t, "locks", push, h); code != 202 || triggered() || !strings.Contains(body, "not a push") {
				t.Errorf("another event: %d %q", code, body)
			}
		})
	}
	if code, _ := r.webhook(t, "locks", push, nil); code != 401 || triggered() {
		t.Errorf("no signature: %d", code)
	}
	if code, _ := r.webhook(t, "locks", push, http.Header{"X-Hub-Signature-256": {"md5=00"}}); code != 401 {
		t.Errorf("malformed signature: %d", code)
	}
	if code, _ := r.webhook(t, "nohook", push, githubHeaders(push, "hook-secret")); code != 404 {
		t.Errorf("repo without a webhook secret: %d", code)
	}
	if code, _ := r.webhook(t, "unknown", push, githubHeaders(push, "hook-secret")); code != 404 {
		t.Errorf("unknown repo: %d", code)
	}
	if code, _ := r.get(t, "/webhook/locks"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET webhook: %d", code)
	}
}
