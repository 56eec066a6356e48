package cli_test

// Shared helpers for the CLI tests: they drive poolboy only through cli.Main, with an
// injected environment and buffers, against lock repositories built by fixture and
// served by real git servers from testenv.

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// The claims in every lock repository the tests build.
const (
	staleMsg   = "main/deploy/integration build 41 claiming: env-1" // 5h old: stale at aws:1h
	staleOwner = "main/deploy/integration #41"
	ccExternal = "https://ci.example.com" // the fake Concourse's external URL: the claims' Build URLs name it
	buildURL   = ccExternal + "/teams/main/pipelines/deploy/jobs/smoke/builds/7"
	freshMsg   = "claiming: env-2\nBuild URL: " + buildURL // 5m old: held at aws:1h
	freshOwner = "main/deploy/smoke #7"
	oneOffMsg  = "one-off build 5512 claiming: gpu-a" // 3h old, in gpu (no timeout)
	oneOff     = "one-off build 5512"

	httpUser = "poolboy"
	httpPass = "http-pw-5d2a"
)

// lockRepo is a bare lock repository at root/locks.git.
type lockRepo struct {
	root, dir, branch string
	now               time.Time // the fixture's "now": claim ages count from here
}

// newLockRepo builds pools aws (env-1 claimed 5h ago in the team/pipeline/job form,
// env-2 claimed 5m ago in the Build URL form, env-3 unclaimed) and gpu (gpu-a claimed
// 3h ago by a one-off build), on branch, followed by extra operations.
func newLockRepo(t *testing.T, branch string, extra ...fixture.Op) *lockRepo {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ops := []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: ago(9 * time.Hour), Content: `{"env":"env-1"}`},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: ago(9 * time.Hour), Content: `{"env":"env-2"}`},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-3", At: ago(9 * time.Hour), Content: `{"env":"env-3"}`},
		{Kind: fixture.Add, Pool: "gpu", Lock: "gpu-a", At: ago(9 * time.Hour), Content: `{"gpu":"a"}`},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: ago(5 * time.Hour), Message: staleMsg},
		{Kind: fixture.Claim, Pool: "gpu", Lock: "gpu-a", At: ago(3 * time.Hour), Message: oneOffMsg},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: ago(5 * time.Minute), Message: freshMsg},
	}
	ops = append(ops, extra...)
	root := t.TempDir()
	r := &lockRepo{root: root, dir: filepath.Join(root, "locks.git"), branch: branch, now: now}
	spec := fixture.Spec{Branch: branch, Pools: []string{"aws", "gpu"}, Start: ago(10 * time.Hour), Ops: ops}
	if err := fixture.Build(context.Background(), r.dir, spec); err != nil {
		t.Fatal(err)
	}
	return r
}

// refs is the remote's `git for-each-ref`: every ref and its SHA.
func (r *lockRepo) refs(t *testing.T) string {
	t.Helper()
	return testenv.Git(t, r.dir, "for-each-ref")
}

// head is the SHA of a branch of the remote.
func (r *lockRepo) head(t *testing.T, branch string) string {
	t.Helper()
	return testenv.Git(t, r.dir, "rev-parse", "--verify", "refs/heads/"+branch)
}

// commitWithMessage finds, by its whole message, the commit on rev that carries msg.
func (r *lockRepo) commitWithMessage(t *testing.T, rev, msg string) string {
	t.Helper()
	out := testenv.Git(t, r.dir, "log", "--format=%H%x1f%B%x1e", rev)
	found := ""
	for _, rec := range strings.Split(out, "\x1e") {
		sha, body, ok := strings.Cut(strings.TrimSpace(rec), "\x1f")
		if ok && strings.TrimSpace(body) == msg {
			if found != "" {
				t.Fatalf("two commits on %s with message %q", rev, msg)
			}
			found = sha
		}
	}
	if found == "" {
		t.Fatalf("no commit on %s with message %q", rev, msg)
	}
	return found
}

// transport is one way to reach a lockRepo.
type transport struct {
	name string
	url  string
	env  map[string]string // credentials, when the server needs them
	http *testenv.GitHTTPServer
}

// serve makes r reachable over the named transports: "path", "file", "git" (git
// daemon) and "http" (git http-backend behind basic auth, credentials in env).
func serve(t *testing.T, r *lockRepo, kinds ...string) []transport {
	t.Helper()
	var ts []transport
	for _, k := range kinds {
		switch k {
		case "path":
			ts = append(ts, transport{name: "local path", url: r.dir})
		case "file":
			ts = append(ts, transport{name: "file", url: "file://" + r.dir})
		case "git":
			ts = append(ts, transport{name: "git daemon", url: testenv.GitDaemon(t, r.root) + "locks.git"})
		case "http":
			srv := testenv.GitHTTP(t, r.root, httpUser, httpPass)
			ts = append(ts, transport{name: "http basic auth", url: srv.URL + "locks.git", http: srv,
				env: map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": httpPass}})
		default:
			t.Fatalf("unknown transport %q", k)
		}
	}
	return ts
}

// result is one poolboy run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return "exit " + strconv.Itoa(r.code) + "\n--- stdout:\n" + r.stdout + "--- stderr:\n" + r.stderr
}

// run calls cli.Main with args and an environment made only of env.
func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	code := cli.Main(ctx, args, &stdout, &stderr, lookup)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs poolboy and fails the test unless it exits 0.
func mustRun(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	res := run(t, env, args...)
	if res.code != cli.ExitOK {
		t.Fatalf("poolboy %s: %s", strings.Join(args, " "), res)
	}
	return res
}

// merge returns the union of environments; later ones win.
func merge(envs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, e := range envs {
		for k, v := range e {
			out[k] = v
		}
	}
	return out
}

// statusDoc is the poolboy.status/v2 document as a consumer would declare it.
type statusDoc struct {
	Schema      string    `json:"schema"`
	Repo        string    `json:"repo"`
	Branch      string    `json:"branch"`
	Commit      string    `json:"commit"`
	GeneratedAt time.Time `json:"generated_at"`
	Pools       []struct {
		Name           string `json:"name"`
		TimeoutSeconds *int64 `json:"timeout_seconds"`
		Claimed        int    `json:"claimed"`
		Unclaimed      int    `json:"unclaimed"`
		Stale          int    `json:"stale"`
		Locks          []lockDoc
	} `json:"pools"`
	Clean *struct {
		DryRun   bool `json:"dry_run"`
		Attempts int  `json:"attempts"`
		Freed    []struct {
			Pool   string `json:"pool"`
			Lock   string `json:"lock"`
			Commit string `json:"commit"`
			Rule   string `json:"rule"`
			Reason string `json:"reason"`
		} `json:"freed"`
	} `json:"clean"`
}

type lockDoc struct {
	Name  string `json:"name"`
	Owner *struct {
		Display  string `json:"display"`
		Team     string `json:"team"`
		Pipeline string `json:"pipeline"`
		Job      string `json:"job"`
		Build    string `json:"build"`
		BuildID  string `json:"build_id"`
		URL      string `json:"url"`
	} `json:"owner"`
	ClaimCommit string     `json:"claim_commit"`
	ClaimedAt   *time.Time `json:"claimed_at"`
	AgeSeconds  int64      `json:"age_seconds"`
	Build       *buildDoc  `json:"build"`
	Verdict     string     `json:"verdict"`
	Rule        string     `json:"rule"`
	Reason      string     `json:"reason"`
	Warning     string     `json:"warning"`
}

// buildDoc is what Concourse said about a lock's build; null when it was not asked.
type buildDoc struct {
	Name        string `json:"name"`
	Status      string `json:"status"`
	URL         string `json:"url"`
	NotFound    bool   `json:"not_found"`
	HandedOffTo string `json:"handed_off_to"`
	Error       string `json:"error"`
}

func decodeStatus(t *testing.T, stdout string) statusDoc {
	t.Helper()
	var d statusDoc
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", stdout)
	}
	return d
}

// timeouts maps each pool to its timeout_seconds, "null" when the JSON says null
// (checked on the raw document: the key must be there, not left out).
func timeouts(t *testing.T, stdout string) map[string]string {
	t.Helper()
	var raw struct {
		Pools []map[string]json.RawMessage `json:"pools"`
	}
	if err := json.Unmarshal([]byte(stdout), &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range raw.Pools {
		var name string
		_ = json.Unmarshal(p["name"], &name)
		v, ok := p["timeout_seconds"]
		if !ok {
			out[name] = "<missing>"
			continue
		}
		out[name] = string(v)
	}
	return out
}

func (d statusDoc) pool(t *testing.T, name string) (claimed, unclaimed, stale int, timeout *int64, locks map[string]lockDoc) {
	t.Helper()
	for _, p := range d.Pools {
		if p.Name == name {
			locks = map[string]lockDoc{}
			for _, l := range p.Locks {
				locks[l.Name] = l
			}
			return p.Claimed, p.Unclaimed, p.Stale, p.TimeoutSeconds, locks
		}
	}
	t.Fatalf("no pool %q in the document", name)
	return
}

// textBlocks splits text output into the lines of each "pool NAME ..." block,
// keyed by pool name; the block's first line is its header.
func textBlocks(out string) map[string][]string {
	blocks := map[string][]string{}
	cur := ""
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "pool "); ok {
			cur, _, _ = strings.Cut(rest, " ")
			blocks[cur] = append(blocks[cur], line)
			continue
		}
		if line == "" || !strings.HasPrefix(line, "  ") {
			cur = ""
			continue
		}
		if cur != "" {
			blocks[cur] = append(blocks[cur], line)
		}
	}
	return blocks
}

// row returns the block's row for lock, "" if none.
func row(block []string, lock string) string {
	for _, l := range block {
		if f := strings.Fields(l); len(f) > 0 && f[0] == lock {
			return l
		}
	}
	return ""
}
