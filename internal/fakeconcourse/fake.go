// Package fakeconcourse is an in-process fake of the parts of the Concourse API
// that poolboy uses: the fly password login (Dex behind /sky/issuer/token, or
// /sky/token on servers older than v6.1), builds by id and by job path,
// build resources, resource versions and the builds a version was input to.
//
// It is the one place the project's idea of Concourse lives, so it follows
// real servers (v7/v8, checked against the Concourse and Dex sources and
// /work/shared/docs/concourse-facts.md) rather than what would be convenient:
//
//   - Every pipeline is private. Existence is checked before access, as the
//     ATC does: an unknown team or pipeline (or build id) is 404 even without
//     a token, an existing one is 401 without a valid token ("not authorized")
//     and 403 ("forbidden") with the token of a user who is not in the team;
//     unknown jobs, job builds and resources are 404 only after that check.
//     404s have an empty body.
//   - Users added with AddUser are owners of their teams; an owner of the
//     "main" team is an admin and may read every team, as on real Concourse.
//   - Access tokens are opaque (20 random bytes and the expiry, base64, like
//     the ATC's); the id_token is a JWT and is rejected as a bearer token.
//     They last 24 h (WithTokenTTL) by the server's clock (WithClock); an
//     expired token is answered as no token: 401.
//   - input_to of an unknown version id answers 200 with [] (the ATC does
//     not look the version up); only an unknown resource is 404.
//   - A build's resources name its outputs by put STEP name (put: claim-env,
//     resource: env lists "claim-env"), as real servers do; the step → resource
//     map is in GET /api/v1/builds/ID/plan, where the put steps are nested
//     (do, in_parallel, on_success with the implicit get) as the ATC plans them.
//   - GET /api/v1/info needs no token and says the external URL (the server's
//     own URL unless WithExternalURL), which builds' Build URLs start with.
package fakeconcourse

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TB is what the fake needs of its owner: a *testing.T (or B, F), or, outside
// tests (`poolboy demo`), anything that reports misuse and closes the fake when
// it is done. Misuse (AddBuild with an invalid status, ...) goes to Errorf.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

type config struct {
	legacyAuth  bool
	tls         bool
	now         func() time.Time
	tokenTTL    time.Duration
	externalURL string
}

// defaultAge is how long before AddBuild a build added as started or finished
// started, when the test gives no StartTime.
const defaultAge = 30 * 24 * time.Hour

// Option configures New.
type Option func(*config)

// WithLegacyAuth makes the fake a server older than v6.1: POST
// /sky/issuer/token answers 404 and POST /sky/token issues the tokens. Like
// those servers, /sky/token answers {"access_token":"<JWT>",
// "token_type":"Bearer","expiry":"<RFC 3339 time>"} (no expires_in, no
// id_token) and answers a missing or wrong client with an empty 401.
func WithLegacyAuth() Option { return func(c *config) { c.legacyAuth = true } }

// WithExternalURL makes GET /api/v1/info say u is the external URL (a
// Concourse behind a proxy, or one whose API address differs from its web one).
func WithExternalURL(u string) Option { return func(c *config) { c.externalURL = u } }

// WithTLS serves HTTPS (httptest.NewTLSServer); see CACertPEM.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithClock makes now the server's clock (default time.Now): it dates the
// tokens it issues and decides when they have expired, and dates builds, so
// a test can let days pass without waiting for them.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithTokenTTL makes issued tokens last d instead of Concourse's 24 h; the
// token answer's expires_in says so (d in seconds, less one, as Dex rounds).
func WithTokenTTL(d time.Duration) Option { return func(c *config) { c.tokenTTL = d } }

// Server is a running fake. All methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, without a trailing slash.
	URL string
	// ExternalURL is what GET /api/v1/info says: URL unless WithExternalURL.
	ExternalURL string

	t      TB
	srv    *httptest.Server
	legacy bool
	now    func() time.Time
	ttl    time.Duration
	mux    *http.ServeMux
	closed chan struct{}

	mu             sync.Mutex
	users          map[string]*user
	teams          map[string]bool
	pipelines      map[string]*pipeline // by pipelineKey
	builds         map[int]*build
	versions       map[int]*version
	lastBuildID    int
	lastPipelineID int
	lastVersionID  int
	tokens         map[string]tokenInfo
	tokensIssued   int
	fault          Fault
	requests       []Request
	doneHook       func(Request) // tests only
}

type user struct {
	password string
	teams    map[string]bool
}

type pipeline struct {
	id        int
	team      string
	name      string
	vars      map[string]any // normalised; nil: not instanced
	varsKey   string         // canonical JSON of vars; "" if not instanced
	jobs      map[string]bool
	resources map[string]*resource
}

type resource struct {
	name     string
	versions []*version // ascending id (check order)
	byRef    map[string]*version
}

type version struct {
	id  int
	ref string
}

type build struct {
	id        int
	team      string
	pipe      *pipeline // nil for one-off builds outside any pipeline
	job       string
	name      string
	status    string
	inputs    []Version
	outputs   []Version
	putSteps  map[string]string // resource → put step name, when they differ
	startTime int64
	endTime   int64
}

// Build describes a build to add with AddBuild.
type Build struct {
	ID       int            // 0: assigned
	Team     string         // "": "main"
	Pipeline string         // "" for one-off builds
	Vars     map[string]any // pipeline instance vars; nil (or empty): not instanced
	Job      string         // "" for one-off builds
	Name     string         // job build name: "12", "12.1" ("": next number); for one-off builds the name is always the id
	Status   string         // pending, started, succeeded, failed, errored, aborted ("": pending)
	Inputs   []Version
	Outputs  []Version
	// PutSteps names the put step of a resource when it differs from the
	// resource's name (put: claim-env, resource: env is {"env": "claim-env"}).
	PutSteps map[string]string
	// StartTime and EndTime override the build's times. Zero: a build added
	// as started or finished started 30 days ago (before any claim a test
	// writes), and a finished one ended now; pending builds have none.
	StartTime, EndTime time.Time
}

// Version is a version {"ref": Ref} of a resource in the build's own pipeline.
type Version struct{ Resource, Ref string }

// Fault makes every /api/ and /sky/ request (or only those for Path) misbehave
// until SetFault(Fault{}).
type Fault struct {
	Path   string        // "": every /api/ and /sky/ request; else only this path, e.g. "/sky/issuer/token"
	Status int           // 0: none; otherwise answer Status with Body instead of the real answer
	Body   string        //
	Delay  time.Duration // wait this long first; a client that gives up ends the wait
}

// Request is one request the fake received.
type Request struct {
	Method   string
	Path     string
	RawQuery string // as sent, except that values of password/token-like parameters are replaced
	User     string // the authenticated user ("" if none); for a token request, the user who got a token
	Status   int    // the status answered; 0 while running or when the client gave up first
}

var validStatus = map[string]bool{
	"pending": true, "started": true, "succeeded": true, "failed": true, "errored": true, "aborted": true,
}

func finished(status string) bool { return status != "pending" && status != "started" }

// New starts the fake on 127.0.0.1; it is closed at t.Cleanup.
func New(t TB, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	if cfg.tokenTTL <= 0 {
		cfg.tokenTTL = defaultTokenTTL
	}
	s := &Server{
		t:         t,
		legacy:    cfg.legacyAuth,
		now:       cfg.now,
		ttl:       cfg.tokenTTL,
		closed:    make(chan struct{}),
		users:     map[string]*user{},
		teams:     map[string]bool{},
		pipelines: map[string]*pipeline{},
		builds:    map[int]*build{},
		versions:  map[int]*version{},
		tokens:    map[string]tokenInfo{},
	}
	s.routes()
	if cfg.tls {
		s.srv = httptest.NewTLSServer(s)
	} else {
		s.srv = httptest.NewServer(s)
	}
	s.URL = strings.TrimSuffix(s.srv.URL, "/")
	s.ExternalURL = s.URL
	if cfg.externalURL != "" {
		s.ExternalURL = cfg.externalURL
	}
	t.Cleanup(func() {
		close(s.closed)
		s.srv.Close()
	})
	return s
}

// CACertPEM returns the PEM of the server's certificate (WithTLS only; nil otherwise).
func (s *Server) CACertPEM() []byte {
	if s.srv.TLS == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
}

// AddUser adds a local user, or changes its password, and makes it an owner
// of teams (in addition to those it had). An owner of "main" is an admin.
func (s *Server) AddUser(name, password string, teams ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[name]
	if u == nil {
		u = &user{teams: map[string]bool{}}
		s.users[name] = u
	}
	u.password = password
	for _, t := range teams {
		u.teams[t] = true
		s.teams[t] = true
	}
}

// Token mints a valid access token for user directly, as `fly login` would
// have stored it. It is not counted by TokensIssued.
func (s *Server) Token(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, _ := s.mintLocked(user)
	return tok
}

// TokensIssued counts the tokens issued by the token endpoints.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensIssued
}

// SetFault applies f to every /api/ and /sky/ request (or those for f.Path)
// until SetFault(Fault{}).
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Requests returns the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// AddBuild adds a build, creating its team, pipeline, job and resources
// implicitly, and returns its id. Every (pipeline, resource, ref) of its
// Inputs and Outputs gets a version with a stable id. Builds added as
// started get a start_time; finished ones also an end_time (see Build).
func (s *Server) AddBuild(b Build) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	status := b.Status
	if status == "" {
		status = "pending"
	}
	if !validStatus[status] {
		s.t.Errorf("fakeconcourse: AddBuild: invalid status %q", b.Status)
		return 0
	}
	if b.Pipeline == "" && (b.Job != "" || len(b.Vars) > 0) {
		s.t.Errorf("fakeconcourse: AddBuild: job or vars without a pipeline: %+v", b)
		return 0
	}
	team := b.Team
	if team == "" {
		team = "main"
	}
	id := b.ID
	if id == 0 {
		id = s.lastBuildID + 1
	}
	if id < 0 || s.builds[id] != nil {
		s.t.Errorf("fakeconcourse: AddBuild: build id %d is taken or invalid", id)
		return 0
	}
	var p *pipeline
	if b.Pipeline != "" {
		vars, key, err := normaliseVars(b.Vars)
		if err != nil {
			s.t.Errorf("fakeconcourse: AddBuild: vars: %v", err)
			return 0
		}
		p = s.ensurePipelineLocked(team, b.Pipeline, vars, key)
	}
	name := strconv.Itoa(id)
	if b.Job != "" {
		name = b.Name
		if name == "" {
			name = strconv.Itoa(s.nextJobBuildNumberLocked(p, b.Job))
		}
		if s.jobBuildLocked(p, b.Job, name) != nil {
			s.t.Errorf("fakeconcourse: AddBuild: %s/%s/%s has a build %q already", team, b.Pipeline, b.Job, name)
			return 0
		}
		p.jobs[b.Job] = true
	}
	s.teams[team] = true
	if id > s.lastBuildID {
		s.lastBuildID = id
	}
	nb := &build{
		id: id, team: team, pipe: p, job: b.Job, name: name,
		inputs:   append([]Version(nil), b.Inputs...),
		outputs:  append([]Version(nil), b.Outputs...),
		putSteps: maps.Clone(b.PutSteps),
	}
	if p != nil {
		// Inputs existed before the build; its outputs are newer.
		for _, v := range append(append([]Version(nil), b.Inputs...), b.Outputs...) {
			s.ensureVersionLocked(p, v)
		}
	}
	now := s.now().Unix()
	nb.status = status
	if status != "pending" {
		// It started before the claims tests back with it, however old they
		// made them; tests of the times give StartTime.
		nb.startTime = now - int64(defaultAge/time.Second)
	}
	if finished(status) {
		nb.endTime = now
	}
	if !b.StartTime.IsZero() {
		nb.startTime = b.StartTime.Unix()
	}
	if !b.EndTime.IsZero() {
		nb.endTime = b.EndTime.Unix()
	}
	s.builds[id] = nb
	return id
}

// SetStatus changes a build's status. Leaving pending sets start_time
// (except when aborted while pending); finishing sets end_time.
func (s *Server) SetStatus(id int, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.builds[id]
	if b == nil || !validStatus[status] {
		s.t.Errorf("fakeconcourse: SetStatus(%d, %q): no such build or invalid status", id, status)
		return
	}
	now := s.now().Unix()
	switch {
	case status == "pending":
		b.startTime, b.endTime = 0, 0
	case status == "started":
		if b.startTime == 0 {
			b.startTime = now
		}
		b.endTime = 0
	default:
		if b.startTime == 0 && !(status == "aborted" && b.status == "pending") {
			b.startTime = now
		}
		if b.endTime == 0 || !finished(b.status) {
			b.endTime = now
		}
	}
	b.status = status
}

// AddOutput records that a put step of the build produced version v, as the
// ATC does when the step finishes: the build's resources list it as an output
// from then on, and the resource has the version.
func (s *Server) AddOutput(id int, v Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.builds[id]
	if b == nil || b.pipe == nil {
		s.t.Errorf("fakeconcourse: AddOutput(%d): no such build, or a one-off build (no pipeline)", id)
		return
	}
	s.ensureVersionLocked(b.pipe, v)
	if !slices.Contains(b.outputs, v) {
		b.outputs = append(b.outputs, v)
	}
}

// DeletePipeline deletes a pipeline (vars nil: the non-instanced one) with
// its jobs, resources, versions and builds: all of them answer 404 after.
func (s *Server) DeletePipeline(team, name string, vars map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, key, err := normaliseVars(vars)
	if err != nil {
		s.t.Errorf("fakeconcourse: DeletePipeline: vars: %v", err)
		return
	}
	p := s.pipelines[pipelineKey(team, name, key)]
	if p == nil {
		s.t.Errorf("fakeconcourse: DeletePipeline: no pipeline %s/%s %s", team, name, key)
		return
	}
	delete(s.pipelines, pipelineKey(team, name, key))
	for id, b := range s.builds {
		if b.pipe == p {
			delete(s.builds, id)
		}
	}
	for _, r := range p.resources {
		for _, v := range r.versions {
			delete(s.versions, v.id)
		}
	}
}

func pipelineKey(team, name, varsKey string) string {
	return team + "\x00" + name + "\x00" + varsKey
}

func (s *Server) ensurePipelineLocked(team, name string, vars map[string]any, key string) *pipeline {
	k := pipelineKey(team, name, key)
	if p := s.pipelines[k]; p != nil {
		return p
	}
	s.lastPipelineID++
	p := &pipeline{
		id: s.lastPipelineID, team: team, name: name, vars: vars, varsKey: key,
		jobs: map[string]bool{}, resources: map[string]*resource{},
	}
	s.pipelines[k] = p
	return p
}

func (s *Server) ensureVersionLocked(p *pipeline, v Version) *version {
	r := p.resources[v.Resource]
	if r == nil {
		r = &resource{name: v.Resource, byRef: map[string]*version{}}
		p.resources[v.Resource] = r
	}
	if ver := r.byRef[v.Ref]; ver != nil {
		return ver
	}
	s.lastVersionID++
	ver := &version{id: s.lastVersionID, ref: v.Ref}
	r.versions = append(r.versions, ver)
	r.byRef[v.Ref] = ver
	s.versions[ver.id] = ver
	return ver
}

func (s *Server) jobBuildLocked(p *pipeline, job, name string) *build {
	for _, b := range s.builds {
		if b.pipe == p && b.job == job && b.name == name {
			return b
		}
	}
	return nil
}

func (s *Server) nextJobBuildNumberLocked(p *pipeline, job string) int {
	n := 0
	for _, b := range s.builds {
		if b.pipe == p && b.job == job {
			head, _, _ := strings.Cut(b.name, ".")
			if i, err := strconv.Atoi(head); err == nil && i > n {
				n = i
			}
		}
	}
	return n + 1
}

// normaliseVars returns vars as they come back from JSON (numbers as
// float64, ...) and their canonical JSON (sorted keys), or nil and "" when
// the pipeline is not instanced.
func normaliseVars(vars map[string]any) (map[string]any, string, error) {
	if len(vars) == 0 {
		return nil, "", nil
	}
	raw, err := json.Marshal(vars)
	if err != nil {
		return nil, "", err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, "", err
	}
	key, err := json.Marshal(out)
	if err != nil {
		return nil, "", err
	}
	return out, string(key), nil
}

// ---- HTTP plumbing ----

type ctxKey struct{}

// reqState is shared between ServeHTTP and the handlers of one request.
type reqState struct {
	user string // authenticated user, or the user a token was issued to
}

func state(r *http.Request) *reqState {
	st, _ := r.Context().Value(ctxKey{}).(*reqState)
	if st == nil {
		st = &reqState{}
	}
	return st
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

var secretParams = []string{"password", "access_token", "id_token", "refresh_token", "client_secret", "token"}

// redactQuery hides the values of password- and token-like parameters; any
// other query is kept exactly as sent.
func redactQuery(raw string) string {
	if raw == "" {
		return raw
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "REDACTED"
	}
	hit := false
	for _, k := range secretParams {
		for qk := range q {
			if strings.EqualFold(qk, k) {
				q[qk] = []string{"REDACTED"}
				hit = true
			}
		}
	}
	if !hit {
		return raw
	}
	return q.Encode()
}

// ServeHTTP records the request, applies the fault, and routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &reqState{user: s.bearerUser(r)}
	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.Path, RawQuery: redactQuery(r.URL.RawQuery), User: st.user,
	})
	fault := s.fault
	s.mu.Unlock()

	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		s.mu.Lock()
		s.requests[idx].Status = sw.status
		s.requests[idx].User = st.user
		rec, hook := s.requests[idx], s.doneHook
		s.mu.Unlock()
		if hook != nil {
			hook(rec)
		}
	}()

	if (strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/sky/")) &&
		(fault.Path == "" || fault.Path == r.URL.Path) {
		if fault.Delay > 0 {
			timer := time.NewTimer(fault.Delay)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				timer.Stop()
				return
			case <-s.closed:
				timer.Stop()
				return
			}
		}
		if fault.Status != 0 {
			if fault.Body != "" {
				if fault.Status >= 200 && fault.Status < 300 {
					sw.Header().Set("Content-Type", "application/json")
				} else {
					sw.Header().Set("Content-Type", "text/plain; charset=utf-8")
				}
			}
			sw.WriteHeader(fault.Status)
			_, _ = sw.Write([]byte(fault.Body))
			return
		}
	}
	s.mux.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("/sky/issuer/token", s.handleIssuerToken)
	if s.legacy {
		m.HandleFunc("/sky/token", s.handleLegacyToken)
	}
	m.HandleFunc("GET /api/v1/builds/{build_id}", s.handleBuild)
	m.HandleFunc("GET /api/v1/builds/{build_id}/resources", s.handleBuildResources)
	m.HandleFunc("GET /api/v1/builds/{build_id}/plan", s.handleBuildPlan)
	m.HandleFunc("GET /api/v1/info", s.handleInfo)
	m.HandleFunc("GET /api/v1/teams/{team}/pipelines/{pipeline}/jobs/{job}/builds/{build_name}", s.handleJobBuild)
	m.HandleFunc("GET /api/v1/teams/{team}/pipelines/{pipeline}/resources/{resource}/versions", s.handleVersions)
	m.HandleFunc("GET /api/v1/teams/{team}/pipelines/{pipeline}/resources/{resource}/versions/{version_id}/input_to", s.handleInputTo)
	s.mux = m
}

// answer is a response computed under the lock and written after it.
type answer struct {
	status int
	body   []byte
	ctype  string
}

func (a answer) write(w http.ResponseWriter) {
	if a.ctype != "" {
		w.Header().Set("Content-Type", a.ctype)
	}
	w.WriteHeader(a.status)
	if len(a.body) > 0 {
		_, _ = w.Write(a.body)
	}
}

// Codes and bodies as the ATC writes them.
var (
	notFound     = answer{status: http.StatusNotFound}
	badRequest   = answer{status: http.StatusBadRequest}
	unauthorized = answer{status: http.StatusUnauthorized, body: []byte("not authorized"), ctype: "text/plain; charset=utf-8"}
	forbidden    = answer{status: http.StatusForbidden, body: []byte("forbidden"), ctype: "text/plain; charset=utf-8"}
)

func jsonAnswer(v any) answer {
	raw, err := json.Marshal(v)
	if err != nil {
		return answer{status: http.StatusInternalServerError}
	}
	return answer{status: http.StatusOK, body: append(raw, '\n'), ctype: "application/json"}
}

// authorizedLocked reports whether user may read team: a member, or an
// owner of "main" (an admin).
func (s *Server) authorizedLocked(userName, team string) bool {
	u := s.users[userName]
	if userName == "" || u == nil {
		return false
	}
	return u.teams[team] || u.teams["main"]
}

// accessLocked is the ATC's read-access check once the object is known to exist.
func (s *Server) accessLocked(userName, team string) (answer, bool) {
	if s.authorizedLocked(userName, team) {
		return answer{}, true
	}
	if userName != "" {
		return forbidden, false
	}
	return unauthorized, false
}

// pipelineLocked finds the pipeline of a pipeline-scoped request and checks
// access: 400 for bad vars, 404 for an unknown team or pipeline, then 401/403.
func (s *Server) pipelineLocked(r *http.Request) (*pipeline, answer, bool) {
	vars, err := instanceVarsFromQuery(r.URL.Query())
	if err != nil {
		return nil, badRequest, false
	}
	_, key, err := normaliseVars(vars)
	if err != nil {
		return nil, badRequest, false
	}
	team := r.PathValue("team")
	if !s.teams[team] {
		return nil, notFound, false
	}
	p := s.pipelines[pipelineKey(team, r.PathValue("pipeline"), key)]
	if p == nil {
		return nil, notFound, false
	}
	if a, ok := s.accessLocked(state(r).user, team); !ok {
		return nil, a, false
	}
	return p, answer{}, true
}

// buildByIDLocked: 400 for a non-numeric id, 404 for an unknown build, then 401/403.
func (s *Server) buildByIDLocked(r *http.Request) (*build, answer, bool) {
	id, err := strconv.Atoi(r.PathValue("build_id"))
	if err != nil {
		return nil, badRequest, false
	}
	b := s.builds[id]
	if b == nil {
		return nil, notFound, false
	}
	if a, ok := s.accessLocked(state(r).user, b.team); !ok {
		return nil, a, false
	}
	return b, answer{}, true
}

func (s *Server) handleBuild(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, a, ok := s.buildByIDLocked(r)
	if ok {
		a = jsonAnswer(s.presentLocked(b))
	}
	s.mu.Unlock()
	a.write(w)
}

func (s *Server) handleJobBuild(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, a, ok := s.pipelineLocked(r)
	if ok {
		job := r.PathValue("job")
		if !p.jobs[job] {
			a = notFound
		} else if b := s.jobBuildLocked(p, job, r.PathValue("build_name")); b == nil {
			a = notFound
		} else {
			a = jsonAnswer(s.presentLocked(b))
		}
	}
	s.mu.Unlock()
	a.write(w)
}

type buildInput struct {
	Name            string            `json:"name"`
	Version         map[string]string `json:"version"`
	PipelineID      int               `json:"pipeline_id"`
	FirstOccurrence bool              `json:"first_occurrence"`
}

type buildOutput struct {
	Name    string            `json:"name"`
	Version map[string]string `json:"version"`
}

func (s *Server) handleBuildResources(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, a, ok := s.buildByIDLocked(r)
	if ok {
		pipelineID := 0
		if b.pipe != nil {
			pipelineID = b.pipe.id
		}
		out := struct {
			Inputs  []buildInput  `json:"inputs"`
			Outputs []buildOutput `json:"outputs"`
		}{Inputs: []buildInput{}, Outputs: []buildOutput{}}
		for _, in := range b.inputs {
			out.Inputs = append(out.Inputs, buildInput{
				Name: in.Resource, Version: map[string]string{"ref": in.Ref},
				PipelineID: pipelineID, FirstOccurrence: s.firstOccurrenceLocked(b, in),
			})
		}
		for _, o := range b.outputs {
			out.Outputs = append(out.Outputs, buildOutput{Name: b.stepOf(o.Resource), Version: map[string]string{"ref": o.Ref}})
		}
		a = jsonAnswer(out)
	}
	s.mu.Unlock()
	a.write(w)
}

// stepOf is the name of the put step that writes to resource.
func (b *build) stepOf(resource string) string {
	if step := b.putSteps[resource]; step != "" {
		return step
	}
	return resource
}

// handleBuildPlan answers the build's plan as the ATC does (schema exec.v2):
// a do of its steps, each put inside an in_parallel as the on_success step
// whose next is the implicit get, so put steps are nested as in real plans.
func (s *Server) handleBuildPlan(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	b, a, ok := s.buildByIDLocked(r)
	if ok {
		resources := map[string]bool{}
		for _, o := range b.outputs {
			resources[o.Resource] = true
		}
		for res := range b.putSteps {
			resources[res] = true
		}
		n := 0
		id := func() string { n++; return fmt.Sprintf("%x", 0x6a000000+n) }
		steps := []any{map[string]any{"id": id(), "task": map[string]any{"name": "work", "privileged": false}}}
		for _, res := range slices.Sorted(maps.Keys(resources)) {
			step := b.stepOf(res)
			steps = append(steps, map[string]any{"id": id(), "in_parallel": map[string]any{"steps": []any{
				map[string]any{"id": id(), "on_success": map[string]any{
					"step": map[string]any{"id": id(), "put": map[string]any{"name": step, "type": "pool", "resource": res}},
					"next": map[string]any{"id": id(), "get": map[string]any{"name": step, "type": "pool", "resource": res}},
				}},
			}}})
		}
		a = jsonAnswer(map[string]any{"schema": "exec.v2", "plan": map[string]any{"id": id(), "do": steps}})
	}
	s.mu.Unlock()
	a.write(w)
}

// handleInfo is public, as on real servers.
func (s *Server) handleInfo(w http.ResponseWriter, _ *http.Request) {
	jsonAnswer(map[string]any{
		"version": "8.2.5", "worker_version": "2.5", "external_url": s.ExternalURL,
		"cluster_name": "", "feature_flags": map[string]bool{},
	}).write(w)
}

// firstOccurrenceLocked: no earlier build of the same job had this input version.
func (s *Server) firstOccurrenceLocked(b *build, in Version) bool {
	if b.job == "" {
		return true
	}
	for _, o := range s.builds {
		if o.id < b.id && o.pipe == b.pipe && o.job == b.job {
			for _, oi := range o.inputs {
				if oi == in {
					return false
				}
			}
		}
	}
	return true
}

type resourceVersion struct {
	ID      int               `json:"id"`
	Version map[string]string `json:"version"`
	Enabled bool              `json:"enabled"`
}

// handleVersions lists a resource's versions, newest first. filter=KEY:VALUE
// (repeatable) keeps versions containing all those fields; limit (default
// 100) caps the answer. Pagination links are not produced.
func (s *Server) handleVersions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, a, ok := s.pipelineLocked(r)
	if ok {
		res := p.resources[r.PathValue("resource")]
		if res == nil {
			a = notFound
		} else {
			filter := map[string]string{}
			for _, f := range r.URL.Query()["filter"] {
				if k, v, found := strings.Cut(f, ":"); found {
					filter[k] = v
				}
			}
			limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
			if limit <= 0 {
				limit = 100
			}
			out := []resourceVersion{}
			for i := len(res.versions) - 1; i >= 0 && len(out) < limit; i-- {
				v := res.versions[i]
				fields := map[string]string{"ref": v.ref}
				match := true
				for k, want := range filter {
					if got, has := fields[k]; !has || got != want {
						match = false
					}
				}
				if match {
					out = append(out, resourceVersion{ID: v.id, Version: fields, Enabled: true})
				}
			}
			a = jsonAnswer(out)
		}
	}
	s.mu.Unlock()
	a.write(w)
}

// handleInputTo lists the builds of the pipeline that took the version as an
// input of the resource (as the ATC does, by matching the version's content,
// not its id). Builds that only output it are not listed.
func (s *Server) handleInputTo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, a, ok := s.pipelineLocked(r)
	if ok {
		resName := r.PathValue("resource")
		if p.resources[resName] == nil {
			a = notFound
		} else {
			out := []buildJSON{}
			vid, _ := strconv.Atoi(r.PathValue("version_id"))
			if v := s.versions[vid]; v != nil {
				var ids []int
				for _, b := range s.builds {
					if b.pipe != p {
						continue
					}
					for _, in := range b.inputs {
						if in.Resource == resName && in.Ref == v.ref {
							ids = append(ids, b.id)
							break
						}
					}
				}
				sort.Ints(ids)
				for _, id := range ids {
					out = append(out, s.presentLocked(s.builds[id]))
				}
			}
			a = jsonAnswer(out)
		}
	}
	s.mu.Unlock()
	a.write(w)
}

type rerunOf struct {
	ID   int    `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

type buildJSON struct {
	ID                   int            `json:"id"`
	TeamName             string         `json:"team_name"`
	Name                 string         `json:"name"`
	Status               string         `json:"status"`
	APIURL               string         `json:"api_url"`
	JobName              string         `json:"job_name,omitempty"`
	PipelineID           int            `json:"pipeline_id,omitempty"`
	PipelineName         string         `json:"pipeline_name,omitempty"`
	PipelineInstanceVars map[string]any `json:"pipeline_instance_vars,omitempty"`
	StartTime            int64          `json:"start_time,omitempty"`
	EndTime              int64          `json:"end_time,omitempty"`
	RerunNumber          int            `json:"rerun_number,omitempty"`
	RerunOf              *rerunOf       `json:"rerun_of,omitempty"`
}

func (s *Server) presentLocked(b *build) buildJSON {
	out := buildJSON{
		ID: b.id, TeamName: b.team, Name: b.name, Status: b.status,
		APIURL:    fmt.Sprintf("/api/v1/builds/%d", b.id),
		JobName:   b.job,
		StartTime: b.startTime, EndTime: b.endTime,
	}
	if b.pipe != nil {
		out.PipelineID = b.pipe.id
		out.PipelineName = b.pipe.name
		out.PipelineInstanceVars = b.pipe.vars
	}
	if b.job != "" {
		if head, tail, ok := strings.Cut(b.name, "."); ok {
			if n, err := strconv.Atoi(tail); err == nil {
				out.RerunNumber = n
				if orig := s.jobBuildLocked(b.pipe, b.job, head); orig != nil {
					out.RerunOf = &rerunOf{ID: orig.id, Name: orig.name}
				}
			}
		}
	}
	return out
}
