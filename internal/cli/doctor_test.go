package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// breakByHand makes, in a clone, the mistakes people make editing a lock
// repository: env-1 (claimed 5h ago) copied back to unclaimed/, aws/unclaimed's
// .gitkeep deleted, env-2 (claimed 5m ago) copied back too; and pushes them.
func breakByHand(t *testing.T, repo string) *testenv.Clone {
	t.Helper()
	c := testenv.NewClone(t, repo, "main")
	for _, l := range []string{"env-1", "env-2"} {
		b, err := os.ReadFile(filepath.Join(c.Dir, "aws", "claimed", l))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, "aws", "unclaimed", l), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(c.Dir, "aws", "unclaimed", ".gitkeep")); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "put the envs back by hand")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
	return c
}

// Issue 17.2, on the command line: doctor lists each problem with the commit
// that made it and exits 1; --fix repairs what is safe (env-1, past aws's 1h
// timeout, and the .gitkeep), leaves env-2 (5 minutes old: maybe held) with the
// commands for a person, and exits 1; once a person has resolved env-2, --fix
// exits 0, and a second run finds nothing.
func TestDoctor(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	repo := "file://" + r.dir
	if res := mustRun(t, nil, "doctor", "--repo", repo); !strings.Contains(res.stdout, "no integrity problems") {
		t.Errorf("healthy repository:\n%s", res)
	}
	person := breakByHand(t, repo)
	culprit := testenv.Git(t, person.Dir, "rev-parse", "--short=10", "HEAD")
	before := r.head(t, "main")

	res := run(t, nil, "doctor", "--repo", repo, "--pools", "aws:1h")
	if res.code != 1 || r.head(t, "main") != before {
		t.Fatalf("doctor without --fix: want exit 1 and nothing pushed: %s", res)
	}
	for _, want := range []string{
		"problem: aws/claimed/env-1: lock is in both claimed/ and unclaimed/",
		"problem: aws/unclaimed/.gitkeep: missing .gitkeep",
		"history: " + culprit,
		"--fix would remove the claimed copy aws/claimed/env-1",
		"left for a person: the claim",
		"git rm -q -- 'aws/unclaimed/env-2'",
		"3 problems: 2 with one safe repair (run with --fix), 1 left for a person",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, res.stdout)
		}
	}
	if !strings.HasPrefix(res.stderr, "poolboy: 3 integrity problems left") {
		t.Errorf("stderr: %q", res.stderr)
	}

	res = run(t, nil, "doctor", "--repo", repo, "--pools", "aws:1h", "--fix")
	if res.code != 1 || !strings.Contains(res.stdout, "3 problems: 2 fixed, 1 left for a person") {
		t.Fatalf("doctor --fix: %s", res)
	}
	if n := testenv.Git(t, r.dir, "rev-list", "--count", before+"..main"); n != "2" {
		t.Errorf("%s commits, want one per repair (2)", n)
	}
	// A person resolves env-2 as the printed command says; then all is well.
	testenv.Git(t, person.Dir, "pull", "-q", "--ff-only", "origin", "main")
	testenv.Git(t, person.Dir, "rm", "-q", "--", "aws/unclaimed/env-2")
	testenv.Git(t, person.Dir, "commit", "-q", "-m", "env-2 is held")
	testenv.Git(t, person.Dir, "push", "-q", "origin", "HEAD:main")
	res = mustRun(t, nil, "doctor", "--repo", repo, "--pools", "aws:1h", "--fix")
	if !strings.Contains(res.stdout, "no integrity problems") {
		t.Errorf("after the person's fix:\n%s", res)
	}
	var doc struct {
		Findings []json.RawMessage `json:"findings"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, nil, "doctor", "--repo", repo, "--output", "json").stdout), &doc); err != nil || len(doc.Findings) != 0 {
		t.Errorf("json: %v %v", err, doc)
	}
}

func TestDoctorBadUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"doctor"},
		{"doctor", "--repo", "file:///nonexistent", "--pools", "aws:x"},
		{"doctor", "--repo", "file:///nonexistent", "--max-attempts", "0"},
		{"doctor", "--repo", "file:///nonexistent", "extra"},
	} {
		if res := run(t, nil, args...); res.code != 2 || strings.Count(res.stderr, "\n") != 1 {
			t.Errorf("%v: want exit 2 and one line: %s", args, res)
		}
	}
}
