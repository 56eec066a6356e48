package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// badCase is one bad input. Every case must exit with code, print exactly one line
// "poolboy: ..." to stderr and nothing to stdout, and leave every remote's refs as
// they were. Usage errors (exit 2) must be found before the network: the HTTP
// server, which has a stale lock clean could free, must see no request.
type badCase struct {
	name   string
	args   []string          // {repo} is replaced by the HTTP remote's URL
	env    map[string]string // nil: the HTTP credentials
	code   int
	want   []string // stderr mentions each
	secret string   // stderr never shows it
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	srv := testenv.GitHTTP(t, r.root, httpUser, httpPass)
	repo := srv.URL + "locks.git"
	host := strings.TrimSuffix(strings.TrimPrefix(srv.URL, "http://"), "/")
	creds := map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": httpPass}

	empty := filepath.Join(t.TempDir(), "empty.git")
	testenv.Git(t, "", "init", "--quiet", "--bare", empty)
	freePort := testenv.FreePort(t)
	const canary = "canary-pw-8c1f"
	const urlCanary = "canary-url-41d7"

	clean := func(extra ...string) []string {
		return append([]string{"clean", "--repo", "{repo}", "--pools", "aws:1h"}, extra...)
	}
	cases := []badCase{
		// Usage: found before the network.
		{name: "pools without timeout", args: []string{"clean", "--repo", "{repo}", "--pools", "aws"}, code: 2, want: []string{"aws", "timeout"}},
		{name: "pools with empty timeout", args: []string{"clean", "--repo", "{repo}", "--pools", "aws:"}, code: 2, want: []string{"aws"}},
		{name: "pools with negative timeout", args: []string{"clean", "--repo", "{repo}", "--pools", "aws:-5"}, code: 2, want: []string{"-5", "positive"}},
		{name: "pools with bad timeout", args: []string{"clean", "--repo", "{repo}", "--pools", "aws:abc"}, code: 2, want: []string{"abc"}},
		{name: "pool given twice", args: []string{"clean", "--repo", "{repo}", "--pools", "aws:1,aws:2"}, code: 2, want: []string{"aws", "twice"}},
		{name: "pools bad in env", args: []string{"clean", "--repo", "{repo}"}, env: merge(creds, map[string]string{"POOLS": "aws:abc"}), code: 2, want: []string{"abc"}},
		{name: "status pools without timeout", args: []string{"status", "--repo", "{repo}", "--pools", "aws"}, code: 2, want: []string{"aws"}},
		{name: "output yaml", args: clean("--output", "yaml"), code: 2, want: []string{"yaml"}},
		{name: "status output yaml", args: []string{"status", "--repo", "{repo}", "--output", "yaml"}, code: 2, want: []string{"yaml"}},
		{name: "no repo", args: []string{"clean", "--pools", "aws:1h"}, code: 2, want: []string{"--repo", "POOL_REPO"}},
		{name: "status no repo", args: []string{"status"}, code: 2, want: []string{"--repo"}},
		{name: "clean without pools", args: []string{"clean", "--repo", "{repo}"}, code: 2, want: []string{"--pools"}},
		{name: "unknown flag", args: clean("--no-such-flag"), code: 2, want: []string{"--no-such-flag"}},
		{name: "unknown command", args: []string{"reap", "--repo", "{repo}"}, code: 2, want: []string{"reap"}},
		{name: "mistyped flag before the command", args: []string{"--verbsoe", "clean", "--repo", "{repo}", "--pools", "aws:1h"}, code: 2, want: []string{"unknown flag: --verbsoe"}},
		{name: "unknown shorthand before the command", args: []string{"-x", "status", "--repo", "{repo}"}, code: 2, want: []string{"'x'"}},
		{name: "unknown flag alone", args: []string{"--bogus"}, code: 2, want: []string{"--bogus"}},
		{name: "huge negative timeout", args: clean("--pools", "aws:-307445734"), code: 2, want: []string{"must be positive"}},
		{name: "sub-second timeout", args: clean("--pools", "aws:500ms"), code: 2, want: []string{"at least a second"}},
		{name: "stray argument", args: append(clean(), "extra"), code: 2, want: []string{"extra"}},
		{name: "bad bool in env", args: clean(), env: merge(creds, map[string]string{"POOLBOY_DRY_RUN": "maybe"}), code: 2, want: []string{"POOLBOY_DRY_RUN"}, secret: "maybe"},
		{name: "negative depth", args: clean("--depth", "-1"), code: 2, want: []string{"--depth"}},
		{name: "zero max attempts", args: clean("--max-attempts", "0"), code: 2, want: []string{"--max-attempts"}},
		{name: "repo starting with a dash", args: []string{"clean", "--repo=--upload-pack=touch", "--pools", "aws:1h"}, code: 2, want: []string{"--upload-pack=touch"}},
		{name: "branch starting with a dash", args: clean("--branch=-x"), code: 2, want: []string{"-x"}},
		{name: "key in env and key file", args: clean("--private-key-file", "/dev/null"), env: merge(creds, map[string]string{"POOL_REPO_SSH_PRIVATE_KEY": "canary-key-material-0b3e"}),
			code: 2, want: []string{"not both"}, secret: "canary-key-material-0b3e"},
		{name: "hold bad duration", args: []string{"hold", "aws/env-1", "--for", "soon", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{"soon", "--for"}},
		{name: "hold negative duration", args: []string{"hold", "aws/env-1", "--for", "-1h", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{"--for -1h0m0s: must be positive"}},
		{name: "hold without duration", args: []string{"hold", "aws/env-1", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{"--for is required"}},
		{name: "hold without reason", args: []string{"hold", "aws/env-1", "--for", "1h", "--repo", "{repo}"}, code: 2, want: []string{"--reason is required"}},
		{name: "hold invalid lock name", args: []string{"hold", "aws/.hidden", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{"lock name starts with '.'"}},
		{name: "hold invalid pool name", args: []string{"hold", ".git/x", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{`".git/x": pool: name starts with '.'`}},
		{name: "hold without lock", args: []string{"hold", "aws", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{"want POOL/LOCK"}},
		{name: "hold two locks", args: []string{"hold", "aws/env-1", "aws/env-2", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 2, want: []string{"one argument"}},
		{name: "release without reason", args: []string{"release", "aws/env-1", "--repo", "{repo}"}, code: 2, want: []string{"--reason is required"}},
		{name: "release reason of two lines", args: []string{"release", "aws/env-1", "--reason", "a\nPoolboy-Rule: forged", "--repo", "{repo}"}, code: 2, want: []string{"one line"}},
		{name: "reap-to without quarantine", args: clean("--reap-to", "aws"), code: 2, want: []string{"want POOL:QUARANTINE"}},
		{name: "reap-to pool not in pools", args: clean("--reap-to", "gpu:gpu-dirty"), code: 2, want: []string{`pool "gpu" is not in --pools`}},
		{name: "reap-to itself", args: clean("--reap-to", "aws:aws"), code: 2, want: []string{"its own quarantine"}},
		{name: "reap-to shared quarantine", args: []string{"clean", "--repo", "{repo}", "--pools", "aws:1h,gpu:1h", "--reap-to", "aws:dirty,gpu:dirty"}, code: 2, want: []string{`pools "aws" and "gpu" share the quarantine "dirty"`}},
		{name: "reap-to invalid name", args: clean("--reap-to", "aws:.dirty"), code: 2, want: []string{`".dirty" is not a pool name`}},
		{name: "private key file missing", args: clean("--private-key-file", "/nonexistent/poolboy-key"), code: 2, want: []string{"/nonexistent/poolboy-key"}},

		// Runtime: the repository had to be asked.
		{name: "unknown pool", args: []string{"clean", "--repo", "{repo}", "--pools", "aws:1h,nope:1h"}, code: 1, want: []string{`"nope"`, "aws", "gpu"}},
		{name: "status unknown pool", args: []string{"status", "--repo", "{repo}", "--pools", "nope:1h"}, code: 1, want: []string{`"nope"`, "aws, gpu"}},
		{name: "hold unknown lock", args: []string{"hold", "aws/env-9", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 1, want: []string{"pool aws has no lock env-9"}},
		{name: "hold unknown pool", args: []string{"hold", "nope/env-1", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 1, want: []string{`unknown pool "nope"`}},
		{name: "hold free lock", args: []string{"hold", "aws/env-3", "--for", "1h", "--reason", "x", "--repo", "{repo}"}, code: 1, want: []string{"aws/env-3 is not claimed"}},
		{name: "unhold lock not held", args: []string{"unhold", "aws/env-1", "--repo", "{repo}"}, code: 1, want: []string{"aws/env-1 is not held"}},
		{name: "release free lock", args: []string{"release", "aws/env-3", "--reason", "x", "--repo", "{repo}"}, code: 1, want: []string{"aws/env-3 is not claimed"}},
		{name: "release unknown lock", args: []string{"release", "aws/env-9", "--reason", "x", "--repo", "{repo}"}, code: 1, want: []string{"pool aws has no lock env-9"}},
		{name: "reap-to unknown quarantine", args: clean("--reap-to", "aws:aws-dirty"), code: 1, want: []string{`unknown pool "aws-dirty"`}},
		{name: "missing branch", args: clean("--branch", "nope"), code: 1, want: []string{`"nope"`}},
		{name: "unreachable file URL", args: []string{"clean", "--repo", "file:///nonexistent/locks.git", "--pools", "aws:1h"}, code: 1, want: []string{"/nonexistent/locks.git"}},
		{name: "unreachable git daemon", args: []string{"status", "--repo", fmt.Sprintf("git://127.0.0.1:%d/x.git", freePort)}, code: 1, want: []string{"127.0.0.1"}},
		{name: "empty repo", args: []string{"clean", "--repo", "file://" + empty, "--pools", "aws:1h"}, code: 1, want: []string{"empty"}},
		{name: "wrong password in env", args: clean(), env: map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": canary},
			code: 1, want: []string{"Authentication failed"}, secret: canary},
		{name: "wrong password flag", args: clean("--username", httpUser, "--password", canary), env: map[string]string{},
			code: 1, want: []string{"Authentication failed"}, secret: canary},
		{name: "no credentials", args: clean(), env: map[string]string{}, code: 1, want: []string{"git"}},
		{name: "password in https URL", args: []string{"clean", "--repo", fmt.Sprintf("https://%s:%s@127.0.0.1:%d/locks.git", httpUser, urlCanary, freePort), "--pools", "aws:1h"},
			env: map[string]string{}, code: 1, want: []string{"127.0.0.1"}, secret: urlCanary},
		{name: "wrong password in http URL", args: []string{"clean", "--repo", fmt.Sprintf("http://%s:%s@%s/locks.git", httpUser, urlCanary, host), "--pools", "aws:1h"},
			env: map[string]string{}, code: 1, want: []string{"Authentication failed"}, secret: urlCanary},
		{name: "password in http URL, missing branch", args: []string{"clean", "--repo", fmt.Sprintf("http://%s:%s@%s/locks.git", httpUser, httpPass, host), "--pools", "aws:1h", "--branch", "nope"},
			env: map[string]string{}, code: 1, want: []string{`"nope"`, host}, secret: httpPass},
		{name: "password in git URL", args: []string{"status", "--repo", fmt.Sprintf("git://%s:%s@127.0.0.1:%d/x.git", httpUser, urlCanary, freePort)},
			env: map[string]string{}, code: 1, secret: urlCanary},
	}

	// Serial: the HTTP request count must be this case's alone.
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := c.env
			if env == nil {
				env = creds
			}
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "{repo}", repo)
			}
			before, emptyBefore := r.refs(t), testenv.Git(t, empty, "for-each-ref")
			reqs := srv.Requests()

			res := run(t, env, args...)
			t.Logf("exit %d, stderr %q", res.code, res.stderr)

			var problems []string
			fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
			if !strings.HasPrefix(res.stderr, "poolboy: ") || !strings.HasSuffix(res.stderr, "\n") || strings.Count(res.stderr, "\n") != 1 {
				fail("stderr is not exactly one line starting with \"poolboy: \": %q", res.stderr)
			}
			if res.stdout != "" {
				fail("stdout not empty: %q", res.stdout)
			}
			if res.code != c.code {
				fail("exit %d, want %d", res.code, c.code)
			}
			for _, w := range c.want {
				if !strings.Contains(res.stderr, w) {
					fail("stderr does not mention %q", w)
				}
			}
			if c.secret != "" && strings.Contains(res.stdout+res.stderr, c.secret) {
				fail("output shows the secret %q", c.secret)
			}
			if got := r.refs(t); got != before {
				fail("remote refs changed:\n%s\n->\n%s", before, got)
			}
			if got := testenv.Git(t, empty, "for-each-ref"); got != emptyBefore {
				fail("empty remote gained refs: %s", got)
			}
			if c.code == cli.ExitUsage {
				if after := srv.Requests(); fmt.Sprint(after) != fmt.Sprint(reqs) {
					fail("a usage error contacted the server: requests %v -> %v", reqs, after)
				}
			}
			if len(problems) > 0 {
				t.Error(strings.Join(problems, "\n"))
			}
		})
	}
	if _, err := os.Stat(r.dir); err != nil {
		t.Fatal(err)
	}
}
