package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// Conformance with concourse/pool-resource (master): the built binary, driven as
// Concourse drives it (request on stdin, the build's directory as the argument,
// BUILD_* in the environment), against real remotes, must answer as upstream's
// scripts do: the same stdout, the same failures with the same words and exit status.

// upstreamNotAcquired is what upstream's in prints (and exits 1 with) for a claim
// whose lock is no longer held by it.
const upstreamNotAcquired = "error: lock instance is no longer acquired"

// world is one lock repository served over one transport.
type world struct {
	t    *testing.T
	res  string // /opt/resource
	bare string
	url  string
}

func newWorld(t *testing.T, res, transport string, pools []string, ops ...fixture.Op) *world {
	t.Helper()
	root := t.TempDir()
	bare := filepath.Join(root, "locks.git")
	start := time.Now().Add(-time.Hour)
	for i := range ops {
		ops[i].At = start.Add(time.Duration(i+1) * time.Second)
	}
	if err := fixture.Build(context.Background(), bare, fixture.Spec{Branch: "main", Pools: pools, Start: start, Ops: ops}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, res: res, bare: bare, url: "file://" + bare}
	if transport == "git-daemon" {
		w.url = testenv.GitDaemon(t, root) + "locks.git"
	}
	return w
}

func (w *world) source(pool string, extra ...any) map[string]any {
	s := map[string]any{"uri": w.url, "branch": "main", "pool": pool, "retry_delay": "20ms"}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

func jobBuild(name string) []string {
	return []string{"BUILD_ID=" + name, "BUILD_NAME=" + name, "BUILD_TEAM_NAME=main", "BUILD_PIPELINE_NAME=deploy",
		"BUILD_JOB_NAME=test", "ATC_EXTERNAL_URL=https://ci.example.com"}
}

type answerJSON struct {
	Version  map[string]string `json:"version"`
	Metadata []struct{ Name, Value string }
}

func (a answerJSON) meta(name string) string {
	for _, m := range a.Metadata {
		if m.Name == name {
			return m.Value
		}
	}
	return ""
}

func decodeAnswer(t *testing.T, what string, s script) answerJSON {
	t.Helper()
	var a answerJSON
	if s.code != 0 || json.Unmarshal([]byte(s.stdout), &a) != nil || a.Version["ref"] == "" {
		t.Fatalf("%s: %+v", what, s)
	}
	return a
}

// put runs out in work (the build's directory) and decodes a successful answer.
func (w *world) put(pool, build, work string, params map[string]any) answerJSON {
	w.t.Helper()
	return decodeAnswer(w.t, "put "+pool+" "+strings.Join(keys(params), ","), w.putRaw(pool, build, work, params))
}

func (w *world) putRaw(pool, build, work string, params map[string]any) script {
	w.t.Helper()
	return run(w.t, filepath.Join(w.res, "out"), map[string]any{"source": w.source(pool), "params": params}, jobBuild(build), work)
}

// get runs in for version into dir.
func (w *world) get(pool, build, dir string, v map[string]string, params map[string]any) script {
	w.t.Helper()
	req := map[string]any{"source": w.source(pool), "version": v}
	if params != nil {
		req["params"] = params
	}
	return run(w.t, filepath.Join(w.res, "in"), req, jobBuild(build), dir)
}

// acquire is `put: lock, params: {acquire: true}` and its implicit get into work/step.
func (w *world) acquire(pool, build, work, step string) answerJSON {
	w.t.Helper()
	a := w.put(pool, build, work, map[string]any{"acquire": true})
	if g := w.get(pool, build, filepath.Join(work, step), a.Version, nil); g.code != 0 {
		w.t.Fatalf("implicit get after acquire: %+v", g)
	}
	return a
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func add(pool, lock string) fixture.Op {
	return fixture.Op{Kind: fixture.Add, Pool: pool, Lock: lock, Content: "meta of " + lock}
}

func TestConformanceWithUpstream(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	for _, transport := range []string{"file", "git-daemon"} {
		t.Run(transport, func(t *testing.T) {
			conformance(t, res, transport)
		})
	}
}

func conformance(t *testing.T, res, transport string) {
	// Issue 12.1: a get of a claim whose lock was released fails as upstream's does.
	t.Run("get of a released claim fails", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		work := t.TempDir()
		claim := w.acquire("aws", "12", work, "lock")
		w.put("aws", "12", work, map[string]any{"release": "lock"})
		// A downstream job's `get: lock, passed: [acquire-job]`.
		g := w.get("aws", "20", t.TempDir(), claim.Version, nil)
		if g.code != 1 || g.stdout != "" || !strings.HasPrefix(g.stderr, upstreamNotAcquired) {
			t.Fatalf("get of a released claim: %+v", g)
		}
	})

	t.Run("get of a claim claimed again by another build fails", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		work := t.TempDir()
		claim := w.acquire("aws", "12", work, "lock")
		w.put("aws", "12", work, map[string]any{"release": "lock"})
		again := w.acquire("aws", "13", t.TempDir(), "lock")
		g := w.get("aws", "20", t.TempDir(), claim.Version, nil)
		if g.code != 1 || g.stdout != "" || !strings.HasPrefix(g.stderr, upstreamNotAcquired) {
			t.Fatalf("get of a claim taken over: %+v", g)
		}
		dir := t.TempDir()
		if g := w.get("aws", "20", dir, again.Version, nil); g.code != 0 || readFile(t, filepath.Join(dir, "name")) != "env-1" {
			t.Fatalf("get of the current claim: %+v", g)
		}
	})

	t.Run("get of a claim still held succeeds after other locks moved", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"), add("aws", "env-2"))
		first := w.acquire("aws", "12", t.TempDir(), "lock")
		w.acquire("aws", "13", t.TempDir(), "lock")
		dir := t.TempDir()
		g := w.get("aws", "20", dir, first.Version, nil)
		if g.code != 0 || readFile(t, filepath.Join(dir, "name")) != first.meta("lock_name") ||
			readFile(t, filepath.Join(dir, "ref")) != first.Version["ref"] {
			t.Fatalf("get of a held claim: %+v", g)
		}
		var a answerJSON
		if json.Unmarshal([]byte(g.stdout), &a) != nil || a.Version["ref"] != first.Version["ref"] {
			t.Errorf("get answered %q, want the version asked for", g.stdout)
		}
	})

	// Upstream checks only versions at which the lock is claimed: an unclaim's get
	// succeeds whatever happened since; an add_claimed's fails once it was released.
	t.Run("get of an unclaim succeeds after the lock was claimed again", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		work := t.TempDir()
		w.acquire("aws", "12", work, "lock")
		rel := w.put("aws", "12", work, map[string]any{"release": "lock"})
		w.acquire("aws", "13", t.TempDir(), "lock")
		dir := t.TempDir()
		if g := w.get("aws", "20", dir, rel.Version, nil); g.code != 0 || readFile(t, filepath.Join(dir, "name")) != "env-1" {
			t.Fatalf("get of an unclaim: %+v", g)
		}
	})

	t.Run("get of an add_claimed fails once the lock was released", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"})
		work := t.TempDir()
		writeFile(t, filepath.Join(work, "new", "name"), "env-9\n")
		writeFile(t, filepath.Join(work, "new", "metadata"), "nine")
		added := w.put("aws", "12", work, map[string]any{"add_claimed": "new"})
		if g := w.get("aws", "12", filepath.Join(work, "lock"), added.Version, nil); g.code != 0 ||
			readFile(t, filepath.Join(work, "lock", "metadata")) != "nine" {
			t.Fatalf("implicit get of add_claimed: %+v", g)
		}
		w.put("aws", "12", work, map[string]any{"release": "lock"})
		if g := w.get("aws", "20", t.TempDir(), added.Version, nil); g.code != 1 || !strings.HasPrefix(g.stderr, upstreamNotAcquired) {
			t.Fatalf("get of a released add_claimed: %+v", g)
		}
	})

	// Issue 12.2: a version about another pool: the pool's newest lock commit at or
	// before it names the lock.
	t.Run("get of a version about another pool names this pool's lock", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws", "gcp"}, add("aws", "env-1"), add("gcp", "g-1"))
		w.acquire("gcp", "30", t.TempDir(), "lock") // the head is about pool gcp
		work := t.TempDir()
		writeFile(t, filepath.Join(work, "want", "name"), "env-1\n")
		chk := w.put("aws", "12", work, map[string]any{"check": "want"})
		if chk.meta("lock_name") != "env-1" {
			t.Errorf("check answered lock_name %q", chk.meta("lock_name"))
		}
		dir := t.TempDir()
		if g := w.get("aws", "12", dir, chk.Version, nil); g.code != 0 || readFile(t, filepath.Join(dir, "name")) != "env-1" ||
			readFile(t, filepath.Join(dir, "metadata")) != "meta of env-1" {
			t.Fatalf("implicit get after check: %+v", g)
		}

		head := testenv.Git(t, w.bare, "rev-parse", "main")
		dir = t.TempDir()
		g := w.get("aws", "20", dir, map[string]string{"ref": head}, nil)
		if g.code != 0 || readFile(t, filepath.Join(dir, "name")) != "env-1" || readFile(t, filepath.Join(dir, "metadata")) != "meta of env-1" {
			t.Fatalf("get of a gcp commit for pool aws: %+v", g)
		}
		var a answerJSON
		if json.Unmarshal([]byte(g.stdout), &a) != nil || a.Version["ref"] != head || a.meta("lock_name") != "env-1" {
			t.Errorf("get answered %q, want version %s and lock env-1", g.stdout, head)
		}
	})

	t.Run("get never names .gitkeep", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws", "empty"}, add("aws", "env-1"))
		dir := t.TempDir()
		head := testenv.Git(t, w.bare, "rev-parse", "main")
		g := w.get("empty", "20", dir, map[string]string{"ref": head}, nil)
		if g.code != 0 || readFile(t, filepath.Join(dir, "name")) != "" || strings.Contains(g.stdout, ".gitkeep") {
			t.Fatalf("get in a pool without locks: %+v", g)
		}
	})

	// Issue 12.3: check from a valid version lists it first.
	t.Run("check lists the given version first", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws", "gcp"}, add("aws", "env-1"), add("gcp", "g-1"), add("aws", "env-2"))
		log := strings.Fields(testenv.Git(t, w.bare, "log", "--reverse", "--format=%H", "main", "--", "aws"))
		check := func(v map[string]string) []string {
			t.Helper()
			c := run(t, filepath.Join(w.res, "check"), map[string]any{"source": w.source("aws"), "version": v}, nil)
			var vs []map[string]string
			if c.code != 0 || json.Unmarshal([]byte(c.stdout), &vs) != nil {
				t.Fatalf("check: %+v", c)
			}
			var refs []string
			for _, v := range vs {
				refs = append(refs, v["ref"])
			}
			return refs
		}
		if got := check(map[string]string{"ref": log[1]}); strings.Join(got, " ") != strings.Join(log[1:], " ") {
			t.Errorf("check from %s = %v, want %v", log[1], got, log[1:])
		}
		if got := check(map[string]string{"ref": log[2]}); strings.Join(got, " ") != log[2] {
			t.Errorf("check from the newest version = %v, want just it", got)
		}
	})

	// Issue 12.4: an aborted step says so, without the word "error" (or any "err").
	t.Run("aborted wait says so", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		w.acquire("aws", "12", t.TempDir(), "lock")
		body, _ := json.Marshal(map[string]any{"source": w.source("aws"), "params": map[string]any{"acquire": true}})
		cmd := exec.Command(filepath.Join(w.res, "out"), t.TempDir())
		cmd.Stdin = strings.NewReader(string(body))
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, jobBuild("13")...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Concourse aborts the step once it is waiting: the log line says so.
		var lines []string
		signalled := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if !signalled && (strings.Contains(sc.Text(), "retrying in") || strings.Contains(sc.Text(), "waiting for a lock")) {
				signalled = true
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
		}
		err = cmd.Wait()
		if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || len(lines) == 0 {
			t.Fatalf("aborted out: %v\n%s", err, strings.Join(lines, "\n"))
		}
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "aborted: ") || regexp.MustCompile(`(?i)err`).MatchString(strings.Join(lines, "\n")) {
			t.Errorf("abort messages:\n%s", strings.Join(lines, "\n"))
		}
	})

	// Issue 12.5: unknown keys are warned about, naming the known ones; not fatal.
	t.Run("unknown keys are warned about", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		c := run(t, filepath.Join(w.res, "check"), map[string]any{"source": w.source("aws", "concourse_ulr", "https://ci"), "version": nil}, nil)
		if c.code != 0 || !strings.Contains(c.stderr, `warning: unknown source key "concourse_ulr"`) ||
			!strings.Contains(c.stderr, "concourse_url") || !strings.Contains(c.stderr, "concourse_targets") {
			t.Errorf("check with a typo in source: %+v", c)
		}
		head := testenv.Git(t, w.bare, "rev-parse", "main")
		g := w.get("aws", "20", t.TempDir(), map[string]string{"ref": head}, map[string]any{"depht": 1})
		if g.code != 0 || !strings.Contains(g.stderr, `warning: unknown params key "depht" (known: depth)`) {
			t.Errorf("in with a typo in params: %+v", g)
		}
		p := w.putRaw("aws", "12", t.TempDir(), map[string]any{"acquire": true, "relase": "lock"})
		if p.code != 0 || !strings.Contains(p.stderr, `warning: unknown params key "relase"`) || !strings.Contains(p.stderr, "check_unclaimed") {
			t.Errorf("out with a typo in params: %+v", p)
		}
	})

	// Issue 12.10: every failure exits 1, bad payloads included, as upstream.
	t.Run("bad payloads exit 1", func(t *testing.T) {
		bin := filepath.Join(filepath.Dir(filepath.Dir(res)), "poolboy")
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		for name, s := range map[string]script{
			"out without an operation": w.putRaw("aws", "12", t.TempDir(), map[string]any{}),
			"in with a bad depth":      w.get("aws", "12", t.TempDir(), nil, map[string]any{"depth": -1}),
			"check without a pool":     run(t, filepath.Join(w.res, "check"), map[string]any{"source": map[string]any{"uri": w.url, "branch": "main"}}, nil),
			"not a JSON object":        run(t, filepath.Join(w.res, "check"), "not an object", nil),
			"in without a directory":   run(t, filepath.Join(w.res, "in"), map[string]any{"source": w.source("aws")}, nil),
			// `poolboy resource SCRIPT` is the same script: 1 for its usage errors too.
			"poolboy resource with a flag":  run(t, bin, map[string]any{"source": w.source("aws")}, nil, "resource", "check", "--bogus"),
			"poolboy resource without DIR":  run(t, bin, map[string]any{"source": w.source("aws")}, nil, "resource", "in"),
			"poolboy resource bogus script": run(t, bin, map[string]any{"source": w.source("aws")}, nil, "resource", "bogus"),
		} {
			if s.code != 1 || s.stdout != "" || s.stderr == "" {
				t.Errorf("%s: %+v", name, s)
			}
		}
	})

	// Issue 16.2: a no-op release answers a version about the released lock.
	t.Run("no-op release answers the released lock", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"), add("aws", "env-2"))
		work := t.TempDir()
		mine := w.acquire("aws", "12", work, "lock")
		w.put("aws", "12", work, map[string]any{"release": "lock"})
		other := map[string]string{"env-1": "env-2", "env-2": "env-1"}[mine.meta("lock_name")]
		w.put("aws", "13", t.TempDir(), map[string]any{"claim": other}) // the head: a claim of the other lock
		again := w.put("aws", "12", work, map[string]any{"release": "lock"})
		dir := t.TempDir()
		if g := w.get("aws", "12", dir, again.Version, nil); g.code != 0 || readFile(t, filepath.Join(dir, "name")) != mine.meta("lock_name") {
			t.Fatalf("implicit get after a no-op release: %+v (released %s)", g, mine.meta("lock_name"))
		}
	})

	// Issue 16.3: a removed lock has no metadata; that is no warning.
	t.Run("get after remove does not warn", func(t *testing.T) {
		w := newWorld(t, res, transport, []string{"aws"}, add("aws", "env-1"))
		work := t.TempDir()
		w.acquire("aws", "12", work, "lock")
		rm := w.put("aws", "12", work, map[string]any{"remove": "lock"})
		dir := t.TempDir()
		g := w.get("aws", "12", dir, rm.Version, nil)
		if g.code != 0 || strings.Contains(g.stderr, "warning") || readFile(t, filepath.Join(dir, "name")) != "env-1" {
			t.Fatalf("implicit get after remove: %+v", g)
		}
	})
}

// Issue 16.4: locks and pools are listed in natural order.
func TestStatusSortsNamesNaturally(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	bin := filepath.Join(filepath.Dir(filepath.Dir(res)), "poolboy")
	var ops []fixture.Op
	for _, l := range []string{"env-10", "env-2", "env-1"} {
		ops = append(ops, add("pool-10", l), fixture.Op{Kind: fixture.Claim, Pool: "pool-10", Lock: l})
	}
	w := newWorld(t, res, "file", []string{"pool-10", "pool-9"}, ops...)
	out, err := exec.Command(bin, "status", "--repo", w.url).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	got := regexp.MustCompile(`(?m)^pool (\S+)|^  (env-\d+)`).FindAllStringSubmatch(string(out), -1)
	var names []string
	for _, m := range got {
		names = append(names, m[1]+m[2])
	}
	if want := "pool-9 pool-10 env-1 env-2 env-10"; strings.Join(names, " ") != want {
		t.Errorf("status order %v, want %s\n%s", names, want, out)
	}
}
