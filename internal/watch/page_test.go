package watch

// The status page, as a person sees it: served by a daemon that has run a real
// cycle (real git remote, the fake Concourse), loaded in headless Chromium.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// chromium runs headless Chromium on url with args (--dump-dom, --screenshot=...)
// and returns its stdout.
func chromium(t *testing.T, url string, args ...string) []byte {
	t.Helper()
	bin := testenv.Chromium(t)
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile}, args...)
	cmd := exec.CommandContext(ctx, bin, append(all, url)...)
	cmd.Dir = profile
	// Its own HOME: nothing of the user's (or the machine's) profile leaks in.
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// visibleText is the text of an HTML document as a person reads it: tags gone,
// entities decoded, whitespace collapsed.
func visibleText(doc string) string {
	doc = regexp.MustCompile(`(?s)<(style|script)\b.*?</(style|script)>`).ReplaceAllString(doc, " ")
	doc = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(doc, " ")
	return strings.Join(strings.Fields(html.UnescapeString(doc)), " ")
}

func TestStatusPageInChromium(t *testing.T) {
	testenv.Chromium(t) // before any fixture work: skip early when missing
	cc := fakeconcourse.New(t)
	cc.AddUser("admin", "admin-pw", "main")
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "11", Status: "failed"})
	cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "test", Name: "13", Status: "started"})
	cc.AddBuild(fakeconcourse.Build{Pipeline: "train", Job: "fit", Name: "15", Status: "succeeded"})

	now := time.Now()
	add := func(pool, lock string) fixture.Op {
		return fixture.Op{Kind: fixture.Add, Pool: pool, Lock: lock, At: now.Add(-9 * time.Hour)}
	}
	claim := func(pool, lock string, ago time.Duration, msg string) fixture.Op {
		return fixture.Op{Kind: fixture.Claim, Pool: pool, Lock: lock, At: now.Add(-ago), Message: msg}
	}
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws", "gpu", "legacy"}, Start: now.Add(-10 * time.Hour), Ops: []fixture.Op{
		add("aws", "env-1"), add("aws", "env-2"), add("aws", "env-3"), add("aws", "env-4"), add("aws", "env-5"),
		add("gpu", "gpu-1"), add("gpu", "gpu-2"), add("legacy", "box-1"),
		claim("aws", "env-1", 40*time.Minute, "main/deploy/test build 11 claiming: env-1"), // build failed: reaped
		claim("aws", "env-2", 3*time.Hour, "main/deploy/test build 13 claiming: env-2"),    // build running: alive past its timeout
		claim("aws", "env-3", 20*time.Minute, ""),                                          // no owner: held, the timeout decides
		claim("aws", "env-4", 5*time.Hour, ""),                                             // reaped by the timeout
		claim("gpu", "gpu-1", 90*time.Minute, "main/train/fit build 15 claiming: gpu-1"),   // succeeded, kept till the timeout
		claim("gpu", "gpu-2", 30*time.Minute, ""),
		claim("legacy", "box-1", 50*time.Hour, ""), // no timeout: unwatched
	}}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	// An integrity problem: gpu-2 in both claimed/ and unclaimed/.
	c := testenv.NewClone(t, "file://"+dir, "main")
	if err := os.WriteFile(filepath.Join(c.Dir, "gpu", "unclaimed", "gpu-2"), []byte("gpu-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, c.Dir, "add", "gpu/unclaimed/gpu-2")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "a bad merge")
	// Three puts wait for an aws lock: the last to come has the highest priority.
	for _, tk := range []queue.Ticket{
		{ID: "first", Seq: 1, Enqueued: now.Add(-7 * time.Minute), Want: []queue.Want{{Acquire: true}},
			Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "test", Build: "42", URL: cc.URL + "/teams/main/pipelines/deploy/jobs/test/builds/42"}},
		{ID: "second", Seq: 2, Enqueued: now.Add(-3 * time.Minute), Want: []queue.Want{{Claim: "env-2"}},
			Holder: queue.Holder{Team: "main", Pipeline: "deploy", Job: "smoke", Build: "8"}},
		{ID: "third", Seq: 3, Priority: 5, Enqueued: now.Add(-time.Minute), Want: []queue.Want{{Acquire: true}},
			Holder: queue.Holder{Team: "main", Pipeline: "nightly", Job: "soak", Build: "90"}},
	} {
		tk.Expires = now.Add(time.Hour)
		path := filepath.Join(c.Dir, filepath.FromSlash(queue.Path("aws", tk.ID)))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, tk.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "three puts wait")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/main")

	cfg := config(t, dir, time.Hour)
	cfg.Repos[0].Timeouts = policy.Timeouts{"aws": time.Hour, "gpu": 2 * time.Hour}
	cfg.Concourse = []concourse.Target{{URL: cc.URL, Token: cc.Token("admin")}}
	// The daemon's clock stands at the fixture's now: the ages, bars and waits on
	// the page are exact however long the setup took.
	d := start(t, cfg, Options{now: func() time.Time { return now }})
	st := d.waitCycles(t, "locks", 1)
	if st.LastError != "" || len(st.Reaps) != 2 {
		t.Fatalf("first cycle: error %q, reaps %+v", st.LastError, st.Reaps)
	}

	code, body := d.get(t, "/")
	if code != 200 || !strings.Contains(body, `<meta http-equiv="refresh" content="60">`) {
		t.Errorf("GET /: %d, no refresh of the page every minute:\n%s", code, body)
	}
	if code, _ := d.get(t, "/nope"); code != 404 {
		t.Errorf("GET /nope: %d", code)
	}

	dom := string(chromium(t, d.srv.URL+"/", "--dump-dom"))
	text := visibleText(dom)
	for _, want := range []string{
		"pool aws", "pool gpu", "pool legacy", "timeout 1h", "timeout 2h", "no timeout",
		"env-2", "env-3", "gpu-1", "gpu-2", "box-1",
		"main/deploy/test #13", "main/train/fit #15",
		"alive", "held", "unwatched", "broken",
		"3h of 1h", "3.0× timeout", "Concourse: main/deploy/test #13 started", "Concourse: main/train/fit #15 succeeded", "1 problem ", "1 cycle ",
		"lock is in both claimed/ and unclaimed/",
		"Recent reaps", "aws/env-1", "build-failed", "aws/env-4", "timeout",
		"main/deploy/test #11 failed and no running build took the lock on",
		"held 5h, longer than the pool's 1h timeout",
		"0 stale", // the page shows the pools as the cycle left them
		"Queue 3 waiting, in the order they are served",
		"1 main/nightly/soak #90 any lock 1m",
		"2 main/deploy/test #42 any lock 7m",
		"3 main/deploy/smoke #8 lock env-2 3m",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q; it reads:\n%s", want, text)
		}
	}
	// Each lock's row is coloured by its verdict, and its age bar is as long as
	// its share of the timeout, capped at the whole track.
	for lock, want := range map[string]string{"env-2": "alive", "env-3": "held", "gpu-1": "held", "gpu-2": "broken", "box-1": "unwatched"} {
		m := regexp.MustCompile(`<tr class="v-(\w+)">\s*<td class="lock">` + lock + `</td>`).FindStringSubmatch(dom)
		if m == nil || m[1] != want {
			t.Errorf("row of %s: %v, want class v-%s", lock, m, want)
		}
	}
	for lock, width := range map[string]string{"env-2": "100%", "env-3": "33%", "gpu-1": "75%"} {
		re := regexp.MustCompile(`(?s)<td class="lock">` + lock + `</td>.*?class="fill" style="width: ([0-9]+%)"`)
		if m := re.FindStringSubmatch(dom); m == nil || m[1] != width {
			t.Errorf("age bar of %s: %v, want width %s", lock, m, width)
		}
	}
	// The queue's rows, in the order the tickets are served; the holder links to
	// its build.
	var order []string
	for _, m := range regexp.MustCompile(`<tr class="q-waiting" id="ticket-(\w+)">\s*<td class="pos">(\d+)</td>`).FindAllStringSubmatch(dom, -1) {
		order = append(order, m[2]+":"+m[1])
	}
	if got := strings.Join(order, " "); got != "1:third 2:first 3:second" {
		t.Errorf("queue rows %q, want 1:third 2:first 3:second", got)
	}
	if !strings.Contains(dom, `<a href="`+cc.URL+`/teams/main/pipelines/deploy/jobs/test/builds/42">main/deploy/test #42</a>`) {
		t.Errorf("the waiting build main/deploy/test #42 does not link to its build")
	}
	// /api/pools carries the same queue.
	code, body = d.get(t, "/api/pools")
	var api struct {
		Repos []struct {
			Status struct {
				Pools []struct {
					Name  string `json:"name"`
					Queue []struct {
						Position *int   `json:"position"`
						ID       string `json:"id"`
						Wants    string `json:"wants"`
					} `json:"queue"`
				} `json:"pools"`
			} `json:"status"`
		} `json:"repos"`
	}
	if err := json.Unmarshal([]byte(body), &api); code != 200 || err != nil || len(api.Repos) != 1 {
		t.Fatalf("GET /api/pools: %d %v\n%s", code, err, body)
	}
	var apiOrder []string
	for _, p := range api.Repos[0].Status.Pools {
		for _, q := range p.Queue {
			if q.Position != nil {
				apiOrder = append(apiOrder, fmt.Sprintf("%s %d:%s %s", p.Name, *q.Position, q.ID, q.Wants))
			}
		}
	}
	if got := strings.Join(apiOrder, ", "); got != "aws 1:third any lock, aws 2:first any lock, aws 3:second lock env-2" {
		t.Errorf("/api/pools queues: %s", got)
	}
	for _, freed := range []string{"env-1", "env-4"} {
		if strings.Contains(dom, `<td class="lock">`+freed+`</td>`) {
			t.Errorf("freed lock %s is still listed as claimed", freed)
		}
	}

	shot := filepath.Join(t.TempDir(), "status-page.png")
	chromium(t, d.srv.URL+"/", "--hide-scrollbars", "--window-size=1280,900", "--screenshot="+shot)
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	if len(png) < 1000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot: %d bytes, not a PNG", len(png))
	}
	if os.Getenv("POOLBOY_UPDATE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "status-page.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("updated docs/status-page.png")
	}
}

// Before a first successful cycle the page says so, and shows the last error,
// escaped.
func TestStatusPageBeforeAFirstCycle(t *testing.T) {
	cfg := &Config{Interval: 2 * time.Second, CacheDir: t.TempDir(), Repos: []Repo{{Name: "locks", URI: "/nowhere", Branch: "main"}}}
	d, err := New(cfg, Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	d.byName["locks"].lastErr = `git fetch: <script>alert(1)</script>`
	r := &running{Daemon: d, srv: httptest.NewServer(d.Handler())}
	defer r.srv.Close()
	code, body := r.get(t, "/")
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`, // the interval, but never under 5s
		"no successful cycle yet", "Waiting for the first successful cycle.",
		"Last cycle failed:</b> git fetch: &lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET /: %d, lacks %q:\n%s", code, want, body)
		}
	}
}
