package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// gitUser makes the git config of the poolboy under test name a person (or
// nobody, for ""), as a person's ~/.gitconfig would.
func gitUser(t *testing.T, name, email string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "gitconfig")
	content := ""
	if name != "" {
		content = "[user]\n\tname = " + name + "\n\temail = " + email + "\n"
	}
	if err := os.WriteFile(cfg, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", cfg)
}

// hold, then clean keeps the held lock and status shows the hold; unhold, and
// clean frees it.
func TestHoldAndUnholdFromTheCommandLine(t *testing.T) {
	gitUser(t, "Ann Example", "ann@example.com")
	r := newLockRepo(t, "main")
	res := mustRun(t, nil, "hold", "aws/env-1", "--for", "2h", "--reason", "debugging the VPC", "--repo", r.dir)
	if !strings.HasPrefix(res.stdout, "held aws/env-1 for 2h (claim ") {
		t.Errorf("hold said %q", res.stdout)
	}
	res = mustRun(t, nil, "clean", "--repo", r.dir, "--pools", "aws:1h", "--output", "json")
	if d := decodeStatus(t, res.stdout); len(d.Clean.Freed) != 0 {
		t.Fatalf("clean freed %+v although env-1 is held", d.Clean.Freed)
	}
	res = mustRun(t, nil, "status", "--repo", r.dir, "--pools", "aws:1h", "--output", "json")
	for _, want := range []string{`"on_hold": 1`, `"verdict": "on-hold"`, `"rule": "hold"`, `"by": "Ann Example \u003cann@example.com\u003e"`, `"reason": "debugging the VPC"`, `"expired": false`} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status JSON lacks %s:\n%s", want, res.stdout)
		}
	}
	res = mustRun(t, nil, "status", "--repo", r.dir, "--pools", "aws:1h")
	if !strings.Contains(res.stdout, "0 stale, 1 on hold") || !strings.Contains(res.stdout, "on hold until") {
		t.Errorf("status text:\n%s", res.stdout)
	}

	res = mustRun(t, nil, "unhold", "aws/env-1", "--repo", r.dir)
	if !strings.HasPrefix(res.stdout, "ended the hold of aws/env-1 in ") {
		t.Errorf("unhold said %q", res.stdout)
	}
	res = mustRun(t, nil, "clean", "--repo", r.dir, "--pools", "aws:1h", "--output", "json")
	if d := decodeStatus(t, res.stdout); len(d.Clean.Freed) != 1 || d.Clean.Freed[0].Lock != "env-1" {
		t.Errorf("clean after unhold freed %+v", d.Clean.Freed)
	}
	if files := testenv.Git(t, r.dir, "ls-tree", "-r", "--name-only", "main"); strings.Contains(files, ".poolboy-holds") {
		t.Errorf("a hold file is left:\n%s", files)
	}
}

// release by a person: one commit naming who and why; without a git identity,
// $USER names them.
func TestReleaseFromTheCommandLine(t *testing.T) {
	cases := []struct{ name, gitName, want string }{
		{"git identity", "Bob Example", "Bob Example <bob@example.com>"},
		{"USER", "", "bob"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			gitUser(t, c.gitName, "bob@example.com")
			r := newLockRepo(t, "main")
			before := r.head(t, "main")
			res := mustRun(t, map[string]string{"USER": "bob"}, "release", "aws/env-2", "--reason", "smoke job hung", "--repo", r.dir)
			if !strings.HasPrefix(res.stdout, "released aws/env-2 (claimed by main/deploy/smoke #7) in ") {
				t.Errorf("release said %q", res.stdout)
			}
			if n := testenv.Git(t, r.dir, "rev-list", "--count", before+"..main"); n != "1" {
				t.Errorf("%s commits", n)
			}
			msg := testenv.Git(t, r.dir, "log", "-1", "--format=%B", "main")
			for _, want := range []string{"unclaiming: env-2\n", "Poolboy-Released-By: " + c.want + "\n", "Poolboy-Reason: smoke job hung\n"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			files := testenv.Git(t, r.dir, "show", "--no-renames", "--name-status", "--format=", "main")
			if files != "D\taws/claimed/env-2\nA\taws/unclaimed/env-2" {
				t.Errorf("release changed:\n%s", files)
			}
		})
	}
}

// clean --reap-to sends reaped locks to the quarantine pool.
func TestCleanReapTo(t *testing.T) {
	r := newLockRepo(t, "main")
	clone := testenv.NewClone(t, "file://"+r.dir, "main")
	for _, d := range []string{"aws-dirty/claimed", "aws-dirty/unclaimed"} {
		if err := os.MkdirAll(filepath.Join(clone.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(clone.Dir, d, ".gitkeep"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, clone.Dir, "add", ".")
	testenv.Git(t, clone.Dir, "commit", "-q", "-m", "add pool aws-dirty")
	testenv.Git(t, clone.Dir, "push", "-q", "origin", "HEAD:main")

	gw := testenv.Pushgateway(t)
	res := mustRun(t, nil, "clean", "--repo", r.dir, "--pools", "aws:1h", "--reap-to", "aws:aws-dirty", "--pushgateway-url", gw.URL)
	if !strings.Contains(res.stdout, "pool aws (timeout 1h, reaps to aws-dirty)") {
		t.Errorf("clean said:\n%s", res.stdout)
	}
	// The pushed pools are as the reap left them: the lock in the quarantine.
	m := gw.Metrics(t)
	lbl := func(kv ...string) []string { return append([]string{"job", "poolboy", "repo", r.dir}, kv...) }
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "aws", "state", "claimed")...)
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "aws", "state", "unclaimed")...)
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "aws-dirty", "state", "unclaimed")...)
	wantGateway(t, m, 0, "poolboy_locks_on_hold", lbl("pool", "aws")...)
	files := testenv.Git(t, r.dir, "show", "--no-renames", "--name-status", "--format=", "main")
	if files != "A\taws-dirty/unclaimed/env-1\nD\taws/claimed/env-1" {
		t.Errorf("the reap changed:\n%s", files)
	}
}
