// Package concourse is a small client for the parts of the Concourse API that
// poolboy needs: looking up the build that holds a lock and following a
// resource version to the builds that took it as input.
//
// Secrets (passwords, bearer tokens) never appear in errors or log output.
package concourse

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/poolboy-ci/poolboy/internal/backoff"
	"github.com/poolboy-ci/poolboy/internal/redact"
)

// DefaultRequestTimeout is the per-request timeout used when
// Config.RequestTimeout is zero.
const DefaultRequestTimeout = 10 * time.Second

// maxBodyBytes limits how much of a response body is read.
const maxBodyBytes = 10 << 20

// ErrNotFound is matched (errors.Is) by errors for things Concourse does not
// know: a 404 answer, or a version lookup that found nothing.
var ErrNotFound = errors.New("not found")

// Config configures a Client.
type Config struct {
	URL                string // API base, e.g. https://ci.example.com (trailing slash tolerated)
	Username, Password string // password grant
	Token              string // a bearer token (from --concourse-token or a fly target); no re-login possible
	Insecure           bool
	CACertPEM          []byte        // extra CA (PEM) trusted on top of the system pool
	RequestTimeout     time.Duration // per request; default 10s
	Logger             *slog.Logger  // Debug: one line per request: method, path+query, status, duration. Never a secret.
	// HTTPClient is an optional base client (tests). When it is nil a client
	// is built with the TLS settings above; when its Transport is nil or an
	// *http.Transport, Insecure and CACertPEM are applied to a clone of it.
	HTTPClient *http.Client
	// Now is the clock that token expiry and login backoff are measured by
	// (tests let days pass with it); nil: time.Now.
	Now func() time.Time
}

// StatusError is an unexpected HTTP status from Concourse.
type StatusError struct {
	Code   int
	Method string
	Path   string // escaped request path, with "?query" when there was one
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("concourse: %s %s: %d %s", e.Method, e.Path, e.Code, http.StatusText(e.Code))
}

// Is makes a 404 match ErrNotFound.
func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Code == http.StatusNotFound
}

// Build is a Concourse build as returned by the API.
type Build struct {
	ID                   int                        `json:"id"`
	TeamName             string                     `json:"team_name"`
	Name                 string                     `json:"name"`
	Status               string                     `json:"status"`
	APIURL               string                     `json:"api_url"`
	JobName              string                     `json:"job_name,omitempty"`
	PipelineName         string                     `json:"pipeline_name,omitempty"`
	PipelineInstanceVars map[string]json.RawMessage `json:"pipeline_instance_vars,omitempty"`
	StartTime            int64                      `json:"start_time,omitempty"`
	EndTime              int64                      `json:"end_time,omitempty"`
}

// Running reports whether the build is pending or started.
func (b Build) Running() bool {
	return b.Status == "pending" || b.Status == "started"
}

// Display names the build for humans: "team/pipeline/job #name",
// "team/pipeline/{"k":"v"}/job #name" for instanced pipelines, and
// "one-off build ID" for builds without a job.
func (b Build) Display() string {
	if b.JobName == "" || b.PipelineName == "" {
		return "one-off build " + strconv.Itoa(b.ID)
	}
	var sb strings.Builder
	sb.WriteString(b.TeamName)
	sb.WriteByte('/')
	sb.WriteString(b.PipelineName)
	if len(b.PipelineInstanceVars) > 0 {
		sb.WriteByte('/')
		if s, err := varsJSON(b.PipelineInstanceVars); err == nil {
			sb.WriteString(s)
		} else {
			sb.WriteString("{?}")
		}
	}
	sb.WriteByte('/')
	sb.WriteString(b.JobName)
	sb.WriteString(" #")
	sb.WriteString(b.Name)
	return sb.String()
}

// Pipeline identifies a pipeline; Vars is nil for a pipeline that is not instanced.
type Pipeline struct {
	Team, Name string
	Vars       map[string]json.RawMessage
}

// ResourceVersion is one input or output of a build.
type ResourceVersion struct {
	Name    string            `json:"name"`
	Version map[string]string `json:"version"`
}

// BuildResources are the inputs and outputs of a build.
type BuildResources struct {
	Inputs  []ResourceVersion `json:"inputs"`
	Outputs []ResourceVersion `json:"outputs"`
}

// Client talks to one Concourse. It is safe for concurrent use.
type Client struct {
	base     string // scheme://host[/prefix], no trailing slash
	user     string
	password string
	canLogin bool
	timeout  time.Duration
	log      *slog.Logger
	hc       *http.Client
	now      func() time.Time

	sem       chan struct{} // guards the fields below, and serialises logins
	token     string
	expiry    time.Time // when token expires; zero: unknown, used until refused
	refreshAt time.Time // when to replace token while it is still valid; zero: never
	failures  int       // logins failed in a row
	lastErr   error     // the last failed login's error
	retryAt   time.Time // no login before this, after a failed one
}

// Failed logins are retried by backoff.Exp from loginBackoff up to
// maxLoginBackoff; lookups meanwhile fail at once with the last error, so a
// dead token endpoint is asked once per backoff, not once per lookup.
const (
	loginBackoff    = time.Second
	maxLoginBackoff = 5 * time.Minute
)

// New validates cfg and returns a Client. It does not touch the network.
func New(cfg Config) (*Client, error) {
	// Credentials are looked for the way git looks (a password url.Parse refuses
	// is still one), and the URL is shown masked: u.Redacted() would show a token
	// given as the user name.
	raw := strings.TrimSpace(cfg.URL)
	shown := redact.URL(raw)
	if redact.SplitURL(raw).HasUserinfo {
		return nil, fmt.Errorf("concourse: URL %q: must not contain credentials", shown)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("concourse: invalid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("concourse: URL %q: scheme must be http or https", shown)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("concourse: URL %q: missing host", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("concourse: URL %q: must not have a query or fragment", shown)
	}
	if (cfg.Username == "") != (cfg.Password == "") && cfg.Token == "" {
		return nil, errors.New("concourse: username and password must be given together")
	}
	if cfg.RequestTimeout < 0 {
		return nil, errors.New("concourse: negative request timeout")
	}

	var roots *x509.CertPool
	if len(cfg.CACertPEM) > 0 {
		roots, err = x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(cfg.CACertPEM) {
			return nil, errors.New("concourse: CA certificate: no PEM certificate found")
		}
	}

	hc, err := httpClient(cfg, roots)
	if err != nil {
		return nil, err
	}

	c := &Client{
		base:     strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"),
		user:     cfg.Username,
		password: cfg.Password,
		canLogin: cfg.Username != "" && cfg.Password != "",
		timeout:  cfg.RequestTimeout,
		log:      cfg.Logger,
		hc:       hc,
		now:      cfg.Now,
		sem:      make(chan struct{}, 1),
		token:    cfg.Token,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.timeout == 0 {
		c.timeout = DefaultRequestTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.hc.Transport = &logTransport{base: c.hc.Transport, log: c.log}
	return c, nil
}

// httpClient returns a private copy of the client to use, with the TLS
// settings applied where possible.
func httpClient(cfg Config, roots *x509.CertPool) (*http.Client, error) {
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	if !cfg.Insecure && roots == nil && hc.Transport != nil {
		return &hc, nil
	}
	var tr *http.Transport
	switch t := hc.Transport.(type) {
	case nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
	case *http.Transport:
		tr = t.Clone()
	default:
		if cfg.HTTPClient != nil {
			// A custom RoundTripper: TLS is its business.
			return &hc, nil
		}
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if cfg.Insecure {
		tr.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for by the user
	}
	if roots != nil {
		tr.TLSClientConfig.RootCAs = roots
	}
	hc.Transport = tr
	return &hc, nil
}

// logTransport logs one Debug line per HTTP request.
type logTransport struct {
	base http.RoundTripper
	log  *slog.Logger
}

func (t *logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	start := time.Now()
	resp, err := base.RoundTrip(req)
	target := req.URL.EscapedPath()
	if req.URL.RawQuery != "" {
		target += "?" + req.URL.RawQuery
	}
	attrs := []slog.Attr{
		slog.String("method", req.Method),
		slog.String("path", target),
	}
	if err != nil {
		attrs = append(attrs, slog.Int("status", 0), slog.Duration("duration", time.Since(start)),
			slog.String("error", oneLine(err.Error())))
	} else {
		attrs = append(attrs, slog.Int("status", resp.StatusCode), slog.Duration("duration", time.Since(start)))
	}
	t.log.LogAttrs(req.Context(), slog.LevelDebug, "concourse request", attrs...)
	return resp, err
}

// JobBuild returns build name of job in pipeline p.
func (c *Client) JobBuild(ctx context.Context, p Pipeline, job, name string) (*Build, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if job == "" || name == "" {
		return nil, errors.New("concourse: job and build name are required")
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	return c.build(ctx, p.path()+"/jobs/"+url.PathEscape(job)+"/builds/"+url.PathEscape(name), q)
}

// Build returns the build with the given ID (any build, including one-off builds).
func (c *Client) Build(ctx context.Context, id int) (*Build, error) {
	return c.build(ctx, "/api/v1/builds/"+strconv.Itoa(id), "")
}

func (c *Client) build(ctx context.Context, path, query string) (*Build, error) {
	var b *Build
	if err := c.get(ctx, path, query, &b); err != nil {
		return nil, err
	}
	if b == nil || b.ID == 0 {
		return nil, fmt.Errorf("concourse: GET %s: answer is not a build", joinTarget(path, query))
	}
	return b, nil
}

// BuildResources returns the inputs and outputs of a build.
func (c *Client) BuildResources(ctx context.Context, id int) (*BuildResources, error) {
	var r BuildResources
	if err := c.get(ctx, "/api/v1/builds/"+strconv.Itoa(id)+"/resources", "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Info is what GET /api/v1/info says about a Concourse.
type Info struct {
	Version     string `json:"version"`
	ExternalURL string `json:"external_url"` // what its builds' Build URLs start with
}

// Info returns the server's version and external URL (the endpoint needs no token).
func (c *Client) Info(ctx context.Context) (*Info, error) {
	var i Info
	if err := c.get(ctx, "/api/v1/info", "", &i); err != nil {
		return nil, err
	}
	return &i, nil
}

// PutResources maps each put step of a build's plan to the resource it puts to,
// from GET /api/v1/builds/ID/plan: the build's resources name outputs by step
// (put: claim-env, resource: env lists "claim-env"), versions live under the
// resource. Put steps are found wherever the plan nests them (do, on_success,
// ensure, in_parallel, try, across, ...).
func (c *Client) PutResources(ctx context.Context, id int) (map[string]string, error) {
	var plan struct {
		Plan json.RawMessage `json:"plan"`
	}
	path := "/api/v1/builds/" + strconv.Itoa(id) + "/plan"
	if err := c.get(ctx, path, "", &plan); err != nil {
		return nil, err
	}
	var tree any
	if err := json.Unmarshal(plan.Plan, &tree); err != nil {
		return nil, fmt.Errorf("concourse: GET %s: answer has no plan: %w", path, err)
	}
	puts := map[string]string{}
	findPuts(tree, puts)
	return puts, nil
}

// findPuts collects {"put": {"name": STEP, "resource": R}} anywhere in v.
func findPuts(v any, puts map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		if put, ok := v["put"].(map[string]any); ok {
			name, _ := put["name"].(string)
			res, _ := put["resource"].(string)
			if name != "" && res != "" {
				puts[name] = res
			}
		}
		for _, inner := range v {
			findPuts(inner, puts)
		}
	case []any:
		for _, inner := range v {
			findPuts(inner, puts)
		}
	}
}

// VersionID returns the ID of the version {"ref": ref} of resource in p.
// A version that does not exist gives an error matching ErrNotFound.
func (c *Client) VersionID(ctx context.Context, p Pipeline, resource, ref string) (int, error) {
	if err := p.check(); err != nil {
		return 0, err
	}
	if resource == "" || ref == "" {
		return 0, errors.New("concourse: resource and ref are required")
	}
	q, err := p.query()
	if err != nil {
		return 0, err
	}
	q = joinQuery("filter="+url.QueryEscape("ref:"+ref), q)
	var versions []struct {
		ID      int               `json:"id"`
		Version map[string]string `json:"version"`
	}
	if err := c.get(ctx, p.path()+"/resources/"+url.PathEscape(resource)+"/versions", q, &versions); err != nil {
		return 0, err
	}
	for _, v := range versions {
		if v.Version["ref"] == ref {
			return v.ID, nil
		}
	}
	return 0, fmt.Errorf("concourse: no version ref:%s of resource %s in %s: %w", ref, resource, p, ErrNotFound)
}

// InputTo returns the builds that took version versionID of resource as an input.
func (c *Client) InputTo(ctx context.Context, p Pipeline, resource string, versionID int) ([]Build, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if resource == "" {
		return nil, errors.New("concourse: resource is required")
	}
	q, err := p.query()
	if err != nil {
		return nil, err
	}
	var builds []Build
	path := p.path() + "/resources/" + url.PathEscape(resource) + "/versions/" + strconv.Itoa(versionID) + "/input_to"
	if err := c.get(ctx, path, q, &builds); err != nil {
		return nil, err
	}
	return builds, nil
}

func (p Pipeline) check() error {
	if p.Team == "" || p.Name == "" {
		return errors.New("concourse: pipeline team and name are required")
	}
	return nil
}

func (p Pipeline) path() string {
	return "/api/v1/teams/" + url.PathEscape(p.Team) + "/pipelines/" + url.PathEscape(p.Name)
}

// String is "team/pipeline" or "team/pipeline/{vars}".
func (p Pipeline) String() string {
	s := p.Team + "/" + p.Name
	if len(p.Vars) > 0 {
		if v, err := varsJSON(p.Vars); err == nil {
			s += "/" + v
		}
	}
	return s
}

// query encodes the instance vars as Concourse's own client does (VarsQuery).
func (p Pipeline) query() (string, error) {
	q, err := VarsQuery(p.Vars)
	if err != nil {
		return "", fmt.Errorf("concourse: pipeline %s/%s: %w", p.Team, p.Name, err)
	}
	return q, nil
}

func joinTarget(path, query string) string {
	if query == "" {
		return path
	}
	return path + "?" + query
}

func joinQuery(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "&" + b
}

func encodeJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// varsJSON renders instance vars as one compact JSON object with sorted keys.
func varsJSON(vars map[string]json.RawMessage) (string, error) {
	obj := make(map[string]any, len(vars))
	for k, raw := range vars {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "", err
		}
		obj[k] = v
	}
	return encodeJSON(obj)
}

// get fetches base+path?query and decodes the JSON answer into out. A 401
// with password credentials leads to one fresh login and one retry; a 401 for
// that fresh token counts as a failed login.
func (c *Client) get(ctx context.Context, path, query string, out any) error {
	target := joinTarget(path, query)
	tok, err := c.currentToken(ctx, "")
	if err != nil {
		return err
	}
	body, code, err := c.do(ctx, target, tok)
	if err != nil {
		return err
	}
	if code == http.StatusUnauthorized && c.canLogin {
		if tok, err = c.currentToken(ctx, tok); err != nil {
			return err
		}
		if body, code, err = c.do(ctx, target, tok); err != nil {
			return err
		}
		if code == http.StatusUnauthorized {
			c.refused(ctx, tok)
		}
	}
	if code < 200 || code > 299 {
		return &StatusError{Code: code, Method: http.MethodGet, Path: target}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("concourse: GET %s: decoding answer: %w", target, err)
	}
	return nil
}

// do performs one GET with its own timeout and returns the (limited) body.
func (c *Client) do(ctx context.Context, target, token string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+target, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("concourse: GET %s: %w", target, err)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("concourse: GET %s: %w", target, scrub(err, token, c.password))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, resp.StatusCode, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("concourse: GET %s: reading answer: %w", target, scrub(err, token, c.password))
	}
	if len(body) > maxBodyBytes {
		return nil, 0, fmt.Errorf("concourse: GET %s: answer larger than %d bytes", target, maxBodyBytes)
	}
	return body, resp.StatusCode, nil
}

// currentToken returns the token to use. With stale != "" the caller got a
// 401 with stale: a new login happens unless another request already
// replaced that token. A token is also replaced when it has expired, and a
// quarter of its lifetime before that (6 h for Concourse's 24 h tokens): a
// token endpoint that is down for less than that costs no lookup, as the old
// token serves meanwhile. Without credentials the (possibly empty) static
// token is returned.
func (c *Client) currentToken(ctx context.Context, stale string) (string, error) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("concourse: waiting for login: %w", ctx.Err())
	}
	defer func() { <-c.sem }()
	if !c.canLogin {
		return c.token, nil
	}
	now := c.now()
	valid := c.token != "" && c.token != stale && (c.expiry.IsZero() || now.Before(c.expiry))
	if valid && (c.refreshAt.IsZero() || now.Before(c.refreshAt)) {
		return c.token, nil
	}
	if now.Before(c.retryAt) {
		if valid {
			return c.token, nil
		}
		return "", fmt.Errorf("%w (%d failed in a row; next try in %s)", c.lastErr, c.failures, c.retryAt.Sub(now).Round(time.Millisecond))
	}
	tok, expiry, err := c.login(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", err // the caller gave up: no verdict on Concourse
		}
		c.failedLocked(err)
		if valid {
			c.log.Warn("concourse: could not refresh the token; using the current one until it expires",
				"expires", c.expiry, "error", err)
			return c.token, nil
		}
		return "", err
	}
	c.token, c.expiry, c.refreshAt = tok, expiry, time.Time{}
	if !expiry.IsZero() {
		c.refreshAt = expiry.Add(-expiry.Sub(now) / 4)
	}
	c.failures, c.lastErr, c.retryAt = 0, nil, time.Time{}
	return tok, nil
}

// failedLocked records a failed login and when the next may happen.
func (c *Client) failedLocked(err error) {
	c.failures++
	c.lastErr = err
	c.retryAt = c.now().Add(backoff.Exp(c.failures, loginBackoff, maxLoginBackoff))
}

// refused is told that tok, just issued by a re-login, got a 401 too: it is
// dropped and the next login waits for the backoff.
func (c *Client) refused(ctx context.Context, tok string) {
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.sem }()
	if c.token == tok {
		c.token = ""
		c.failedLocked(errors.New("concourse: a fresh token was refused (401)"))
	}
}

// login gets a token with the password grant, from /sky/issuer/token or,
// when that does not exist (before v6.1), /sky/token, and says when it
// expires by the client's clock (zero: the answer did not say).
func (c *Client) login(ctx context.Context) (string, time.Time, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.hc)
	issued := c.now()
	tok, err := c.loginAt(ctx, "/sky/issuer/token")
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusNotFound {
		tok, err = c.loginAt(ctx, "/sky/token")
	}
	if err == nil {
		return tok.AccessToken, expiry(tok, issued), nil
	}
	if errors.As(err, &re) {
		msg := fmt.Sprintf("concourse: login as %s failed: ", c.user)
		if re.Response != nil {
			msg += strconv.Itoa(re.Response.StatusCode)
		}
		if re.ErrorCode != "" {
			msg += fmt.Sprintf(" (%s)", oneLine(re.ErrorCode))
		}
		return "", time.Time{}, errors.New(msg)
	}
	return "", time.Time{}, fmt.Errorf("concourse: login as %s failed: %w", c.user, scrub(err, c.password))
}

// expiry is when tok expires: issued + expires_in (v6.1+), or the "expiry"
// a server before v6.1 answers. oauth2's own Expiry is not used: it is
// computed with the wall clock, not the client's.
func expiry(tok *oauth2.Token, issued time.Time) time.Time {
	if tok.ExpiresIn > 0 {
		return issued.Add(time.Duration(tok.ExpiresIn) * time.Second)
	}
	if s, ok := tok.Extra("expiry").(string); ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil && t.After(issued) {
			return t
		}
	}
	return time.Time{}
}

func (c *Client) loginAt(ctx context.Context, path string) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	conf := oauth2.Config{
		ClientID:     "fly",
		ClientSecret: "Zmx5",
		Endpoint: oauth2.Endpoint{
			TokenURL:  c.base + path,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		Scopes: []string{"openid", "profile", "email", "federated:id", "groups"},
	}
	tok, err := conf.PasswordCredentialsToken(ctx, c.user, c.password)
	if err != nil {
		return nil, err
	}
	if tok.AccessToken == "" {
		return nil, errors.New("answer has no access_token")
	}
	return tok, nil
}

// scrub shortens a transport error and guards against a secret turning up in
// its text (it should not); the error chain is kept for errors.Is/As.
func scrub(err error, secrets ...string) error {
	// The message names the request already; drop url.Error's "Get "URL": ".
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	msg := err.Error()
	clean := oneLine(redact.New(secrets...).String(msg))
	if clean == msg {
		return err
	}
	return &scrubbed{msg: clean, err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (s *scrubbed) Error() string { return s.msg }
func (s *scrubbed) Unwrap() error { return s.err }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
