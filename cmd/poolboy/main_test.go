package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// optResource builds the binary and lays out /opt/resource as the image does:
// check, in and out are links to it.
func optResource(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "poolboy")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res := filepath.Join(dir, "opt", "resource")
	if err := os.MkdirAll(res, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"check", "in", "out"} {
		if err := os.Symlink(bin, filepath.Join(res, s)); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

type script struct {
	stdout, stderr string
	code           int
}

// run drives a script exactly as Concourse does: request on stdin, the build's
// directory as the argument, BUILD_* in the environment.
func run(t *testing.T, path string, request any, env []string, args ...string) script {
	t.Helper()
	body, err := json.Marshal(request)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return script{stdout.String(), stderr.String(), code}
}

func TestTheImageLayoutActsAsThePoolResource(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	now := time.Now()
	remote := filepath.Join(t.TempDir(), "locks.git")
	err := fixture.Build(context.Background(), remote, fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: now.Add(-time.Hour),
		Ops: []fixture.Op{{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute), Content: `{"ip":"10.0.0.1"}`}}})
	if err != nil {
		t.Fatal(err)
	}
	source := map[string]any{"uri": "file://" + remote, "branch": "main", "pool": "aws", "retry_delay": "10ms"}
	build := []string{"BUILD_ID=77", "BUILD_NAME=12", "BUILD_TEAM_NAME=main", "BUILD_PIPELINE_NAME=deploy",
		"BUILD_JOB_NAME=test", "ATC_EXTERNAL_URL=https://ci.example.com"}

	check := run(t, filepath.Join(res, "check"), map[string]any{"source": source, "version": nil}, nil)
	var versions []map[string]string
	if check.code != 0 || json.Unmarshal([]byte(check.stdout), &versions) != nil || len(versions) != 1 {
		t.Fatalf("check: %+v", check)
	}

	work := t.TempDir()
	out := run(t, filepath.Join(res, "out"), map[string]any{"source": source, "params": map[string]any{"acquire": true}}, build, work)
	var answer struct {
		Version  map[string]string `json:"version"`
		Metadata []struct{ Name, Value string }
	}
	if out.code != 0 || json.Unmarshal([]byte(out.stdout), &answer) != nil || answer.Version["ref"] == "" {
		t.Fatalf("out acquire: %+v", out)
	}
	first := testenv.Git(t, remote, "log", "-1", "--format=%s", "main")
	if first != "main/deploy/test build 12 claiming: env-1" {
		t.Errorf("claim commit: %q", first)
	}

	// The implicit get after the put.
	step := filepath.Join(work, "aws-lock")
	in := run(t, filepath.Join(res, "in"), map[string]any{"source": source, "version": answer.Version}, build, step)
	if in.code != 0 {
		t.Fatalf("in: %+v", in)
	}
	for file, want := range map[string]string{"name": "env-1", "metadata": `{"ip":"10.0.0.1"}`} {
		if got, _ := os.ReadFile(filepath.Join(step, file)); strings.TrimSpace(string(got)) != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}

	rel := run(t, filepath.Join(res, "out"), map[string]any{"source": source, "params": map[string]any{"release": "aws-lock"}}, build, work)
	if rel.code != 0 {
		t.Fatalf("out release: %+v", rel)
	}
	testenv.Git(t, remote, "rev-parse", "--verify", "main:aws/unclaimed/env-1")

	bad := run(t, filepath.Join(res, "out"), map[string]any{"source": map[string]any{"branch": "main", "pool": "aws"}, "params": map[string]any{"acquire": true}}, build, work)
	if bad.code == 0 || bad.stdout != "" || !strings.Contains(bad.stderr, "invalid payload (missing uri)") {
		t.Errorf("missing uri: %+v", bad)
	}
}

// Interop: our out claims, poolboy clean frees the claim because Concourse says its
// build was aborted, and the aborted build's release is fenced: a success with a
// warning while the lock is free, a refusal once another build has claimed it.
func TestCleanThenFencedRelease(t *testing.T) {
	testenv.RequireCommand(t, "git")
	testenv.RequireCommand(t, "go")
	res := optResource(t)
	bin := filepath.Join(filepath.Dir(filepath.Dir(res)), "poolboy")
	now := time.Now()
	remote := filepath.Join(t.TempDir(), "locks.git")
	err := fixture.Build(context.Background(), remote, fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: now.Add(-time.Hour),
		Ops: []fixture.Op{{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute), Content: "one"}}})
	if err != nil {
		t.Fatal(err)
	}
	cc := fakeconcourse.New(t)
	cc.AddUser("reaper", "reaper-pw", "main")
	cc.AddBuild(fakeconcourse.Build{ID: 12, Pipeline: "deploy", Job: "test", Name: "12", Status: "aborted"})
	cc.AddBuild(fakeconcourse.Build{ID: 13, Pipeline: "deploy", Job: "test", Name: "13", Status: "started"})

	source := map[string]any{"uri": "file://" + remote, "branch": "main", "pool": "aws", "retry_delay": "10ms"}
	buildEnv := func(name string) []string {
		return []string{"BUILD_ID=" + name, "BUILD_NAME=" + name, "BUILD_TEAM_NAME=main", "BUILD_PIPELINE_NAME=deploy", "BUILD_JOB_NAME=test"}
	}
	acquire := func(name string) string {
		t.Helper()
		work := t.TempDir()
		out := run(t, filepath.Join(res, "out"), map[string]any{"source": source, "params": map[string]any{"acquire": true}}, buildEnv(name), work)
		var answer struct{ Version map[string]string }
		if out.code != 0 || json.Unmarshal([]byte(out.stdout), &answer) != nil {
			t.Fatalf("acquire by %s: %+v", name, out)
		}
		in := run(t, filepath.Join(res, "in"), map[string]any{"source": source, "version": answer.Version}, buildEnv(name), filepath.Join(work, "lock"))
		if in.code != 0 {
			t.Fatalf("in: %+v", in)
		}
		return work
	}
	release := func(name, work string) script {
		return run(t, filepath.Join(res, "out"), map[string]any{"source": source, "params": map[string]any{"release": "lock"}}, buildEnv(name), work)
	}

	work12 := acquire("12")
	clean := exec.Command(bin, "clean", "--repo", "file://"+remote, "--pools", "aws:1h", "--concourse-url", cc.URL)
	clean.Env = append(os.Environ(), "CONCOURSE_USERNAME=reaper", "CONCOURSE_PASSWORD=reaper-pw")
	if out, err := clean.CombinedOutput(); err != nil || !strings.Contains(string(out), "aborted") {
		t.Fatalf("clean: %v\n%s", err, out)
	}
	if rule := testenv.Git(t, remote, "log", "-1", "--format=%(trailers:key=Poolboy-Rule,valueonly)", "main"); rule != "build-aborted" {
		t.Fatalf("the reap's rule is %q", rule)
	}

	head := testenv.Git(t, remote, "rev-parse", "main")
	if r := release("12", work12); r.code != 0 || !strings.Contains(r.stderr, "reaped") {
		t.Fatalf("release of a reaped, free lock: %+v", r)
	}
	if testenv.Git(t, remote, "rev-parse", "main") != head {
		t.Error("releasing a free lock pushed a commit")
	}

	acquire("13")
	r := release("12", work12)
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "is now claimed by main/deploy/test #13") {
		t.Fatalf("release of a lock claimed again by another build: %+v", r)
	}
	testenv.Git(t, remote, "rev-parse", "--verify", "main:aws/claimed/env-1")
	if last := testenv.Git(t, remote, "log", "-1", "--format=%s", "main"); last != "main/deploy/test build 13 claiming: env-1" {
		t.Errorf("last commit %q", last)
	}
}
