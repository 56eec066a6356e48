package watch

// Review findings: each test fails on the code as reviewed.

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A pool directory whose name is not valid UTF-8 (anyone who can push to the lock
// repo can make one) is reported as a pool; the pool collector then builds a
// const metric with an invalid label value, MustNewConstMetric panics, the
// registry turns that into a gather error and /metrics answers 500: every
// poolboy_* and go_* series is gone until the directory is removed.
func TestMetricsSurviveANonUTF8PoolName(t *testing.T) {
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	spec := fixture.Spec{Branch: "main", Pools: []string{"aws", "bad\xffpool"}, Start: time.Now().Add(-10 * time.Hour)}
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	r := start(t, config(t, dir, time.Hour), Options{})
	st := r.waitCycles(t, "locks", 1)
	if st.LastError != "" {
		t.Fatalf("cycle failed: %s", st.LastError)
	}
	code, body := r.get(t, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "poolboy_cycles_total") {
		t.Errorf("/metrics: %d\n%.600s", code, body)
	}
}

// A webhook secret variable holding only a newline passes the "is set and not
// empty" check, is then trimmed to "", and the repo silently ends up with no
// webhook (404 for every push) instead of a config error naming the line. The
// same hole turns token_env="\n" into an anonymous Concourse client.
func TestBlankSecretIsAConfigError(t *testing.T) {
	y := "repos:\n  - name: a\n    uri: https://git.example.com/l.git\n    webhook_secret_env: HOOK\n"
	cfg, err := Parse("w.yaml", []byte(y), fakeEnv(map[string]string{"HOOK": "\n"}))
	if err == nil {
		t.Errorf("blank webhook secret accepted; WebhookSecret=%q (webhook silently disabled)", cfg.Repos[0].WebhookSecret)
	} else if !strings.HasPrefix(err.Error(), "w.yaml:4: ") {
		t.Errorf("error %q does not name w.yaml:4", err)
	}
}

// "Secrets are never in the file", yet a password written into the repo URI is
// accepted without a word (gitx redacts it downstream, but it sits in the config).
func TestPasswordInURIIsRejected(t *testing.T) {
	y := "repos:\n  - name: a\n    uri: https://bot:ghp_s3cret@git.example.com/l.git\n"
	if _, err := Parse("w.yaml", []byte(y), fakeEnv(nil)); err == nil {
		t.Error("a password inside repos[0].uri was accepted")
	}
}

// Credentials in a repo's uri are refused however they are written: a password
// url.Parse cannot parse ('^', '{', '%zz'), with or without a port, and an http(s)
// user name of 8 characters or more (it may be a token). A shorter one, and an ssh
// user name, is no secret.
func TestCredentialsInURIAreRefused(t *testing.T) {
	const (
		password = "w.yaml:3: repos[0].uri: secrets are never written in the config: take the password out of the uri and give password_env or password_file"
		user     = "w.yaml:3: repos[0].uri: secrets are never written in the config: take the user name (8 characters or more: it may be a token) out of the uri and give username, and password_env or password_file"
	)
	for uri, want := range map[string]string{
		"http://bot:pa^ssword123@127.0.0.1/locks.git":       password,
		"http://bot:pa^ssword123@127.0.0.1:18081/locks.git": password,
		"https://bot:50%zzoff@git.example.com/l.git":        password,
		"https://bot:a{b}@git.example.com/l.git":            password,
		"ssh://bot:pa^ss@git.example.com:22/l.git":          password,
		"bot:pa^ss@git.example.com:acme/l.git":              password,
		"https://ghp_SECRETTOKEN123456@git.example.com/l":   user,
		"https://bot@git.example.com/l.git":                 "", // a short user name is no secret
		"git@github.com:acme/locks.git":                     "",
		"ssh://git@github.com/acme/locks.git":               "",
		"https://git.example.com/l.git":                     "",
	} {
		y := "repos:\n  - name: a\n    uri: '" + uri + "'\n"
		_, err := Parse("w.yaml", []byte(y), fakeEnv(nil))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s refused: %v", uri, err)
		case want != "" && (err == nil || err.Error() != want):
			t.Errorf("%s: %v, want %q", uri, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pa^ss") {
			t.Errorf("%s: the error holds the password: %v", uri, err)
		}
	}
}

// "On SIGTERM/SIGINT no new cycle starts": worker.run selects between ctx.Done()
// and timer.C/trigger at random when both are ready, so a cancelled context still
// starts a cycle about half the time (and that cycle then gets ShutdownGrace).
// Here Run is given an already-cancelled context; the same window exists between
// the ctx check after a cycle and the next select.
func TestNoCycleStartsAfterCancel(t *testing.T) {
	testenv.RequireCommand(t, "git")
	dir := remote(t)
	var ops atomic.Int32
	for range 20 {
		d, err := New(config(t, dir, time.Hour), Options{Log: testLogger(t),
			beforeGit: func(context.Context, string) { ops.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		d.Trigger("locks")
		_ = d.Run(ctx)
	}
	if n := ops.Load(); n != 0 {
		t.Errorf("%d git operations started after the context was cancelled (of 20 runs)", n)
	}
}

// countingReader counts the bytes the handler pulled from a request body.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// An unauthenticated POST with no signature header at all is buffered whole (up
// to 10 MiB, per connection, with no server read timeout) before it is refused;
// the header check needs no body and should come first.
func TestUnsignedWebhookIsRefusedBeforeReadingTheBody(t *testing.T) {
	cfg := &Config{Interval: time.Hour, CacheDir: t.TempDir(), Repos: []Repo{
		{Name: "locks", URI: "/nowhere", Branch: "main", WebhookSecret: []byte("hook-secret")},
	}}
	d, err := New(cfg, Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	body := &countingReader{r: bytes.NewReader(make([]byte, 9<<20))}
	req := httptest.NewRequest("POST", "/webhook/locks", body)
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("code %d", rec.Code)
	}
	if body.n > 1<<20 {
		t.Errorf("read %d bytes of an unsigned request before refusing it", body.n)
	}
}
