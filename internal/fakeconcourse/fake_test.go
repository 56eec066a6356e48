package fakeconcourse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	alicePW = "alice-pw-Q7x"
	bobPW   = "bob-pw-K2m"
	carolPW = "carol-pw-Z9v"
)

// newFake has alice (main: an admin), bob (team other) and carol (team secret).
func newFake(t *testing.T, opts ...Option) *Server {
	t.Helper()
	s := New(t, opts...)
	s.AddUser("alice", alicePW, "main")
	s.AddUser("bob", bobPW, "other")
	s.AddUser("carol", carolPW, "secret")
	return s
}

type resp struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, c *http.Client, req *http.Request) resp {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp{res.StatusCode, string(b), res.Header}
}

// get GETs path (with its query) with an Authorization header if auth != "".
func get(t *testing.T, s *Server, path, auth string) resp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return do(t, nil, req)
}

func bearer(tok string) string { return "Bearer " + tok }

// tokenRequest posts a fly password grant to path.
func tokenRequest(t *testing.T, s *Server, path, user, pw string, basic bool, scope string) resp {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pw}, "scope": {scope}}
	if !basic {
		form.Set("client_id", "fly")
		form.Set("client_secret", "Zmx5")
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth("fly", "Zmx5")
	}
	return do(t, nil, req)
}

const flyScope = "openid profile email federated:id groups"

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	return v
}

func wantStatus(t *testing.T, what string, r resp, status int) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d, want %d (body %q)", what, r.status, status, r.body)
	}
}

func TestTokenIssuer(t *testing.T) {
	s := newFake(t)
	id := s.AddBuild(Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "1", Status: "started"})

	r := tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope)
	wantStatus(t, "token", r, 200)
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	tok := decode[map[string]any](t, r.body)
	access, _ := tok["access_token"].(string)
	idToken, _ := tok["id_token"].(string)
	if access == "" || strings.Count(access, ".") != 0 {
		t.Errorf("access_token %q: want opaque", access)
	}
	if strings.Count(idToken, ".") != 2 {
		t.Errorf("id_token %q: want a JWT", idToken)
	}
	if tok["token_type"] != "bearer" || tok["expires_in"] != float64(86399) {
		t.Errorf("token answer %v", tok)
	}
	if n := s.TokensIssued(); n != 1 {
		t.Errorf("TokensIssued = %d", n)
	}
	wantStatus(t, "build with access_token", get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(access)), 200)
	wantStatus(t, "build with id_token", get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(idToken)), 401)

	// Client credentials in the form work too (as with Dex).
	wantStatus(t, "form client", tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, false, flyScope), 200)
	if n := s.TokensIssued(); n != 2 {
		t.Errorf("TokensIssued = %d", n)
	}
	// A modern server has no /sky/token.
	wantStatus(t, "legacy endpoint", tokenRequest(t, s, "/sky/token", "alice", alicePW, true, flyScope), 404)
}

func TestTokenLegacy(t *testing.T) {
	s := newFake(t, WithLegacyAuth())
	id := s.AddBuild(Build{Team: "main", Status: "succeeded"})

	wantStatus(t, "issuer", tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope), 404)
	r := tokenRequest(t, s, "/sky/token", "alice", alicePW, true, flyScope)
	wantStatus(t, "legacy token", r, 200)
	tok := decode[map[string]any](t, r.body)
	access, _ := tok["access_token"].(string)
	if access == "" || tok["token_type"] != "Bearer" {
		t.Errorf("token answer %v", tok)
	}
	if exp, err := time.Parse(time.RFC3339, fmt.Sprint(tok["expiry"])); err != nil || time.Until(exp) < 23*time.Hour {
		t.Errorf("expiry %v (%v)", tok["expiry"], err)
	}
	if _, has := tok["expires_in"]; has {
		t.Errorf("legacy answer has expires_in: %v", tok)
	}
	if n := s.TokensIssued(); n != 1 {
		t.Errorf("TokensIssued = %d", n)
	}
	wantStatus(t, "build", get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(access)), 200)

	// Errors: skymarshal's own checks are empty; Dex's are passed through.
	r = tokenRequest(t, s, "/sky/token", "alice", alicePW, false, flyScope)
	wantStatus(t, "legacy without basic auth", r, 401)
	if r.body != "" {
		t.Errorf("body %q", r.body)
	}
	r = tokenRequest(t, s, "/sky/token", "alice", "wrong", true, flyScope)
	wantStatus(t, "legacy wrong password", r, 401)
	if e := decode[map[string]string](t, r.body); e["error"] != "access_denied" {
		t.Errorf("body %q", r.body)
	}
	if n := s.TokensIssued(); n != 1 {
		t.Errorf("TokensIssued = %d", n)
	}
}

func TestTokenErrors(t *testing.T) {
	s := newFake(t)
	post := func(form url.Values, user, pass string) resp {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/sky/issuer/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		return do(t, nil, req)
	}
	good := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePW}, "scope": {flyScope}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for kk, vv := range good {
			f[kk] = vv
		}
		f.Set(k, v)
		return f
	}
	cases := []struct {
		name       string
		r          resp
		status     int
		errorField string
	}{
		{"no client auth", post(good, "", ""), 401, "invalid_client"},
		{"wrong client secret", post(good, "fly", "nope"), 401, "invalid_client"},
		{"wrong password", post(with("password", "nope"), "fly", "Zmx5"), 401, "access_denied"},
		{"unknown user", post(with("username", "mallory"), "fly", "Zmx5"), 401, "access_denied"},
		{"no openid scope", post(with("scope", "profile email"), "fly", "Zmx5"), 400, "invalid_request"},
		{"other grant", post(with("grant_type", "client_credentials"), "fly", "Zmx5"), 400, "unsupported_grant_type"},
	}
	for _, c := range cases {
		wantStatus(t, c.name, c.r, c.status)
		if e := decode[map[string]string](t, c.r.body); e["error"] != c.errorField {
			t.Errorf("%s: body %q, want error %q", c.name, c.r.body, c.errorField)
		}
	}
	wantStatus(t, "GET", get(t, s, "/sky/issuer/token", ""), 400)
	if n := s.TokensIssued(); n != 0 {
		t.Errorf("TokensIssued = %d", n)
	}
}

func TestBearerScheme(t *testing.T) {
	s := newFake(t)
	id := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "j", Status: "started"})
	tok := s.Token("alice")
	path := fmt.Sprintf("/api/v1/builds/%d", id)
	for _, h := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "bEaReR " + tok} {
		wantStatus(t, h[:6], get(t, s, path, h), 200)
	}
	for _, h := range []string{"Token " + tok, "Bearer  " + tok, "Bearer " + tok + " x", "Bearer", "Bearer nonsense", tok} {
		wantStatus(t, fmt.Sprintf("%.9q", h), get(t, s, path, h), 401)
	}
}

func TestAccessCodes(t *testing.T) {
	s := newFake(t)
	id := s.AddBuild(Build{Team: "secret", Pipeline: "p", Job: "j", Name: "7", Status: "started"})
	alice, bob, carol := bearer(s.Token("alice")), bearer(s.Token("bob")), bearer(s.Token("carol"))
	byID := fmt.Sprintf("/api/v1/builds/%d", id)
	byPath := "/api/v1/teams/secret/pipelines/p/jobs/j/builds/7"

	for _, path := range []string{byID, byPath, byID + "/resources"} {
		r := get(t, s, path, "")
		wantStatus(t, path+" no token", r, 401)
		if r.body != "not authorized" {
			t.Errorf("401 body %q", r.body)
		}
		wantStatus(t, path+" bad token", get(t, s, path, "Bearer bad"), 401)
		r = get(t, s, path, bob)
		wantStatus(t, path+" non-member", r, 403)
		if r.body != "forbidden" {
			t.Errorf("403 body %q", r.body)
		}
		wantStatus(t, path+" member", get(t, s, path, carol), 200)
		wantStatus(t, path+" admin (owner of main)", get(t, s, path, alice), 200)
	}

	// Existence is checked before access (team, pipeline, build id) ...
	for _, path := range []string{
		"/api/v1/builds/999",
		"/api/v1/builds/999/resources",
		"/api/v1/teams/nope/pipelines/p/jobs/j/builds/7",
		"/api/v1/teams/secret/pipelines/nope/jobs/j/builds/7",
		"/api/v1/teams/secret/pipelines/nope/resources/r/versions",
	} {
		for _, auth := range []string{"", carol} {
			r := get(t, s, path, auth)
			wantStatus(t, path, r, 404)
			if r.body != "" {
				t.Errorf("%s: 404 body %q, want empty", path, r.body)
			}
		}
	}
	// ... jobs, job builds and resources after it.
	for _, path := range []string{
		"/api/v1/teams/secret/pipelines/p/jobs/nope/builds/7",
		"/api/v1/teams/secret/pipelines/p/jobs/j/builds/8",
		"/api/v1/teams/secret/pipelines/p/resources/nope/versions",
		"/api/v1/teams/secret/pipelines/p/resources/nope/versions/1/input_to",
	} {
		wantStatus(t, path+" no token", get(t, s, path, ""), 401)
		r := get(t, s, path, carol)
		wantStatus(t, path, r, 404)
		if r.body != "" {
			t.Errorf("%s: 404 body %q, want empty", path, r.body)
		}
	}
	wantStatus(t, "non-numeric build id", get(t, s, "/api/v1/builds/abc", carol), 400)
	wantStatus(t, "unknown path", get(t, s, "/api/v1/nothing", carol), 404)
	wantStatus(t, "root", get(t, s, "/", ""), 404)
	req, _ := http.NewRequest(http.MethodPost, s.URL+byID, nil)
	req.Header.Set("Authorization", carol)
	wantStatus(t, "POST", do(t, nil, req), 405)

	// Team membership added later applies to existing tokens.
	s.AddUser("bob", bobPW, "secret")
	wantStatus(t, "bob after joining", get(t, s, byID, bob), 200)
	// A token for an unknown user authenticates but authorises nothing.
	wantStatus(t, "stranger", get(t, s, byID, bearer(s.Token("stranger"))), 403)
}

func TestInstancedVars(t *testing.T) {
	s := newFake(t)
	tok := bearer(s.Token("alice"))
	vars := map[string]any{"env": "stage/eu", "n": 2}
	id := s.AddBuild(Build{Team: "main", Pipeline: "locks", Vars: vars, Job: "hold", Name: "3.1", Status: "started"})
	orig := s.AddBuild(Build{Team: "main", Pipeline: "locks", Vars: vars, Job: "hold", Name: "3", Status: "failed"})
	plain := s.AddBuild(Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "3.1", Status: "succeeded"})
	base := "/api/v1/teams/main/pipelines/locks/jobs/hold/builds/3.1"

	for _, q := range []string{
		"vars.env=%22stage%2Feu%22&vars.n=2",
		"vars.n=2&vars.env=%22stage%2Feu%22",
		"vars.n=2.0&vars.env=%22stage%2Feu%22",
		"vars=" + url.QueryEscape(`{"env":"stage/eu","n":2}`),
		"vars=" + url.QueryEscape(`{"env":"x"}`) + "&vars.env=%22stage%2Feu%22&vars.n=2", // patch after the object
	} {
		r := get(t, s, base+"?"+q, tok)
		wantStatus(t, q, r, 200)
		if r.status != 200 {
			continue
		}
		b := decode[map[string]any](t, r.body)
		if b["id"] != float64(id) || b["rerun_number"] != float64(1) {
			t.Errorf("%s: build %v", q, b)
		}
		if ro, _ := b["rerun_of"].(map[string]any); ro["id"] != float64(orig) || ro["name"] != "3" {
			t.Errorf("rerun_of %v", b["rerun_of"])
		}
		if iv, _ := b["pipeline_instance_vars"].(map[string]any); iv["env"] != "stage/eu" || iv["n"] != float64(2) {
			t.Errorf("pipeline_instance_vars %v", b["pipeline_instance_vars"])
		}
	}
	for q, want := range map[string]int{
		"vars.env=stage&vars.n=2":                     400, // unquoted string: invalid JSON
		"vars=" + url.QueryEscape(`{"env":`):          400,
		"vars=5":                                      400,
		"vars.=1":                                     400,
		"vars.env=%22stage%2Feu%22":                   404, // partial
		"vars.env=%22stage%2Feu%22&vars.n=3":          404, // wrong value
		"vars.env=%22stage%2Feu%22&vars.n=%222%22":    404, // wrong type
		"vars.env=%22stage%2Feu%22&vars.n=2&vars.x=1": 404, // extra
	} {
		wantStatus(t, q, get(t, s, base+"?"+q, tok), want)
	}
	// No vars: the non-instanced pipeline of the same name.
	r := get(t, s, base, tok)
	wantStatus(t, "no vars", r, 200)
	if b := decode[map[string]any](t, r.body); b["id"] != float64(plain) {
		t.Errorf("no vars: got %v", b)
	} else if _, has := b["pipeline_instance_vars"]; has {
		t.Errorf("non-instanced build has pipeline_instance_vars: %v", b)
	}
	// Without a non-instanced pipeline, missing vars are 404; a non-instanced pipeline with vars is 404.
	s.AddBuild(Build{Team: "main", Pipeline: "only-instanced", Vars: vars, Job: "j", Name: "1"})
	wantStatus(t, "missing vars", get(t, s, "/api/v1/teams/main/pipelines/only-instanced/jobs/j/builds/1", tok), 404)
	s.AddBuild(Build{Team: "main", Pipeline: "flat", Job: "j", Name: "1"})
	wantStatus(t, "vars on flat", get(t, s, "/api/v1/teams/main/pipelines/flat/jobs/j/builds/1?vars.env=%22x%22", tok), 404)

	// Nested and quoted keys.
	s.AddBuild(Build{Team: "main", Pipeline: "nested", Vars: map[string]any{"a": map[string]any{"b": 1}, "c.d": true}, Job: "j", Name: "1"})
	wantStatus(t, "nested", get(t, s, `/api/v1/teams/main/pipelines/nested/jobs/j/builds/1?vars.a.b=1&vars.%22c.d%22=true`, tok), 200)
}

func TestParseVarsRef(t *testing.T) {
	for in, want := range map[string]string{
		"vars":         "[]",
		"vars.a":       "[a]",
		"vars.a.b":     "[a b]",
		`vars."a.b".c`: "[a.b c]",
		`vars."a.b"`:   "[a.b]",
		"vars.a.":      "error",
		"vars..a":      "error",
		`vars."a`:      "error",
		`vars."a"b`:    "error",
	} {
		got, err := parseVarsRef(in)
		s := fmt.Sprint(got)
		if got == nil && err == nil {
			s = "[]"
		}
		if err != nil {
			s = "error"
		}
		if s != want {
			t.Errorf("parseVarsRef(%q) = %s, want %s", in, s, want)
		}
	}
}

func TestBuildJSON(t *testing.T) {
	s := newFake(t)
	tok := bearer(s.Token("alice"))

	oneOff := s.AddBuild(Build{Team: "main", Name: "ignored", Status: "started"})
	r := get(t, s, fmt.Sprintf("/api/v1/builds/%d", oneOff), tok)
	wantStatus(t, "one-off", r, 200)
	b := decode[map[string]any](t, r.body)
	if b["id"] != float64(oneOff) || b["name"] != fmt.Sprint(oneOff) || b["team_name"] != "main" ||
		b["status"] != "started" || b["api_url"] != fmt.Sprintf("/api/v1/builds/%d", oneOff) {
		t.Errorf("one-off build %v", b)
	}
	for _, k := range []string{"job_name", "pipeline_name", "pipeline_id", "pipeline_instance_vars", "end_time"} {
		if _, has := b[k]; has {
			t.Errorf("one-off build has %s: %v", k, b)
		}
	}
	if _, has := b["start_time"]; !has {
		t.Errorf("started build lacks start_time: %v", b)
	}

	id := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "j"})
	path := fmt.Sprintf("/api/v1/builds/%d", id)
	times := func() (bool, bool, map[string]any) {
		b := decode[map[string]any](t, get(t, s, path, tok).body)
		_, st := b["start_time"]
		_, et := b["end_time"]
		return st, et, b
	}
	if st, et, b := times(); st || et || b["status"] != "pending" || b["name"] != "1" || b["job_name"] != "j" || b["pipeline_name"] != "p" {
		t.Errorf("pending build %v", b)
	}
	s.SetStatus(id, "started")
	if st, et, b := times(); !st || et {
		t.Errorf("started build %v", b)
	}
	s.SetStatus(id, "succeeded")
	if st, et, b := times(); !st || !et || b["status"] != "succeeded" || b["end_time"].(float64) < b["start_time"].(float64) {
		t.Errorf("finished build %v", b)
	}
	// Aborted while pending: no start_time, an end_time.
	ab := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "j"})
	s.SetStatus(ab, "aborted")
	path = fmt.Sprintf("/api/v1/builds/%d", ab)
	if st, et, b := times(); st || !et || b["name"] != "2" {
		t.Errorf("aborted pending build %v", b)
	}
	// Job build names are assigned in sequence; explicit ids are kept.
	if got := s.AddBuild(Build{ID: 500, Team: "main", Pipeline: "p", Job: "j", Name: "9"}); got != 500 {
		t.Errorf("explicit id: %d", got)
	}
	if got := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "j"}); got != 501 {
		t.Errorf("next id after 500: %d", got)
	}
	r = get(t, s, "/api/v1/teams/main/pipelines/p/jobs/j/builds/10", tok)
	if b := decode[map[string]any](t, r.body); b["id"] != float64(501) {
		t.Errorf("build 10 = %v", b)
	}
}

func TestHandOff(t *testing.T) {
	s := newFake(t)
	tok := bearer(s.Token("alice"))
	const w, x = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	// A claims (input W, output X); B takes X through passed:; C too.
	a := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "claim", Status: "succeeded",
		Inputs: []Version{{"locks", w}}, Outputs: []Version{{"locks", x}}})
	b := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "hold", Status: "started", Inputs: []Version{{"locks", x}}})
	// The same ref in another pipeline is another version.
	other := s.AddBuild(Build{Team: "main", Pipeline: "q", Job: "hold", Status: "started", Inputs: []Version{{"locks", x}}})
	oneOff := s.AddBuild(Build{Team: "main"})

	r := get(t, s, fmt.Sprintf("/api/v1/builds/%d/resources", a), tok)
	wantStatus(t, "resources", r, 200)
	type io struct {
		Inputs []struct {
			Name            string            `json:"name"`
			Version         map[string]string `json:"version"`
			PipelineID      int               `json:"pipeline_id"`
			FirstOccurrence bool              `json:"first_occurrence"`
		} `json:"inputs"`
		Outputs []struct {
			Name    string            `json:"name"`
			Version map[string]string `json:"version"`
		} `json:"outputs"`
	}
	res := decode[io](t, r.body)
	if len(res.Inputs) != 1 || res.Inputs[0].Name != "locks" || res.Inputs[0].Version["ref"] != w || res.Inputs[0].PipelineID == 0 ||
		!res.Inputs[0].FirstOccurrence || len(res.Outputs) != 1 || res.Outputs[0].Version["ref"] != x {
		t.Errorf("resources of A: %s", r.body)
	}
	r = get(t, s, fmt.Sprintf("/api/v1/builds/%d/resources", oneOff), tok)
	if strings.TrimSpace(r.body) != `{"inputs":[],"outputs":[]}` {
		t.Errorf("empty resources: %s", r.body)
	}

	versions := "/api/v1/teams/main/pipelines/p/resources/locks/versions"
	type rv struct {
		ID      int               `json:"id"`
		Version map[string]string `json:"version"`
		Enabled bool              `json:"enabled"`
	}
	all := decode[[]rv](t, get(t, s, versions, tok).body)
	if len(all) != 2 || all[0].Version["ref"] != x || all[1].Version["ref"] != w || !all[0].Enabled || all[0].ID <= all[1].ID {
		t.Errorf("versions (newest first): %+v", all)
	}
	if one := decode[[]rv](t, get(t, s, versions+"?limit=1", tok).body); len(one) != 1 || one[0].Version["ref"] != x {
		t.Errorf("limit=1: %+v", one)
	}
	got := decode[[]rv](t, get(t, s, versions+"?filter=ref:"+x, tok).body)
	if len(got) != 1 || got[0].Version["ref"] != x {
		t.Fatalf("filter: %+v", got)
	}
	vid := got[0].ID
	if r := get(t, s, versions+"?filter=ref:ffff", tok); strings.TrimSpace(r.body) != "[]" || r.status != 200 {
		t.Errorf("filter without match: %d %q", r.status, r.body)
	}
	qv := decode[[]rv](t, get(t, s, "/api/v1/teams/main/pipelines/q/resources/locks/versions?filter=ref:"+x, tok).body)
	if len(qv) != 1 || qv[0].ID == vid {
		t.Errorf("version in pipeline q: %+v (p's is %d)", qv, vid)
	}

	inputTo := func(pipeline string, vid any) []map[string]any {
		r := get(t, s, fmt.Sprintf("/api/v1/teams/main/pipelines/%s/resources/locks/versions/%v/input_to", pipeline, vid), tok)
		wantStatus(t, "input_to", r, 200)
		return decode[[]map[string]any](t, r.body)
	}
	if bs := inputTo("p", vid); len(bs) != 1 || bs[0]["id"] != float64(b) || bs[0]["status"] != "started" || bs[0]["job_name"] != "hold" {
		t.Errorf("input_to X in p = %v, want only build %d (not the claiming build %d nor %d)", bs, b, a, other)
	}
	// The version id is stable; a later build taking it is listed too, not first.
	c := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "hold", Status: "pending", Inputs: []Version{{"locks", x}}})
	if again := decode[[]rv](t, get(t, s, versions+"?filter=ref:"+x, tok).body); len(again) != 1 || again[0].ID != vid {
		t.Errorf("version id changed: %+v, was %d", again, vid)
	}
	if bs := inputTo("p", vid); len(bs) != 2 || bs[0]["id"] != float64(b) || bs[1]["id"] != float64(c) {
		t.Errorf("input_to after C = %v", bs)
	}
	if res := decode[io](t, get(t, s, fmt.Sprintf("/api/v1/builds/%d/resources", c), tok).body); len(res.Inputs) != 1 || res.Inputs[0].FirstOccurrence {
		t.Errorf("C's input should not be a first occurrence: %+v", res)
	}
	// Unknown version ids list nothing (the ATC answers 200 []).
	if bs := inputTo("p", 99999); len(bs) != 0 {
		t.Errorf("input_to of unknown version = %v", bs)
	}
	if bs := inputTo("p", "abc"); len(bs) != 0 {
		t.Errorf("input_to of non-numeric version = %v", bs)
	}
}

func TestDeletePipeline(t *testing.T) {
	s := newFake(t)
	tok := bearer(s.Token("alice"))
	vars := map[string]any{"env": "a"}
	gone := s.AddBuild(Build{Team: "main", Pipeline: "p", Vars: vars, Job: "j", Name: "1", Status: "started", Inputs: []Version{{"locks", "abc"}}})
	kept := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "j", Name: "1", Status: "started", Inputs: []Version{{"locks", "abc"}}})
	s.DeletePipeline("main", "p", vars)

	for _, path := range []string{
		fmt.Sprintf("/api/v1/builds/%d", gone),
		fmt.Sprintf("/api/v1/builds/%d/resources", gone),
		"/api/v1/teams/main/pipelines/p/jobs/j/builds/1?vars.env=%22a%22",
		"/api/v1/teams/main/pipelines/p/resources/locks/versions?vars.env=%22a%22",
	} {
		wantStatus(t, path, get(t, s, path, tok), 404)
	}
	wantStatus(t, "other instance", get(t, s, fmt.Sprintf("/api/v1/builds/%d", kept), tok), 200)
	wantStatus(t, "other instance by path", get(t, s, "/api/v1/teams/main/pipelines/p/jobs/j/builds/1", tok), 200)
}

func TestFaults(t *testing.T) {
	s := newFake(t)
	id := s.AddBuild(Build{Team: "main", Status: "started"})
	tok := bearer(s.Token("alice"))
	path := fmt.Sprintf("/api/v1/builds/%d", id)

	s.SetFault(Fault{Status: 500, Body: "boom"})
	if r := get(t, s, path, tok); r.status != 500 || r.body != "boom" {
		t.Errorf("500 fault: %d %q", r.status, r.body)
	}
	wantStatus(t, "fault on /sky/", tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope), 500)
	s.SetFault(Fault{Status: 200, Body: "garbage{"})
	if r := get(t, s, path, tok); r.status != 200 || r.body != "garbage{" {
		t.Errorf("garbage fault: %d %q", r.status, r.body)
	}
	s.SetFault(Fault{})
	wantStatus(t, "after reset", get(t, s, path, tok), 200)
	if n := s.TokensIssued(); n != 0 {
		t.Errorf("TokensIssued = %d", n)
	}

	// A delay ends as soon as the client gives up.
	done := make(chan Request, 1)
	s.mu.Lock()
	s.doneHook = func(r Request) { done <- r }
	s.mu.Unlock()
	s.SetFault(Fault{Delay: time.Hour})
	c := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
	req.Header.Set("Authorization", tok)
	start := time.Now()
	_, err := c.Do(req)
	if err == nil {
		t.Fatal("delayed request succeeded")
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Errorf("err = %v, want a timeout", err)
	}
	select {
	case rec := <-done:
		if rec.Status != 0 || rec.Path != path || rec.User != "alice" {
			t.Errorf("record of abandoned request: %+v", rec)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler kept waiting after the client gave up")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	s.SetFault(Fault{})
}

func TestRequestsRecordNoSecrets(t *testing.T) {
	s := newFake(t)
	id := s.AddBuild(Build{Team: "main", Status: "started"})
	r := tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope)
	tok := decode[map[string]any](t, r.body)
	access, idToken := tok["access_token"].(string), tok["id_token"].(string)
	get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(access))
	get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(idToken))
	get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), "")
	direct := s.Token("bob")
	get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(direct))
	// A careless client putting secrets in the query string.
	get(t, s, "/sky/issuer/token?username=alice&password="+alicePW+"&access_token="+url.QueryEscape(access), "")
	tokenRequest(t, s, "/sky/issuer/token", "alice", "wrong-"+alicePW, true, flyScope)

	reqs := s.Requests()
	if len(reqs) != 7 {
		t.Fatalf("%d requests: %+v", len(reqs), reqs)
	}
	dump := fmt.Sprintf("%+v", reqs)
	for _, secret := range []string{alicePW, access, url.QueryEscape(access), idToken, direct, "Zmx5"} {
		if strings.Contains(dump, secret) {
			t.Errorf("Requests() contains a secret %q: %s", secret, dump)
		}
	}
	want := []Request{
		{Method: "POST", Path: "/sky/issuer/token", User: "alice", Status: 200},
		{Method: "GET", Path: fmt.Sprintf("/api/v1/builds/%d", id), User: "alice", Status: 200},
		{Method: "GET", Path: fmt.Sprintf("/api/v1/builds/%d", id), User: "", Status: 401},
		{Method: "GET", Path: fmt.Sprintf("/api/v1/builds/%d", id), User: "", Status: 401},
		{Method: "GET", Path: fmt.Sprintf("/api/v1/builds/%d", id), User: "bob", Status: 403},
		{Method: "GET", Path: "/sky/issuer/token", Status: 400},
		{Method: "POST", Path: "/sky/issuer/token", User: "", Status: 401},
	}
	for i, w := range want {
		g := reqs[i]
		g.RawQuery = ""
		if g != w {
			t.Errorf("request %d = %+v, want %+v", i, reqs[i], w)
		}
	}
	if q := reqs[5].RawQuery; !strings.Contains(q, "password=REDACTED") || !strings.Contains(q, "username=alice") {
		t.Errorf("RawQuery %q", q)
	}
	// Other queries are kept byte for byte.
	get(t, s, "/api/v1/teams/main/pipelines/p/jobs/j/builds/1?vars.env=%22a%2Fb%22&vars.n=2", "")
	if q := s.Requests()[7].RawQuery; q != "vars.env=%22a%2Fb%22&vars.n=2" {
		t.Errorf("RawQuery %q", q)
	}
}

func TestTLS(t *testing.T) {
	s := New(t, WithTLS())
	s.AddUser("alice", alicePW, "main")
	id := s.AddBuild(Build{Team: "main", Status: "started"})
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") || strings.HasSuffix(s.URL, "/") {
		t.Errorf("URL %q", s.URL)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CACertPEM()) {
		t.Fatalf("CACertPEM: %q", s.CACertPEM())
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/builds/%d", s.URL, id), nil)
	req.Header.Set("Authorization", bearer(s.Token("alice")))
	wantStatus(t, "TLS", do(t, c, req), 200)
	// Without the CA the certificate is not trusted.
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("untrusted certificate accepted")
	}
	if New(t).CACertPEM() != nil {
		t.Error("CACertPEM without TLS")
	}
}

func TestConcurrent(t *testing.T) {
	s := newFake(t)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user, pw := "alice", alicePW
			if g%2 == 1 {
				user, pw = "bob", bobPW
			}
			r := tokenRequest(t, s, "/sky/issuer/token", user, pw, true, flyScope)
			access := decode[map[string]any](t, r.body)["access_token"].(string)
			for i := range 10 {
				id := s.AddBuild(Build{Team: "main", Pipeline: fmt.Sprintf("p%d", g%3), Job: "j", Status: "pending",
					Inputs: []Version{{"locks", fmt.Sprint(i)}}, Outputs: []Version{{"locks", fmt.Sprint(g)}}})
				s.SetStatus(id, "started")
				want := 200
				if user == "bob" {
					want = 403
				}
				wantStatus(t, "build", get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(access)), want)
				get(t, s, fmt.Sprintf("/api/v1/teams/main/pipelines/p%d/resources/locks/versions?filter=ref:%d", g%3, i), bearer(access))
				s.SetStatus(id, "succeeded")
				_ = s.Requests()
				_ = s.TokensIssued()
				_ = s.Token(user)
				s.AddUser(fmt.Sprintf("u%d", g), "pw", "main")
			}
		}()
	}
	wg.Wait()
	if n := s.TokensIssued(); n != 16 {
		t.Errorf("TokensIssued = %d", n)
	}
	if n := len(s.Requests()); n != 16+16*20 {
		t.Errorf("%d requests", n)
	}
	// The ids are unique and all builds are there.
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.builds) != 160 {
		t.Errorf("%d builds", len(s.builds))
	}
}

// The fake's context handling must not leak: a request cancelled by its
// caller before the delay ends is answered by nobody and recorded with 0.
func TestDelayCancelledByCaller(t *testing.T) {
	s := newFake(t)
	done := make(chan Request, 1)
	s.mu.Lock()
	s.doneHook = func(r Request) { done <- r }
	s.mu.Unlock()
	s.SetFault(Fault{Delay: time.Hour, Status: 500})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/builds/1", nil)
	errc := make(chan error, 1)
	go func() {
		_, err := http.DefaultClient.Do(req)
		errc <- err
	}()
	// Cancel once the request has arrived.
	for len(s.Requests()) == 0 {
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	select {
	case rec := <-done:
		if rec.Status != 0 {
			t.Errorf("record %+v", rec)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler still waiting")
	}
}

// A put step's version becomes an output of its running build once the step
// finishes; before that the build's resources do not list it.
func TestAddOutputOfARunningBuild(t *testing.T) {
	s := newFake(t)
	tok := bearer(s.Token("alice"))
	const x = "3333333333333333333333333333333333333333"
	a := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "claim", Status: "started"})
	path := fmt.Sprintf("/api/v1/builds/%d/resources", a)
	if r := get(t, s, path, tok); strings.TrimSpace(r.body) != `{"inputs":[],"outputs":[]}` {
		t.Fatalf("before the put: %s", r.body)
	}
	s.AddOutput(a, Version{"locks", x})
	s.AddOutput(a, Version{"locks", x}) // recorded once
	want := `{"inputs":[],"outputs":[{"name":"locks","version":{"ref":"` + x + `"}}]}`
	if r := get(t, s, path, tok); strings.TrimSpace(r.body) != want {
		t.Errorf("after the put: %s, want %s", r.body, want)
	}
	r := get(t, s, "/api/v1/teams/main/pipelines/p/resources/locks/versions?filter=ref:"+x, tok)
	if !strings.Contains(r.body, x) {
		t.Errorf("the version is not listed: %s", r.body)
	}
}

// Tokens expire by the server's clock, as the token answer says, and an
// expired token is a 401 as a missing one is.
func TestTokensExpireByTheClock(t *testing.T) {
	clock := NewClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	s := newFake(t, WithClock(clock.Now), WithTokenTTL(time.Hour))
	id := s.AddBuild(Build{Team: "main", Status: "started"})
	path := fmt.Sprintf("/api/v1/builds/%d", id)

	r := tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope)
	wantStatus(t, "token", r, 200)
	tok := decode[map[string]any](t, r.body)
	if tok["expires_in"] != float64(3599) {
		t.Errorf("expires_in %v, want 3599", tok["expires_in"])
	}
	access, _ := tok["access_token"].(string)
	b := decode[map[string]any](t, get(t, s, path, bearer(access)).body)
	if want := clock.Now().Add(-defaultAge).Unix(); b["start_time"] != float64(want) {
		t.Errorf("start_time %v, want the fake clock's %d", b["start_time"], want)
	}
	clock.Advance(time.Hour - time.Second)
	wantStatus(t, "a second before expiry", get(t, s, path, bearer(access)), 200)
	clock.Advance(time.Second)
	wantStatus(t, "at expiry", get(t, s, path, bearer(access)), 401)
	wantStatus(t, "a fresh token", get(t, s, path, bearer(s.Token("alice"))), 200)

	// Legacy servers say when instead of how long.
	l := newFake(t, WithLegacyAuth(), WithClock(clock.Now), WithTokenTTL(time.Hour))
	r = tokenRequest(t, l, "/sky/token", "alice", alicePW, true, flyScope)
	lt := decode[map[string]any](t, r.body)
	if exp, err := time.Parse(time.RFC3339, fmt.Sprint(lt["expiry"])); err != nil || !exp.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("legacy expiry %v (%v), want %v", lt["expiry"], err, clock.Now().Add(time.Hour))
	}
}

// A fault can hit one path only: the token endpoint down, the API up.
func TestFaultOnOnePath(t *testing.T) {
	s := newFake(t)
	id := s.AddBuild(Build{Team: "main", Status: "started"})
	tok := bearer(s.Token("alice"))
	s.SetFault(Fault{Path: "/sky/issuer/token", Status: 502})
	wantStatus(t, "token endpoint", tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope), 502)
	wantStatus(t, "API", get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), tok), 200)
	s.SetFault(Fault{})
	wantStatus(t, "token endpoint after", tokenRequest(t, s, "/sky/issuer/token", "alice", alicePW, true, flyScope), 200)
}

// A renamed put step (put: claim-env, resource: env): outputs are listed by the
// step's name, versions only exist under the resource's, and the plan maps one
// to the other, nested as the ATC plans a put (facts file, v8.2.5).
func TestRenamedPutStep(t *testing.T) {
	s := newFake(t)
	tok := bearer(s.Token("alice"))
	const x = "3333333333333333333333333333333333333333"
	a := s.AddBuild(Build{Team: "main", Pipeline: "p", Job: "deploy2", Status: "succeeded",
		Outputs: []Version{{"env", x}}, PutSteps: map[string]string{"env": "claim-env"}})

	r := get(t, s, fmt.Sprintf("/api/v1/builds/%d/resources", a), tok)
	if want := `{"inputs":[],"outputs":[{"name":"claim-env","version":{"ref":"` + x + `"}}]}`; strings.TrimSpace(r.body) != want {
		t.Errorf("resources: %s\nwant %s", r.body, want)
	}
	wantStatus(t, "versions under the step name", get(t, s, "/api/v1/teams/main/pipelines/p/resources/claim-env/versions?filter=ref:"+x, tok), 404)
	r = get(t, s, "/api/v1/teams/main/pipelines/p/resources/env/versions?filter=ref:"+x, tok)
	wantStatus(t, "versions under the resource", r, 200)
	if !strings.Contains(r.body, x) {
		t.Errorf("versions of env: %s", r.body)
	}

	r = get(t, s, fmt.Sprintf("/api/v1/builds/%d/plan", a), tok)
	wantStatus(t, "plan", r, 200)
	plan := decode[struct {
		Schema string `json:"schema"`
		Plan   struct {
			Do []struct {
				InParallel struct {
					Steps []struct {
						OnSuccess struct {
							Step struct {
								Put map[string]string `json:"put"`
							} `json:"step"`
							Next struct {
								Get map[string]string `json:"get"`
							} `json:"next"`
						} `json:"on_success"`
					} `json:"steps"`
				} `json:"in_parallel"`
			} `json:"do"`
		} `json:"plan"`
	}](t, r.body)
	if plan.Schema != "exec.v2" || len(plan.Plan.Do) != 2 || len(plan.Plan.Do[1].InParallel.Steps) != 1 {
		t.Fatalf("plan: %s", r.body)
	}
	put := plan.Plan.Do[1].InParallel.Steps[0].OnSuccess.Step.Put
	if put["name"] != "claim-env" || put["resource"] != "env" || put["type"] != "pool" {
		t.Errorf("put step: %v", put)
	}
	wantStatus(t, "plan without a token", get(t, s, fmt.Sprintf("/api/v1/builds/%d/plan", a), ""), 401)
	wantStatus(t, "plan of no build", get(t, s, "/api/v1/builds/999/plan", tok), 404)
}

func TestInfo(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []Option
		want func(*Server) string
	}{
		{"own URL", nil, func(s *Server) string { return s.URL }},
		{"external URL", []Option{WithExternalURL("https://ci.example.com/concourse")}, func(*Server) string { return "https://ci.example.com/concourse" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, tt.opts...)
			r := get(t, s, "/api/v1/info", "") // public
			wantStatus(t, "info", r, 200)
			info := decode[struct {
				Version     string `json:"version"`
				ExternalURL string `json:"external_url"`
			}](t, r.body)
			if info.ExternalURL != tt.want(s) || info.Version == "" || s.ExternalURL != tt.want(s) {
				t.Errorf("info: %s", r.body)
			}
		})
	}
}

func TestBuildTimes(t *testing.T) {
	s := newFake(t)
	start, end := time.Unix(1700000000, 0), time.Unix(1700000600, 0)
	id := s.AddBuild(Build{Status: "succeeded", StartTime: start, EndTime: end})
	r := get(t, s, fmt.Sprintf("/api/v1/builds/%d", id), bearer(s.Token("alice")))
	b := decode[struct {
		Start int64 `json:"start_time"`
		End   int64 `json:"end_time"`
	}](t, r.body)
	if b.Start != start.Unix() || b.End != end.Unix() {
		t.Errorf("times: %s", r.body)
	}
}

// demoOwner is an owner of the fake outside a test, as `poolboy demo` has one.
type demoOwner struct {
	errs     []string
	cleanups []func()
}

func (o *demoOwner) Helper() {}
func (o *demoOwner) Errorf(format string, args ...any) {
	o.errs = append(o.errs, fmt.Sprintf(format, args...))
}
func (o *demoOwner) Cleanup(f func()) { o.cleanups = append(o.cleanups, f) }

// The fake runs outside a test too: misuse goes to its owner's Errorf, and its
// owner's cleanups stop it.
func TestNewOutsideATest(t *testing.T) {
	o := &demoOwner{}
	s := New(o)
	if id := s.AddBuild(Build{Status: "bogus"}); id != 0 || len(o.errs) != 1 {
		t.Errorf("AddBuild of an invalid status: id %d, errors %q", id, o.errs)
	}
	resp, err := http.Get(s.URL + "/api/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(o.cleanups) != 1 {
		t.Fatalf("info: %d; %d cleanups registered, want 1", resp.StatusCode, len(o.cleanups))
	}
	o.cleanups[0]()
	if resp, err := http.Get(s.URL + "/api/v1/info"); err == nil {
		resp.Body.Close()
		t.Error("the fake still answers after its cleanup")
	}
}
