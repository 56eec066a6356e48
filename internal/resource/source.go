package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/redact"
)

// source is the resource's `source:`: every field the upstream pool resource
// accepts, the Pix4D fork's prometheus_push_gateway, and ours for reaping.
// Unknown fields are ignored, as upstream ignores them, with a warning (see
// warnUnknown); a known field of the wrong type is an error.
type source struct {
	URI                   string       `json:"uri"`
	Branch                string       `json:"branch"`
	Pool                  string       `json:"pool"`
	PrivateKey            string       `json:"private_key"`
	PrivateKeyUser        string       `json:"private_key_user"`
	PrivateKeyPassphrase  string       `json:"private_key_passphrase"`
	Username              string       `json:"username"`
	Password              string       `json:"password"`
	GitConfig             []gitConfig  `json:"git_config"`
	RetryDelay            retryDelay   `json:"retry_delay"`
	HTTPSTunnel           *tunnel      `json:"https_tunnel"`
	ForwardAgent          bool         `json:"forward_agent"`
	SkipSSLVerification   bool         `json:"skip_ssl_verification"`
	PrometheusPushGateway string       `json:"prometheus_push_gateway"`
	StaleTimeout          staleTimeout `json:"stale_timeout"`
	ConcourseURL          string       `json:"concourse_url"`
	ConcourseUsername     string       `json:"concourse_username"`
	ConcoursePassword     string       `json:"concourse_password"`
	ConcourseToken        string       `json:"concourse_token"`
	ConcourseTeam         string       `json:"concourse_team"`
	ConcourseInsecure     *bool        `json:"concourse_insecure"`
	ConcourseCACert       string       `json:"concourse_ca_cert"`
	// ConcourseTargets are more Concourses sharing the lock repository (prod and
	// staging): each claim is judged by the one its Build URL names.
	ConcourseTargets []concourseTarget `json:"concourse_targets"`
	ReapOnSuccess    bool              `json:"reap_on_success"`
	// ReapTo is the quarantine pool reaped locks go to, "" for the pool's own unclaimed/.
	ReapTo string `json:"reap_to"`
	// Queue is poolboy's fair waiting (queue.go); false is upstream's lottery.
	Queue *bool `json:"queue"`
}

// queued says whether waiting puts queue (the default).
func (s *source) queued() bool { return s.Queue == nil || *s.Queue }

// concourseTarget is one entry of concourse_targets: the concourse_* keys
// without their prefix. A resource container has no ~/.flyrc, so no fly target.
type concourseTarget struct {
	URL      string `json:"url"`
	Username string `json:"username"`
	Password string `json:"password"`
	Token    string `json:"token"`
	Team     string `json:"team"`
	Insecure *bool  `json:"insecure"`
	CACert   string `json:"ca_cert"`
}

// concourseTargets lists the Concourses to ask: concourse_url's, then concourse_targets.
func (s *source) concourseTargets() []concourse.Target {
	var out []concourse.Target
	if s.ConcourseURL != "" {
		out = append(out, concourse.Target{URL: s.ConcourseURL, Username: s.ConcourseUsername, Password: s.ConcoursePassword,
			Token: s.ConcourseToken, Team: s.ConcourseTeam, Insecure: s.ConcourseInsecure, CACertPEM: []byte(s.ConcourseCACert)})
	}
	for _, t := range s.ConcourseTargets {
		out = append(out, concourse.Target{URL: t.URL, Username: t.Username, Password: t.Password,
			Token: t.Token, Team: t.Team, Insecure: t.Insecure, CACertPEM: []byte(t.CACert)})
	}
	return out
}

type gitConfig struct {
	Name  string `json:"name"`
	Value scalar `json:"value"`
}

type tunnel struct {
	ProxyHost     string `json:"proxy_host"`
	ProxyPort     scalar `json:"proxy_port"`
	ProxyUser     string `json:"proxy_user"`
	ProxyPassword string `json:"proxy_password"`
}

type version struct {
	Ref string `json:"ref"`
}

type metadataPair struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// answer is what in and out print: the version and the upstream metadata.
type answer struct {
	Version  version        `json:"version"`
	Metadata []metadataPair `json:"metadata"`
}

// request is what Concourse writes to a script's stdin.
type request struct {
	Source  source          `json:"source"`
	Version *version        `json:"version"`
	Params  json.RawMessage `json:"params"`
}

// defaultRetryDelay is upstream's wait between attempts.
const defaultRetryDelay = 10 * time.Second

// retryDelay is a Go duration string ("10s"). A JSON number is taken as
// nanoseconds, exactly as upstream's decoder took it.
type retryDelay time.Duration

func (d *retryDelay) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*d = 0
	case float64:
		if v < 0 {
			return errors.New(`source.retry_delay must not be negative`)
		}
		*d = retryDelay(v)
	case string:
		p, err := time.ParseDuration(v)
		if err != nil || p < 0 {
			return fmt.Errorf(`source.retry_delay %q is not a duration like "10s"`, v)
		}
		*d = retryDelay(p)
	default:
		return typeError(v)
	}
	return nil
}

// waitTimeout is params.wait_timeout, a Go duration ("30m"); 0 waits forever.
type waitTimeout time.Duration

func (d *waitTimeout) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*d = 0
	case string:
		p, err := time.ParseDuration(v)
		if err != nil || p <= 0 {
			return fmt.Errorf(`params.wait_timeout %q is not a positive duration like "30m"`, v)
		}
		*d = waitTimeout(p)
	default:
		return typeError(v)
	}
	return nil
}

// staleTimeout is minutes (60 or "60", as the original pool boy's) or a Go
// duration ("90m").
type staleTimeout time.Duration

func (d *staleTimeout) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var s string
	switch v := v.(type) {
	case nil:
		*d = 0
		return nil
	case float64:
		s = strconv.FormatFloat(v, 'f', -1, 64)
	case string:
		s = v
	default:
		return typeError(v)
	}
	t, err := policy.ParseTimeouts("pool:" + s)
	if err != nil || strings.Contains(s, ",") {
		return fmt.Errorf(`source.stale_timeout %q is neither minutes nor a duration like "90m"`, s)
	}
	*d = staleTimeout(t["pool"])
	return nil
}

// scalar is a string, number or boolean, kept as written: YAML turns
// `value: 10` into a number, and git takes it as a string anyway.
type scalar string

func (s *scalar) UnmarshalJSON(b []byte) error {
	v, err := decodeValue(b)
	if err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*s = ""
	case string:
		*s = scalar(v)
	case json.Number:
		*s = scalar(v.String())
	case bool:
		*s = scalar(strconv.FormatBool(v))
	default:
		return typeError(v)
	}
	return nil
}

// decodeValue decodes one JSON value with numbers kept as written.
func decodeValue(b []byte) (any, error) {
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	err := dec.Decode(&v)
	return v, err
}

// typeError lets encoding/json add the field's name to our types' complaints.
func typeError(v any) error {
	kind := "object"
	switch v.(type) {
	case []any:
		kind = "array"
	case bool:
		kind = "bool"
	case float64, json.Number:
		kind = "number"
	case string:
		kind = "string"
	}
	return &json.UnmarshalTypeError{Value: kind, Type: reflect.TypeFor[string]()}
}

// maxRequest is the largest request read; Concourse's are a few kilobytes.
const maxRequest = 16 << 20

// decode reads a request. Every error is one line naming the field. When ctx
// ends first (SIGTERM with stdin still open) it says so, and does not wait for
// stdin: the read is left behind, blocked, in a process about to exit. The source
// is also returned as it was written, for warnUnknown.
func decode(ctx context.Context, stdin io.Reader, req *request) (raw rawRequest, err error) {
	type result struct {
		data []byte
		err  error
	}
	read := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(stdin, maxRequest+1))
		read <- result{data, err}
	}()
	var r result
	select {
	case <-ctx.Done():
	case r = <-read:
	}
	// Checked after the read too: stdin closed by the abort is no request.
	if ctx.Err() != nil {
		return raw, fmt.Errorf("aborted while reading the request (%w)", context.Cause(ctx))
	}
	if r.err != nil {
		return raw, fmt.Errorf("reading the request: %w", r.err)
	}
	if len(r.data) > maxRequest {
		return raw, errors.New("invalid payload: the request is larger than 16 MiB")
	}
	data := r.data
	if err := json.Unmarshal(data, req); err != nil {
		return raw, payloadError(err)
	}
	return raw, json.Unmarshal(data, &raw)
}

// rawRequest is the part of a request kept as written.
type rawRequest struct {
	Source json.RawMessage `json:"source"`
}

// decodeParams reads params into p (a pointer to a struct of the script's params),
// warning about keys p does not have.
func (s *script) decodeParams(raw json.RawMessage, p any) error {
	if len(raw) == 0 {
		return nil
	}
	warnUnknown(s.log, "params", raw, reflect.TypeOf(p).Elem())
	if err := json.Unmarshal(raw, p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			te.Field = strings.TrimSuffix("params."+te.Field, ".")
		}
		return payloadError(err)
	}
	return nil
}

// warnUnknown warns about every key of the JSON object raw that typ (a struct) has
// no field for, naming the keys it has, and so on into nested objects and lists
// of objects. Upstream ignores unknown keys, so they are no error; but a typo
// (concourse_ulr) would otherwise silently turn a feature off.
func warnUnknown(log io.Writer, where string, raw json.RawMessage, typ reflect.Type) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
		if typ.Kind() == reflect.Slice {
			var list []json.RawMessage
			if json.Unmarshal(raw, &list) != nil {
				return
			}
			for i, item := range list {
				warnUnknown(log, fmt.Sprintf("%s[%d]", where, i), item, typ.Elem())
			}
			return
		}
		typ = typ.Elem()
	}
	var obj map[string]json.RawMessage
	if typ.Kind() != reflect.Struct || json.Unmarshal(raw, &obj) != nil {
		return // not an object: decoding says what is wrong
	}
	var known []string
	fields := map[string]reflect.Type{}
	for f := range typ.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			known = append(known, name)
			fields[name] = f.Type
		}
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		t, ok := fields[key]
		if !ok {
			fmt.Fprintf(log, "warning: unknown %s key %q (known: %s); ignored\n", where, key, strings.Join(known, ", "))
			continue
		}
		warnUnknown(log, where+"."+key, obj[key], t)
	}
}

// expected says what a field must be, for error messages.
var expected = map[string]string{
	"source.retry_delay":             `a duration like "10s"`,
	"source.stale_timeout":           `minutes or a duration like "90m"`,
	"source.git_config":              "a list of {name, value}",
	"source.git_config.value":        "a string",
	"source.https_tunnel":            "an object {proxy_host, proxy_port, proxy_user, proxy_password}",
	"source.https_tunnel.proxy_port": "a port number",
	"version":                        `an object {"ref": SHA}`,
	"params.wait_timeout":            `a duration like "30m"`,
	"params.priority":                "an integer",
	"params.acquire":                 fmt.Sprintf("true, false or a number of locks from 1 to %d", queue.MaxWants),
	"params.with":                    "a list of {pool, count}",
	"params.with.count":              fmt.Sprintf("a number of locks from 1 to %d", queue.MaxWants),
}

func payloadError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return fmt.Errorf("invalid payload: the request must be a JSON object, not %s", te.Value)
		}
		want, ok := expected[field]
		if !ok {
			want = kindWords(te.Type)
		}
		return fmt.Errorf("invalid payload: %s must be %s, not %s", field, want, te.Value)
	case errors.As(err, &se):
		return fmt.Errorf("invalid payload: malformed JSON at byte %d: %v", se.Offset, se)
	}
	return fmt.Errorf("invalid payload: %v", err)
}

func kindWords(t reflect.Type) string {
	if t == nil {
		return "something else"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	}
	return t.Kind().String()
}

// check returns upstream's errors for missing required fields, each on its own
// line and worded exactly as upstream words them (users search logs for them),
// and ours for values we cannot use.
func (s *source) check() []error {
	var errs []error
	if s.URI == "" {
		errs = append(errs, errors.New("invalid payload (missing uri)"))
	}
	if s.Branch == "" {
		errs = append(errs, errors.New("invalid payload (missing branch)"))
	}
	if s.Pool == "" {
		errs = append(errs, errors.New("invalid payload (missing pool)"))
	} else if err := validPoolName(s.Pool); err != nil {
		errs = append(errs, err)
	}
	if s.ReapTo != "" {
		if err := validPoolName(s.ReapTo); err != nil {
			errs = append(errs, err)
		} else if s.ReapTo == s.Pool {
			errs = append(errs, fmt.Errorf("invalid payload: source.reap_to %q is the pool itself", s.ReapTo))
		}
	}
	if s.HTTPSTunnel != nil && s.HTTPSTunnel.ProxyHost == "" {
		errs = append(errs, errors.New("invalid payload: source.https_tunnel needs proxy_host"))
	}
	for _, c := range s.GitConfig {
		if c.Name == "" || strings.ContainsAny(c.Name, "\n\x00") {
			errs = append(errs, errors.New("invalid payload: every source.git_config entry needs a name"))
			break
		}
	}
	if s.ConcourseUsername != "" && s.ConcourseToken != "" {
		errs = append(errs, errors.New("invalid payload: give concourse_username and concourse_password, or concourse_token, not both"))
	}
	if (s.ConcourseUsername == "") != (s.ConcoursePassword == "") {
		errs = append(errs, errors.New("invalid payload: concourse_username and concourse_password go together"))
	}
	if s.ConcourseURL == "" && (s.ConcourseUsername != "" || s.ConcourseToken != "") {
		errs = append(errs, errors.New("invalid payload: Concourse credentials given but no concourse_url"))
	}
	for i, t := range s.ConcourseTargets {
		if t.URL == "" {
			errs = append(errs, fmt.Errorf("invalid payload: concourse_targets[%d] needs a url", i))
		}
	}
	return errs
}

// validPoolName accepts a top-level directory of the repository: poolboy's model
// of a lock repository has pools at the top only, named by the lock name rule.
func validPoolName(name string) error {
	if pool.ValidName(name) != nil {
		return fmt.Errorf("invalid payload: pool %q must be the name of a top-level directory of the repository", name)
	}
	return nil
}

func (s *source) retryDelay() time.Duration {
	if s.RetryDelay <= 0 {
		return defaultRetryDelay
	}
	return time.Duration(s.RetryDelay)
}

// gitOptions is how gitx reaches the repository.
func (s *source) gitOptions(depth int) gitx.Options {
	opts := gitx.Options{
		URL:    s.URI,
		Branch: s.Branch,
		Depth:  depth,
		Auth: gitx.Auth{
			Username:             s.Username,
			Password:             s.Password,
			PrivateKey:           []byte(s.PrivateKey),
			PrivateKeyPassphrase: s.PrivateKeyPassphrase,
			SSHUser:              s.PrivateKeyUser,
			ForwardAgent:         s.ForwardAgent,
		},
		SkipSSLVerify: s.SkipSSLVerification,
	}
	for _, c := range s.GitConfig {
		opts.GitConfig = append(opts.GitConfig, gitx.ConfigEntry{Name: c.Name, Value: string(c.Value)})
	}
	if t := s.HTTPSTunnel; t != nil {
		u := url.URL{Scheme: "http", Host: t.ProxyHost}
		if t.ProxyPort != "" {
			u.Host = net.JoinHostPort(t.ProxyHost, string(t.ProxyPort))
		}
		if t.ProxyUser != "" {
			u.User = url.UserPassword(t.ProxyUser, t.ProxyPassword)
		}
		opts.HTTPSProxy = u.String()
	}
	return opts
}

// secrets lists what must never be printed.
func (s *source) secrets() []string {
	list := []string{s.Password, s.PrivateKeyPassphrase, s.ConcoursePassword, s.ConcourseToken}
	urls := []string{s.URI, s.PrometheusPushGateway, s.ConcourseURL}
	for _, t := range s.ConcourseTargets {
		list = append(list, t.Password, t.Token)
		urls = append(urls, t.URL)
	}
	if s.HTTPSTunnel != nil {
		list = append(list, s.HTTPSTunnel.ProxyPassword)
	}
	list = append(list, redact.URLPasswords(urls...)...)
	return append(list, redact.KeyLines(s.PrivateKey)...)
}
