package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "watch.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestWatchBadConfigExits2WithFileLineReason(t *testing.T) {
	cases := map[string]string{
		"repos:\n  - name: a\n    uri: /x\n    colour: red\n":                        `:4: unknown key "colour"`,
		"repos:\n  - name: a\n    branch: main\n":                                    `:2: repos[0]: repo "a": missing uri`,
		"repos:\n  - name: a\n    uri: /x\n    pools: {aws: abc}\n":                  `:4: repos[0].pools.aws: timeout "abc" is neither minutes nor a duration`,
		"repos:\n  - name: a\n    uri: /x\n    pools:\n      aws: 1\n      aws: 2\n": `:6: repos[0].pools.aws: pool given twice (first at line 5)`,
		"repos:\n  - name: a\n    uri: /x\n    password: hunter2\n":                  `:4: repos[0].password: secrets are never written in the config`,
	}
	for content, want := range cases {
		path := writeConfig(t, content)
		res := run(t, nil, "watch", "--config", path)
		if res.code != cli.ExitUsage || res.stdout != "" || !strings.HasPrefix(res.stderr, "poolboy: "+path+want) ||
			strings.Count(res.stderr, "\n") != 1 || strings.Contains(res.stderr, "hunter2") {
			t.Errorf("config:\n%s\nwant exit 2 and %q, got %s", content, want, res)
		}
	}
	if res := run(t, nil, "watch"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "POOLBOY_CONFIG") {
		t.Errorf("no config: %s", res)
	}
	path := writeConfig(t, "interval: never\nrepos: [{name: a, uri: /x}]\n")
	if res := run(t, map[string]string{"POOLBOY_CONFIG": path}, "watch"); res.code != cli.ExitUsage ||
		!strings.Contains(res.stderr, path+":1: interval") {
		t.Errorf("config from POOLBOY_CONFIG: %s", res)
	}
}

// watch takes everything from its config file: the flags of status and clean are
// not its flags, and their variables (a bad POOLBOY_DEPTH, POOLS) are not its concern.
func TestWatchHasNoRepositoryFlags(t *testing.T) {
	help := run(t, nil, "watch", "--help")
	for _, f := range []string{"--repo", "--pools", "--depth", "--concourse-url", "--output"} {
		if strings.Contains(help.stdout, f) {
			t.Errorf("watch --help offers %s:\n%s", f, help.stdout)
		}
	}
	if res := run(t, nil, "watch", "--repo", "/x"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "unknown flag: --repo") {
		t.Errorf("watch --repo: %s", res)
	}
	path := writeConfig(t, "interval: never\nrepos: [{name: a, uri: /x}]\n")
	res := run(t, map[string]string{"POOLBOY_DEPTH": "deep", "POOLS": "aws:soon"}, "watch", "--config", path)
	if !strings.Contains(res.stderr, path+":1: interval") {
		t.Errorf("watch judged status's variables instead of its config: %s", res)
	}
	if status := run(t, map[string]string{"POOLBOY_DEPTH": "deep"}, "status", "--repo", "/x"); status.code != cli.ExitUsage ||
		!strings.Contains(status.stderr, "POOLBOY_DEPTH") {
		t.Errorf("status with a bad POOLBOY_DEPTH: %s", status)
	}
}

// syncBuffer is stderr written by the daemon while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// poolboy watch serves, cleans, and stops with exit 0 when its context ends (SIGTERM).
func TestWatchRunsUntilCancelled(t *testing.T) {
	r := newLockRepo(t, "main")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := writeConfig(t, fmt.Sprintf(`listen: %s
interval: 1h
cache_dir: %s
repos:
  - name: locks
    uri: file://%s
    branch: main
    pools: {aws: 1h, gpu: 2h}
    webhook_secret_env: HOOK_SECRET
`, addr, t.TempDir(), r.dir))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	var stderr syncBuffer
	exit := make(chan int, 1)
	env := func(name string) (string, bool) {
		if name == "HOOK_SECRET" {
			return "s3cret", true
		}
		return "", false
	}
	go func() { exit <- cli.Main(ctx, []string{"watch", "--config", path}, &stdout, &stderr, env) }()

	get := func(p string) (int, string) {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	end := time.Now().Add(30 * time.Second)
	for {
		if code, _ := get("/readyz"); code == 200 {
			break
		}
		select {
		case code := <-exit:
			t.Fatalf("watch exited %d early:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("never ready:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if code, body := get("/api/pools"); code != 200 || !strings.Contains(body, `"schema": "poolboy.status/v2"`) {
		t.Errorf("/api/pools %d %s", code, body)
	}
	// env-1 (5h old, aws:1h) and gpu-a (3h old, gpu:2h) are stale: freed by the first cycle.
	testenv.Git(t, r.dir, "rev-parse", "--verify", "main:aws/unclaimed/env-1")
	testenv.Git(t, r.dir, "rev-parse", "--verify", "main:gpu/unclaimed/gpu-a")
	cancel()
	select {
	case code := <-exit:
		if code != cli.ExitOK {
			t.Errorf("exit %d after cancel:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not stop after cancel")
	}
	if !strings.Contains(stderr.String(), "stopped") || strings.Contains(stderr.String(), "s3cret") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// With webhook_listen, poolboy watch serves the webhooks there and not on
// listen, and stops both servers when its context ends.
func TestWatchServesWebhooksOnWebhookListen(t *testing.T) {
	r := newLockRepo(t, "main")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	hooks := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	path := writeConfig(t, fmt.Sprintf(`listen: %s
webhook_listen: %s
interval: 1h
cache_dir: %s
repos:
  - name: locks
    uri: file://%s
    branch: main
    pools: {aws: 1h}
    webhook_secret_env: HOOK_SECRET
`, addr, hooks, t.TempDir(), r.dir))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout bytes.Buffer
	var stderr syncBuffer
	exit := make(chan int, 1)
	env := func(name string) (string, bool) { return "s3cret", name == "HOOK_SECRET" }
	go func() { exit <- cli.Main(ctx, []string{"watch", "--config", path}, &stdout, &stderr, env) }()

	hook := func(base string) int {
		req, _ := http.NewRequest(http.MethodPost, "http://"+base+"/webhook/locks", strings.NewReader(`{"ref":"refs/heads/main"}`))
		req.Header.Set("X-Gitlab-Token", "s3cret")
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for end := time.Now().Add(30 * time.Second); hook(hooks) != http.StatusAccepted; {
		select {
		case code := <-exit:
			t.Fatalf("watch exited %d early:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(end) {
			t.Fatalf("no webhook served on webhook_listen:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if code := hook(addr); code != http.StatusNotFound {
		t.Errorf("webhook on listen: %d, want 404", code)
	}
	if resp, err := http.Get("http://" + hooks + "/api/pools"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/api/pools on webhook_listen: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
	cancel()
	select {
	case code := <-exit:
		if code != cli.ExitOK {
			t.Errorf("exit %d after cancel:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not stop after cancel")
	}
	if _, err := http.Get("http://" + hooks + "/healthz"); err == nil {
		t.Error("webhook_listen still served after watch stopped")
	}
}
