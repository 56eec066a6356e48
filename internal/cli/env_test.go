package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// envCase runs poolboy once against a fresh lock repository (served over file://, and
// over git daemon and HTTP when the case needs them) and checks the outcome.
type envCase struct {
	name  string
	net   bool // also serve the repo over git daemon (t.url["git"]) and HTTP (t.url["http"])
	env   func(e *envFixture) map[string]string
	args  func(e *envFixture) []string
	check func(t *testing.T, e *envFixture, res result)
	cc    ccKind // start a fake Concourse (e.cc)
}

// ccKind is the fake Concourse an envCase needs.
type ccKind int

const (
	noCC   ccKind = iota
	ccHTTP        // plain HTTP
	ccTLS         // HTTPS with a certificate only e.caFile trusts
)

type envFixture struct {
	r        *lockRepo
	file     string // file:// URL
	git      string // git daemon URL ("" unless net)
	http     string // HTTP URL, basic auth httpUser/httpPass ("" unless net)
	refs     string // remote refs before the run
	cache    string // an empty directory
	other    string // another empty directory
	keyFile  string // an existing (dummy) private key file
	staleRef string // the stale claim commit

	// With a fake Concourse (envCase.cc): it has user ccAdmin, builds
	// main/deploy/integration #41 started (env-1's), main/deploy/smoke #7 succeeded
	// (env-2's) and ops/deploy/integration #9 started (env-3's, claimed 2h ago by the
	// pre-team claim preTeamEnvMsg).
	cc      *fakeconcourse.Server
	ccToken string // a token of ccAdmin
	flyHome string // FLY_HOME whose .flyrc has target "ci": cc's URL, team ops, ccToken
	caFile  string // cc's certificate (ccTLS only)
	dead    string // a Concourse URL where nothing listens
}

// preTeamEnvMsg claims env-3 in the form written before team names were recorded.
const preTeamEnvMsg = "deploy/integration build 9 claiming: env-3"

func (e *envFixture) startConcourse(t *testing.T, kind ccKind) {
	t.Helper()
	opts := []fakeconcourse.Option{fakeconcourse.WithExternalURL(ccExternal)}
	if kind == ccTLS {
		opts = append(opts, fakeconcourse.WithTLS())
	}
	e.cc = fakeconcourse.New(t, opts...)
	e.cc.AddUser(ccAdmin, ccAdminPW, "main")
	e.ccToken = e.cc.Token(ccAdmin)
	e.cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "integration", Name: "41", Status: "started"})
	e.cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "smoke", Name: "7", Status: "succeeded"})
	e.cc.AddBuild(fakeconcourse.Build{Team: "ops", Pipeline: "deploy", Job: "integration", Name: "9", Status: "started"})
	e.flyHome = writeFlyrc(t, "ci", e.cc.URL, "ops", e.ccToken, "")
	if kind == ccTLS {
		e.caFile = writeFile(t, "ca.pem", e.cc.CACertPEM())
	}
	e.dead = fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t))
}

// ccLock runs the JSON checks common to the Concourse cases and returns a lock.
func ccLock(t *testing.T, res result, pool, lock string) lockDoc {
	t.Helper()
	return isJSON(t, res).lock(t, pool, lock)
}

func (e *envFixture) unchanged(t *testing.T) {
	t.Helper()
	if got := e.r.refs(t); got != e.refs {
		t.Errorf("remote changed:\n%s\n->\n%s", e.refs, got)
	}
}

func (e *envFixture) cleaned(t *testing.T) {
	t.Helper()
	if got := e.r.refs(t); got == e.refs {
		t.Error("remote unchanged, want env-1 freed")
	}
	testenv.Git(t, e.r.dir, "rev-parse", "--verify", "main:aws/unclaimed/env-1")
}

// clones lists the clones poolboy left in a cache directory.
func clones(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.git"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func shallow(t *testing.T, clone string) string {
	t.Helper()
	return testenv.Git(t, clone, "rev-parse", "--is-shallow-repository")
}

func wantCode(t *testing.T, res result, code int, substrings ...string) {
	t.Helper()
	if res.code != code {
		t.Fatalf("want exit %d: %s", code, res)
	}
	for _, s := range substrings {
		if !strings.Contains(res.stderr+res.stdout, s) {
			t.Errorf("output does not mention %q: %s", s, res)
		}
	}
}

func isJSON(t *testing.T, res result) statusDoc {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("%s", res)
	}
	return decodeStatus(t, res.stdout)
}

func isText(t *testing.T, res result) {
	t.Helper()
	if res.code != 0 {
		t.Fatalf("%s", res)
	}
	if strings.HasPrefix(res.stdout, "{") || !strings.Contains(res.stdout, "\npool aws (") {
		t.Errorf("want text output, got:\n%s", res.stdout)
	}
}

func envCases() []envCase {
	str := func(kv ...string) func(*envFixture) map[string]string {
		return func(*envFixture) map[string]string {
			m := map[string]string{}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
	}
	file := func(kv ...string) func(*envFixture) map[string]string {
		return func(e *envFixture) map[string]string {
			m := str(kv...)(e)
			m["POOL_REPO"] = e.file
			return m
		}
	}
	args := func(a ...string) func(*envFixture) []string { return func(*envFixture) []string { return a } }
	creds := map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": httpPass}
	cases := []envCase{
		// Each env var on its own.
		{name: "POOL_REPO", env: file(), args: args("status", "--output", "json"),
			check: func(t *testing.T, e *envFixture, res result) {
				if d := isJSON(t, res); d.Repo != e.file || d.Commit != e.r.head(t, "main") {
					t.Errorf("repo %q commit %s, want %q at %s", d.Repo, d.Commit, e.file, e.r.head(t, "main"))
				}
			}},
		{name: "POOLS", env: file("POOLS", "aws:1h"), args: args("status", "--output", "json"),
			check: func(t *testing.T, e *envFixture, res result) {
				_, _, stale, timeout, _ := isJSON(t, res).pool(t, "aws")
				if timeout == nil || *timeout != 3600 || stale != 1 {
					t.Errorf("aws timeout %v stale %d, want 3600 and 1", timeout, stale)
				}
			}},
		{name: "POOLS for clean", env: file("POOLS", "aws:1h"), args: args("clean"),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0); e.cleaned(t) }},
		{name: "POOL_BRANCH", env: file("POOL_BRANCH", "staging"), args: args("status", "--output", "json"),
			check: func(t *testing.T, e *envFixture, res result) {
				if d := isJSON(t, res); d.Branch != "staging" || d.Commit != e.staleRef {
					t.Errorf("branch %q at %s, want staging at %s", d.Branch, d.Commit, e.staleRef)
				}
			}},
		{name: "POOLBOY_OUTPUT", env: file("POOLBOY_OUTPUT", "json"), args: args("status"),
			check: func(t *testing.T, e *envFixture, res result) { isJSON(t, res) }},
		{name: "POOLBOY_DRY_RUN", env: file("POOLBOY_DRY_RUN", "true"), args: args("clean", "--pools", "aws:1h"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0, "would free aws/env-1")
				e.unchanged(t)
			}},
		{name: "POOLBOY_MAX_ATTEMPTS", env: file("POOLBOY_MAX_ATTEMPTS", "0"), args: args("clean", "--pools", "aws:1h"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, cli.ExitUsage, "--max-attempts 0")
				e.unchanged(t)
			}},
		{name: "POOLBOY_VERBOSE", env: file("POOLBOY_VERBOSE", "true"), args: args("status"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0, "level=DEBUG")
			}},
		{name: "POOLBOY_PUSHGATEWAY_URL", env: file("POOLBOY_PUSHGATEWAY_URL", "http://127.0.0.1:1"), args: args("status"),
			check: func(t *testing.T, e *envFixture, res result) {
				// Nothing listens there: the push is tried, warned about, and the run succeeds.
				wantCode(t, res, 0, "poolboy: warning: metrics not pushed: metrics: push to http://127.0.0.1:1:")
			}},
		{name: "POOLBOY_DEPTH invalid", env: file("POOLBOY_DEPTH", "-1"), args: args("status"),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, cli.ExitUsage, "--depth -1") }},
		{name: "POOLBOY_CACHE_DIR and POOLBOY_DEPTH", net: true,
			env: func(e *envFixture) map[string]string {
				return map[string]string{"POOL_REPO": e.git, "POOLBOY_CACHE_DIR": e.cache, "POOLBOY_DEPTH": "4"}
			},
			args: args("status", "--pools", "aws:1h"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0)
				c := clones(t, e.cache)
				if len(c) != 1 {
					t.Fatalf("clones in POOLBOY_CACHE_DIR: %v, want 1", c)
				}
				// The three claims are the last three commits: 4 is deep enough.
				if shallow(t, c[0]) != "true" || testenv.Git(t, c[0], "rev-list", "--count", "main") != "4" {
					t.Errorf("cached clone is not 4 commits deep")
				}
			}},
		{name: "POOL_REPO_USERNAME and POOL_REPO_PASSWORD", net: true,
			env:  func(e *envFixture) map[string]string { return merge(creds, map[string]string{"POOL_REPO": e.http}) },
			args: args("status", "--pools", "aws:1h", "--output", "json"),
			check: func(t *testing.T, e *envFixture, res result) {
				if _, _, stale, _, _ := isJSON(t, res).pool(t, "aws"); stale != 1 {
					t.Errorf("aws stale %d, want 1", stale)
				}
			}},
		{name: "POOL_REPO_SSH_PRIVATE_KEY_FILE", env: file("POOL_REPO_SSH_PRIVATE_KEY_FILE", "/nonexistent/poolboy-key"), args: args("status"),
			check: func(t *testing.T, e *envFixture, res result) {
				// The exit status of this error is checked in TestBadInput.
				if res.code == 0 || !strings.Contains(res.stderr, "private key file") || !strings.Contains(res.stderr, "/nonexistent/poolboy-key") {
					t.Errorf("want an error naming the missing key file: %s", res)
				}
			}},
		{name: "POOL_REPO_SSH_PRIVATE_KEY", env: func(e *envFixture) map[string]string {
			return map[string]string{"POOL_REPO": e.file, "POOL_REPO_SSH_PRIVATE_KEY": "dummy-key-material", "POOL_REPO_SSH_PRIVATE_KEY_FILE": e.keyFile}
		}, args: args("status"),
			check: func(t *testing.T, e *envFixture, res result) {
				if res.code == 0 || !strings.Contains(res.stderr, "not both") || strings.Contains(res.stderr, "dummy-key-material") {
					t.Errorf("key in env and key file: want an error saying not both, without the key: %s", res)
				}
			}},

		// Flags win over env.
		{name: "--repo over POOL_REPO", env: str("POOL_REPO", "file:///nonexistent/locks.git"),
			args:  func(e *envFixture) []string { return []string{"status", "--repo", e.file} },
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0) }},
		{name: "--pools over POOLS", env: file("POOLS", "aws:1h"), args: args("clean", "--pools", "aws:10h"),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0, "nothing to clean"); e.unchanged(t) }},
		{name: "--branch over POOL_BRANCH", env: file("POOL_BRANCH", "nope"), args: args("status", "--branch", "main", "--output", "json"),
			check: func(t *testing.T, e *envFixture, res result) {
				if d := isJSON(t, res); d.Branch != "main" {
					t.Errorf("branch %q", d.Branch)
				}
			}},
		{name: "--output over POOLBOY_OUTPUT", env: file("POOLBOY_OUTPUT", "json"), args: args("status", "--output", "text"),
			check: func(t *testing.T, e *envFixture, res result) { isText(t, res) }},
		{name: "--pushgateway-url over POOLBOY_PUSHGATEWAY_URL", env: file("POOLBOY_PUSHGATEWAY_URL", "http://127.0.0.1:1"),
			args: args("clean", "--pools", "aws:1h", "--pushgateway-url", "http://127.0.0.1:9"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0, "metrics: push to http://127.0.0.1:9:")
				if strings.Contains(res.stderr, "127.0.0.1:1:") {
					t.Errorf("pushed to POOLBOY_PUSHGATEWAY_URL: %s", res)
				}
				e.cleaned(t)
			}},
		{name: "--dry-run=false over POOLBOY_DRY_RUN", env: file("POOLBOY_DRY_RUN", "true"), args: args("clean", "--pools", "aws:1h", "--dry-run=false"),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0, "cleaned 1 lock"); e.cleaned(t) }},
		{name: "--max-attempts over POOLBOY_MAX_ATTEMPTS", env: file("POOLBOY_MAX_ATTEMPTS", "0"), args: args("clean", "--pools", "aws:1h", "--max-attempts", "1"),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0); e.cleaned(t) }},
		{name: "--verbose=false over POOLBOY_VERBOSE", env: file("POOLBOY_VERBOSE", "true"), args: args("status", "--verbose=false"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0)
				if res.stderr != "" {
					t.Errorf("stderr not empty: %q", res.stderr)
				}
			}},
		{name: "--depth over POOLBOY_DEPTH", net: true,
			env: func(e *envFixture) map[string]string {
				return map[string]string{"POOL_REPO": e.git, "POOLBOY_CACHE_DIR": e.cache, "POOLBOY_DEPTH": "4"}
			},
			args: args("status", "--depth", "0"),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0)
				if c := clones(t, e.cache); len(c) != 1 || shallow(t, c[0]) != "false" {
					t.Errorf("want one complete clone, got %v", c)
				}
			}},
		{name: "--depth over an invalid POOLBOY_DEPTH", env: file("POOLBOY_DEPTH", "abc"), args: args("status", "--depth", "0"),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0) }},
		{name: "--cache-dir over POOLBOY_CACHE_DIR",
			env: func(e *envFixture) map[string]string {
				return map[string]string{"POOL_REPO": e.file, "POOLBOY_CACHE_DIR": e.other}
			},
			args: func(e *envFixture) []string { return []string{"status", "--cache-dir", e.cache} },
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, 0)
				if len(clones(t, e.cache)) != 1 || len(clones(t, e.other)) != 0 {
					t.Errorf("clones: --cache-dir %v, POOLBOY_CACHE_DIR %v", clones(t, e.cache), clones(t, e.other))
				}
			}},
		{name: "--username and --password over env", net: true,
			env: func(e *envFixture) map[string]string {
				return map[string]string{"POOL_REPO": e.http, "POOL_REPO_USERNAME": "nobody", "POOL_REPO_PASSWORD": "wrong-pw"}
			},
			args:  args("status", "--username", httpUser, "--password", httpPass),
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0) }},
		{name: "--private-key-file over POOL_REPO_SSH_PRIVATE_KEY_FILE", env: file("POOL_REPO_SSH_PRIVATE_KEY_FILE", "/nonexistent/poolboy-key"),
			args:  func(e *envFixture) []string { return []string{"status", "--private-key-file", e.keyFile} },
			check: func(t *testing.T, e *envFixture, res result) { wantCode(t, res, 0) }},
	}
	return append(cases, concourseEnvCases(file)...)
}

// concourseEnvCases set each Concourse flag through its env var alone, and show the
// flag winning over it. Unless a case says otherwise poolboy runs status --output json
// --pools aws:1h against the fake Concourse of envFixture.startConcourse.
func concourseEnvCases(file func(kv ...string) func(*envFixture) map[string]string) []envCase {
	env := func(f func(e *envFixture) map[string]string) func(*envFixture) map[string]string {
		return func(e *envFixture) map[string]string {
			m := f(e)
			m["POOL_REPO"] = e.file
			return m
		}
	}
	status := func(extra func(e *envFixture) []string) func(*envFixture) []string {
		return func(e *envFixture) []string {
			return append([]string{"status", "--output", "json", "--pools", "aws:1h"}, extra(e)...)
		}
	}
	// alive: env-1's started build keeps it, and Concourse gave no warning.
	alive := func(t *testing.T, e *envFixture, res result) {
		t.Helper()
		l := ccLock(t, res, "aws", "env-1")
		wantLock(t, l, "alive", "build-running", false)
		if l.Build == nil || !strings.HasPrefix(l.Build.URL, e.cc.URL+"/builds/") {
			t.Errorf("env-1 build %+v, want a page on %s", l.Build, e.cc.URL)
		}
	}
	// noAnswer: Concourse could not be asked; the timeout decided env-1, with a warning.
	noAnswer := func(t *testing.T, e *envFixture, res result) {
		t.Helper()
		wantLock(t, ccLock(t, res, "aws", "env-1"), "stale", "timeout", true)
	}
	token := func(e *envFixture) []string { return []string{"--concourse-token", e.ccToken} }
	url := func(e *envFixture) []string { return []string{"--concourse-url", e.cc.URL} }
	urlToken := func(e *envFixture) []string { return append(url(e), token(e)...) }
	preTeamIn := func(team string) func(t *testing.T, e *envFixture, res result) {
		return func(t *testing.T, e *envFixture, res result) {
			t.Helper()
			wantLock(t, ccLock(t, res, "aws", "env-3"), "alive", "build-running", false)
			if count(e.cc.Requests(), "GET", "/api/v1/teams/"+team+"/pipelines/deploy/jobs/integration/builds/9") != 1 {
				t.Errorf("the pre-team claim was not looked up in team %s: %v", team, e.cc.Requests())
			}
		}
	}
	return []envCase{
		{name: "CONCOURSE_BASE_URL", cc: ccHTTP,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_BASE_URL": e.cc.URL} }),
			args:  status(token),
			check: alive},
		{name: "CONCOURSE_URL", cc: ccHTTP,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_URL": e.cc.URL} }),
			args:  status(token),
			check: alive},
		{name: "CONCOURSE_BASE_URL wins against CONCOURSE_URL", cc: ccHTTP,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"CONCOURSE_BASE_URL": e.cc.URL, "CONCOURSE_URL": e.dead}
			}),
			args:  status(token),
			check: alive},
		{name: "--concourse-url over CONCOURSE_BASE_URL and CONCOURSE_URL", cc: ccHTTP,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"CONCOURSE_BASE_URL": e.dead, "CONCOURSE_URL": e.dead}
			}),
			args:  status(urlToken),
			check: alive},
		{name: "CONCOURSE_USERNAME and CONCOURSE_PASSWORD", cc: ccHTTP,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"CONCOURSE_USERNAME": ccAdmin, "CONCOURSE_PASSWORD": ccAdminPW}
			}),
			args: status(url),
			check: func(t *testing.T, e *envFixture, res result) {
				alive(t, e, res)
				if e.cc.TokensIssued() != 1 {
					t.Errorf("tokens issued: %d, want 1", e.cc.TokensIssued())
				}
			}},
		{name: "--concourse-username and --concourse-password over env", cc: ccHTTP,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"CONCOURSE_USERNAME": "nobody", "CONCOURSE_PASSWORD": "wrong-pw"}
			}),
			args: status(func(e *envFixture) []string {
				return append(url(e), "--concourse-username", ccAdmin, "--concourse-password", ccAdminPW)
			}),
			check: alive},
		{name: "CONCOURSE_TOKEN", cc: ccHTTP,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_TOKEN": e.ccToken} }),
			args:  status(url),
			check: alive},
		{name: "--concourse-token over CONCOURSE_TOKEN", cc: ccHTTP,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_TOKEN": "not-a-token"} }),
			args:  status(urlToken),
			check: alive},
		{name: "FLY_TARGET", cc: ccHTTP,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"FLY_TARGET": "ci", "FLY_HOME": e.flyHome}
			}),
			args: status(func(*envFixture) []string { return nil }),
			check: func(t *testing.T, e *envFixture, res result) {
				alive(t, e, res)
				preTeamIn("ops")(t, e, res) // the target's team
			}},
		{name: "--fly-target over FLY_TARGET", cc: ccHTTP,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"FLY_TARGET": "nope", "FLY_HOME": e.flyHome}
			}),
			args:  status(func(*envFixture) []string { return []string{"--fly-target", "ci"} }),
			check: alive},
		{name: "CONCOURSE_TEAM", cc: ccHTTP,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_TEAM": "ops"} }),
			args:  status(urlToken),
			check: preTeamIn("ops")},
		{name: "--concourse-team over CONCOURSE_TEAM", cc: ccHTTP,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_TEAM": "nope"} }),
			args:  status(func(e *envFixture) []string { return append(urlToken(e), "--concourse-team", "ops") }),
			check: preTeamIn("ops")},
		{name: "CONCOURSE_INSECURE", cc: ccTLS,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_INSECURE": "true"} }),
			args:  status(urlToken),
			check: alive},
		{name: "--concourse-insecure=false over CONCOURSE_INSECURE", cc: ccTLS,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_INSECURE": "true"} }),
			args:  status(func(e *envFixture) []string { return append(urlToken(e), "--concourse-insecure=false") }),
			check: noAnswer},
		{name: "CONCOURSE_CA_CERT", cc: ccTLS,
			env:   env(func(e *envFixture) map[string]string { return map[string]string{"CONCOURSE_CA_CERT": e.caFile} }),
			args:  status(urlToken),
			check: alive},
		{name: "--concourse-ca-cert over CONCOURSE_CA_CERT", cc: ccTLS,
			env: env(func(e *envFixture) map[string]string {
				return map[string]string{"CONCOURSE_CA_CERT": "/nonexistent/ca.pem"}
			}),
			args:  status(func(e *envFixture) []string { return append(urlToken(e), "--concourse-ca-cert", e.caFile) }),
			check: alive},
		{name: "POOLBOY_REAP_ON_SUCCESS", cc: ccHTTP, env: file("POOLBOY_REAP_ON_SUCCESS", "aws"),
			args: status(urlToken),
			check: func(t *testing.T, e *envFixture, res result) {
				wantLock(t, ccLock(t, res, "aws", "env-2"), "stale", "build-succeeded", false)
			}},
		{name: "--reap-on-success= over POOLBOY_REAP_ON_SUCCESS", cc: ccHTTP, env: file("POOLBOY_REAP_ON_SUCCESS", "aws"),
			args: status(func(e *envFixture) []string { return append(urlToken(e), "--reap-on-success=") }),
			check: func(t *testing.T, e *envFixture, res result) {
				wantLock(t, ccLock(t, res, "aws", "env-2"), "held", "within-timeout", false)
			}},
		{name: "POOLBOY_REAP_TO", env: file("POOLS", "aws:1h", "POOLBOY_REAP_TO", "aws:gpu"), args: func(*envFixture) []string { return []string{"status", "--output", "json"} },
			check: func(t *testing.T, e *envFixture, res result) {
				if !strings.Contains(res.stdout, `"reap_to": "gpu"`) {
					t.Errorf("aws does not reap to gpu:\n%s", res)
				}
			}},
		{name: "--reap-to= over POOLBOY_REAP_TO", env: file("POOLS", "aws:1h", "POOLBOY_REAP_TO", "aws:gpu"), args: func(*envFixture) []string { return []string{"status", "--output", "json", "--reap-to="} },
			check: func(t *testing.T, e *envFixture, res result) {
				if isJSON(t, res); strings.Contains(res.stdout, `"reap_to"`) {
					t.Errorf("the flag did not win:\n%s", res)
				}
			}},
		{name: "POOLBOY_REAP_ON_SUCCESS naming a pool not in --pools", cc: ccHTTP, env: file("POOLBOY_REAP_ON_SUCCESS", "gpu"),
			args: status(urlToken),
			check: func(t *testing.T, e *envFixture, res result) {
				wantCode(t, res, cli.ExitUsage, "gpu")
			}},
	}
}

func TestEnvVarsSetFlagsAndFlagsWin(t *testing.T) {
	t.Parallel()
	for _, c := range envCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var extra []fixture.Op
			if c.cc != noCC {
				extra = append(extra, fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: time.Now().Add(-2 * time.Hour), Message: preTeamEnvMsg})
			}
			r := newLockRepo(t, "main", extra...)
			e := &envFixture{r: r, file: "file://" + r.dir, cache: t.TempDir(), other: t.TempDir(),
				staleRef: r.commitWithMessage(t, "main", staleMsg)}
			testenv.Git(t, r.dir, "branch", "staging", e.staleRef)
			e.keyFile = filepath.Join(t.TempDir(), "id_test")
			if err := os.WriteFile(e.keyFile, []byte("not a real key\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if c.cc != noCC {
				e.startConcourse(t, c.cc)
			}
			if c.net {
				ts := serve(t, r, "git", "http")
				e.git, e.http = ts[0].url, ts[1].url
			}
			e.refs = r.refs(t)
			c.check(t, e, run(t, c.env(e), c.args(e)...))
		})
	}
}

// Every flag in --help names an env var, and envCases sets each flag through its env
// var alone and checks that the flag wins over it: a new flag cannot go untested.
func TestEveryFlagHasATestedEnvVar(t *testing.T) {
	t.Parallel()
	alone, wins := map[string]bool{}, map[string]bool{}
	for _, c := range envCases() {
		over := strings.Contains(c.name, " over ")
		for _, tok := range strings.Fields(c.name) {
			tok, _, _ = strings.Cut(tok, "=")
			if over && strings.HasPrefix(tok, "--") {
				wins[tok] = true
			}
			if !over {
				alone[tok] = true
			}
		}
	}
	seen := 0
	for _, cmd := range []string{"status", "clean"} {
		res := mustRun(t, nil, cmd, "--help")
		for _, line := range strings.Split(res.stdout, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], "-") || strings.Contains(line, "--help") {
				continue
			}
			flag := f[0]
			if strings.HasSuffix(flag, ",") { // "-x, --long"
				flag = f[1]
			}
			_, env, ok := strings.Cut(line, "(env ")
			env, _, _ = strings.Cut(env, ")")
			if !ok || env == "" {
				t.Errorf("%s: flag %s names no env var: %q", cmd, flag, line)
				continue
			}
			seen++
			for _, name := range strings.Split(env, ", ") {
				if !alone[name] {
					t.Errorf("%s: no test sets %s through %s alone", cmd, flag, name)
				}
			}
			if !wins[flag] {
				t.Errorf("%s: no test shows %s winning over %s", cmd, flag, env)
			}
		}
	}
	if seen < 12 {
		t.Errorf("found only %d flags in --help", seen)
	}
}
