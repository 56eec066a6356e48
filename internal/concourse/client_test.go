package concourse

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
)

func TestBuildDisplayAndRunning(t *testing.T) {
	tests := []struct {
		b    Build
		want string
	}{
		{Build{ID: 7, TeamName: "main", PipelineName: "locks", JobName: "hold", Name: "3"}, "main/locks/hold #3"},
		{Build{ID: 8, TeamName: "main", PipelineName: "locks", JobName: "hold", Name: "3.1",
			PipelineInstanceVars: map[string]json.RawMessage{"n": json.RawMessage(`2`), "env": json.RawMessage(` "a/b" `)}},
			`main/locks/{"env":"a/b","n":2}/hold #3.1`},
		{Build{ID: 11, TeamName: "main", Name: "11"}, "one-off build 11"},
	}
	for _, tc := range tests {
		if got := tc.b.Display(); got != tc.want {
			t.Errorf("Display() = %q, want %q", got, tc.want)
		}
	}
	for status, want := range map[string]bool{"pending": true, "started": true, "succeeded": false,
		"failed": false, "errored": false, "aborted": false} {
		if got := (Build{Status: status}).Running(); got != want {
			t.Errorf("Running(%s) = %v", status, got)
		}
	}
}

// TestVarsQuery pins the encoding to the forms Concourse itself produces
// (atc/pipeline_test.go's QueryParams cases, url.Values-encoded, and BUILD_URLs
// seen on v8.2): leaves flattened, segments with ,.:/ or a space Go-quoted,
// values json.Marshal'ed (so & is \u0026, 12.50 is 12.5), sorted.
func TestVarsQuery(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, tt := range []struct {
		name string
		vars map[string]json.RawMessage
		want string
	}{
		{"none", nil, ""},
		{"facts: env stage", map[string]json.RawMessage{"env": raw(`"stage"`)}, "vars.env=%22stage%22"},
		{"concourse simple", map[string]json.RawMessage{"hello": raw(`"world"`), "num": raw(`123`)},
			"vars.hello=%22world%22&vars.num=123"},
		{"concourse nested", map[string]json.RawMessage{"hello": raw(`{"foo": 123, "bar": false}`)},
			"vars.hello.bar=false&vars.hello.foo=123"},
		{"concourse quoted", map[string]json.RawMessage{"hello.1": raw(`{"foo:bar":"baz"}`)},
			"vars.%22hello.1%22.%22foo%3Abar%22=%22baz%22"},
		{"comma slash space in keys", map[string]json.RawMessage{"a,b": raw(`1`), "c/d": raw(`2`), "e f": raw(`3`)},
			"vars.%22a%2Cb%22=1&vars.%22c%2Fd%22=2&vars.%22e+f%22=3"},
		{"quote in key", map[string]json.RawMessage{`a"b`: raw(`"x"`)}, "vars.a%22b=%22x%22"},
		{"quote and dot in key", map[string]json.RawMessage{`a".b`: raw(`"x"`)}, "vars.%22a%5C%22.b%22=%22x%22"},
		{"values with specials", map[string]json.RawMessage{"v": raw(`"a.b,c:d/e f\"g&h<i"`)},
			"vars.v=%22a.b%2Cc%3Ad%2Fe+f%5C%22g%5Cu0026h%5Cu003ci%22"},
		{"arrays stay whole, numbers re-marshaled", map[string]json.RawMessage{"l": raw(`["a", {"b": 1}]`), "n": raw(`12.50`)},
			"vars.l=%5B%22a%22%2C%7B%22b%22%3A1%7D%5D&vars.n=12.5"},
		{"deeply nested", map[string]json.RawMessage{"a": raw(`{"b": {"c.d": null}}`)}, "vars.a.b.%22c.d%22=null"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VarsQuery(tt.vars)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("VarsQuery = %s\nwant        %s", got, tt.want)
			}
		})
	}
	if _, err := VarsQuery(map[string]json.RawMessage{"a": raw(`{`)}); err == nil {
		t.Error("invalid JSON: no error")
	}
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "ftp://ci.example.com"}, "scheme"},
		{Config{URL: "ci.example.com"}, "scheme"},
		{Config{URL: "https://"}, "host"},
		{Config{URL: "https://u:canarypw@ci.example.com"}, "credentials"},
		{Config{URL: "https://u:canarypw^x@ci.example.com"}, "credentials"},
		{Config{URL: "https://canarypw-token-1234@ci.example.com"}, "credentials"},
		{Config{URL: "https://ci.example.com", CACertPEM: []byte("not a pem")}, "PEM"},
		{Config{URL: "https://ci.example.com", Username: "alice"}, "together"},
	} {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q): err %v, want %q", tc.cfg.URL, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "canarypw") {
			t.Errorf("error leaks password: %v", err)
		}
	}
	for _, u := range []string{"https://ci.example.com", "https://ci.example.com/", "http://127.0.0.1:8080/prefix/"} {
		c, err := New(Config{URL: u})
		if err != nil {
			t.Errorf("New(%q): %v", u, err)
			continue
		}
		if strings.HasSuffix(c.base, "/") {
			t.Errorf("base %q keeps trailing slash", c.base)
		}
	}
}

func TestStatusError(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &StatusError{Code: 404, Method: "GET", Path: "/api/v1/builds/12"})
	if !errors.Is(err, ErrNotFound) {
		t.Error("404 is not ErrNotFound")
	}
	e403 := &StatusError{Code: 403, Method: "GET", Path: "/api/v1/builds/12"}
	if got, want := e403.Error(), "concourse: GET /api/v1/builds/12: 403 Forbidden"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Is(e403, ErrNotFound) {
		t.Error("403 is ErrNotFound")
	}
}

const (
	canaryPassword = "canary-password-Zq81x"
	canaryToken    = "canary-static-token-Hh42k"
)

// harness collects the client's Debug log and every error a test saw, and
// checks at the end that no secret turned up in either.
type harness struct {
	t       *testing.T
	mu      sync.Mutex
	logs    bytes.Buffer
	errs    []string
	secrets []string
	clients []*Client // their final tokens are secrets too
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, secrets: []string{canaryPassword, canaryToken}}
	t.Cleanup(h.verify)
	return h
}

func (h *harness) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.Write(p)
}

func (h *harness) log() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.String()
}

// secret adds a value that must never be printed.
func (h *harness) secret(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, s)
}

// err records err (if any) for the secret check and returns it.
func (h *harness) err(err error) error {
	if err != nil {
		h.mu.Lock()
		h.errs = append(h.errs, err.Error())
		h.mu.Unlock()
	}
	return err
}

func (h *harness) verify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.clients {
		c.sem <- struct{}{}
		h.secrets = append(h.secrets, c.token)
		<-c.sem
	}
	out := h.logs.String()
	if strings.Contains(strings.ToLower(out), "bearer") || strings.Contains(out, "Basic ") {
		h.t.Errorf("log output contains an Authorization header:\n%s", out)
	}
	for _, s := range h.secrets {
		if s == "" {
			continue
		}
		if strings.Contains(out, s) {
			h.t.Errorf("log output contains a secret:\n%s", out)
		}
		for _, e := range h.errs {
			if strings.Contains(e, s) {
				h.t.Errorf("error contains a secret: %q", e)
			}
		}
	}
	for _, e := range h.errs {
		if strings.Contains(e, "\n") {
			h.t.Errorf("error is not one line: %q", e)
		}
	}
}

func (h *harness) client(cfg Config) *Client {
	h.t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(h, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Token != "" {
		h.secret(cfg.Token)
	}
	c, err := New(cfg)
	if err != nil {
		h.t.Fatalf("New: %v", h.err(err))
	}
	h.mu.Lock()
	h.clients = append(h.clients, c)
	h.mu.Unlock()
	return c
}

func newFake(t *testing.T, opts ...fakeconcourse.Option) *fakeconcourse.Server {
	s := fakeconcourse.New(t, opts...)
	s.AddUser("alice", canaryPassword, "main")
	return s
}

func alice(s *fakeconcourse.Server) Config {
	return Config{URL: s.URL, Username: "alice", Password: canaryPassword}
}

func countPath(reqs []fakeconcourse.Request, method, path string) int {
	n := 0
	for _, r := range reqs {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

func TestLoginIssuer(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "4", Status: "started"})
	c := h.client(alice(s))
	b, err := c.JobBuild(context.Background(), Pipeline{Team: "main", Name: "locks"}, "hold", "4")
	if h.err(err) != nil {
		t.Fatal(err)
	}
	if b.ID != id || b.TeamName != "main" || b.PipelineName != "locks" || b.JobName != "hold" || b.Name != "4" || !b.Running() {
		t.Errorf("build = %+v", b)
	}
	if got := b.Display(); got != "main/locks/hold #4" {
		t.Errorf("Display = %q", got)
	}
	if n := s.TokensIssued(); n != 1 {
		t.Errorf("TokensIssued = %d", n)
	}
	reqs := s.Requests()
	if countPath(reqs, "POST", "/sky/issuer/token") != 1 || countPath(reqs, "POST", "/sky/token") != 0 {
		t.Errorf("requests = %+v", reqs)
	}
	for _, r := range reqs {
		if strings.HasPrefix(r.Path, "/api/") && r.User != "alice" {
			t.Errorf("API request not as alice: %+v", r)
		}
	}
	// The Debug log has one line per request with method, path, status.
	log := h.log()
	for _, want := range []string{"method=POST path=/sky/issuer/token status=200",
		"method=GET path=/api/v1/teams/main/pipelines/locks/jobs/hold/builds/4 status=200", "duration="} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestLoginLegacyFallback(t *testing.T) {
	h := newHarness(t)
	s := newFake(t, fakeconcourse.WithLegacyAuth())
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Name: "1", Status: "succeeded"})
	c := h.client(alice(s))
	b, err := c.Build(context.Background(), id)
	if h.err(err) != nil {
		t.Fatal(err)
	}
	if b.ID != id || b.Running() || b.Display() != fmt.Sprintf("one-off build %d", id) {
		t.Errorf("build = %+v, Display %q", b, b.Display())
	}
	reqs := s.Requests()
	if countPath(reqs, "POST", "/sky/issuer/token") != 1 || countPath(reqs, "POST", "/sky/token") != 1 {
		t.Errorf("requests = %+v", reqs)
	}
	if n := s.TokensIssued(); n != 1 {
		t.Errorf("TokensIssued = %d", n)
	}
}

func TestLoginFailure(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "started"})
	cfg := alice(s)
	cfg.Password = canaryPassword + "-wrong"
	h.secret(cfg.Password)
	c := h.client(cfg)
	_, err := c.Build(context.Background(), id)
	if h.err(err) == nil {
		t.Fatal("no error with a wrong password")
	}
	if !strings.Contains(err.Error(), "login as alice failed") {
		t.Errorf("err = %v", err)
	}
	if n := countPath(s.Requests(), "GET", fmt.Sprintf("/api/v1/builds/%d", id)); n != 0 {
		t.Errorf("%d API requests after a failed login", n)
	}
}

func TestConcurrentRequestsLogInOnce(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	var ids []int
	for i := range 8 {
		ids = append(ids, s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: strconv.Itoa(i + 1), Status: "started"}))
	}
	c := h.client(alice(s))
	var wg sync.WaitGroup
	for i := range 32 {
		id := ids[i%len(ids)]
		wg.Go(func() {
			b, err := c.Build(context.Background(), id)
			if h.err(err) != nil {
				t.Error(err)
				return
			}
			if b.ID != id {
				t.Errorf("got build %d, want %d", b.ID, id)
			}
		})
	}
	wg.Wait()
	if n := s.TokensIssued(); n != 1 {
		t.Errorf("TokensIssued = %d, want 1", n)
	}
}

// unauthorizedRT turns the first n answers to /api/ requests into 401s:
// transport-level fault injection for the re-login path.
type unauthorizedRT struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (u *unauthorizedRT) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := u.base.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/api/") {
		return resp, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.n == 0 {
		return resp, err
	}
	u.n--
	resp.Body.Close()
	return &http.Response{
		StatusCode: http.StatusUnauthorized, Status: "401 Unauthorized", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(strings.NewReader("not authorized")), Request: req,
	}, nil
}

func TestReloginOnceOn401(t *testing.T) {
	for _, tc := range []struct {
		name       string
		rejections int
		wantErr    bool
	}{
		{"first answer 401: re-login and retry", 1, false},
		{"second 401 is an error", 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			s := newFake(t)
			id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "1", Status: "started"})
			cfg := alice(s)
			cfg.HTTPClient = &http.Client{Transport: &unauthorizedRT{base: http.DefaultTransport, n: tc.rejections}}
			c := h.client(cfg)
			b, err := c.Build(context.Background(), id)
			h.err(err)
			if tc.wantErr {
				var se *StatusError
				if !errors.As(err, &se) || se.Code != 401 {
					t.Fatalf("err = %v, want 401 StatusError", err)
				}
			} else if err != nil || b.ID != id {
				t.Fatalf("Build: %v, %+v", err, b)
			}
			if n := s.TokensIssued(); n != 2 {
				t.Errorf("TokensIssued = %d, want 2", n)
			}
			if n := countPath(s.Requests(), "GET", fmt.Sprintf("/api/v1/builds/%d", id)); n != 2 {
				t.Errorf("%d API requests, want 2", n)
			}
		})
	}
}

func TestStaticToken(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "1", Status: "failed"})

	good := s.Token("alice")
	c := h.client(Config{URL: s.URL + "/", Token: good})
	if b, err := c.Build(context.Background(), id); h.err(err) != nil || b.Status != "failed" {
		t.Fatalf("Build with a valid token: %v %+v", err, b)
	}

	bad := h.client(Config{URL: s.URL, Token: canaryToken})
	_, err := bad.Build(context.Background(), id)
	var se *StatusError
	if !errors.As(h.err(err), &se) || se.Code != 401 || se.Method != "GET" || se.Path != fmt.Sprintf("/api/v1/builds/%d", id) {
		t.Fatalf("err = %v, want a 401 StatusError", err)
	}
	if n := s.TokensIssued(); n != 0 { // s.Token is not counted
		t.Errorf("TokensIssued = %d: a static token must not lead to a login", n)
	}
	if n := countPath(s.Requests(), "GET", fmt.Sprintf("/api/v1/builds/%d", id)); n != 2 {
		t.Errorf("%d API requests, want 2 (no retry)", n)
	}
}

func TestStatusMapping(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	s.AddUser("bob", canaryPassword, "other")
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "1", Status: "started"})
	ctx := context.Background()
	main := Pipeline{Team: "main", Name: "locks"}

	code := func(err error) int {
		var se *StatusError
		if errors.As(err, &se) {
			return se.Code
		}
		return -1
	}

	// 401: no credentials at all.
	anon := h.client(Config{URL: s.URL})
	_, err := anon.JobBuild(ctx, main, "hold", "1")
	if code(h.err(err)) != 401 {
		t.Errorf("anonymous: %v, want 401", err)
	}
	// 403: bob is not in team main.
	bob := h.client(Config{URL: s.URL, Username: "bob", Password: canaryPassword})
	_, err = bob.JobBuild(ctx, main, "hold", "1")
	if code(h.err(err)) != 403 || errors.Is(err, ErrNotFound) {
		t.Errorf("other team: %v, want 403", err)
	}
	c := h.client(alice(s))
	// 404 for unknown build, job, pipeline, team, build id.
	for _, f := range []func() error{
		func() error { _, err := c.JobBuild(ctx, main, "hold", "99"); return err },
		func() error { _, err := c.JobBuild(ctx, main, "nojob", "1"); return err },
		func() error {
			_, err := c.JobBuild(ctx, Pipeline{Team: "main", Name: "nopipe"}, "hold", "1")
			return err
		},
		func() error { _, err := c.Build(ctx, id+1000); return err },
	} {
		err := h.err(f())
		if code(err) != 404 || !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown thing: %v, want 404 ErrNotFound", err)
		}
	}
	// 400 and 500 through an injected fault.
	for _, status := range []int{400, 500} {
		s.SetFault(fakeconcourse.Fault{Status: status, Body: "nope"})
		_, err = c.Build(ctx, id)
		if code(h.err(err)) != status || errors.Is(err, ErrNotFound) {
			t.Errorf("fault %d: %v", status, err)
		}
		s.SetFault(fakeconcourse.Fault{})
	}
	if _, err := c.Build(ctx, id); h.err(err) != nil {
		t.Errorf("after clearing the fault: %v", err)
	}
	want := fmt.Sprintf("concourse: GET /api/v1/builds/%d: 404 Not Found", id+1000)
	_, err = c.Build(ctx, id+1000)
	if h.err(err) == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestInstancedPipelineJobBuild(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	vars := map[string]any{"env": "stage/eu", "shard": 2}
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Vars: vars, Job: "hold", Name: "3.1", Status: "pending"})
	c := h.client(alice(s))
	ctx := context.Background()
	p := Pipeline{Team: "main", Name: "locks", Vars: map[string]json.RawMessage{
		"env": json.RawMessage(`"stage/eu"`), "shard": json.RawMessage(`2`)}}
	b, err := c.JobBuild(ctx, p, "hold", "3.1")
	if h.err(err) != nil {
		t.Fatal(err)
	}
	if b.ID != id || !b.Running() {
		t.Errorf("build = %+v", b)
	}
	if got, want := b.Display(), `main/locks/{"env":"stage/eu","shard":2}/hold #3.1`; got != want {
		t.Errorf("Display = %q, want %q", got, want)
	}
	var last fakeconcourse.Request
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, "/builds/3.1") {
			last = r
		}
	}
	if want := "vars.env=%22stage%2Feu%22&vars.shard=2"; last.RawQuery != want {
		t.Errorf("RawQuery = %q, want %q", last.RawQuery, want)
	}
	// Missing or partial vars: 404.
	for _, vs := range []map[string]json.RawMessage{nil, {"env": json.RawMessage(`"stage/eu"`)}} {
		_, err := c.JobBuild(ctx, Pipeline{Team: "main", Name: "locks", Vars: vs}, "hold", "3.1")
		if !errors.Is(h.err(err), ErrNotFound) {
			t.Errorf("vars %v: err = %v, want ErrNotFound", vs, err)
		}
	}
}

func TestBuildResourcesVersionInputTo(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	const sha = "0123456789abcdef0123456789abcdef01234567"
	vars := map[string]any{"env": "a/b"}
	claim := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Vars: vars, Job: "claim", Name: "1", Status: "succeeded",
		Inputs: []fakeconcourse.Version{{Resource: "pool", Ref: "fedcba"}}, Outputs: []fakeconcourse.Version{{Resource: "pool", Ref: sha}}})
	hold := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Vars: vars, Job: "hold", Name: "1", Status: "started",
		Inputs: []fakeconcourse.Version{{Resource: "pool", Ref: sha}}})
	c := h.client(alice(s))
	ctx := context.Background()

	res, err := c.BuildResources(ctx, claim)
	if h.err(err) != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Name != "pool" || res.Outputs[0].Version["ref"] != sha ||
		len(res.Inputs) != 1 || res.Inputs[0].Version["ref"] != "fedcba" {
		t.Fatalf("resources = %+v", res)
	}
	p := Pipeline{Team: "main", Name: "locks", Vars: map[string]json.RawMessage{"env": json.RawMessage(`"a/b"`)}}
	vid, err := c.VersionID(ctx, p, res.Outputs[0].Name, res.Outputs[0].Version["ref"])
	if h.err(err) != nil {
		t.Fatal(err)
	}
	builds, err := c.InputTo(ctx, p, "pool", vid)
	if h.err(err) != nil {
		t.Fatal(err)
	}
	var found bool
	for _, b := range builds {
		if b.ID == hold {
			found = b.Running() && b.JobName == "hold"
		}
	}
	if !found {
		t.Errorf("InputTo = %+v, want build %d", builds, hold)
	}
	var sawFilter bool
	for _, r := range s.Requests() {
		if strings.HasSuffix(r.Path, "/resources/pool/versions") {
			sawFilter = strings.Contains(r.RawQuery, "filter=ref%3A"+sha) && strings.Contains(r.RawQuery, "vars.env=%22a%2Fb%22")
		}
	}
	if !sawFilter {
		t.Errorf("versions request lacks filter or vars: %+v", s.Requests())
	}

	_, err = c.VersionID(ctx, p, "pool", "ffffffffffffffffffffffffffffffffffffffff")
	if !errors.Is(h.err(err), ErrNotFound) {
		t.Errorf("unknown ref: %v, want ErrNotFound", err)
	}
	// Deleting the pipeline deletes its builds.
	s.DeletePipeline("main", "locks", vars)
	_, err = c.Build(ctx, hold)
	if !errors.Is(h.err(err), ErrNotFound) {
		t.Errorf("build of deleted pipeline: %v, want ErrNotFound", err)
	}
}

func TestTLS(t *testing.T) {
	h := newHarness(t)
	s := fakeconcourse.New(t, fakeconcourse.WithTLS())
	s.AddUser("alice", canaryPassword, "main")
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Name: "5", Status: "started"})
	ctx := context.Background()
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("URL = %s", s.URL)
	}

	_, err := h.client(alice(s)).Build(ctx, id)
	var ue *tls.CertificateVerificationError
	if !errors.As(h.err(err), &ue) {
		t.Errorf("without CA: err = %v, want a certificate error", err)
	}
	cfg := alice(s)
	cfg.CACertPEM = s.CACertPEM()
	if _, err := h.client(cfg).Build(ctx, id); h.err(err) != nil {
		t.Errorf("with CA: %v", err)
	}
	cfg = alice(s)
	cfg.Insecure = true
	if _, err := h.client(cfg).Build(ctx, id); h.err(err) != nil {
		t.Errorf("insecure: %v", err)
	}
}

func TestTimeouts(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Name: "5", Status: "started"})
	tok := s.Token("alice")
	s.SetFault(fakeconcourse.Fault{Delay: time.Hour})

	// Per-request timeout.
	c := h.client(Config{URL: s.URL, Token: tok, RequestTimeout: 50 * time.Millisecond})
	_, err := c.Build(context.Background(), id)
	if !errors.Is(h.err(err), context.DeadlineExceeded) {
		t.Errorf("request timeout: %v", err)
	}
	// The caller's context.
	c = h.client(Config{URL: s.URL, Token: tok, RequestTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = c.Build(ctx, id)
	if !errors.Is(h.err(err), context.DeadlineExceeded) {
		t.Errorf("caller deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = c.Build(ctx, id)
	if !errors.Is(h.err(err), context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// The login honours the timeout too.
	cfg := alice(s)
	cfg.RequestTimeout = 50 * time.Millisecond
	_, err = h.client(cfg).Build(context.Background(), id)
	if !errors.Is(h.err(err), context.DeadlineExceeded) {
		t.Errorf("login timeout: %v", err)
	}
}

func TestMalformedAnswers(t *testing.T) {
	h := newHarness(t)
	s := newFake(t)
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "1", Status: "started"})
	c := h.client(Config{URL: s.URL, Token: s.Token("alice")})
	ctx := context.Background()
	p := Pipeline{Team: "main", Name: "locks"}
	for _, body := range []string{"{not json", "<html>oops</html>", "[]", "null", "{}", `{"id":"seven"}`, ""} {
		s.SetFault(fakeconcourse.Fault{Status: 200, Body: body})
		if b, err := c.Build(ctx, id); h.err(err) == nil {
			t.Errorf("Build with body %q: no error, got %+v", body, b)
		}
		if b, err := c.JobBuild(ctx, p, "hold", "1"); h.err(err) == nil {
			t.Errorf("JobBuild with body %q: no error, got %+v", body, b)
		}
	}
	for _, body := range []string{"{not json", `{"id":1}`, `"x"`} {
		s.SetFault(fakeconcourse.Fault{Status: 200, Body: body})
		if _, err := c.BuildResources(ctx, id); h.err(err) == nil && body != `{"id":1}` {
			t.Errorf("BuildResources with body %q: no error", body)
		}
		if _, err := c.VersionID(ctx, p, "pool", "abc"); h.err(err) == nil {
			t.Errorf("VersionID with body %q: no error", body)
		}
		if _, err := c.InputTo(ctx, p, "pool", 1); h.err(err) == nil {
			t.Errorf("InputTo with body %q: no error", body)
		}
	}
	// Oversized answers are cut off with an error.
	s.SetFault(fakeconcourse.Fault{Status: 200, Body: `{"id":1,"name":"` + strings.Repeat("x", maxBodyBytes) + `"}`})
	if _, err := c.Build(ctx, id); h.err(err) == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized: %v", err)
	}
}
