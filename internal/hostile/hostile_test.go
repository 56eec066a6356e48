package hostile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/resource"
	"github.com/poolboy-ci/poolboy/internal/testenv"
	"github.com/poolboy-ci/poolboy/internal/watch"
)

const tenMB = 10 << 20

// ---------------------------------------------------------------------------
// Shared helpers.

// lockRepo builds a bare repository: pools aws and gpu, aws/env-1 free and
// aws/env-2 claimed 5h ago (stale for any timeout under 5h), so a clean that got
// past bad input would write.
func lockRepo(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws", "gpu"}, Start: now.Add(-10 * time.Hour), Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "env-1", Content: "one", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-2", Content: "two", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Add, Pool: "aws", Lock: "env-3", Content: "three", At: now.Add(-9 * time.Hour)},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-2", At: now.Add(-5 * time.Hour)},
		{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: now.Add(-5 * time.Hour)},
	}}
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snapshot is every ref of a repository with its object.
func snapshot(t *testing.T, bare string) string {
	t.Helper()
	return testenv.Git(t, bare, "for-each-ref")
}

func head(t *testing.T, bare string) string {
	t.Helper()
	return testenv.Git(t, bare, "rev-parse", "main")
}

// oneLine fails unless msg is a non-empty single line.
func oneLine(t *testing.T, what, msg string) {
	t.Helper()
	m := strings.TrimSuffix(msg, "\n")
	if strings.TrimSpace(m) == "" {
		t.Errorf("%s: empty error", what)
	}
	if strings.Contains(m, "\n") {
		t.Errorf("%s: error is not one line: %q", what, clip(msg))
	}
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, w := range subs {
		if !strings.Contains(s, w) {
			t.Errorf("%s: %q does not mention %q", what, clip(s), w)
		}
	}
}

// cliResult is one cli.Main run.
type cliResult struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := cli.Main(ctx, args, &stdout, &stderr, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return cliResult{code, stdout.String(), stderr.String()}
}

// wantCLIError: exit code (0: any non-zero), one "poolboy: " line on stderr,
// nothing on stdout, stderr mentions each of subs.
func wantCLIError(t *testing.T, r cliResult, code int, subs ...string) {
	t.Helper()
	if r.code == 0 || (code != 0 && r.code != code) {
		t.Errorf("exit %d, want %d (0: any failure); stderr %q", r.code, code, clip(r.stderr))
	}
	if !strings.HasPrefix(r.stderr, "poolboy: ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one \"poolboy: \" line: %q", clip(r.stderr))
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty: %q", clip(r.stdout))
	}
	contains(t, "stderr", r.stderr, subs...)
}

var buildEnv = map[string]string{
	"BUILD_ID": "77", "BUILD_NAME": "3", "BUILD_TEAM_NAME": "main",
	"BUILD_PIPELINE_NAME": "deploy", "BUILD_JOB_NAME": "test",
	"BUILD_URL": "https://ci.example.com/teams/main/pipelines/deploy/jobs/test/builds/3",
}

// runRes runs a resource script ("check", "in", "out") on a raw stdin.
func runRes(t *testing.T, script, dir string, stdin []byte) (stdout, stderr string, err error) {
	t.Helper()
	// No deadline: a script that hangs is caught by go test's -timeout, with the
	// stacks that show where; how fast a script refuses is no part of the promise.
	ctx := context.Background()
	var o, e bytes.Buffer
	env := func(k string) (string, bool) { v, ok := buildEnv[k]; return v, ok }
	switch script {
	case "check":
		err = resource.Check(ctx, bytes.NewReader(stdin), &o, &e, env)
	case "in":
		err = resource.In(ctx, dir, bytes.NewReader(stdin), &o, &e, env)
	case "out":
		err = resource.Out(ctx, dir, bytes.NewReader(stdin), &o, &e, env)
	}
	if err != nil && o.Len() > 0 {
		t.Errorf("%s failed but wrote stdout %q", script, clip(o.String()))
	}
	return o.String(), e.String(), err
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func src(uri string, extra ...any) map[string]any {
	s := map[string]any{"uri": uri, "branch": "main", "pool": "aws", "retry_delay": "10ms"}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

// wantResErr: the script failed with one clear line mentioning subs.
func wantResErr(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("succeeded, want an error")
		return
	}
	oneLine(t, "error", err.Error())
	contains(t, "error", err.Error(), subs...)
}

// writeStep writes files into dir/step (a put's input).
func writeStep(t *testing.T, dir, step string, files map[string][]byte) {
	t.Helper()
	d := filepath.Join(dir, step)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hcase is one catalogue entry. bare, when set, is a repository the case must not
// change.
type hcase struct {
	name string
	bare func() string
	run  func(t *testing.T)
}

// runCatalogue runs every case as a subtest: a panic is a failure, not a crash,
// and a repository that must not change is compared ref by ref.
func runCatalogue(t *testing.T, cases []hcase) int {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("case %q twice", c.name)
		}
		seen[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			var bare, before string
			if c.bare != nil {
				bare = c.bare()
				before = snapshot(t, bare)
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Errorf("panic: %v\n%s", p, debug.Stack())
					}
				}()
				c.run(t)
			}()
			if bare != "" {
				if after := snapshot(t, bare); after != before {
					t.Errorf("repository changed:\n%s\n->\n%s", before, after)
				}
			}
		})
	}
	return len(cases)
}

// ---------------------------------------------------------------------------
// Repository content built with real git.

// contentRepo commits files (path -> content; a content starting with "symlink:"
// is a symlink to the rest, "gitlink:" a submodule entry) in one commit named
// "claiming: <msgLock>" dated 5h ago, on top of a first commit with the given
// .gitkeep-only pools, and returns a bare clone.
func contentRepo(t *testing.T, msgLock string, files map[string]string) string {
	t.Helper()
	work := filepath.Join(t.TempDir(), "work")
	testenv.Git(t, "", "init", "--quiet", "-b", "main", work)
	past := time.Now().Add(-5 * time.Hour).UTC().Format(time.RFC3339)
	env := []string{"GIT_AUTHOR_DATE=" + past, "GIT_COMMITTER_DATE=" + past}
	for p, content := range files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasPrefix(content, "symlink:"):
			if err := os.Symlink(strings.TrimPrefix(content, "symlink:"), full); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(content, "gitlink:"):
			// added below with update-index
		default:
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Git(t, work, "add", "-A")
	for p, content := range files {
		if strings.HasPrefix(content, "gitlink:") {
			testenv.Git(t, work, "update-index", "--add", "--cacheinfo", "160000,"+strings.TrimPrefix(content, "gitlink:")+","+p)
		}
	}
	testenv.GitEnv(t, work, env, "commit", "--quiet", "-m", "claiming: "+msgLock)
	bare := filepath.Join(t.TempDir(), "locks.git")
	testenv.Git(t, "", "clone", "--quiet", "--bare", work, bare)
	return bare
}

// ---------------------------------------------------------------------------
// The catalogue.

func TestHostileInputCatalogue(t *testing.T) {
	testenv.RequireCommand(t, "git")
	shared := lockRepo(t)
	repo := "file://" + shared
	sharedRepo := func() string { return shared }
	ssh := fmt.Sprintf("ssh://git@127.0.0.1:%d/x.git", testenv.FreePort(t))
	tmp := t.TempDir()
	keyCanary := "canary-not-a-key-" + fmt.Sprint(time.Now().UnixNano())
	notAKey := filepath.Join(tmp, "notakey")
	if err := os.WriteFile(notAKey, []byte(keyCanary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	pwned := filepath.Join(tmp, "pwned")
	big := strings.Repeat("a", tenMB)

	var cases []hcase

	// --- CLI flags and environment (beyond internal/cli/badinput_test.go).
	cliCase := func(name string, env map[string]string, code int, want []string, args ...string) hcase {
		return hcase{name: "cli/" + name, bare: sharedRepo, run: func(t *testing.T) {
			r := runCLI(t, env, args...)
			wantCLIError(t, r, code, want...)
		}}
	}
	cases = append(cases,
		cliCase("pools empty", nil, 2, nil, "clean", "--repo", repo, "--pools", ""),
		cliCase("pools only commas", nil, 2, nil, "clean", "--repo", repo, "--pools", ",,"),
		cliCase("pools zero timeout", nil, 2, []string{"aws"}, "clean", "--repo", repo, "--pools", "aws:0"),
		cliCase("pools overflowing timeout", nil, 2, []string{"aws"}, "clean", "--repo", repo, "--pools", "aws:99999999999999999999h"),
		cliCase("pools 1e400 minutes", nil, 2, []string{"aws"}, "clean", "--repo", repo, "--pools", "aws:1e400"),
		cliCase("pools name ../x", nil, 0, nil, "clean", "--repo", repo, "--pools", "../x:1h"),
		cliCase("pools name a/b", nil, 0, nil, "clean", "--repo", repo, "--pools", "a/b:1h"),
		cliCase("pools name with NUL", nil, 0, nil, "clean", "--repo", repo, "--pools", "aws\x00:1h"),
		cliCase("pools name with newline", nil, 0, nil, "clean", "--repo", repo, "--pools", "aws\ngpu:1h"),
		cliCase("pools 10MB name", nil, 0, nil, "clean", "--repo", repo, "--pools", big+":1h"),
		cliCase("POOLS env with newline", map[string]string{"POOLS": "aws:1h\ngpu:1h"}, 0, nil, "clean", "--repo", repo),
		cliCase("depth not a number", nil, 2, []string{"--depth"}, "status", "--repo", repo, "--depth", "abc"),
		cliCase("depth overflowing", nil, 2, []string{"--depth"}, "status", "--repo", repo, "--depth", "99999999999999999999"),
		cliCase("POOLBOY_DEPTH negative", map[string]string{"POOLBOY_DEPTH": "-5"}, 2, []string{"-5"}, "status", "--repo", repo),
		cliCase("max attempts not a number", nil, 2, []string{"--max-attempts"}, "clean", "--repo", repo, "--pools", "aws:1h", "--max-attempts", "x"),
		cliCase("verbose=maybe", nil, 2, []string{"maybe"}, "status", "--repo", repo, "--verbose=maybe"),
		cliCase("branch with newline", nil, 0, nil, "clean", "--repo", repo, "--pools", "aws:1h", "--branch", "ma\nin"),
		cliCase("branch with ..", nil, 0, nil, "clean", "--repo", repo, "--pools", "aws:1h", "--branch", "main..x"),
		cliCase("repo empty", nil, 2, []string{"--repo"}, "clean", "--repo", "", "--pools", "aws:1h"),
		cliCase("repo NUL", nil, 0, nil, "clean", "--repo", "\x00", "--pools", "aws:1h"),
		cliCase("repo 10MB", nil, 0, nil, "status", "--repo", big),
		cliCase("concourse url unparsable", map[string]string{"CONCOURSE_TOKEN": "t"}, 2, nil, "clean", "--repo", repo, "--pools", "aws:1h", "--concourse-url", "http://[::1"),
		cliCase("pushgateway url unparsable", nil, 2, nil, "clean", "--repo", repo, "--pools", "aws:1h", "--pushgateway-url", "http://[::1"),
		cliCase("private key file is a directory", nil, 0, nil, "status", "--repo", ssh, "--private-key-file", tmp),
		cliCase("cache dir is a file", nil, 0, nil, "clean", "--repo", repo, "--pools", "aws:1h", "--cache-dir", aFile),
		cliCase("10MB unknown flag", nil, 2, nil, "status", "--repo", repo, "--"+big),
		hcase{name: "cli/private key file not a key is never printed", bare: sharedRepo, run: func(t *testing.T) {
			r := runCLI(t, nil, "status", "--repo", ssh, "--private-key-file", notAKey)
			wantCLIError(t, r, 1)
			if strings.Contains(r.stderr, keyCanary) {
				t.Errorf("stderr shows the key file's content: %q", r.stderr)
			}
		}},
		hcase{name: "cli/ext:: transport refused", bare: sharedRepo, run: func(t *testing.T) {
			r := runCLI(t, nil, "status", "--repo", "ext::sh -c touch% "+pwned)
			wantCLIError(t, r, 0)
			if _, err := os.Stat(pwned); err == nil {
				t.Errorf("ext:: ran a command: %s exists", pwned)
			}
		}},
		hcase{name: "cli/ssh host starting with a dash", bare: sharedRepo, run: func(t *testing.T) {
			r := runCLI(t, nil, "status", "--repo", "ssh://-oProxyCommand=touch%20"+pwned+"/x.git")
			wantCLIError(t, r, 0)
			if _, err := os.Stat(pwned); err == nil {
				t.Errorf("ssh ran a ProxyCommand: %s exists", pwned)
			}
		}},
	)

	// --- Watch config files: file:line: reason.
	cfgDir := t.TempDir()
	validRepo := "cache_dir: " + cfgDir + "\nrepos:\n  - name: locks\n    uri: file:///nonexistent/locks.git\n    pools: {aws: 1h}\n"
	cfgCase := func(name, yaml string, env map[string]string, withLine bool, want ...string) hcase {
		return hcase{name: "config/" + name, run: func(t *testing.T) {
			_, err := watch.Parse("cfg.yaml", []byte(yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if err == nil {
				t.Fatalf("accepted")
			}
			var ce *watch.ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("not a ConfigError: %T %v", err, err)
			}
			oneLine(t, "error", err.Error())
			if !strings.HasPrefix(err.Error(), "cfg.yaml:") {
				t.Errorf("error does not name the file: %q", clip(err.Error()))
			}
			if withLine && (ce == nil || ce.Line == 0) {
				t.Errorf("error has no line: %q", clip(err.Error()))
			}
			contains(t, "error", err.Error(), want...)
		}}
	}
	repoWith := func(extra string) string {
		return validRepo + extra
	}
	laughs := "a: &a [x,x,x,x,x,x,x,x,x]\n"
	for i, prev := 0, "a"; i < 9; i++ {
		n := fmt.Sprintf("b%d", i)
		laughs += fmt.Sprintf("%s: &%s [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", n, n, prev, prev, prev, prev, prev, prev, prev, prev, prev)
		prev = n
	}
	cases = append(cases,
		cfgCase("binary garbage", "\x00\x01\xff\xfe", nil, false),
		cfgCase("tab indentation", "repos:\n\t- name: x\n", nil, false),
		cfgCase("repos is a string", "repos: nope\n", nil, true),
		cfgCase("repos empty list", "cache_dir: /tmp\nrepos: []\n", nil, false, "repos"),
		cfgCase("null document", "null\n", nil, false),
		cfgCase("duplicate repo names", validRepo+"  - name: locks\n    uri: file:///x\n    pools: {aws: 1h}\n", nil, true, "locks"),
		cfgCase("repo name ../x", strings.Replace(validRepo, "name: locks", "name: ../x", 1), nil, true),
		cfgCase("repo name with newline", strings.Replace(validRepo, "name: locks", `name: "a\nb"`, 1), nil, true),
		cfgCase("unknown key", repoWith("    urii: x\n"), nil, true, "urii"),
		cfgCase("inline password", repoWith("    password: hunter2-canary\n"), nil, true, "password_env"),
		cfgCase("password_env unset", repoWith("    username: bot\n    password_env: NOPE_PW\n"), nil, true, "NOPE_PW"),
		cfgCase("password env and file", repoWith("    username: bot\n    password_env: PW\n    password_file: /dev/null\n"), map[string]string{"PW": "x"}, true),
		cfgCase("interval negative", "interval: -1s\n"+validRepo, nil, true, "interval"),
		cfgCase("listen not host:port", "listen: nope\n"+validRepo, nil, true, "listen"),
		cfgCase("second YAML document", validRepo+"---\nread_token_env: TOKEN\n", map[string]string{"TOKEN": "t"}, true, "a second YAML document"),
		cfgCase("interval 1ns", "interval: 1ns\n"+validRepo, nil, true, "interval", "minimum"),
		cfgCase("cycle_timeout 1ns", "cycle_timeout: 1ns\n"+validRepo, nil, true, "cycle_timeout", "minimum"),
		cfgCase("listen port out of range", "listen: localhost:99999\n"+validRepo, nil, true, "listen", "invalid port"),
		cfgCase("same uri and branch twice", validRepo+"  - name: other\n    uri: file:///nonexistent/locks.git\n    pools: {aws: 2h}\n", nil, true, "same uri and branch"),
		cfgCase("pool timeout garbage", strings.Replace(validRepo, "{aws: 1h}", "{aws: abc}", 1), nil, true, "abc"),
		cfgCase("pool timeout is a list", strings.Replace(validRepo, "{aws: 1h}", "{aws: [1h]}", 1), nil, true),
		cfgCase("pools is a list", strings.Replace(validRepo, "{aws: 1h}", "[aws]", 1), nil, true),
		cfgCase("reap_on_success unknown pool", repoWith("    reap_on_success: [gpu]\n"), nil, true, "gpu"),
		cfgCase("password_file is a directory", repoWith("    username: bot\n    password_file: "+cfgDir+"\n"), nil, true),
		cfgCase("10MB key", "a"+big+": 1\n"+validRepo, nil, false),
		cfgCase("alias bomb", laughs+validRepo, nil, false),
		hcase{name: "config/password in uri is never printed", run: func(t *testing.T) {
			y := strings.Replace(validRepo, "file:///nonexistent/locks.git", "https://bot:canary-uri-pw-91c@example.com/locks.git", 1)
			_, err := watch.Parse("cfg.yaml", []byte(y), func(string) (string, bool) { return "", false })
			if err == nil {
				t.Fatal("a password in the uri was accepted")
			}
			oneLine(t, "error", err.Error())
			if strings.Contains(err.Error(), "canary-uri-pw-91c") {
				t.Errorf("error shows the password: %q", err)
			}
		}},
		hcase{name: "config/load a directory", run: func(t *testing.T) {
			_, err := watch.Load(cfgDir, func(string) (string, bool) { return "", false })
			wantResErr(t, err, cfgDir)
		}},
		hcase{name: "config/watch --config missing file exits 2", run: func(t *testing.T) {
			r := runCLI(t, nil, "watch", "--config", filepath.Join(cfgDir, "nope.yaml"))
			wantCLIError(t, r, 2, "nope.yaml")
		}},
	)

	// --- Resource JSON payloads.
	outDir := t.TempDir()
	payload := func(params any) []byte {
		return mustJSON(t, map[string]any{"source": src(repo), "params": params})
	}
	resCase := func(name, script string, stdin []byte, want ...string) hcase {
		return hcase{name: "json/" + script + " " + name, bare: sharedRepo, run: func(t *testing.T) {
			_, _, err := runRes(t, script, outDir, stdin)
			wantResErr(t, err, want...)
		}}
	}
	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	cases = append(cases,
		resCase("not JSON", "out", []byte("hello"), "invalid payload"),
		resCase("empty stdin", "out", nil),
		hcase{name: "json/out null", bare: sharedRepo, run: func(t *testing.T) {
			// Documented: upstream's missing-field errors, one per line, each its own clear line.
			_, _, err := runRes(t, "out", outDir, []byte("null"))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(l, "invalid payload") {
					t.Errorf("line %q is not an upstream invalid payload line", l)
				}
			}
		}},
		resCase("array", "out", []byte("[]"), "invalid payload"),
		resCase("source is an array", "check", []byte(`{"source":[]}`), "source"),
		resCase("uri is a number", "check", []byte(`{"source":{"uri":5,"branch":"main","pool":"aws"}}`), "uri"),
		resCase("acquire is a string", "out", payload(map[string]any{"acquire": "yes"}), "acquire"),
		resCase("params is an array", "out", []byte(`{"source":`+string(mustJSON(t, src(repo)))+`,"params":[{"acquire":true}]}`), "params"),
		resCase("acquire and claim", "out", payload(map[string]any{"acquire": true, "claim": "env-1"}), "acquire", "claim"),
		resCase("add and remove", "out", payload(map[string]any{"add": "x", "remove": "y"}), "add", "remove"),
		resCase("params null", "out", payload(nil), "missing"),
		resCase("misspelt operation", "out", payload(map[string]any{"acquier": true})),
		resCase("missing uri", "check", mustJSON(t, map[string]any{"source": map[string]any{"branch": "main", "pool": "aws"}}), "missing uri"),
		resCase("10MB pool name", "check", mustJSON(t, map[string]any{"source": src(repo, "pool", big)})),
		resCase("10MB uri", "check", mustJSON(t, map[string]any{"source": src(big)})),
		resCase("retry_delay forever", "out", mustJSON(t, map[string]any{"source": src(repo, "retry_delay", "forever"), "params": map[string]any{"acquire": true}}), "retry_delay"),
		resCase("pool ../aws", "check", mustJSON(t, map[string]any{"source": src(repo, "pool", "../aws")}), "pool"),
		resCase("version ref shell", "in", mustJSON(t, map[string]any{"source": src(repo), "version": map[string]any{"ref": "; rm -rf /"}}), "commit"),
		resCase("version is a string", "in", mustJSON(t, map[string]any{"source": src(repo), "version": "abc"}), "version"),
		resCase("depth is a string", "in", mustJSON(t, map[string]any{"source": src(repo), "version": map[string]any{"ref": strings.Repeat("a", 40)}, "params": map[string]any{"depth": "deep"}}), "depth"),
		resCase("100000-deep nesting", "out", []byte(`{"source":`+deep+`}`)),
		resCase("claim ../x", "out", payload(map[string]any{"claim": "../x"})),
		resCase("claim with newline", "out", payload(map[string]any{"claim": "env-1\nenv-2"})),
		resCase("release outside the step dir", "out", payload(map[string]any{"release": "../../etc"}), "release"),
		hcase{name: "json/check unknown source field is ignored", bare: sharedRepo, run: func(t *testing.T) {
			out, _, err := runRes(t, "check", "", mustJSON(t, map[string]any{"source": src(repo, "uri_typo", "x")}))
			if err != nil {
				oneLine(t, "error", err.Error())
				return
			}
			var v []map[string]string
			if json.Unmarshal([]byte(out), &v) != nil || len(v) == 0 {
				t.Errorf("check answered %q", clip(out))
			}
		}},
	)

	// --- Lock names and metadata in put directories (add: STEP).
	nameCase := func(name string, lockName []byte, want ...string) hcase {
		return hcase{name: "name/add " + name, bare: sharedRepo, run: func(t *testing.T) {
			dir := t.TempDir()
			writeStep(t, dir, "new", map[string][]byte{"name": lockName, "metadata": []byte("m")})
			_, _, err := runRes(t, "out", dir, payload(map[string]any{"add": "new"}))
			wantResErr(t, err, want...)
		}}
	}
	cases = append(cases,
		nameCase("../x", []byte("../x")),
		nameCase("a/b", []byte("a/b")),
		nameCase(".hidden", []byte(".hidden")),
		nameCase("empty", []byte("")),
		nameCase("NUL", []byte("a\x00b")),
		nameCase("inner newline", []byte("a\nb")),
		nameCase("300 bytes", bytes.Repeat([]byte("n"), 300)),
		nameCase("not UTF-8", []byte("env-\xff\xfe")),
		nameCase("name file 10MB", bytes.Repeat([]byte("n"), tenMB)),
		hcase{name: "name/add name is a symlink to /etc/passwd", bare: sharedRepo, run: func(t *testing.T) {
			dir := t.TempDir()
			writeStep(t, dir, "new", map[string][]byte{"metadata": []byte("m")})
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, "new", "name")); err != nil {
				t.Fatal(err)
			}
			_, _, err := runRes(t, "out", dir, payload(map[string]any{"add": "new"}))
			wantResErr(t, err)
			if err != nil && strings.Contains(err.Error(), "root:") {
				t.Errorf("error shows /etc/passwd: %q", err)
			}
		}},
		hcase{name: "meta/add metadata 10MB", bare: sharedRepo, run: func(t *testing.T) {
			dir := t.TempDir()
			writeStep(t, dir, "new", map[string][]byte{"name": []byte("env-big"), "metadata": bytes.Repeat([]byte{0xAB}, tenMB)})
			_, _, err := runRes(t, "out", dir, payload(map[string]any{"add": "new"}))
			wantResErr(t, err, "metadata")
		}},
		hcase{name: "meta/add metadata is a directory", bare: sharedRepo, run: func(t *testing.T) {
			dir := t.TempDir()
			writeStep(t, dir, "new", map[string][]byte{"name": []byte("env-dir")})
			if err := os.Mkdir(filepath.Join(dir, "new", "metadata"), 0o755); err != nil {
				t.Fatal(err)
			}
			_, _, err := runRes(t, "out", dir, payload(map[string]any{"add": "new"}))
			wantResErr(t, err, "metadata")
		}},
		hcase{name: "meta/add binary metadata round-trips through in", run: func(t *testing.T) {
			bare := lockRepo(t)
			bin := make([]byte, 0, 1024)
			for i := 0; i < 4; i++ {
				for b := 0; b < 256; b++ {
					bin = append(bin, byte(b))
				}
			}
			dir := t.TempDir()
			writeStep(t, dir, "new", map[string][]byte{"name": []byte("env-bin"), "metadata": bin})
			out, _, err := runRes(t, "out", dir, mustJSON(t, map[string]any{"source": src("file://" + bare), "params": map[string]any{"add": "new"}}))
			if err != nil {
				t.Fatalf("add with binary metadata: %v", err)
			}
			var ans struct{ Version map[string]string }
			if err := json.Unmarshal([]byte(out), &ans); err != nil {
				t.Fatalf("answer %q: %v", out, err)
			}
			if got := testenv.Git(t, bare, "cat-file", "-p", "main:aws/unclaimed/env-bin"); got != strings.TrimSpace(string(bin)) {
				// Git trims: compare the blob exactly instead.
				raw, _ := exec.Command("git", "--git-dir", bare, "cat-file", "blob", "main:aws/unclaimed/env-bin").Output()
				if !bytes.Equal(raw, bin) {
					t.Errorf("metadata changed on the way in: %d bytes", len(raw))
				}
			}
			getDir := filepath.Join(t.TempDir(), "get")
			_, _, err = runRes(t, "in", getDir, mustJSON(t, map[string]any{"source": src("file://" + bare), "version": ans.Version}))
			if err != nil {
				t.Fatalf("in: %v", err)
			}
			got, err := os.ReadFile(filepath.Join(getDir, "metadata"))
			if err != nil || !bytes.Equal(got, bin) {
				t.Errorf("in wrote metadata %d bytes (%v), want the %d bytes put", len(got), err, len(bin))
			}
		}},
	)

	// --- Repository content built with real git, through status, clean, out and in.
	keep := map[string]string{"aws/claimed/.gitkeep": "", "aws/unclaimed/.gitkeep": ""}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range keep {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	type content struct {
		name, lock string
		files      map[string]string
		pool       string
	}
	contents := []content{
		{name: "symlink lock to /etc/passwd", lock: "evil", files: with(map[string]string{"aws/claimed/evil": "symlink:/etc/passwd", "aws/unclaimed/evil2": "symlink:../../../../../../etc/passwd"})},
		{name: "lock in both states", lock: "dup", files: with(map[string]string{"aws/claimed/dup": "a", "aws/unclaimed/dup": "b"})},
		{name: "missing unclaimed dir", lock: "solo", files: map[string]string{"aws/claimed/solo": "x", "aws/claimed/.gitkeep": ""}},
		{name: "missing claimed dir", lock: "free", files: map[string]string{"aws/unclaimed/free": "x", "aws/unclaimed/.gitkeep": ""}},
		{name: "directory as lock", lock: "dir", files: with(map[string]string{"aws/claimed/dir/inner": "x"})},
		{name: "submodule as lock", lock: "sub", files: with(map[string]string{"aws/claimed/sub": "gitlink:" + strings.Repeat("1", 40)})},
		{name: "control char lock name", lock: "a\tb", files: with(map[string]string{"aws/claimed/a\tb": "x"})},
		{name: "non-UTF-8 pool", lock: "x", pool: "p\xff", files: map[string]string{"p\xff/claimed/x": "x", "p\xff/unclaimed/.gitkeep": "", "p\xff/claimed/.gitkeep": ""}},
	}
	for _, c := range contents {
		pool := c.pool
		if pool == "" {
			pool = "aws"
		}
		var once sync.Once
		var bare string
		get := func() string {
			once.Do(func() { bare = contentRepo(t, c.lock, c.files) })
			return bare
		}
		cases = append(cases,
			hcase{name: "repo/status " + c.name, bare: get, run: func(t *testing.T) {
				r := runCLI(t, nil, "status", "--repo", "file://"+get(), "--output", "json")
				if r.code != 0 {
					wantCLIError(t, r, 1)
					return
				}
				if strings.Contains(r.stdout, "root:") {
					t.Errorf("status shows a file outside the repository: %q", clip(r.stdout))
				}
				if !json.Valid([]byte(r.stdout)) {
					t.Errorf("status --output json is not JSON: %q", clip(r.stdout))
				}
			}},
			hcase{name: "repo/clean " + c.name, bare: get, run: func(t *testing.T) {
				r := runCLI(t, nil, "clean", "--repo", "file://"+get(), "--pools", pool+":1m")
				if r.code != 0 {
					wantCLIError(t, r, 1)
				}
				if strings.Contains(r.stdout+r.stderr, "root:") {
					t.Errorf("clean shows a file outside the repository")
				}
			}},
		)
		if c.pool != "" {
			continue // a non-UTF-8 pool name cannot be written in a JSON source
		}
		cases = append(cases,
			hcase{name: "repo/in " + c.name, bare: get, run: func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "get")
				_, _, err := runRes(t, "in", dir, mustJSON(t, map[string]any{"source": src("file://" + get()), "version": map[string]string{"ref": head(t, get())}}))
				if err != nil {
					oneLine(t, "error", err.Error())
					return
				}
				if b, _ := os.ReadFile(filepath.Join(dir, "metadata")); bytes.Contains(b, []byte("root:")) {
					t.Errorf("in wrote /etc/passwd as metadata")
				}
			}},
			hcase{name: "repo/out release " + c.name, bare: get, run: func(t *testing.T) {
				dir := t.TempDir()
				writeStep(t, dir, "lock", map[string][]byte{"name": []byte(c.lock)})
				_, _, err := runRes(t, "out", dir, mustJSON(t, map[string]any{"source": src("file://" + get()), "params": map[string]any{"release": "lock"}}))
				wantResErr(t, err)
			}},
		)
	}

	cases = append(cases, wholeRepoCases(t)...)

	n := runCatalogue(t, cases)
	t.Logf("cases: %d", n)
	if n < 40 {
		t.Errorf("only %d cases, want at least 40", n)
	}
}

// ---------------------------------------------------------------------------
// Secret canaries.

// spy puts git and ssh first on PATH: each appends its arguments to the first
// log and its environment (/proc/PID/environ, as the process was started) to the
// second, and runs the real binary.
func spy(t *testing.T) (args, environ string) {
	t.Helper()
	bin := t.TempDir()
	log := filepath.Join(bin, "args.log")
	envLog := filepath.Join(bin, "environ.log")
	for _, name := range []string{"git", "ssh"} {
		real := testenv.RequireCommand(t, name)
		script := "#!/bin/sh\nprintf '%s %s\\n' " + name + " \"$*\" >> " + log + "\n" +
			"{ echo \"== " + name + " $$\"; tr '\\0' '\\n' < /proc/$$/environ; } >> " + envLog + "\n" +
			"exec " + real + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log, envLog
}

// inEnv runs f with vars in the process environment, which every child of an
// in-process poolboy inherits, as a real poolboy's children inherit its own.
func inEnv(vars map[string]string, f func()) {
	for k, v := range vars {
		os.Setenv(k, v)
	}
	defer func() {
		for k := range vars {
			os.Unsetenv(k)
		}
	}()
	f()
}

// copies is vars, each also under a second name poolboy does not know (a CI
// system that exports a secret twice): a child must not inherit either.
func copies(vars map[string]string) map[string]string {
	all := map[string]string{}
	for k, v := range vars {
		all[k], all["COPY_OF_"+k] = v, v
	}
	return all
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestSecretCanaries(t *testing.T) {
	for _, c := range []string{"git", "ssh", "ssh-keygen"} {
		testenv.RequireCommand(t, c)
	}
	t.Setenv("HOME", t.TempDir()) // ssh's known_hosts
	argsLog, envLog := spy(t)
	stamp := fmt.Sprintf("%x", time.Now().UnixNano())
	var (
		repoPW     = "canary-repo-pw-" + stamp
		ccPW       = "canary-cc-pw-" + stamp
		ccBadTok   = "canary-cc-token-" + stamp
		passphrase = "canary-passphrase-" + stamp
		hookSecret = "canary-webhook-" + stamp
		pushPW     = "canary-push-pw-" + stamp
	)

	root := t.TempDir()
	bare := filepath.Join(root, "locks.git")
	if err := os.Rename(lockRepo(t), bare); err != nil {
		t.Fatal(err)
	}
	httpSrv := testenv.GitHTTP(t, root, "bot", repoPW)
	httpURL := httpSrv.URL + "locks.git"
	sshd := testenv.SSHD(t, root)
	sshURL := sshd.URL(bare)
	plainKey := sshd.AddKey(t)
	lockedKey := sshd.AddKeyWithPassphrase(t, passphrase)
	cc := fakeconcourse.New(t)
	cc.AddUser("ccbot", ccPW, "main")
	ccTok := cc.Token("ccbot")

	secrets := map[string]string{
		"repo password": repoPW, "concourse password": ccPW, "bad concourse token": ccBadTok,
		"concourse token": ccTok, "key passphrase": passphrase, "webhook secret": hookSecret,
		"pushgateway password": pushPW,
	}
	for name, key := range map[string][]byte{"plain key": plainKey, "locked key": lockedKey} {
		for i, line := range strings.Split(string(key), "\n") {
			if line != "" && !strings.HasPrefix(line, "-----") {
				secrets[fmt.Sprintf("%s line %d", name, i)] = line
			}
		}
	}

	var outputs []struct{ where, text string }
	record := func(where, text string) { outputs = append(outputs, struct{ where, text string }{where, text}) }
	paths := 0

	// CLI over HTTP and SSH, status and clean, Concourse by password and token.
	var pushURL string
	var gw *testenv.PushgatewayServer
	if _, err := exec.LookPath("prometheus-pushgateway"); err == nil {
		gw = testenv.Pushgateway(t)
		pushURL = strings.Replace(gw.URL, "://", "://push:"+pushPW+"@", 1)
	}
	httpEnv := map[string]string{"POOL_REPO_USERNAME": "bot", "POOL_REPO_PASSWORD": repoPW,
		"CONCOURSE_USERNAME": "ccbot", "CONCOURSE_PASSWORD": ccPW}
	sshEnv := map[string]string{"POOL_REPO_SSH_PRIVATE_KEY": string(plainKey), "CONCOURSE_TOKEN": ccTok}
	cliRuns := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"cli status http", httpEnv, []string{"status", "--repo", httpURL, "--pools", "aws:1h", "--verbose"}},
		{"cli status http json", httpEnv, []string{"status", "--repo", httpURL, "--output", "json", "--verbose"}},
		{"cli status ssh", sshEnv, []string{"status", "--repo", sshURL, "--pools", "aws:1h", "--verbose"}},
		{"cli clean ssh bad token", map[string]string{"POOL_REPO_SSH_PRIVATE_KEY": string(plainKey), "CONCOURSE_TOKEN": ccBadTok},
			[]string{"clean", "--repo", sshURL, "--pools", "aws:1h", "--dry-run", "--verbose"}},
		{"cli clean http", httpEnv, []string{"clean", "--repo", httpURL, "--pools", "aws:1h", "--verbose"}},
		{"cli clean http wrong password", map[string]string{"POOL_REPO_USERNAME": "bot", "POOL_REPO_PASSWORD": "wrong-" + repoPW},
			[]string{"clean", "--repo", httpURL, "--pools", "aws:1h", "--verbose"}},
	}
	for _, c := range cliRuns {
		args := append([]string{}, c.args...)
		args = append(args, "--concourse-url", cc.URL)
		if pushURL != "" {
			args = append(args, "--pushgateway-url", pushURL)
		}
		vars := copies(c.env)
		if pushURL != "" {
			vars["POOLBOY_PUSHGATEWAY_URL"] = pushURL
		}
		var r cliResult
		inEnv(vars, func() { r = runCLI(t, c.env, args...) })
		if r.code != 0 && !strings.Contains(c.name, "wrong") {
			t.Errorf("%s: exit %d: %s", c.name, r.code, r.stderr)
		}
		record(c.name+" stdout", r.stdout)
		record(c.name+" stderr", r.stderr)
		paths++
	}

	// The resource over SSH (key + passphrase) and HTTP (username/password).
	sshSrc := src(sshURL, "private_key", string(lockedKey), "private_key_passphrase", passphrase)
	httpSrc := src(httpURL, "username", "bot", "password", repoPW)
	// The sources' secrets are also in variables of the step's environment.
	for k, v := range map[string]string{"STEP_REPO_PW": repoPW, "STEP_PASSPHRASE": passphrase, "STEP_KEY": string(lockedKey)} {
		t.Setenv(k, v)
	}
	for _, s := range []struct {
		name string
		src  map[string]any
	}{{"ssh", sshSrc}, {"http", httpSrc}} {
		dir := t.TempDir()
		out, log, err := runRes(t, "out", dir, mustJSON(t, map[string]any{"source": s.src, "params": map[string]any{"acquire": true}}))
		record("resource out acquire "+s.name, out+log)
		if err != nil {
			t.Fatalf("out acquire over %s: %v\n%s", s.name, err, log)
		}
		var ans struct{ Version map[string]string }
		if err := json.Unmarshal([]byte(out), &ans); err != nil {
			t.Fatal(err)
		}
		getDir := filepath.Join(dir, "lock")
		o, l, err := runRes(t, "in", getDir, mustJSON(t, map[string]any{"source": s.src, "version": ans.Version}))
		record("resource in "+s.name, o+l)
		if err != nil {
			t.Fatalf("in over %s: %v", s.name, err)
		}
		for _, f := range []string{"name", "metadata", "ref"} {
			b, _ := os.ReadFile(filepath.Join(getDir, f))
			record("resource in file "+f, string(b))
		}
		o, l, err = runRes(t, "out", dir, mustJSON(t, map[string]any{"source": s.src, "params": map[string]any{"release": "lock"}}))
		record("resource out release "+s.name, o+l)
		if err != nil {
			t.Fatalf("out release over %s: %v\n%s", s.name, err, l)
		}
		o, l, err = runRes(t, "check", "", mustJSON(t, map[string]any{"source": s.src}))
		record("resource check "+s.name, o+l)
		if err != nil {
			t.Fatalf("check over %s: %v", s.name, err)
		}
		paths += 3
	}
	// reap through the resource, with Concourse credentials in the source.
	reapSrc := src(httpURL, "username", "bot", "password", repoPW, "stale_timeout", "1m",
		"concourse_url", cc.URL, "concourse_username", "ccbot", "concourse_password", ccPW)
	if pushURL != "" {
		reapSrc["prometheus_push_gateway"] = pushURL
	}
	o, l, err := runRes(t, "out", t.TempDir(), mustJSON(t, map[string]any{"source": reapSrc, "params": map[string]any{"reap": true}}))
	record("resource reap", o+l)
	if err != nil {
		t.Errorf("reap: %v\n%s", err, l)
	} else {
		oneLine(t, "reap", "ok")
	}
	paths++
	// wrong passphrase: an error that must not show it
	_, l, err = runRes(t, "out", t.TempDir(), mustJSON(t, map[string]any{"source": src(sshURL, "private_key", string(lockedKey), "private_key_passphrase", "wrong-"+passphrase), "params": map[string]any{"acquire": true}}))
	if err == nil {
		t.Errorf("a wrong passphrase worked")
	} else {
		oneLine(t, "wrong passphrase", err.Error())
		record("resource wrong passphrase", err.Error()+l)
	}
	paths++

	// The watch daemon: both repositories, secrets from *_env.
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg := fmt.Sprintf(`listen: %s
interval: 1s
cache_dir: %s
concourse:
  url: %s
  username: ccbot
  password_env: CANARY_CC_PW
repos:
  - name: over-http
    uri: %s
    username: bot
    password_env: CANARY_REPO_PW
    pools: {aws: 1m}
    webhook_secret_env: CANARY_HOOK
  - name: over-ssh
    uri: %s
    private_key_env: CANARY_KEY
    pools: {aws: 1m}
`, listen, t.TempDir(), cc.URL, httpURL, sshURL)
	cfgFile := filepath.Join(t.TempDir(), "watch.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	watchEnv := map[string]string{"CANARY_CC_PW": ccPW, "CANARY_REPO_PW": repoPW, "CANARY_HOOK": hookSecret, "CANARY_KEY": string(plainKey)}
	ctx, cancel := context.WithCancel(context.Background())
	var wout, werr bytes.Buffer
	done := make(chan int)
	for k, v := range copies(watchEnv) {
		t.Setenv(k, v)
	}
	go func() {
		done <- cli.Main(ctx, []string{"watch", "--config", cfgFile, "--verbose"}, &wout, &werr,
			func(k string) (string, bool) { v, ok := watchEnv[k]; return v, ok })
	}()
	base := "http://" + listen
	deadline := time.Now().Add(90 * time.Second)
	var api string
	for {
		resp, err := http.Get(base + "/api/pools")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			api = string(b)
			var doc struct {
				Repos []struct {
					Name        string     `json:"name"`
					LastSuccess *time.Time `json:"last_success"`
				} `json:"repos"`
			}
			if json.Unmarshal(b, &doc) == nil && len(doc.Repos) == 2 &&
				doc.Repos[0].LastSuccess != nil && doc.Repos[1].LastSuccess != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("watch: no successful cycle of both repos in 90s; /api/pools %q\nstderr:\n%s", clip(api), werr.String())
		}
		time.Sleep(200 * time.Millisecond) // polling an external server, bounded above
	}
	req, _ := http.NewRequest("POST", base+"/webhook/over-http", strings.NewReader(`{"ref":"refs/heads/main"}`))
	req.Header.Set("X-Gitlab-Token", hookSecret)
	req.Header.Set("X-Gitlab-Event", "Push Hook")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		record("watch webhook answer", string(b))
	}
	record("watch /api/pools", httpGet(t, base+"/api/pools"))
	record("watch /", httpGet(t, base+"/"))
	metrics := httpGet(t, base+"/metrics")
	if !strings.Contains(metrics, "poolboy_cycles_total") {
		t.Errorf("/metrics has no poolboy_cycles_total")
	}
	record("watch /metrics", metrics)
	record("watch /readyz", httpGet(t, base+"/readyz"))
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("watch exited %d", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("watch did not stop")
	}
	record("watch stdout", wout.String())
	record("watch stderr", werr.String())
	paths += 6

	if gw != nil {
		record("pushgateway", gw.Metrics(t))
		paths++
	}
	// Read before the test's own git below, which runs with the variables set.
	environs, err := os.ReadFile(envLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(environs), "== ssh ") || !strings.Contains(string(environs), "== git ") {
		t.Errorf("the spies recorded no ssh or no git environment: %q", clip(string(environs)))
	}
	record("process environments", string(environs))
	record("remote history", testenv.Git(t, bare, "log", "--all", "--format=raw"))
	args, err := os.ReadFile(argsLog)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(args), "ssh ") || !strings.Contains(string(args), "git ") {
		t.Errorf("the spies saw no ssh or no git: %q", clip(string(args)))
	}
	record("process arguments", string(args))

	violations := 0
	for _, o := range outputs {
		for name, s := range secrets {
			if strings.Contains(o.text, s) {
				violations++
				t.Errorf("%s leaked in %s", name, o.where)
			}
		}
	}
	t.Logf("canaries: %d, paths: %d, outputs swept: %d, violations: %d", len(secrets), paths, len(outputs), violations)
}
