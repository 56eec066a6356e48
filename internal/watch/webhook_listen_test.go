package watch

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// With webhook_listen, the webhooks are served there and only there, and
// nothing else is: the status page, /api/pools and /metrics stay on listen.
func TestWebhookListenServesWebhooksApart(t *testing.T) {
	cfg := &Config{Interval: time.Hour, CacheDir: t.TempDir(), Listen: "127.0.0.1:9090", WebhookListen: "0.0.0.0:9091",
		Repos: []Repo{{Name: "locks", URI: "/nowhere", Branch: "main", WebhookSecret: []byte("hook-secret")}}}
	d, err := New(cfg, Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	status := &running{Daemon: d, srv: httptest.NewServer(d.Handler())}
	defer status.srv.Close()
	hooks := &running{Daemon: d, srv: httptest.NewServer(d.WebhookHandler())}
	defer hooks.srv.Close()
	push := []byte(`{"ref":"refs/heads/main","before":"a","after":"b"}`)
	if code, body := status.webhook(t, "locks", push, gitlabHeaders(push, "hook-secret")); code != http.StatusNotFound {
		t.Errorf("webhook on listen: %d %q, want 404", code, body)
	}
	if code, body := hooks.webhook(t, "locks", push, gitlabHeaders(push, "hook-secret")); code != http.StatusAccepted {
		t.Errorf("webhook on webhook_listen: %d %q, want 202", code, body)
	}
	select {
	case <-d.byName["locks"].trigger:
	default:
		t.Error("the webhook on webhook_listen triggered no cycle")
	}
	get := func(base, path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, path := range []string{"/", "/api/pools", "/metrics", "/readyz"} {
		if code := get(hooks.srv.URL, path); code != http.StatusNotFound {
			t.Errorf("GET %s on webhook_listen: %d, want 404", path, code)
		}
	}
	for path, want := range map[string]int{"/api/pools": 200, "/metrics": 200, "/healthz": 200} {
		if code := get(status.srv.URL, path); code != want {
			t.Errorf("GET %s on listen: %d, want %d", path, code, want)
		}
	}
	if code := get(hooks.srv.URL, "/healthz"); code != 200 {
		t.Errorf("GET /healthz on webhook_listen: %d, want 200", code)
	}
}

func TestWebhookListenConfig(t *testing.T) {
	base := "cache_dir: /tmp/x\nrepos: [{name: a, uri: /x}]\nlisten: 127.0.0.1:9090\n"
	cfg, err := Parse("watch.yaml", []byte(base+"webhook_listen: 0.0.0.0:9091\n"), fakeEnv(nil))
	if err != nil || cfg.WebhookListen != "0.0.0.0:9091" {
		t.Fatalf("WebhookListen %q, %v", cfg.WebhookListen, err)
	}
	if cfg, err := Parse("watch.yaml", []byte(base), fakeEnv(nil)); err != nil || cfg.WebhookListen != "" {
		t.Errorf("no webhook_listen: %q, %v", cfg.WebhookListen, err)
	}
	for value, want := range map[string]string{
		"nonsense":       `watch.yaml:4: webhook_listen: "nonsense" is not host:port`,
		"127.0.0.1:9090": `watch.yaml:4: webhook_listen: "127.0.0.1:9090" is listen's address too`,
	} {
		_, err := Parse("watch.yaml", []byte(base+"webhook_listen: "+value+"\n"), fakeEnv(nil))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("webhook_listen %s: %v, want %s…", value, err, want)
		}
	}
}
