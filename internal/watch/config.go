// Package watch is poolboy's long-running mode: a daemon that keeps many lock
// repositories healthy (one reap cycle per repository at a time, repositories in
// parallel, a persistent clone each), wakes up on an interval and on push webhooks,
// and serves health, readiness, Prometheus metrics and the pools as JSON.
//
// Invariants:
//   - At most one cycle per repository at a time: each repository has one goroutine
//     that owns its clone; triggers arriving during a cycle collapse into one
//     follow-up cycle.
//   - A failing repository retries with capped, jittered exponential backoff and
//     never delays the others.
//   - Nothing half-done is ever pushed: a cycle is reaper.Clean, whose push is one
//     atomic fast-forward; a cancelled cycle is finished within a grace period or
//     abandoned before or during its push, which either lands whole or not at all.
//   - Secrets come only from environment variables or files named in the config.
package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/redact"
)

// Defaults of the config file.
const (
	DefaultListen   = "127.0.0.1:9090"
	DefaultInterval = time.Minute
	// DefaultCycleTimeout bounds one cycle of a repository: a git server or
	// Concourse that stops answering fails the cycle instead of stopping the
	// repository's cycles for good.
	DefaultCycleTimeout = 5 * time.Minute
	// MinDuration is the least interval and cycle_timeout: below it a cycle could
	// not even fetch, and the daemon would spin.
	MinDuration = time.Second
)

// Config is a loaded, validated config file with its secrets resolved.
type Config struct {
	File   string
	Listen string
	// WebhookListen, when set, is where /webhook/NAME is served instead of
	// Listen: webhooks can then be exposed without the status page, /api/pools
	// and /metrics.
	WebhookListen string
	Interval      time.Duration
	CycleTimeout  time.Duration
	CacheDir      string
	// Concourse lists the Concourses to ask (concourse, then concourse_targets);
	// none: the timeouts decide alone.
	Concourse []concourse.Target
	Repos     []Repo
	// ReadToken, when set, is required to read the status page, /api/pools and
	// /metrics (Authorization: Bearer, or ?token= for a browser).
	ReadToken []byte
	// Secrets are the values read from *_env variables and *_file files, so the
	// caller can keep them out of the environment git inherits (gitx.Conceal).
	Secrets []string
}

// Repo is one lock repository to keep healthy.
type Repo struct {
	Name          string
	URI           string
	Branch        string // "" means the remote's default branch
	Auth          gitx.Auth
	Timeouts      policy.Timeouts
	ReapOnSuccess map[string]bool
	ReapTo        map[string]string // pool → the quarantine its reaped locks go to
	WebhookSecret []byte            // nil: no webhook for this repo
}

// ConfigError is a problem in the config file, at a line when one is known.
type ConfigError struct {
	File string
	Line int // 0: the file as a whole
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// The file's shape. Secret values never appear here: only where to find them.
type rawConfig struct {
	Listen           string         `yaml:"listen"`
	WebhookListen    string         `yaml:"webhook_listen"`
	Interval         string         `yaml:"interval"`
	CycleTimeout     string         `yaml:"cycle_timeout"`
	CacheDir         string         `yaml:"cache_dir"`
	Concourse        *rawConcourse  `yaml:"concourse"`
	ConcourseTargets []rawConcourse `yaml:"concourse_targets"`
	Repos            []rawRepo      `yaml:"repos"`
	ReadTokenEnv     string         `yaml:"read_token_env"`
	ReadTokenFile    string         `yaml:"read_token_file"`
}

type rawConcourse struct {
	URL          string `yaml:"url"`
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	TokenEnv     string `yaml:"token_env"`
	TokenFile    string `yaml:"token_file"`
	FlyTarget    string `yaml:"fly_target"`
	Team         string `yaml:"team"`
	Insecure     *bool  `yaml:"insecure"`
	CACertFile   string `yaml:"ca_cert_file"`
}

type rawRepo struct {
	Name              string            `yaml:"name"`
	URI               string            `yaml:"uri"`
	Branch            string            `yaml:"branch"`
	Username          string            `yaml:"username"`
	PasswordEnv       string            `yaml:"password_env"`
	PasswordFile      string            `yaml:"password_file"`
	PrivateKeyEnv     string            `yaml:"private_key_env"`
	PrivateKeyFile    string            `yaml:"private_key_file"`
	PassphraseEnv     string            `yaml:"private_key_passphrase_env"`
	PassphraseFile    string            `yaml:"private_key_passphrase_file"`
	Pools             map[string]string `yaml:"pools"`
	ReapOnSuccess     []string          `yaml:"reap_on_success"`
	ReapTo            map[string]string `yaml:"reap_to"`
	WebhookSecretEnv  string            `yaml:"webhook_secret_env"`
	WebhookSecretFile string            `yaml:"webhook_secret_file"`
}

// inlineSecrets are keys that would put a secret in the file itself, and the keys
// that take it instead.
var inlineSecrets = map[string]string{
	"password": "password", "token": "token", "private_key": "private_key",
	"webhook_secret": "webhook_secret", "secret": "webhook_secret",
	"private_key_passphrase": "private_key_passphrase", "read_token": "read_token",
}

var repoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Load reads and validates the config file at path; env looks up the environment
// variables that secrets are read from. Every error names the file, and the line
// when there is one.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{File: path, Msg: strings.TrimPrefix(err.Error(), "open "+path+": ")}
	}
	return Parse(path, data, env)
}

// Parse is Load on the file's content; name is the file name errors carry.
func Parse(name string, data []byte, env func(string) (string, bool)) (*Config, error) {
	l := &loader{file: name, lines: map[string]int{}, env: env}
	return l.parse(data)
}

type loader struct {
	file    string
	lines   map[string]int // "repos[0].pools.aws" -> its line
	env     func(string) (string, bool)
	secrets []string
}

func (l *loader) errf(path string, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	return &ConfigError{File: l.file, Line: l.line(path), Msg: msg}
}

// line is the line of path, or of its nearest enclosing element.
func (l *loader) line(path string) int {
	for path != "" {
		if n, ok := l.lines[path]; ok {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
var unknownField = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)

func (l *loader) yamlError(err error) error {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return &ConfigError{File: l.file, Msg: strings.TrimPrefix(msg, "yaml: ")}
	}
	line, _ := strconv.Atoi(m[1])
	reason := m[2]
	if u := unknownField.FindStringSubmatch(reason); u != nil {
		reason = fmt.Sprintf("unknown key %q (known here: %s)", u[1], strings.Join(knownKeys(u[2]), ", "))
	}
	return &ConfigError{File: l.file, Line: line, Msg: reason}
}

// knownKeys lists the keys of the raw type yaml named in an error.
func knownKeys(typeName string) []string {
	for _, v := range []any{rawConfig{}, rawConcourse{}, rawRepo{}} {
		t := reflect.TypeOf(v)
		if strings.HasSuffix(typeName, "."+t.Name()) {
			var keys []string
			for i := range t.NumField() {
				keys = append(keys, strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0])
			}
			return keys
		}
	}
	return nil
}

// walk records the line of every key and item, and rejects what the typed
// decoding would accept or report badly: duplicate keys and inline secrets.
func (l *loader) walk(n *yaml.Node, path string) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := l.walk(c, path); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if first, dup := seen[k.Value]; dup {
				what := "key"
				if strings.HasSuffix(path, ".pools") {
					what = "pool"
				}
				return &ConfigError{File: l.file, Line: k.Line, Msg: fmt.Sprintf("%s: %s given twice (first at line %d)", p, what, first)}
			}
			seen[k.Value] = k.Line
			if key := inlineSecrets[k.Value]; key != "" && !strings.HasSuffix(path, ".pools") {
				return &ConfigError{File: l.file, Line: k.Line, Msg: fmt.Sprintf(
					"%s: secrets are never written in the config: give %s_env (the name of an environment variable holding it) or %s_file (a file holding it)",
					p, key, key)}
			}
			l.lines[p] = k.Line
			if err := l.walk(v, p); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			l.lines[p] = c.Line
			if err := l.walk(c, p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *loader) parse(data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, l.yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil, &ConfigError{File: l.file, Msg: "empty config: it needs at least repos:"}
	}
	if err := l.walk(&doc, ""); err != nil {
		return nil, err
	}
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return nil, l.yamlError(err)
	}
	// Whatever followed a second "---" would be ignored, a read_token_env there
	// too: the page would be served without the token the operator set.
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		return nil, &ConfigError{File: l.file, Line: more.Line, Msg: "a second YAML document: the config is one document"}
	} else if !errors.Is(err, io.EOF) {
		return nil, l.yamlError(err)
	}

	cfg := &Config{File: l.file, Listen: raw.Listen, Interval: DefaultInterval, CycleTimeout: DefaultCycleTimeout, CacheDir: raw.CacheDir}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if err := hostPort(cfg.Listen); err != nil {
		return nil, l.errf("listen", "%q is not host:port (e.g. %s): %v", cfg.Listen, DefaultListen, err)
	}
	if cfg.WebhookListen = raw.WebhookListen; cfg.WebhookListen != "" {
		if err := hostPort(cfg.WebhookListen); err != nil {
			return nil, l.errf("webhook_listen", "%q is not host:port (e.g. 0.0.0.0:9091): %v", cfg.WebhookListen, err)
		}
		if cfg.WebhookListen == cfg.Listen {
			return nil, l.errf("webhook_listen", "%q is listen's address too: give the webhooks an address of their own, or leave webhook_listen out", cfg.WebhookListen)
		}
	}
	if raw.Interval != "" {
		d, err := time.ParseDuration(raw.Interval)
		if err != nil || d <= 0 {
			return nil, l.errf("interval", "%q is not a positive duration like 30s or 1m", raw.Interval)
		}
		if d < MinDuration {
			return nil, l.errf("interval", "%q is less than the minimum of %s", raw.Interval, MinDuration)
		}
		cfg.Interval = d
	}
	if raw.CycleTimeout != "" {
		d, err := time.ParseDuration(raw.CycleTimeout)
		if err != nil || d <= 0 {
			return nil, l.errf("cycle_timeout", "%q is not a positive duration like 5m", raw.CycleTimeout)
		}
		if d < MinDuration {
			return nil, l.errf("cycle_timeout", "%q is less than the minimum of %s", raw.CycleTimeout, MinDuration)
		}
		cfg.CycleTimeout = d
	}
	token, err := l.secret("", "read_token", raw.ReadTokenEnv, raw.ReadTokenFile)
	if err != nil {
		return nil, err
	}
	if token != "" {
		cfg.ReadToken = []byte(token)
	}
	if cfg.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, l.errf("cache_dir", "missing, and there is no user cache directory to default to: %v", err)
		}
		cfg.CacheDir = filepath.Join(dir, "poolboy")
	}
	if raw.Concourse != nil {
		cc, err := l.concourse("concourse", raw.Concourse)
		if err != nil {
			return nil, err
		}
		cfg.Concourse = append(cfg.Concourse, cc)
	}
	for i := range raw.ConcourseTargets {
		cc, err := l.concourse(fmt.Sprintf("concourse_targets[%d]", i), &raw.ConcourseTargets[i])
		if err != nil {
			return nil, err
		}
		cfg.Concourse = append(cfg.Concourse, cc)
	}
	if len(raw.Repos) == 0 {
		return nil, l.errf("repos", "no repos: give at least one (name, uri, pools)")
	}
	names := map[string]int{}
	branches := map[[2]string]int{} // (uri without user info, branch) -> its repo
	for i, rr := range raw.Repos {
		r, err := l.repo(fmt.Sprintf("repos[%d]", i), rr)
		if err != nil {
			return nil, err
		}
		if first, dup := names[r.Name]; dup {
			return nil, l.errf(fmt.Sprintf("repos[%d].name", i), "repo name %q is already used by repos[%d]", r.Name, first)
		}
		names[r.Name] = i
		// Two workers on one branch would reap it under two sets of timeouts.
		k := [2]string{redact.SplitURL(r.URI).WithoutUserinfo(), r.Branch}
		if first, dup := branches[k]; dup {
			return nil, l.errf(fmt.Sprintf("repos[%d].uri", i), "repo %q: the same uri and branch as repos[%d] (%s): give each branch one repo entry",
				r.Name, first, raw.Repos[first].Name)
		}
		branches[k] = i
		cfg.Repos = append(cfg.Repos, r)
	}
	cfg.Secrets = l.secrets
	return cfg, nil
}

// hostPort checks a listen address as net.Listen will read it, port range included.
func hostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return err
	}
	return nil
}

func (l *loader) repo(path string, rr rawRepo) (Repo, error) {
	r := Repo{Name: rr.Name, URI: rr.URI, Branch: rr.Branch}
	switch {
	case rr.Name == "":
		return r, l.errf(path, "missing name (used in /webhook/NAME, metrics and the cache directory)")
	case !repoName.MatchString(rr.Name):
		return r, l.errf(path+".name", "%q: use letters, digits, '.', '_' and '-', starting with a letter or digit", rr.Name)
	case rr.URI == "":
		return r, l.errf(path, "repo %q: missing uri", rr.Name)
	case strings.HasPrefix(rr.URI, "-"):
		return r, l.errf(path+".uri", "%q must not start with '-'", rr.URI)
	case uriPassword(rr.URI):
		return r, l.errf(path+".uri", "secrets are never written in the config: take the password out of the uri and give password_env or password_file")
	case uriHTTPUser(rr.URI):
		return r, l.errf(path+".uri", "secrets are never written in the config: take the user name (8 characters or more: it may be a token) out of the uri and give username, and password_env or password_file")
	case strings.HasPrefix(rr.Branch, "-"):
		return r, l.errf(path+".branch", "%q must not start with '-'", rr.Branch)
	}
	r.Timeouts = policy.Timeouts{}
	for _, name := range sortedKeys(rr.Pools) {
		p := path + ".pools." + name
		val := rr.Pools[name]
		if strings.ContainsAny(name, ",:") || strings.Contains(val, ",") {
			return r, l.errf(p, "%q is not a pool name and timeout", name+": "+val)
		}
		t, err := policy.ParseTimeouts(name + ":" + val)
		if err != nil {
			msg := strings.TrimPrefix(err.Error(), "pools: ")
			if inner := errors.Unwrap(err); inner != nil {
				msg = inner.Error()
			}
			return r, l.errf(p, "%s", msg)
		}
		r.Timeouts[name] = t[name]
	}
	r.ReapOnSuccess = map[string]bool{}
	for j, name := range rr.ReapOnSuccess {
		if _, ok := r.Timeouts[name]; !ok {
			return r, l.errf(fmt.Sprintf("%s.reap_on_success[%d]", path, j), "pool %q has no timeout under pools", name)
		}
		r.ReapOnSuccess[name] = true
	}
	for _, name := range sortedKeys(rr.ReapTo) {
		if _, ok := r.Timeouts[name]; !ok {
			return r, l.errf(path+".reap_to."+name, "pool %q has no timeout under pools", name)
		}
	}
	if err := policy.CheckReapTo(rr.ReapTo, r.Timeouts); err != nil {
		return r, l.errf(path+".reap_to", "%s", err)
	}
	r.ReapTo = rr.ReapTo
	var err error
	r.Auth.Username = rr.Username
	if r.Auth.Password, err = l.secret(path, "password", rr.PasswordEnv, rr.PasswordFile); err != nil {
		return r, err
	}
	if rr.PrivateKeyEnv != "" && rr.PrivateKeyFile != "" {
		return r, l.errf(path+".private_key_file", "give private_key_env or private_key_file, not both")
	}
	if rr.PrivateKeyEnv != "" {
		key, err := l.secret(path, "private_key", rr.PrivateKeyEnv, "")
		if err != nil {
			return r, err
		}
		r.Auth.PrivateKey = []byte(key + "\n")
	}
	if rr.PrivateKeyFile != "" {
		if _, err := os.Stat(rr.PrivateKeyFile); err != nil {
			return r, l.errf(path+".private_key_file", "%v", err)
		}
		r.Auth.PrivateKeyFile = rr.PrivateKeyFile
	}
	if r.Auth.PrivateKeyPassphrase, err = l.secret(path, "private_key_passphrase", rr.PassphraseEnv, rr.PassphraseFile); err != nil {
		return r, err
	}
	hook, err := l.secret(path, "webhook_secret", rr.WebhookSecretEnv, rr.WebhookSecretFile)
	if err != nil {
		return r, err
	}
	if hook != "" {
		r.WebhookSecret = []byte(hook)
	}
	return r, nil
}

func (l *loader) concourse(path string, rc *rawConcourse) (concourse.Target, error) {
	t := concourse.Target{URL: rc.URL, Username: rc.Username, FlyTarget: rc.FlyTarget, Team: rc.Team,
		Insecure: rc.Insecure, CACertFile: rc.CACertFile}
	t.FlyHome, _ = l.env("FLY_HOME")
	if rc.URL == "" && rc.FlyTarget == "" {
		return t, l.errf(path, "missing url (or fly_target)")
	}
	var err error
	if t.Password, err = l.secret(path, "password", rc.PasswordEnv, rc.PasswordFile); err != nil {
		return t, err
	}
	if t.Token, err = l.secret(path, "token", rc.TokenEnv, rc.TokenFile); err != nil {
		return t, err
	}
	switch {
	case t.Username != "" && t.Token != "":
		return t, l.errf(path+".token_env", "give a user (username, password_env|password_file) or a token, not both")
	case t.Username != "" && t.Password == "":
		return t, l.errf(path+".username", "needs password_env or password_file")
	case t.Username == "" && t.Password != "":
		return t, l.errf(path, "a password needs a username")
	}
	if rc.CACertFile != "" {
		if _, err := os.Stat(rc.CACertFile); err != nil {
			return t, l.errf(path+".ca_cert_file", "%v", err)
		}
	}
	if _, _, err := t.Resolve(nil); err != nil {
		return t, l.errf(path+".url", "%v", strings.TrimPrefix(err.Error(), "concourse: "))
	}
	return t, nil
}

// secret reads key_env or key_file under path; "" when neither is given.
func (l *loader) secret(path, key, envName, file string) (string, error) {
	if path != "" {
		path += "."
	}
	switch {
	case envName != "" && file != "":
		return "", l.errf(path+key+"_file", "give %s_env or %s_file, not both", key, key)
	case envName != "":
		v, ok := l.env(envName)
		v = strings.TrimSuffix(strings.TrimSuffix(v, "\n"), "\r")
		if !ok || v == "" {
			return "", l.errf(path+key+"_env", "environment variable %s is not set or empty", envName)
		}
		l.secrets = append(l.secrets, v)
		return v, nil
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", l.errf(path+key+"_file", "%v", err)
		}
		v := strings.TrimRight(string(data), "\r\n")
		if v == "" {
			return "", l.errf(path+key+"_file", "%s is empty", file)
		}
		l.secrets = append(l.secrets, v)
		return v, nil
	}
	return "", nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// uriPassword says whether uri carries "user:password@", found the way git finds it.
func uriPassword(uri string) bool {
	_, _, ok := redact.SplitURL(uri).User()
	return ok
}

// uriHTTPUser says whether an http(s) uri carries a user name long enough to be a
// token (redact.MinLen or more); a short one (`bot`) is no secret, as everywhere.
func uriHTTPUser(uri string) bool {
	u := redact.SplitURL(uri)
	user, _, _ := u.User()
	return u.HTTP() && len(user) >= redact.MinLen
}
