package cli_test

// Scenario tests for the Concourse evidence: poolboy runs through cli.Main against a
// real lock repository (file://) and the one fake Concourse (internal/fakeconcourse),
// and each test checks the JSON (and some text) output AND the git remote: what was
// freed, and the trailers of the unclaiming commits.

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

const (
	ccAdmin   = "admin" // owner of team main: an admin, may read every team
	ccAdminPW = "admin-pw-6b0e"

	integration41 = "/api/v1/teams/main/pipelines/deploy/jobs/integration/builds/41" // env-1's build
	smoke7        = "/api/v1/teams/main/pipelines/deploy/jobs/smoke/builds/7"        // env-2's build
)

// rig is a lock repository (newLockRepo) and a fake Concourse with an admin user.
type rig struct {
	r     *lockRepo
	cc    *fakeconcourse.Server
	repo  string // file:// URL of the lock repository
	token string // a token of ccAdmin, as `fly login` would have stored it
}

func newRig(t *testing.T, opts []fakeconcourse.Option, extra ...fixture.Op) *rig {
	t.Helper()
	r := newLockRepo(t, "main", extra...)
	// The claims' Build URLs name https://ci.example.com: the fake says it is its external URL.
	cc := fakeconcourse.New(t, append([]fakeconcourse.Option{fakeconcourse.WithExternalURL(ccExternal)}, opts...)...)
	cc.AddUser(ccAdmin, ccAdminPW, "main")
	return &rig{r: r, cc: cc, repo: "file://" + r.dir, token: cc.Token(ccAdmin)}
}

// args is poolboy's command line against the rig: cmd, --repo, --concourse-url, extra.
func (g *rig) args(cmd string, extra ...string) []string {
	return append([]string{cmd, "--repo", g.repo, "--concourse-url", g.cc.URL}, extra...)
}

// env authenticates with the admin's token.
func (g *rig) env() map[string]string { return map[string]string{"CONCOURSE_TOKEN": g.token} }

// json runs cmd with --output json and the admin's token, wants exit 0, and decodes.
func (g *rig) json(t *testing.T, cmd string, extra ...string) (statusDoc, result) {
	t.Helper()
	res := mustRun(t, g.env(), g.args(cmd, append(extra, "--output", "json")...)...)
	return decodeStatus(t, res.stdout), res
}

// buildURL is the page poolboy links for build id.
func (g *rig) buildURL(id int) string { return g.cc.URL + "/builds/" + strconv.Itoa(id) }

// job adds a build of main/deploy/JOB named name.
func (g *rig) job(job, name, status string, io ...[]fakeconcourse.Version) int {
	b := fakeconcourse.Build{Pipeline: "deploy", Job: job, Name: name, Status: status}
	if len(io) > 0 {
		b.Inputs = io[0]
	}
	if len(io) > 1 {
		b.Outputs = io[1]
	}
	return g.cc.AddBuild(b)
}

// count is how many requests had method and path.
func count(reqs []fakeconcourse.Request, method, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// lock returns the JSON of pool/name.
func (d statusDoc) lock(t *testing.T, pool, name string) lockDoc {
	t.Helper()
	_, _, _, _, locks := d.pool(t, pool)
	l, ok := locks[name]
	if !ok {
		t.Fatalf("no lock %s/%s in the document", pool, name)
	}
	return l
}

// freed returns the unclaiming commit of pool/lock from the clean section, "" if none.
func (d statusDoc) freed(t *testing.T, pool, lock string) (commit, rule string) {
	t.Helper()
	if d.Clean == nil {
		t.Fatal("no clean section in the document")
	}
	for _, f := range d.Clean.Freed {
		if f.Pool == pool && f.Lock == lock {
			return f.Commit, f.Rule
		}
	}
	return "", ""
}

// wantLock checks a lock's verdict and rule, and that its warning is there or not.
func wantLock(t *testing.T, l lockDoc, verdict, rule string, warning bool) {
	t.Helper()
	if l.Verdict != verdict || l.Rule != rule {
		t.Errorf("%s: verdict %s rule %s (%s), want %s rule %s", l.Name, l.Verdict, l.Rule, l.Reason, verdict, rule)
	}
	if (l.Warning != "") != warning {
		t.Errorf("%s: warning %q, want one: %v", l.Name, l.Warning, warning)
	}
}

// wantBuild checks what the JSON says about a lock's build.
func wantBuild(t *testing.T, l lockDoc, want buildDoc) {
	t.Helper()
	if l.Build == nil {
		t.Errorf("%s: build is null, want %+v", l.Name, want)
		return
	}
	got := *l.Build
	if want.Error == "*" { // any error
		if got.Error == "" {
			t.Errorf("%s: build.error empty, want an error", l.Name)
		}
		got.Error = "*"
	}
	if got != want {
		t.Errorf("%s: build\n %+v\nwant\n %+v", l.Name, got, want)
	}
}

// inTree says whether rev:path exists in the remote.
func inTree(t *testing.T, r *lockRepo, rev, path string) bool {
	t.Helper()
	cmd := exec.Command("git", "cat-file", "-e", rev+":"+path)
	cmd.Dir = r.dir
	return cmd.Run() == nil
}

// wantClaimed checks on the remote's main branch which of pool's locks are claimed
// and which unclaimed.
func wantClaimed(t *testing.T, r *lockRepo, pool string, claimed, unclaimed []string) {
	t.Helper()
	for _, l := range claimed {
		if !inTree(t, r, "main", pool+"/claimed/"+l) || inTree(t, r, "main", pool+"/unclaimed/"+l) {
			t.Errorf("remote: %s/%s is not claimed", pool, l)
		}
	}
	for _, l := range unclaimed {
		if inTree(t, r, "main", pool+"/claimed/"+l) || !inTree(t, r, "main", pool+"/unclaimed/"+l) {
			t.Errorf("remote: %s/%s was not freed", pool, l)
		}
	}
}

// trailers are the commit's trailers as git itself parses them.
func trailers(t *testing.T, r *lockRepo, commit string) map[string]string {
	t.Helper()
	out := testenv.Git(t, r.dir, "log", "-1", "--format=%(trailers:only,unfold)", commit)
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			m[k] = v
		}
	}
	return m
}

// wantTrailers checks some trailers of commit; a value "" means the trailer must be absent.
func wantTrailers(t *testing.T, r *lockRepo, commit string, want map[string]string) {
	t.Helper()
	if commit == "" {
		t.Error("no unclaiming commit")
		return
	}
	got := trailers(t, r, commit)
	for k, v := range want {
		if g, ok := got[k]; (v == "" && ok) || (v != "" && g != v) {
			t.Errorf("commit %.10s: trailer %s = %q (present: %v), want %q; trailers %v", commit, k, g, ok, v, got)
		}
	}
}

// textRow runs status as text and returns the row of pool/lock and the whole output.
func (g *rig) textRow(t *testing.T, env map[string]string, pool, lock string, extra ...string) (string, result) {
	t.Helper()
	res := mustRun(t, env, g.args("status", extra...)...)
	line := row(textBlocks(res.stdout)[pool], lock)
	if line == "" {
		t.Fatalf("no row for %s/%s:\n%s", pool, lock, res.stdout)
	}
	return line, res
}

// 1. A lock whose build is running is kept whatever its age: here 10× its timeout.
func TestConcourseRunningBuildKeepsItsLock(t *testing.T) {
	t.Parallel()
	for _, status := range []string{"started", "pending"} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			g := newRig(t, nil)
			id := g.job("integration", "41", status)
			before := g.r.refs(t)

			d, _ := g.json(t, "clean", "--pools", "aws:30m") // env-1 is 5h old: 10× 30m
			l := d.lock(t, "aws", "env-1")
			wantLock(t, l, "alive", "build-running", false)
			wantBuild(t, l, buildDoc{Name: staleOwner, Status: status, URL: g.buildURL(id)})
			if l.AgeSeconds < int64((5*time.Hour-time.Minute)/time.Second) || !strings.Contains(l.Reason, status) {
				t.Errorf("env-1: age %ds reason %q", l.AgeSeconds, l.Reason)
			}
			// env-2's job is unknown to Concourse: 404, and 5m is within 30m.
			l2 := d.lock(t, "aws", "env-2")
			wantLock(t, l2, "held", "within-timeout", false)
			wantBuild(t, l2, buildDoc{Name: freshOwner, NotFound: true})
			if d.Clean == nil || len(d.Clean.Freed) != 0 {
				t.Errorf("clean freed %+v, want nothing", d.Clean)
			}
			if got := g.r.refs(t); got != before {
				t.Errorf("the remote changed:\n%s\n->\n%s", before, got)
			}
			wantClaimed(t, g.r, "aws", []string{"env-1", "env-2"}, nil)

			// Text: the BUILD column says the status, the build's page is listed.
			line, res := g.textRow(t, g.env(), "aws", "env-1", "--pools", "aws:30m")
			if f := strings.Fields(line); !strings.Contains(line, " "+status+" ") || !strings.Contains(line, " alive ") || len(f) < 6 {
				t.Errorf("text row: %q", line)
			}
			if !strings.Contains(res.stdout, "  env-1: "+g.buildURL(id)+"\n") {
				t.Errorf("text output does not link the build:\n%s", res.stdout)
			}
			if r2 := row(textBlocks(res.stdout)["aws"], "env-2"); !strings.Contains(r2, " not found ") {
				t.Errorf("text row for a 404: %q", r2)
			}
		})
	}
}

// 2. A failed, errored or aborted build's lock is freed at once, before its timeout;
// the unclaiming commit says so in its trailers.
func TestConcourseDeadBuildFreesItsLockAtOnce(t *testing.T) {
	t.Parallel()
	for _, status := range []string{"aborted", "failed", "errored"} {
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			g := newRig(t, nil)
			id := g.job("smoke", "7", status) // env-2, claimed 5m ago
			old := g.r.head(t, "main")

			d, res := g.json(t, "clean", "--pools", "aws:1h")
			l := d.lock(t, "aws", "env-2")
			wantLock(t, l, "stale", "build-"+status, false)
			wantBuild(t, l, buildDoc{Name: freshOwner, Status: status, URL: g.buildURL(id)})
			if l.AgeSeconds > 3600 {
				t.Errorf("env-2 is %ds old: the test wants it within its timeout", l.AgeSeconds)
			}
			// env-1's build is unknown (404): its 5h decide.
			l1 := d.lock(t, "aws", "env-1")
			wantLock(t, l1, "stale", "timeout", false)
			wantBuild(t, l1, buildDoc{Name: staleOwner, NotFound: true})

			commit, rule := d.freed(t, "aws", "env-2")
			if rule != "build-"+status {
				t.Errorf("freed env-2 with rule %q", rule)
			}
			wantTrailers(t, g.r, commit, map[string]string{
				"Poolboy-Rule":         "build-" + status,
				"Poolboy-Build-Status": status,
				"Poolboy-Build-URL":    g.buildURL(id),
				"Poolboy-Lock":         "env-2",
				"Poolboy-Owner":        freshOwner,
			})
			msg := testenv.Git(t, g.r.dir, "log", "-1", "--format=%B", commit)
			if !strings.Contains(msg, "Concourse:  "+freshOwner+" "+status+" "+g.buildURL(id)) {
				t.Errorf("message has no Concourse line:\n%s", msg)
			}
			c1, _ := d.freed(t, "aws", "env-1")
			wantTrailers(t, g.r, c1, map[string]string{"Poolboy-Rule": "timeout", "Poolboy-Build-Status": "", "Poolboy-Build-URL": ""})
			if m := testenv.Git(t, g.r.dir, "log", "-1", "--format=%B", c1); !strings.Contains(m, "Concourse:  "+staleOwner+": not found") {
				t.Errorf("env-1's message does not say its build is gone:\n%s", m)
			}
			wantClaimed(t, g.r, "aws", nil, []string{"env-1", "env-2"})
			if n := testenv.Git(t, g.r.dir, "rev-list", "--count", old+"..main"); n != "2" {
				t.Errorf("%s commits pushed, want 2", n)
			}
			_ = res
		})
	}
}

// 3. A lock handed off to a running build (which took the claim commit as an input)
// is kept; when that build ends, the owner's own status and the timeout decide.
func TestConcourseHandOff(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		owner     string // the claiming build's status
		afterRule string // env-1's rule once the hand-off is over (5h > 1h)
	}{
		{"succeeded", "timeout"},
		{"failed", "build-failed"},
	} {
		t.Run(c.owner, func(t *testing.T) {
			t.Parallel()
			g := newRig(t, nil)
			claim := g.r.commitWithMessage(t, "main", staleMsg)
			locks := []fakeconcourse.Version{{Resource: "locks", Ref: claim}}
			owner := g.job("integration", "41", c.owner, nil, locks)
			down := g.job("teardown", "1", "started", locks, nil)
			// Noise: a started build of another pipeline that took the same ref is no
			// hand-off (input_to is per pipeline), and neither is an older build.
			g.cc.AddBuild(fakeconcourse.Build{Pipeline: "other", Job: "x", Status: "started", Inputs: locks})
			before := g.r.refs(t)

			d, _ := g.json(t, "clean", "--pools", "aws:1h")
			l := d.lock(t, "aws", "env-1")
			wantLock(t, l, "alive", "handed-off", false)
			wantBuild(t, l, buildDoc{Name: staleOwner, Status: c.owner, URL: g.buildURL(owner), HandedOffTo: "main/deploy/teardown #1"})
			if !strings.Contains(l.Reason, "main/deploy/teardown #1") {
				t.Errorf("reason %q does not name the build it was handed to", l.Reason)
			}
			if _, rule := d.freed(t, "aws", "env-1"); rule != "" {
				t.Errorf("clean freed a handed-off lock (rule %s)", rule)
			}
			if got := g.r.refs(t); got != before {
				t.Errorf("the remote changed:\n%s\n->\n%s", before, got)
			}
			reqs := g.cc.Requests()
			for _, p := range []string{
				fmt.Sprintf("/api/v1/builds/%d/resources", owner),
				"/api/v1/teams/main/pipelines/deploy/resources/locks/versions",
			} {
				if count(reqs, "GET", p) != 1 {
					t.Errorf("want one GET %s; requests: %v", p, reqs)
				}
			}
			for _, r := range reqs {
				if strings.HasSuffix(r.Path, "/versions") {
					if q, _ := url.ParseQuery(r.RawQuery); q.Get("filter") != "ref:"+claim {
						t.Errorf("versions asked with %q, want filter=ref:%s", r.RawQuery, claim)
					}
				}
			}
			line, _ := g.textRow(t, g.env(), "aws", "env-1", "--pools", "aws:1h")
			if !strings.Contains(line, " alive ") || !strings.Contains(line, "teardown #1") {
				t.Errorf("text row: %q", line)
			}

			// The downstream build ends: nothing holds the lock any more.
			g.cc.SetStatus(down, "succeeded")
			d, _ = g.json(t, "clean", "--pools", "aws:1h")
			l = d.lock(t, "aws", "env-1")
			wantLock(t, l, "stale", c.afterRule, false)
			wantBuild(t, l, buildDoc{Name: staleOwner, Status: c.owner, URL: g.buildURL(owner)})
			commit, _ := d.freed(t, "aws", "env-1")
			wantTrailers(t, g.r, commit, map[string]string{
				"Poolboy-Rule": c.afterRule, "Poolboy-Build-Status": c.owner, "Poolboy-Build-URL": g.buildURL(owner),
			})
			wantClaimed(t, g.r, "aws", []string{"env-2"}, []string{"env-1"})
		})
	}

	// The owner put a later commit to the resource, and a running build took that one:
	// it did not take this claim, so there is no hand-off.
	t.Run("other ref", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, nil)
		other := []fakeconcourse.Version{{Resource: "locks", Ref: strings.Repeat("ab", 20)}}
		owner := g.job("integration", "41", "succeeded", nil, other)
		g.job("teardown", "1", "started", other, nil)
		d, _ := g.json(t, "clean", "--pools", "aws:1h")
		l := d.lock(t, "aws", "env-1")
		wantLock(t, l, "stale", "timeout", false)
		wantBuild(t, l, buildDoc{Name: staleOwner, Status: "succeeded", URL: g.buildURL(owner)})
		wantClaimed(t, g.r, "aws", []string{"env-2"}, []string{"env-1"})
	})
}

// 4. A succeeded build: the timeout decides, unless its pool is in --reap-on-success.
func TestConcourseSucceededBuild(t *testing.T) {
	t.Parallel()
	t.Run("timeout decides", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, nil)
		id41 := g.job("integration", "41", "succeeded")
		id7 := g.job("smoke", "7", "succeeded")
		d, _ := g.json(t, "clean", "--pools", "aws:1h")
		l1, l2 := d.lock(t, "aws", "env-1"), d.lock(t, "aws", "env-2")
		wantLock(t, l1, "stale", "timeout", false)
		wantBuild(t, l1, buildDoc{Name: staleOwner, Status: "succeeded", URL: g.buildURL(id41)})
		wantLock(t, l2, "held", "within-timeout", false)
		wantBuild(t, l2, buildDoc{Name: freshOwner, Status: "succeeded", URL: g.buildURL(id7)})
		if !strings.Contains(l2.Reason, "succeeded") {
			t.Errorf("env-2 reason %q does not say its build succeeded", l2.Reason)
		}
		commit, _ := d.freed(t, "aws", "env-1")
		wantTrailers(t, g.r, commit, map[string]string{"Poolboy-Rule": "timeout", "Poolboy-Build-Status": "succeeded", "Poolboy-Build-URL": g.buildURL(id41)})
		wantClaimed(t, g.r, "aws", []string{"env-2"}, []string{"env-1"})
	})
	t.Run("reap on success", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, nil)
		id41 := g.job("integration", "41", "succeeded")
		id7 := g.job("smoke", "7", "succeeded")
		d, _ := g.json(t, "clean", "--pools", "aws:1h,gpu:10h", "--reap-on-success", "aws")
		for lock, id := range map[string]int{"env-1": id41, "env-2": id7} {
			l := d.lock(t, "aws", lock)
			wantLock(t, l, "stale", "build-succeeded", false)
			commit, _ := d.freed(t, "aws", lock)
			wantTrailers(t, g.r, commit, map[string]string{"Poolboy-Rule": "build-succeeded", "Poolboy-Build-Status": "succeeded", "Poolboy-Build-URL": g.buildURL(id)})
		}
		wantClaimed(t, g.r, "aws", nil, []string{"env-1", "env-2"})
		wantClaimed(t, g.r, "gpu", []string{"gpu-a"}, nil)
	})
	t.Run("reap on success needs the pool in --pools", func(t *testing.T) {
		t.Parallel()
		g := newRig(t, nil)
		g.job("smoke", "7", "succeeded")
		before := g.r.refs(t)
		for _, args := range [][]string{
			g.args("clean", "--pools", "aws:1h", "--reap-on-success", "gpu"),
			g.args("clean", "--pools", "aws:1h", "--reap-on-success", "aws,nope"),
			g.args("status", "--reap-on-success", "aws"),
		} {
			res := run(t, g.env(), args...)
			wantUsageLine(t, res, "--reap-on-success")
		}
		if got := g.r.refs(t); got != before {
			t.Errorf("the remote changed")
		}
		if reqs := g.cc.Requests(); len(reqs) != 0 {
			t.Errorf("a usage error asked Concourse: %v", reqs)
		}
	})
}

// wantUsageLine checks a usage error: exit 2, nothing on stdout, one line on stderr.
func wantUsageLine(t *testing.T, res result, mentions ...string) {
	t.Helper()
	if res.code != cli.ExitUsage || res.stdout != "" ||
		!strings.HasPrefix(res.stderr, "poolboy: ") || strings.Count(res.stderr, "\n") != 1 || !strings.HasSuffix(res.stderr, "\n") {
		t.Errorf("want exit 2 and one line on stderr: %s", res)
	}
	for _, m := range mentions {
		if !strings.Contains(res.stderr, m) {
			t.Errorf("stderr does not mention %q: %q", m, res.stderr)
		}
	}
}

// 5. Every claim form names the right build: instanced pipelines (team/pipeline/{vars}
// and the v8 Build URL with ?vars.K=), pre-team claims (the --concourse-team, default
// main) and one-off builds by id.
func TestConcourseFindsTheRightBuild(t *testing.T) {
	t.Parallel()
	now := time.Now()
	at := func(d time.Duration) time.Time { return now.Add(-d) }
	const (
		instancedMsg = `main/deploy/{"env":"stage/eu"}/integration build 3 claiming: env-3`
		urlMsg       = "claiming: env-4\nBuild URL: https://ci.example.com/teams/main/pipelines/deploy/jobs/integration/builds/5?vars.env=%22stage%22"
		preTeamMsg   = "deploy/integration build 43 claiming: env-5"
	)
	extra := []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: at(4 * time.Minute)},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-5", At: at(4 * time.Minute)},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: at(3 * time.Minute), Message: instancedMsg},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-4", At: at(2 * time.Minute), Message: urlMsg},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-5", At: at(1 * time.Minute), Message: preTeamMsg},
	}
	setup := func(t *testing.T) (*rig, map[string]int) {
		g := newRig(t, nil, extra...)
		ids := map[string]int{}
		add := func(key string, b fakeconcourse.Build) { ids[key] = g.cc.AddBuild(b) }
		eu, stage := map[string]any{"env": "stage/eu"}, map[string]any{"env": "stage"}
		// The build each claim names, and decoys with the same job and name elsewhere.
		add("eu/3", fakeconcourse.Build{Pipeline: "deploy", Vars: eu, Job: "integration", Name: "3", Status: "started"})
		add("plain/3", fakeconcourse.Build{Pipeline: "deploy", Job: "integration", Name: "3", Status: "failed"})
		add("stage/5", fakeconcourse.Build{Pipeline: "deploy", Vars: stage, Job: "integration", Name: "5", Status: "aborted"})
		add("eu/5", fakeconcourse.Build{Pipeline: "deploy", Vars: eu, Job: "integration", Name: "5", Status: "started"})
		add("plain/5", fakeconcourse.Build{Pipeline: "deploy", Job: "integration", Name: "5", Status: "started"})
		add("main/43", fakeconcourse.Build{Pipeline: "deploy", Job: "integration", Name: "43", Status: "started"})
		add("ops/43", fakeconcourse.Build{Team: "ops", Pipeline: "deploy", Job: "integration", Name: "43", Status: "failed"})
		add("5512", fakeconcourse.Build{ID: 5512, Status: "errored"})
		return g, ids
	}
	const jobBuilds = "/api/v1/teams/main/pipelines/deploy/jobs/integration/builds/"
	wantVars := func(t *testing.T, reqs []fakeconcourse.Request, path, vars string) {
		t.Helper()
		n := 0
		for _, r := range reqs {
			if r.Path != path {
				continue
			}
			n++
			q, err := url.ParseQuery(r.RawQuery)
			if err != nil || q.Get("vars.env") != vars || len(q) != 1 {
				t.Errorf("GET %s?%s: want vars.env=%s and nothing else", r.Path, r.RawQuery, vars)
			}
		}
		if n != 1 {
			t.Errorf("%d requests for %s, want 1", n, path)
		}
	}

	t.Run("default team", func(t *testing.T) {
		t.Parallel()
		g, ids := setup(t)
		d, _ := g.json(t, "status", "--pools", "aws:1h,gpu:10h")
		wantLock(t, d.lock(t, "aws", "env-3"), "alive", "build-running", false)
		wantBuild(t, d.lock(t, "aws", "env-3"), buildDoc{Name: `main/deploy/{"env":"stage/eu"}/integration #3`, Status: "started", URL: g.buildURL(ids["eu/3"])})
		wantLock(t, d.lock(t, "aws", "env-4"), "stale", "build-aborted", false)
		wantBuild(t, d.lock(t, "aws", "env-4"), buildDoc{Name: `main/deploy/{"env":"stage"}/integration #5`, Status: "aborted", URL: g.buildURL(ids["stage/5"])})
		wantLock(t, d.lock(t, "aws", "env-5"), "alive", "build-running", false)
		wantBuild(t, d.lock(t, "aws", "env-5"), buildDoc{Name: "main/deploy/integration #43", Status: "started", URL: g.buildURL(ids["main/43"])})
		wantLock(t, d.lock(t, "gpu", "gpu-a"), "stale", "build-errored", false)
		wantBuild(t, d.lock(t, "gpu", "gpu-a"), buildDoc{Name: oneOff, Status: "errored", URL: g.buildURL(5512)})

		reqs := g.cc.Requests()
		wantVars(t, reqs, jobBuilds+"3", `"stage/eu"`)
		wantVars(t, reqs, jobBuilds+"5", `"stage"`)
		if count(reqs, "GET", jobBuilds+"43") != 1 || count(reqs, "GET", "/api/v1/teams/ops/pipelines/deploy/jobs/integration/builds/43") != 0 {
			t.Errorf("the pre-team claim was not looked up in team main alone: %v", reqs)
		}
		if count(reqs, "GET", "/api/v1/builds/5512") != 1 || count(reqs, "GET", "/api/v1/builds/5512/resources") != 0 {
			t.Errorf("one-off build: want GET /api/v1/builds/5512 and no hand-off lookup: %v", reqs)
		}
		for _, r := range reqs {
			if r.Status != 200 && r.Status != 404 {
				t.Errorf("request %s %s?%s answered %d", r.Method, r.Path, r.RawQuery, r.Status)
			}
		}
	})
	t.Run("--concourse-team", func(t *testing.T) {
		t.Parallel()
		g, ids := setup(t)
		d, _ := g.json(t, "clean", "--pools", "aws:1h,gpu:10h", "--concourse-team", "ops")
		l := d.lock(t, "aws", "env-5")
		// A pre-team claim's failed build may be another's: kept until the timeout.
		wantLock(t, l, "held", "within-timeout", false)
		wantBuild(t, l, buildDoc{Name: "ops/deploy/integration #43", Status: "failed", URL: g.buildURL(ids["ops/43"])})
		reqs := g.cc.Requests()
		if count(reqs, "GET", "/api/v1/teams/ops/pipelines/deploy/jobs/integration/builds/43") != 1 || count(reqs, "GET", jobBuilds+"43") != 0 {
			t.Errorf("the pre-team claim was not looked up in team ops alone: %v", reqs)
		}
		// Claims that name their team keep it.
		wantLock(t, d.lock(t, "aws", "env-3"), "alive", "build-running", false)
		// Freed: the aborted instanced build, the errored one-off build, and env-1
		// (404, 5h); the rest stays, the failed pre-team build's too.
		for pool, locks := range map[string][]string{"aws": {"env-1", "env-4"}, "gpu": {"gpu-a"}} {
			wantClaimed(t, g.r, pool, nil, locks)
		}
		wantClaimed(t, g.r, "aws", []string{"env-2", "env-3", "env-5"}, nil)
		c4, _ := d.freed(t, "aws", "env-4")
		wantTrailers(t, g.r, c4, map[string]string{"Poolboy-Rule": "build-aborted", "Poolboy-Build-URL": g.buildURL(ids["stage/5"])})
		cg, _ := d.freed(t, "gpu", "gpu-a")
		wantTrailers(t, g.r, cg, map[string]string{"Poolboy-Rule": "build-errored", "Poolboy-Build-Status": "errored", "Poolboy-Build-URL": g.buildURL(5512)})
	})
}

// 6. A build or pipeline Concourse does not know (404) leaves it to the timeout.
func TestConcourseGoneBuildLeavesItToTheTimeout(t *testing.T) {
	t.Parallel()
	g := newRig(t, nil)
	id41 := g.job("integration", "41", "started")
	id7 := g.job("smoke", "7", "started")
	d, _ := g.json(t, "status", "--pools", "aws:1h")
	wantBuild(t, d.lock(t, "aws", "env-1"), buildDoc{Name: staleOwner, Status: "started", URL: g.buildURL(id41)})
	wantBuild(t, d.lock(t, "aws", "env-2"), buildDoc{Name: freshOwner, Status: "started", URL: g.buildURL(id7)})

	g.cc.DeletePipeline("main", "deploy", nil)
	n := len(g.cc.Requests())
	d, res := g.json(t, "clean", "--pools", "aws:1h")
	l1, l2 := d.lock(t, "aws", "env-1"), d.lock(t, "aws", "env-2")
	wantLock(t, l1, "stale", "timeout", false)
	wantBuild(t, l1, buildDoc{Name: staleOwner, NotFound: true})
	wantLock(t, l2, "held", "within-timeout", false)
	wantBuild(t, l2, buildDoc{Name: freshOwner, NotFound: true})
	if strings.Contains(res.stderr, "level=WARN") {
		t.Errorf("a 404 is no warning:\n%s", res.stderr)
	}
	commit, _ := d.freed(t, "aws", "env-1")
	wantTrailers(t, g.r, commit, map[string]string{"Poolboy-Rule": "timeout", "Poolboy-Build-Status": "", "Poolboy-Build-URL": ""})
	wantClaimed(t, g.r, "aws", []string{"env-2"}, []string{"env-1"})
	for _, r := range g.cc.Requests()[n:] {
		if r.Status != 404 && r.Path != "/api/v1/info" {
			t.Errorf("after the pipeline was deleted: %s %s answered %d", r.Method, r.Path, r.Status)
		}
	}

	// A build Concourse never had, in a team it does not know.
	g2 := newRig(t, nil)
	d, _ = g2.json(t, "status", "--pools", "aws:1h")
	wantLock(t, d.lock(t, "aws", "env-1"), "stale", "timeout", false)
	wantBuild(t, d.lock(t, "aws", "env-1"), buildDoc{Name: staleOwner, NotFound: true})
	wantLock(t, d.lock(t, "aws", "env-2"), "held", "within-timeout", false)
	line, _ := g2.textRow(t, g2.env(), "aws", "env-1", "--pools", "aws:1h")
	if !strings.Contains(line, " not found ") || !strings.Contains(line, " stale ") {
		t.Errorf("text row: %q", line)
	}
}

// 7. When Concourse cannot answer, the timeouts decide as if there were no Concourse,
// with a warning: an error is never evidence, neither of death nor of life.
func TestConcourseFailureFallsBackToTimeouts(t *testing.T) {
	t.Parallel()
	type fault struct {
		name  string
		setup func(t *testing.T, g *rig) (env map[string]string, ccURL string)
		slow  bool
	}
	withFault := func(f fakeconcourse.Fault) func(*testing.T, *rig) (map[string]string, string) {
		return func(_ *testing.T, g *rig) (map[string]string, string) {
			g.cc.SetFault(f)
			return g.env(), g.cc.URL
		}
	}
	faults := []fault{
		{name: "500", setup: withFault(fakeconcourse.Fault{Status: 500, Body: "internal error"})},
		{name: "502 empty", setup: withFault(fakeconcourse.Fault{Status: 502})},
		{name: "garbage JSON", setup: withFault(fakeconcourse.Fault{Status: 200, Body: "garbage"})},
		{name: "JSON that is no build", setup: withFault(fakeconcourse.Fault{Status: 200, Body: "{}"})},
		{name: "invalid token 401", setup: func(_ *testing.T, g *rig) (map[string]string, string) {
			return map[string]string{"CONCOURSE_TOKEN": "not-a-token"}, g.cc.URL
		}},
		{name: "user not in team 403", setup: func(_ *testing.T, g *rig) (map[string]string, string) {
			g.cc.AddUser("outsider", "outsider-pw", "other")
			return map[string]string{"CONCOURSE_TOKEN": g.cc.Token("outsider")}, g.cc.URL
		}},
		{name: "wrong password", setup: func(_ *testing.T, g *rig) (map[string]string, string) {
			return map[string]string{"CONCOURSE_USERNAME": ccAdmin, "CONCOURSE_PASSWORD": "wrong-pw"}, g.cc.URL
		}},
		{name: "nothing listening", setup: func(t *testing.T, g *rig) (map[string]string, string) {
			return g.env(), fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
		}},
		{name: "slow", slow: true, setup: withFault(fakeconcourse.Fault{Delay: time.Minute})},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			if f.slow && testing.Short() {
				t.Skip("waits for the 10s request timeout")
			}
			t.Parallel()
			g := newRig(t, nil)
			g.job("integration", "41", "started") // would keep env-1, if Concourse could say so
			g.job("smoke", "7", "failed")         // would free env-2, if Concourse could say so
			env, ccURL := f.setup(t, g)
			args := []string{"clean", "--repo", g.repo, "--concourse-url", ccURL, "--pools", "aws:1h", "--output", "json"}

			start := time.Now()
			res := run(t, env, args...)
			took := time.Since(start)
			if res.code != cli.ExitOK {
				t.Fatalf("%s", res)
			}
			if f.slow && took > 30*time.Second {
				t.Errorf("a slow Concourse delayed the run by %v", took)
			}
			d := decodeStatus(t, res.stdout)
			l1, l2 := d.lock(t, "aws", "env-1"), d.lock(t, "aws", "env-2")
			wantLock(t, l1, "stale", "timeout", true)
			wantLock(t, l2, "held", "within-timeout", true)
			for _, l := range []lockDoc{l1, l2} {
				if l.Build == nil || l.Build.Error == "" || l.Build.Status != "" || l.Build.NotFound {
					t.Errorf("%s: build %+v, want an error and no status", l.Name, l.Build)
				}
			}
			if !strings.Contains(l1.Reason, "only the timeout decides") {
				t.Errorf("env-1 reason %q", l1.Reason)
			}
			if !strings.Contains(res.stderr, "level=WARN") || !strings.Contains(res.stderr, "timeout decides") {
				t.Errorf("no warning on stderr:\n%s", res.stderr)
			}
			commit, _ := d.freed(t, "aws", "env-1")
			wantTrailers(t, g.r, commit, map[string]string{"Poolboy-Rule": "timeout", "Poolboy-Build-Status": "", "Poolboy-Build-URL": ""})
			if m := testenv.Git(t, g.r.dir, "log", "-1", "--format=%B", commit); !strings.Contains(m, "Concourse:  "+staleOwner+": no answer (") {
				t.Errorf("message does not say Concourse gave no answer:\n%s", m)
			}
			wantClaimed(t, g.r, "aws", []string{"env-2"}, []string{"env-1"})
			if f.slow {
				return
			}
			// Text: the BUILD column and the warning lines.
			line, tres := g.textRow(t, env, "aws", "env-2", "--concourse-url", ccURL, "--pools", "aws:1h")
			if !strings.Contains(line, " no answer ") || !strings.Contains(line, " held ") {
				t.Errorf("text row: %q", line)
			}
			if !strings.Contains(tres.stdout, "  warning: env-2: ") {
				t.Errorf("text output has no warning for env-2:\n%s", tres.stdout)
			}
		})
	}
}

// 8. One lookup per distinct build per run, however many locks it holds and in
// whichever form its claims name it; one token per run.
func TestConcourseOneLookupPerBuild(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const (
		sameBuildMsg = "main/deploy/integration build 41 claiming: env-3"
		sameByURLMsg = "claiming: env-4\nBuild URL: " + ccExternal + "/teams/main/pipelines/deploy/jobs/integration/builds/41"
	)
	g := newRig(t, nil,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: now.Add(-4 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: now.Add(-3 * time.Minute), Message: sameBuildMsg},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-4", At: now.Add(-2 * time.Minute), Message: sameByURLMsg},
	)
	const bot, botPW = "bot", "bot-pw-91c2"
	g.cc.AddUser(bot, botPW, "main")
	claim1 := g.r.commitWithMessage(t, "main", staleMsg)
	id41 := g.job("integration", "41", "succeeded", nil, []fakeconcourse.Version{{Resource: "locks", Ref: claim1}})
	g.job("smoke", "7", "started")
	g.cc.AddBuild(fakeconcourse.Build{ID: 5512, Status: "succeeded"})

	env := map[string]string{"CONCOURSE_USERNAME": bot, "CONCOURSE_PASSWORD": botPW}
	res := mustRun(t, env, g.args("clean", "--pools", "aws:1h,gpu:1h", "--output", "json")...)
	d := decodeStatus(t, res.stdout)
	for _, lock := range []string{"env-1", "env-3", "env-4"} {
		wantBuild(t, d.lock(t, "aws", lock), buildDoc{Name: staleOwner, Status: "succeeded", URL: g.buildURL(id41)})
	}
	wantLock(t, d.lock(t, "aws", "env-1"), "stale", "timeout", false)
	wantLock(t, d.lock(t, "aws", "env-3"), "held", "within-timeout", false)
	wantLock(t, d.lock(t, "aws", "env-2"), "alive", "build-running", false)
	wantLock(t, d.lock(t, "gpu", "gpu-a"), "stale", "timeout", false)
	wantClaimed(t, g.r, "aws", []string{"env-2", "env-3", "env-4"}, []string{"env-1"})

	reqs := g.cc.Requests()
	for path, want := range map[string]int{
		integration41:         1,
		smoke7:                1,
		"/api/v1/builds/5512": 1,
		fmt.Sprintf("/api/v1/builds/%d/resources", id41):               1,
		"/api/v1/teams/main/pipelines/deploy/resources/locks/versions": 1, // env-1's claim only
	} {
		if got := count(reqs, "GET", path); got != want {
			t.Errorf("GET %s: %d requests, want %d", path, got, want)
		}
	}
	if n := count(reqs, "POST", "/sky/issuer/token"); n != 1 || g.cc.TokensIssued() != 1 {
		t.Errorf("logins: %d token requests, %d tokens issued; want 1 each", n, g.cc.TokensIssued())
	}
	for _, r := range reqs {
		if r.User != bot {
			t.Errorf("%s %s as %q, want %q", r.Method, r.Path, r.User, bot)
		}
	}
}

// writeFlyrc writes FLY_HOME/.flyrc with one target and returns FLY_HOME.
func writeFlyrc(t *testing.T, target, api, team, token, extra string) string {
	t.Helper()
	home := t.TempDir()
	rc := fmt.Sprintf("targets:\n  %s:\n    api: %s\n    team: %s\n    token:\n      type: bearer\n      value: %s\n%s", target, api, team, token, extra)
	if err := os.WriteFile(filepath.Join(home, ".flyrc"), []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	return home
}

// writeFile writes data to a new file and returns its path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}

// 9. Every way to authenticate and to trust Concourse's certificate.
func TestConcourseAuthAndTLS(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const preTeamMsg = "deploy/integration build 43 claiming: env-3"
	preTeam := fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: now.Add(-2 * time.Hour), Message: preTeamMsg}

	type authCase struct {
		name  string
		opts  []fakeconcourse.Option
		setup func(t *testing.T, g *rig) (env map[string]string, args []string)
		check func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request)
	}
	alive := func(t *testing.T, d statusDoc) {
		t.Helper()
		wantLock(t, d.lock(t, "aws", "env-1"), "alive", "build-running", false)
	}
	noLogin := func(t *testing.T, reqs []fakeconcourse.Request) {
		t.Helper()
		for _, r := range reqs {
			if strings.HasPrefix(r.Path, "/sky/") {
				t.Errorf("logged in with a token given: %s %s", r.Method, r.Path)
			}
		}
	}
	userEnv := map[string]string{"CONCOURSE_USERNAME": ccAdmin, "CONCOURSE_PASSWORD": ccAdminPW}
	cases := []authCase{
		{name: "password", setup: func(t *testing.T, g *rig) (map[string]string, []string) {
			return userEnv, g.args("status")
		}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
			alive(t, d)
			if count(reqs, "POST", "/sky/issuer/token") != 1 || count(reqs, "POST", "/sky/token") != 0 || g.cc.TokensIssued() != 1 {
				t.Errorf("want one login at /sky/issuer/token: %v", reqs)
			}
		}},
		{name: "password flags", setup: func(t *testing.T, g *rig) (map[string]string, []string) {
			return nil, g.args("status", "--concourse-username", ccAdmin, "--concourse-password", ccAdminPW)
		}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
			alive(t, d)
			if g.cc.TokensIssued() != 1 {
				t.Errorf("tokens issued: %d", g.cc.TokensIssued())
			}
		}},
		{name: "legacy server", opts: []fakeconcourse.Option{fakeconcourse.WithLegacyAuth()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) { return userEnv, g.args("status") },
			check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
				alive(t, d)
				if len(reqs) < 2 || reqs[0].Path != "/sky/issuer/token" || reqs[0].Status != 404 ||
					reqs[1].Path != "/sky/token" || reqs[1].Status != 200 || g.cc.TokensIssued() != 1 {
					t.Errorf("want /sky/issuer/token 404 then /sky/token 200: %v", reqs)
				}
				if count(reqs, "POST", "/sky/token") != 1 {
					t.Errorf("want one legacy login: %v", reqs)
				}
			}},
		{name: "token flag", setup: func(t *testing.T, g *rig) (map[string]string, []string) {
			return nil, g.args("status", "--concourse-token", g.token)
		}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
			alive(t, d)
			noLogin(t, reqs)
			for _, r := range reqs {
				if r.User != ccAdmin {
					t.Errorf("%s %s as %q", r.Method, r.Path, r.User)
				}
			}
		}},
		{name: "fly target", setup: func(t *testing.T, g *rig) (map[string]string, []string) {
			home := writeFlyrc(t, "ci", g.cc.URL, "ops", g.token, "")
			return map[string]string{"FLY_HOME": home}, []string{"status", "--repo", g.repo, "--fly-target", "ci"}
		}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
			alive(t, d)
			noLogin(t, reqs)
			// The target's team is the team of pre-team claims.
			wantLock(t, d.lock(t, "aws", "env-3"), "alive", "build-running", false)
			if count(reqs, "GET", "/api/v1/teams/ops/pipelines/deploy/jobs/integration/builds/43") != 1 {
				t.Errorf("the pre-team claim was not looked up in the target's team: %v", reqs)
			}
		}},
		{name: "fly target, --concourse-team wins", setup: func(t *testing.T, g *rig) (map[string]string, []string) {
			home := writeFlyrc(t, "ci", g.cc.URL, "ops", g.token, "")
			return map[string]string{"FLY_HOME": home}, []string{"status", "--repo", g.repo, "--fly-target", "ci", "--concourse-team", "main"}
		}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
			// A pre-team claim's failed build may be another team's: only the timeout frees it.
			wantLock(t, d.lock(t, "aws", "env-3"), "stale", "timeout", false)
			if count(reqs, "GET", "/api/v1/teams/main/pipelines/deploy/jobs/integration/builds/43") != 1 {
				t.Errorf("the pre-team claim was not looked up in --concourse-team: %v", reqs)
			}
		}},
		{name: "fly target, --concourse-url and --concourse-token win", setup: func(t *testing.T, g *rig) (map[string]string, []string) {
			home := writeFlyrc(t, "ci", fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)), "ops", "stale-token", "")
			return map[string]string{"FLY_HOME": home}, g.args("status", "--fly-target", "ci", "--concourse-token", g.token)
		}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
			alive(t, d)
			wantLock(t, d.lock(t, "aws", "env-3"), "alive", "build-running", false) // still the target's team
			if !strings.HasPrefix(d.lock(t, "aws", "env-1").Build.URL, g.cc.URL+"/builds/") {
				t.Errorf("build URL %q", d.lock(t, "aws", "env-1").Build.URL)
			}
		}},
		{name: "fly target with ca_cert", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				ca := "    ca_cert: |\n" + indent(string(g.cc.CACertPEM()), "      ") + "\n"
				home := writeFlyrc(t, "ci", g.cc.URL, "ops", g.token, ca)
				return map[string]string{"FLY_HOME": home}, []string{"status", "--repo", g.repo, "--fly-target", "ci"}
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) { alive(t, d) }},
		{name: "fly target insecure", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				home := writeFlyrc(t, "ci", g.cc.URL, "ops", g.token, "    insecure: true\n")
				return map[string]string{"FLY_HOME": home}, []string{"status", "--repo", g.repo, "--fly-target", "ci"}
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) { alive(t, d) }},
		{name: "fly target insecure, overridden by --concourse-insecure=false", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				home := writeFlyrc(t, "ci", g.cc.URL, "ops", g.token, "    insecure: true\n")
				return map[string]string{"FLY_HOME": home}, []string{"status", "--repo", g.repo, "--fly-target", "ci", "--concourse-insecure=false"}
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
				if l := d.lock(t, "aws", "env-1"); l.Build == nil || !strings.Contains(l.Build.Error+l.Warning, "certificate") {
					t.Errorf("the certificate was not checked: %+v %q", l.Build, l.Warning)
				}
			}},
		{name: "fly target insecure, overridden by CONCOURSE_INSECURE=false", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				home := writeFlyrc(t, "ci", g.cc.URL, "ops", g.token, "    insecure: true\n")
				return map[string]string{"FLY_HOME": home, "CONCOURSE_INSECURE": "false"}, []string{"status", "--repo", g.repo, "--fly-target", "ci"}
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
				if l := d.lock(t, "aws", "env-1"); l.Build == nil || !strings.Contains(l.Build.Error+l.Warning, "certificate") {
					t.Errorf("the certificate was not checked: %+v %q", l.Build, l.Warning)
				}
			}},
		{name: "TLS with --concourse-ca-cert", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				return userEnv, g.args("status", "--concourse-ca-cert", writeFile(t, "ca.pem", g.cc.CACertPEM()))
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
				alive(t, d)
				if !strings.HasPrefix(g.cc.URL, "https://") || g.cc.TokensIssued() != 1 {
					t.Errorf("URL %s, tokens %d", g.cc.URL, g.cc.TokensIssued())
				}
			}},
		{name: "TLS with --concourse-insecure", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				return userEnv, g.args("status", "--concourse-insecure")
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) { alive(t, d) }},
		{name: "TLS not trusted", opts: []fakeconcourse.Option{fakeconcourse.WithTLS()},
			setup: func(t *testing.T, g *rig) (map[string]string, []string) {
				return userEnv, g.args("clean")
			}, check: func(t *testing.T, g *rig, d statusDoc, reqs []fakeconcourse.Request) {
				l := d.lock(t, "aws", "env-1")
				wantLock(t, l, "stale", "timeout", true)
				if l.Build == nil || !strings.Contains(l.Build.Error+l.Warning, "certificate") {
					t.Errorf("the warning does not name the certificate problem: %+v %q", l.Build, l.Warning)
				}
				// env-3's pre-team claim is 2h old: the timeout frees it too.
				wantClaimed(t, g.r, "aws", []string{"env-2"}, []string{"env-1", "env-3"})
				for _, r := range reqs {
					if r.Status != 0 {
						t.Errorf("a request got through an untrusted certificate: %+v", r)
					}
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			g := newRig(t, c.opts, preTeam)
			g.job("integration", "41", "started")
			g.job("integration", "43", "failed") // main: the default team's
			g.cc.AddBuild(fakeconcourse.Build{Team: "ops", Pipeline: "deploy", Job: "integration", Name: "43", Status: "started"})
			env, args := c.setup(t, g)
			args = append(args, "--pools", "aws:1h", "--output", "json")
			res := run(t, env, args...)
			if res.code != cli.ExitOK {
				t.Fatalf("%s", res)
			}
			c.check(t, g, decodeStatus(t, res.stdout), g.cc.Requests())
		})
	}
}

// 10. Concourse passwords and tokens, and the repository's password, never show up:
// not in output, verbose logs, commits, nor in any URL sent to Concourse.
func TestConcourseSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const (
		ccCanary    = "cc-canary-pw-4e1d77"
		tokCanary   = "cc-canary-token-a93f02"
		repoCanary  = "repo-canary-pw-5c20b8"
		wrongCanary = "cc-canary-wrong-pw-0d8e"
		bot         = "bot"
	)
	g := newRig(t, nil)
	g.cc.AddUser(bot, ccCanary, "main")
	validTok := g.cc.Token(bot) // a real token is a secret too
	g.job("integration", "41", "failed")
	g.job("smoke", "7", "started")
	srv := testenv.GitHTTP(t, g.r.root, httpUser, repoCanary)
	repo := srv.URL + "locks.git"
	repoEnv := map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": repoCanary}
	flyHome := writeFlyrc(t, "ci", g.cc.URL, "main", validTok, "")
	secrets := []string{ccCanary, tokCanary, repoCanary, wrongCanary, validTok}

	base := func(cmd string, extra ...string) []string {
		return append([]string{cmd, "--repo", repo, "--concourse-url", g.cc.URL, "--pools", "aws:1h", "--verbose"}, extra...)
	}
	runs := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"password env, status text", merge(repoEnv, map[string]string{"CONCOURSE_USERNAME": bot, "CONCOURSE_PASSWORD": ccCanary}), base("status")},
		{"password flag, status json", repoEnv, base("status", "--concourse-username", bot, "--concourse-password", ccCanary, "--output", "json")},
		{"wrong password", merge(repoEnv, map[string]string{"CONCOURSE_USERNAME": bot, "CONCOURSE_PASSWORD": wrongCanary}), base("status", "--output", "json")},
		{"invalid token env", merge(repoEnv, map[string]string{"CONCOURSE_TOKEN": tokCanary}), base("status")},
		{"invalid token flag", repoEnv, base("status", "--concourse-token", tokCanary, "--output", "json")},
		{"valid token env", merge(repoEnv, map[string]string{"CONCOURSE_TOKEN": validTok}), base("status")},
		{"fly target", merge(repoEnv, map[string]string{"FLY_HOME": flyHome}), []string{"status", "--repo", repo, "--fly-target", "ci", "--verbose"}},
		{"clean with password", merge(repoEnv, map[string]string{"CONCOURSE_USERNAME": bot, "CONCOURSE_PASSWORD": ccCanary}), base("clean")},
	}
	old := g.r.head(t, "main")
	for _, c := range runs {
		res := mustRun(t, c.env, c.args...)
		if !strings.Contains(res.stderr, "level=DEBUG") || !strings.Contains(res.stderr, "concourse request") {
			t.Errorf("%s: --verbose logged no Concourse requests:\n%s", c.name, res.stderr)
		}
		for _, s := range secrets {
			if strings.Contains(res.stdout, s) || strings.Contains(res.stderr, s) {
				t.Errorf("%s: secret %q leaked:\n%s", c.name, s, res)
			}
		}
	}
	if g.r.head(t, "main") == old {
		t.Fatal("clean freed nothing: the failed build's lock should have gone")
	}
	log := testenv.Git(t, g.r.dir, "log", "--all", "--format=raw")
	for _, s := range secrets {
		if strings.Contains(log, s) {
			t.Errorf("secret %q is in the repository's history", s)
		}
	}
	for _, r := range g.cc.Requests() {
		for _, s := range secrets {
			if strings.Contains(r.RawQuery, s) || strings.Contains(r.Path, s) {
				t.Errorf("secret %q in a URL sent to Concourse: %s?%s", s, r.Path, r.RawQuery)
			}
		}
	}
}

// Contradictory or incomplete Concourse settings are bad usage: exit 2, one line, and
// nothing contacted, neither Concourse nor the repository.
func TestConcourseBadUsage(t *testing.T) {
	t.Parallel()
	const canary = "cc-canary-pw-usage-71b3"
	g := newRig(t, nil)
	srv := testenv.GitHTTP(t, g.r.root, httpUser, httpPass)
	repo := srv.URL + "locks.git"
	repoEnv := map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": httpPass}
	notPEM := writeFile(t, "ca.pem", []byte("not a certificate\n"))
	flyHome := writeFlyrc(t, "ci", g.cc.URL, "main", g.token, "")

	cases := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{name: "username without password", args: []string{"--concourse-url", g.cc.URL, "--concourse-username", "bot"}, want: []string{"--concourse-password"}},
		{name: "username without password, env", env: map[string]string{"CONCOURSE_USERNAME": "bot"}, args: []string{"--concourse-url", g.cc.URL}, want: []string{"--concourse-password"}},
		{name: "password without username", env: map[string]string{"CONCOURSE_PASSWORD": canary}, args: []string{"--concourse-url", g.cc.URL}, want: []string{"--concourse-username"}},
		{name: "token and username", env: map[string]string{"CONCOURSE_PASSWORD": canary, "CONCOURSE_TOKEN": canary},
			args: []string{"--concourse-url", g.cc.URL, "--concourse-username", "bot"}, want: []string{"not both"}},
		{name: "credentials without URL", env: map[string]string{"CONCOURSE_USERNAME": "bot", "CONCOURSE_PASSWORD": canary}, want: []string{"--concourse-url"}},
		{name: "token without URL", env: map[string]string{"CONCOURSE_TOKEN": canary}, want: []string{"--concourse-url"}},
		{name: "reap on success of a pool not in --pools", args: []string{"--concourse-url", g.cc.URL, "--reap-on-success", "gpu"}, want: []string{"gpu"}},
		{name: "URL not http", env: map[string]string{"CONCOURSE_TOKEN": canary}, args: []string{"--concourse-url", "ftp://ci.example.com"}, want: []string{"scheme"}},
		{name: "URL with a password", env: map[string]string{"CONCOURSE_TOKEN": g.token}, args: []string{"--concourse-url", "https://bot:" + canary + "@ci.example.com"}, want: []string{"credentials"}},
		{name: "CA cert missing", env: map[string]string{"CONCOURSE_TOKEN": g.token}, args: []string{"--concourse-url", g.cc.URL, "--concourse-ca-cert", "/nonexistent/ca.pem"}, want: []string{"/nonexistent/ca.pem"}},
		{name: "CA cert not PEM", env: map[string]string{"CONCOURSE_TOKEN": g.token}, args: []string{"--concourse-url", g.cc.URL, "--concourse-ca-cert", notPEM}, want: []string{"PEM"}},
		{name: "unknown fly target", env: map[string]string{"FLY_HOME": flyHome}, args: []string{"--fly-target", "nope"}, want: []string{`"nope"`, "ci"}},
		{name: "no flyrc", env: map[string]string{"FLY_HOME": t.TempDir()}, args: []string{"--fly-target", "ci"}, want: []string{".flyrc"}},
	}
	// Serial: the request counts must be this case's alone.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, gitReqs, ccReqs := g.r.refs(t), fmt.Sprint(srv.Requests()), len(g.cc.Requests())
			args := append([]string{"clean", "--repo", repo, "--pools", "aws:1h"}, c.args...)
			res := run(t, merge(repoEnv, c.env), args...)
			wantUsageLine(t, res, c.want...)
			if strings.Contains(res.stderr, canary) {
				t.Errorf("stderr shows the secret: %q", res.stderr)
			}
			if got := g.r.refs(t); got != before {
				t.Errorf("the remote changed")
			}
			if n := len(g.cc.Requests()); n != ccReqs {
				t.Errorf("a usage error asked Concourse: %v", g.cc.Requests()[ccReqs:])
			}
			if got := fmt.Sprint(srv.Requests()); got != gitReqs {
				t.Errorf("a usage error contacted the git server first: requests %s -> %s", gitReqs, got)
			}
		})
	}
}

// Without Concourse nothing is asked and the JSON says so (build null, BUILD "-");
// with Concourse, a claim that names no build is not asked about either.
func TestConcourseOnlyAskedAboutNamedBuilds(t *testing.T) {
	t.Parallel()
	now := time.Now()
	g := newRig(t, nil, fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: now.Add(-2 * time.Hour)}) // "claiming: env-3"
	g.job("integration", "41", "started")

	res := mustRun(t, nil, "status", "--repo", g.repo, "--pools", "aws:1h", "--output", "json")
	d := decodeStatus(t, res.stdout)
	for _, lock := range []string{"env-1", "env-2", "env-3"} {
		if l := d.lock(t, "aws", lock); l.Build != nil || l.Warning != "" {
			t.Errorf("%s without Concourse: build %+v warning %q", lock, l.Build, l.Warning)
		}
	}
	wantLock(t, d.lock(t, "aws", "env-1"), "stale", "timeout", false)
	res = mustRun(t, nil, "status", "--repo", g.repo, "--pools", "aws:1h")
	if f := strings.Fields(row(textBlocks(res.stdout)["aws"], "env-1")); len(f) < 9 || f[7] != "-" {
		t.Errorf("BUILD column without Concourse: %q", row(textBlocks(res.stdout)["aws"], "env-1"))
	}
	if n := len(g.cc.Requests()); n != 0 {
		t.Errorf("Concourse was asked without --concourse-url: %v", g.cc.Requests())
	}

	d, _ = g.json(t, "clean", "--pools", "aws:1h")
	l3 := d.lock(t, "aws", "env-3")
	wantLock(t, l3, "stale", "timeout", false)
	if l3.Build != nil {
		t.Errorf("env-3 names no build, but build is %+v", l3.Build)
	}
	wantLock(t, d.lock(t, "aws", "env-1"), "alive", "build-running", false)
	wantClaimed(t, g.r, "aws", []string{"env-1", "env-2"}, []string{"env-3"})
	if c, _ := d.freed(t, "aws", "env-3"); c != "" {
		wantTrailers(t, g.r, c, map[string]string{"Poolboy-Rule": "timeout", "Poolboy-Build-Status": "", "Poolboy-Build-URL": ""})
		if m := testenv.Git(t, g.r.dir, "log", "-1", "--format=%B", c); strings.Contains(m, "Concourse:") {
			t.Errorf("message of a lock whose claim names no build has a Concourse line:\n%s", m)
		}
	}
	for _, r := range g.cc.Requests() {
		if strings.Contains(r.Path, "env-3") {
			t.Errorf("asked about env-3: %v", r)
		}
	}
	if n := len(g.cc.Requests()); n != 4 { // builds 41, smoke 7, one-off 5512, and info for the Build URL's server
		t.Errorf("%d requests, want 4: %v", n, g.cc.Requests())
	}
}

// At most 4 requests to Concourse at once, however many builds hold locks.
func TestConcourseAtMostFourRequestsAtOnce(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var extra []fixture.Op
	for i := 0; i < 12; i++ {
		lock := fmt.Sprintf("many-%02d", i)
		extra = append(extra,
			fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: lock, At: now.Add(-time.Hour)},
			fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: lock, At: now.Add(-time.Minute),
				Message: fmt.Sprintf("main/deploy/many build %d claiming: %s", i+1, lock)})
	}
	g := newRig(t, nil, extra...)
	for i := 0; i < 12; i++ {
		g.job("many", strconv.Itoa(i+1), "started")
	}
	g.cc.SetFault(fakeconcourse.Fault{Delay: 150 * time.Millisecond})
	// The fault delays every request; a request still waiting has no status yet.
	maxInFlight := 0
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			n := 0
			for _, r := range g.cc.Requests() {
				if r.Status == 0 {
					n++
				}
			}
			maxInFlight = max(maxInFlight, n)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	d, _ := g.json(t, "status", "--pools", "aws:1h")
	close(stop)
	<-done
	if maxInFlight > 4 || maxInFlight < 2 {
		t.Errorf("at most %d requests were in flight at once, want 2 to 4", maxInFlight)
	}
	for i := 0; i < 12; i++ {
		wantLock(t, d.lock(t, "aws", fmt.Sprintf("many-%02d", i)), "alive", "build-running", false)
	}
	if n := len(g.cc.Requests()); n != 16 {
		t.Errorf("%d requests, want 16 (one per build, and info)", n)
	}
}

// A wrong password is one failed login per run, not one per build: every attempt
// counts against the account (lockouts), and each costs up to the request timeout.
func TestConcourseWrongPasswordTriedOnce(t *testing.T) {
	t.Parallel()
	g := newRig(t, nil)
	g.job("integration", "41", "started")
	res := mustRun(t, map[string]string{"CONCOURSE_USERNAME": ccAdmin, "CONCOURSE_PASSWORD": "wrong-pw"},
		g.args("status", "--pools", "aws:1h", "--output", "json")...)
	wantLock(t, decodeStatus(t, res.stdout).lock(t, "aws", "env-1"), "stale", "timeout", true)
	if n := count(g.cc.Requests(), "POST", "/sky/issuer/token"); n != 1 {
		t.Errorf("%d login attempts with a wrong password for 3 builds, want 1", n)
	}
}

// --help shows each flag with a type word, as the other flags have.
func TestConcourseFlagsHelp(t *testing.T) {
	t.Parallel()
	res := mustRun(t, nil, "status", "--help")
	for _, line := range strings.Split(res.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (strings.HasPrefix(f[0], "--concourse-") || f[0] == "--fly-target" || f[0] == "--reap-on-success") {
			if f[0] != "--concourse-insecure" && f[1] != "string" {
				t.Errorf("help line %q: value placeholder %q, want string", line, f[1])
			}
		}
	}
}
