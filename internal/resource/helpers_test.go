package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// lock is one lock of a test repository.
type lock struct {
	pool, name, content string
	claimed             bool
	age                 time.Duration // how long ago it was claimed; default 1h
}

// newRepo builds a bare repository (branch main) with the pools and locks, and
// returns its path. Locks are added 9h ago and claimed age ago.
func newRepo(t *testing.T, pools []string, locks ...lock) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	spec := fixture.Spec{Branch: "main", Pools: pools, Start: now.Add(-10 * time.Hour)}
	for _, l := range locks {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Add, Pool: l.pool, Lock: l.name, Content: l.content, At: now.Add(-9 * time.Hour)})
	}
	for _, l := range locks {
		if l.claimed {
			age := l.age
			if age == 0 {
				age = time.Hour
			}
			spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Claim, Pool: l.pool, Lock: l.name, At: now.Add(-age)})
		}
	}
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatal(err)
	}
	return dir
}

// awsRepo is pool aws with env-1 free and env-2 claimed, and an empty pool gpu.
func awsRepo(t *testing.T) string {
	return newRepo(t, []string{"aws", "gpu"},
		lock{pool: "aws", name: "env-1", content: "one"},
		lock{pool: "aws", name: "env-2", content: "two", claimed: true})
}

// src is a source for pool aws of the repository at url.
func src(url string, extra ...any) map[string]any {
	s := map[string]any{"uri": url, "branch": "main", "pool": "aws", "retry_delay": "10ms"}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

func fileURL(bare string) string { return "file://" + bare }

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

var jobEnv = map[string]string{
	"BUILD_ID": "1234", "BUILD_NAME": "12", "BUILD_TEAM_NAME": "main",
	"BUILD_PIPELINE_NAME": "deploy", "BUILD_JOB_NAME": "test",
	"BUILD_URL": "https://ci.example.com/teams/main/pipelines/deploy/jobs/test/builds/12",
}

func marshal(t *testing.T, v any) *bytes.Reader {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// result is a script's answer and log.
type result struct {
	Version  version        `json:"version"`
	Metadata []metadataPair `json:"metadata"`
	log      string
}

func (r result) lock() string { return r.meta("lock_name") }

func (r result) meta(name string) string {
	for _, m := range r.Metadata {
		if m.Name == name {
			return m.Value
		}
	}
	return ""
}

// out runs Out with source and params; env may be nil.
func out(t *testing.T, ctx context.Context, dir string, source, params map[string]any, env map[string]string, log *logBuffer) (result, error) {
	t.Helper()
	if log == nil {
		log = &logBuffer{}
	}
	var stdout bytes.Buffer
	err := Out(ctx, dir, marshal(t, map[string]any{"source": source, "params": params}), &stdout, log, envOf(env))
	return parse(t, stdout.Bytes(), log, err)
}

func in(t *testing.T, dir string, source map[string]any, ref string, params map[string]any) (result, error) {
	t.Helper()
	log := &logBuffer{}
	var stdout bytes.Buffer
	req := map[string]any{"source": source, "version": map[string]string{"ref": ref}, "params": params}
	err := In(context.Background(), dir, marshal(t, req), &stdout, log, envOf(nil))
	return parse(t, stdout.Bytes(), log, err)
}

func parse(t *testing.T, stdout []byte, log *logBuffer, err error) (result, error) {
	t.Helper()
	r := result{log: log.String()}
	if err != nil {
		if len(stdout) > 0 {
			t.Errorf("stdout has %q although the script failed", stdout)
		}
		return r, err
	}
	if err := json.Unmarshal(stdout, &r); err != nil {
		t.Fatalf("stdout %q is not the JSON answer: %v", stdout, err)
	}
	return r, nil
}

// mustOut is out that must succeed.
func mustOut(t *testing.T, dir string, source, params map[string]any, env map[string]string) result {
	t.Helper()
	r, err := out(t, context.Background(), dir, source, params, env, nil)
	if err != nil {
		t.Fatalf("out %v: %v\nlog:\n%s", params, err, r.log)
	}
	return r
}

// get runs in for version ref into DIR/step, as Concourse's implicit get after a
// put, or a later get of that version, does.
func get(t *testing.T, dir, step string, source map[string]any, ref string) result {
	t.Helper()
	r, err := in(t, filepath.Join(dir, step), source, ref, nil)
	if err != nil {
		t.Fatalf("in %s: %v\nlog:\n%s", ref, err, r.log)
	}
	return r
}

// logBuffer is a script's stderr. It is safe to read while the script writes, and
// signals (closes the channel from notify) when a line containing a string is
// written: tests wait on what a script says, never on time.
type logBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	waits []logWait
}

type logWait struct {
	text string
	ch   chan struct{}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	kept := b.waits[:0]
	for _, w := range b.waits {
		if strings.Contains(b.buf.String(), w.text) {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	b.waits = kept
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// notify returns a channel closed once the log contains text.
func (b *logBuffer) notify(text string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	if strings.Contains(b.buf.String(), text) {
		close(ch)
	} else {
		b.waits = append(b.waits, logWait{text, ch})
	}
	return ch
}

// await fails the test when ch is not closed within a generous bound: the bound
// only turns a hang into a failure, it synchronises nothing.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(60 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// tree is the set of pool/state/lock paths at the head of bare's main.
func tree(t *testing.T, bare string) map[string]bool {
	t.Helper()
	set := map[string]bool{}
	for _, p := range strings.Split(testenv.Git(t, bare, "ls-tree", "-r", "--name-only", "main"), "\n") {
		if p != "" && !strings.HasSuffix(p, ".gitkeep") {
			set[p] = true
		}
	}
	return set
}

func head(t *testing.T, bare string) string {
	t.Helper()
	return testenv.Git(t, bare, "rev-parse", "main")
}

func message(t *testing.T, bare, commit string) string {
	t.Helper()
	return testenv.Git(t, bare, "log", "-1", "--format=%B", commit)
}

// writeStep writes files into DIR/step, as an earlier step of the build would.
func writeStep(t *testing.T, dir, step string, files map[string]string) {
	t.Helper()
	d := filepath.Join(dir, step)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func wantTree(t *testing.T, bare string, want ...string) {
	t.Helper()
	got := tree(t, bare)
	if len(got) != len(want) {
		t.Errorf("remote has %v, want %v", keys(got), want)
		return
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("remote has %v, want %v", keys(got), want)
			return
		}
	}
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// matchGroups matches re against s and returns its named groups, or nil.
func matchGroups(re, s string) map[string]string {
	r := regexp.MustCompile(re)
	m := r.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	groups := map[string]string{}
	for i, name := range r.SubexpNames() {
		if name != "" {
			groups[name] = m[i]
		}
	}
	return groups
}
