package watch

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func fakeEnv(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestBadConfigsNameFileLineAndReason(t *testing.T) {
	env := fakeEnv(map[string]string{"LOCKS_PASSWORD": "pw"})
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "interval: 1m\nlisten_address: x\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:2: unknown key "listen_address"`},
		{"unknown repo key", "repos:\n  - name: a\n    uri: /x\n    pool: {aws: 1h}\n",
			`watch.yaml:4: unknown key "pool" (known here: name, uri, branch`},
		{"unknown concourse key", "concourse:\n  url: http://ci\n  user: x\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:3: unknown key "user"`},
		{"missing uri", "repos:\n  - name: a\n    uri: /x\n  - name: b\n    branch: main\n",
			`watch.yaml:4: repos[1]: repo "b": missing uri`},
		{"missing name", "repos:\n  - uri: /x\n", `watch.yaml:2: repos[0]: missing name`},
		{"no repos", "interval: 1m\n", `watch.yaml: repos: no repos`},
		{"bad pool timeout", "repos:\n  - name: a\n    uri: /x\n    pools:\n      aws: 90m\n      gpu: abc\n",
			`watch.yaml:6: repos[0].pools.gpu: timeout "abc" is neither minutes nor a duration`},
		{"negative pool timeout", "repos:\n  - name: a\n    uri: /x\n    pools: {aws: -5}\n",
			`watch.yaml:4: repos[0].pools.aws: timeout "-5" must be positive`},
		{"bad interval", "interval: soon\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:1: interval: "soon" is not a positive duration`},
		{"bad cycle_timeout", "cycle_timeout: 0s\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:1: cycle_timeout: "0s" is not a positive duration like 5m`},
		{"duplicate pools", "repos:\n  - name: a\n    uri: /x\n    pools:\n      aws: 1h\n      aws: 2h\n",
			`watch.yaml:6: repos[0].pools.aws: pool given twice (first at line 5)`},
		{"duplicate repo names", "repos:\n  - name: a\n    uri: /x\n  - name: a\n    uri: /y\n",
			`watch.yaml:4: repos[1].name: repo name "a" is already used by repos[0]`},
		{"inline repo password", "repos:\n  - name: a\n    uri: https://git.example.com/locks.git\n    username: bot\n    password: hunter2\n",
			`watch.yaml:5: repos[0].password: secrets are never written in the config: give password_env`},
		{"inline concourse token", "concourse:\n  url: http://ci\n  token: abc\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:3: concourse.token: secrets are never written in the config`},
		{"inline webhook secret", "repos:\n  - name: a\n    uri: /x\n    webhook_secret: abc\n",
			`watch.yaml:4: repos[0].webhook_secret: secrets are never written`},
		{"inline passphrase names the key that takes it", "repos:\n  - name: a\n    uri: /x\n    private_key_passphrase: abc\n",
			`watch.yaml:4: repos[0].private_key_passphrase: secrets are never written in the config: give private_key_passphrase_env (`},
		{"inline secret names the key that takes it", "repos:\n  - name: a\n    uri: /x\n    secret: abc\n",
			`watch.yaml:4: repos[0].secret: secrets are never written in the config: give webhook_secret_env (`},
		{"unset secret env", "repos:\n  - name: a\n    uri: /x\n    username: bot\n    password_env: NOPE\n",
			`watch.yaml:5: repos[0].password_env: environment variable NOPE is not set`},
		{"both env and file", "repos:\n  - name: a\n    uri: /x\n    password_env: LOCKS_PASSWORD\n    password_file: /p\n",
			`watch.yaml:5: repos[0].password_file: give password_env or password_file, not both`},
		{"reap_to without timeout", "repos:\n  - name: a\n    uri: /x\n    pools: {aws: 1h}\n    reap_to: {gpu: gpu-dirty}\n",
			`watch.yaml:5: repos[0].reap_to.gpu: pool "gpu" has no timeout under pools`},
		{"reap_to itself", "repos:\n  - name: a\n    uri: /x\n    pools: {aws: 1h}\n    reap_to: {aws: aws}\n",
			`watch.yaml:5: repos[0].reap_to: pool "aws" cannot be its own quarantine`},
		{"reap_to shared quarantine", "repos:\n  - name: a\n    uri: /x\n    pools: {aws: 1h, gpu: 1h}\n    reap_to: {aws: dirty, gpu: dirty}\n",
			`watch.yaml:5: repos[0].reap_to: pools "aws" and "gpu" share the quarantine "dirty": give each pool its own`},
		{"reap_to bad name", "repos:\n  - name: a\n    uri: /x\n    pools: {aws: 1h}\n    reap_to: {aws: ../x}\n",
			`watch.yaml:5: repos[0].reap_to: "../x" is not a pool name`},
		{"reap_on_success without timeout", "repos:\n  - name: a\n    uri: /x\n    pools: {aws: 1h}\n    reap_on_success: [aws, gpu]\n",
			`watch.yaml:5: repos[0].reap_on_success[1]: pool "gpu" has no timeout under pools`},
		{"bad repo name", "repos:\n  - name: ../etc\n    uri: /x\n", `watch.yaml:2: repos[0].name: "../etc"`},
		{"concourse without url", "concourse:\n  team: main\nrepos: [{name: a, uri: /x}]\n", `watch.yaml:1: concourse: missing url`},
		{"bad listen", "listen: 9090\nrepos: [{name: a, uri: /x}]\n", `watch.yaml:1: listen: "9090" is not host:port`},
		{"syntax error", "repos:\n  - name: a\n   uri: /x\n", `watch.yaml:1: did not find expected '-' indicator`}, // yaml's line: where the sequence's context starts
		{"wrong type", "repos:\n  name: a\n", `watch.yaml:2: cannot unmarshal`},
		// Security review: config accepted that misbehaved later, or silently in part.
		{"second document", "repos: [{name: a, uri: /x}]\n---\nread_token_env: TOKEN\n",
			`watch.yaml:2: a second YAML document: the config is one document`},
		{"second document, empty", "repos: [{name: a, uri: /x}]\n\n---\n",
			`watch.yaml:3: a second YAML document: the config is one document`},
		{"interval below the minimum", "interval: 1ns\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:1: interval: "1ns" is less than the minimum of 1s`},
		{"cycle_timeout below the minimum", "cycle_timeout: 999ms\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:1: cycle_timeout: "999ms" is less than the minimum of 1s`},
		{"listen port out of range", "listen: localhost:99999\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:1: listen: "localhost:99999" is not host:port (e.g. 127.0.0.1:9090): address 99999: invalid port`},
		{"webhook_listen port out of range", "webhook_listen: :65536\nrepos: [{name: a, uri: /x}]\n",
			`watch.yaml:1: webhook_listen: ":65536" is not host:port`},
		{"same uri and branch twice", "repos:\n  - name: a\n    uri: ssh://git@git.example.com/locks.git\n    branch: main\n" +
			"  - name: b\n    uri: ssh://bot@git.example.com/locks.git\n    branch: main\n",
			`watch.yaml:6: repos[1].uri: repo "b": the same uri and branch as repos[0] (a): give each branch one repo entry`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("watch.yaml", []byte(c.yaml), env)
			if err == nil {
				t.Fatalf("no error for:\n%s", c.yaml)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T, want *ConfigError", err)
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error:\n  %s\nwant it to start with:\n  %s", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the secret: %s", err)
			}
		})
	}
}

func TestLoadNamesAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := Load(path, fakeEnv(nil))
	if err == nil || !strings.HasPrefix(err.Error(), path+": ") {
		t.Fatalf("error %v", err)
	}
}

// The complete example of docs/watch.md loads, with every secret resolved.
func TestTheDocumentedExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../docs/watch.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no yaml block in docs/watch.md")
	}
	cfg, err := Parse("watch.yaml", m[1], func(name string) (string, bool) { return "secret-of-" + name, true })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9090" || cfg.Interval != time.Minute || cfg.CycleTimeout != 5*time.Minute || cfg.CacheDir != "/var/lib/poolboy" {
		t.Errorf("top level: %+v", cfg)
	}
	if len(cfg.Concourse) != 2 || cfg.Concourse[0].Password != "secret-of-CONCOURSE_PASSWORD" ||
		cfg.Concourse[1].Token != "secret-of-STAGING_CONCOURSE_TOKEN" {
		t.Errorf("concourse: %+v", cfg.Concourse)
	}
	if len(cfg.Repos) < 2 {
		t.Fatalf("repos: %+v", cfg.Repos)
	}
	r := cfg.Repos[0]
	if r.Timeouts["aws"] != 90*time.Minute || r.Timeouts["gpu"] != 2*time.Hour || !r.ReapOnSuccess["aws"] || r.ReapTo["gpu"] != "gpu-dirty" ||
		string(r.WebhookSecret) == "" || len(r.Auth.PrivateKey) == 0 {
		t.Errorf("repo 0: %+v", r)
	}
	if cfg.Repos[1].Timeouts["worker_pool"] != time.Hour || cfg.Repos[1].Auth.Password == "" {
		t.Errorf("repo 1 (a bare number is minutes): %+v", cfg.Repos[1])
	}
}

func TestSecretsFromFilesAndDefaults(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	y := "repos:\n  - name: a\n    uri: https://git.example.com/l.git\n    username: bot\n    password_file: " + pw +
		"\n    webhook_secret_file: " + pw + "\n    private_key_passphrase_file: " + pw + "\n"
	cfg, err := Parse("w.yaml", []byte(y), fakeEnv(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Repos[0]
	if r.Auth.Password != "s3cret" || string(r.WebhookSecret) != "s3cret" || r.Auth.PrivateKeyPassphrase != "s3cret" {
		t.Errorf("secrets from files: %+v", r)
	}
	if cfg.Listen != DefaultListen || cfg.Interval != DefaultInterval || cfg.CycleTimeout != DefaultCycleTimeout || cfg.CacheDir == "" || cfg.Concourse != nil {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestReadTokenConfig(t *testing.T) {
	base := "cache_dir: /tmp/x\nrepos: [{name: a, uri: /x}]\n"
	cfg, err := Parse("watch.yaml", []byte("read_token_env: READ_TOKEN\n"+base), fakeEnv(map[string]string{"READ_TOKEN": "tok-123\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg.ReadToken) != "tok-123" || !slices.Contains(cfg.Secrets, "tok-123") {
		t.Errorf("ReadToken %q, Secrets %q", cfg.ReadToken, cfg.Secrets)
	}
	if cfg, err := Parse("watch.yaml", []byte(base), fakeEnv(nil)); err != nil || cfg.ReadToken != nil {
		t.Errorf("no read token configured: %q, %v", cfg.ReadToken, err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-token")
	for yaml, want := range map[string]string{
		"read_token_env: NOPE\n" + base:             "watch.yaml:1: read_token_env: environment variable NOPE is not set or empty",
		"read_token: hunter2\n" + base:              "watch.yaml:1: read_token: secrets are never written in the config",
		"read_token_file: " + missing + "\n" + base: "watch.yaml:1: read_token_file: open " + missing,
	} {
		_, err := Parse("watch.yaml", []byte(yaml), fakeEnv(nil))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the inline token: %v", err)
		}
	}
}
