package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

func TestMissingFieldsUseUpstreamWords(t *testing.T) {
	t.Parallel()
	lines := []string{"invalid payload (missing uri)", "invalid payload (missing branch)", "invalid payload (missing pool)"}
	noParams := "invalid payload (missing acquire, release, remove, claim, add, add_claimed, update, check, or check_unclaimed)"
	empty := func() *bytes.Reader { return bytes.NewReader([]byte(`{"source":{}}`)) }
	var stdout bytes.Buffer
	checkErr := Check(context.Background(), empty(), &stdout, &bytes.Buffer{}, envOf(nil))
	inErr := In(context.Background(), t.TempDir(), empty(), &stdout, &bytes.Buffer{}, envOf(nil))
	outErr := Out(context.Background(), t.TempDir(), empty(), &stdout, &bytes.Buffer{}, envOf(nil))
	for name, err := range map[string]error{"check": checkErr, "in": inErr, "out": outErr} {
		if err == nil {
			t.Fatalf("%s accepted an empty source", name)
		}
		got := strings.Split(err.Error(), "\n")
		want := lines
		if name == "out" {
			want = append(append([]string{}, lines...), noParams)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: error lines %q, want %q", name, got, want)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}

	// With a good source, the params line alone.
	err := Out(context.Background(), t.TempDir(), marshal(t, map[string]any{"source": src("file:///nowhere"), "params": map[string]any{}}),
		&stdout, &bytes.Buffer{}, envOf(nil))
	if err == nil || err.Error() != noParams {
		t.Errorf("out without params: %v, want %q", err, noParams)
	}
	err = Out(context.Background(), t.TempDir(), marshal(t, map[string]any{"source": src("file:///nowhere"),
		"params": map[string]any{"acquire": true, "release": "x"}}), &stdout, &bytes.Buffer{}, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "got acquire, release") {
		t.Errorf("out with two operations: %v", err)
	}
}

func TestWrongTypesAreOneLineErrors(t *testing.T) {
	t.Parallel()
	bare := awsRepo(t)
	cases := []struct {
		req  string
		want string
	}{
		{`{"source":{"uri":5,"branch":"main","pool":"aws"}}`, "invalid payload: source.uri must be a string, not number"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws","retry_delay":true}}`, `invalid payload: source.retry_delay must be a duration like "10s", not bool`},
		{`{"source":{"uri":"x","branch":"main","pool":"aws","retry_delay":"soon"}}`, `source.retry_delay "soon" is not a duration like "10s"`},
		{`{"source":{"uri":"x","branch":"main","pool":"aws","stale_timeout":"a while"}}`, `source.stale_timeout "a while" is neither minutes nor a duration`},
		{`{"source":{"uri":"x","branch":"main","pool":"aws","git_config":{"a":"b"}}}`, "invalid payload: source.git_config must be a list of {name, value}, not object"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws","forward_agent":"yes"}}`, "invalid payload: source.forward_agent must be true or false, not string"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":"yes"}}`, "invalid payload: params.acquire must be true, false or a number of locks from 1 to 64, not string"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":0}}`, "invalid payload: params.acquire must be true, false or a number of locks from 1 to 64, not number 0"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":65}}`, "invalid payload: params.acquire must be true, false or a number of locks from 1 to 64, not number 65"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":1.5}}`, "not number 1.5"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":true,"priority":9223372036854775807}}`, "invalid payload: params.priority 9223372036854775807 must be between -1000000 and 1000000"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":true,"with":[{"pool":"gpu","count":0}]}}`, "invalid payload: params.with.count must be a number of locks from 1 to 64, not number 0"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":true,"with":{"pool":"gpu"}}}`, "invalid payload: params.with must be a list of {pool, count}, not object"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"claim":"env-1","with":[{"pool":"gpu"}]}}`, "invalid payload: params.with goes with acquire, not claim"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":true,"with":[{"count":2}]}}`, "invalid payload: params.with[0] needs a pool"},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":true,"with":[{"pool":".q"}]}}`, `invalid payload: params.with[0].pool ".q" must be the name of a top-level directory`},
		{`{"source":{"uri":"x","branch":"main","pool":"aws"},"params":{"acquire":40,"with":[{"pool":"gpu","count":30}]}}`, "invalid payload: params.acquire and params.with ask for 70 locks; at most 64 at once"},
		{`{"source":{"uri":"x","branch":"main","pool":"../aws"},"params":{"acquire":true}}`, `pool "../aws" must be the name of a top-level directory`},
		{`{"source":`, "invalid payload: "},
	}
	for _, c := range cases {
		err := Out(context.Background(), t.TempDir(), strings.NewReader(c.req), &bytes.Buffer{}, &bytes.Buffer{}, envOf(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", c.req, err, c.want)
		}
	}
	// Unknown fields are ignored, as upstream ignores them; typed values YAML may
	// produce (a number for a git_config value or a proxy port) are fine.
	s := src(fileURL(bare), "not_ours", []int{1}, "git_config", []map[string]any{{"name": "core.bigFileThreshold", "value": 10}},
		"stale_timeout", 60, "retry_delay", "20ms")
	mustOut(t, t.TempDir(), s, map[string]any{"acquire": true, "something_else": 1}, nil)
}

func TestCheck(t *testing.T) {
	bare := newRepo(t, []string{"aws", "gpu"})
	c := testenv.NewClone(t, fileURL(bare), "main")
	commit := func(path, content string) string {
		t.Helper()
		p := filepath.Join(c.Dir, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		testenv.Git(t, c.Dir, "add", "-A")
		testenv.Git(t, c.Dir, "commit", "-q", "-m", "adding: "+filepath.Base(path))
		return testenv.Git(t, c.Dir, "rev-parse", "HEAD")
	}
	a1 := commit("aws/unclaimed/a1", "1")
	for i := range 40 { // history the shallow clone must reach through
		commit("gpu/unclaimed/g"+string(rune('a'+i%26))+string(rune('a'+i/26)), "g")
	}
	a2 := commit("aws/unclaimed/a2", "2")
	commit("gpu/unclaimed/last", "g")
	a3 := commit("aws/unclaimed/a3", "3")
	g := commit("gpu/unclaimed/later", "g")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")

	check := func(v any) []string {
		t.Helper()
		var stdout bytes.Buffer
		log := &logBuffer{}
		err := Check(context.Background(), marshal(t, map[string]any{"source": src(fileURL(bare)), "version": v}), &stdout, log, envOf(nil))
		if err != nil {
			t.Fatalf("check %v: %v\n%s", v, err, log)
		}
		var vs []version
		if err := json.Unmarshal(stdout.Bytes(), &vs); err != nil || vs == nil {
			t.Fatalf("check printed %q: %v", stdout.String(), err)
		}
		var refs []string
		for _, v := range vs {
			refs = append(refs, v.Ref)
		}
		return refs
	}
	for _, depth := range []int{16, 1} { // 1: every answer needs deepening
		checkDepth = depth
		t.Cleanup(func() { checkDepth = 16 })
		for _, c := range []struct {
			name    string
			version any
			want    []string
		}{
			{"no version: the newest commit of the pool", nil, []string{a3}},
			// Concourse's contract (and upstream's ref~1..HEAD): a valid version first.
			{"from a version, oldest first", map[string]string{"ref": a1}, []string{a1, a2, a3}},
			{"from the newest", map[string]string{"ref": a3}, []string{a3}},
			{"from a commit of another pool", map[string]string{"ref": g}, []string{g}},
			{"a version no longer in history: the newest", map[string]string{"ref": strings.Repeat("ab", 20)}, []string{a3}},
			{"not a commit id: the newest", map[string]string{"ref": "HEAD~3"}, []string{a3}},
		} {
			if got := check(c.version); strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("depth %d, %s: got %v, want %v", depth, c.name, got, c.want)
			}
		}
	}

	var stdout bytes.Buffer
	err := Check(context.Background(), marshal(t, map[string]any{"source": src(fileURL(bare), "pool", "azure")}), &stdout, &bytes.Buffer{}, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), `pool "azure" does not exist in branch main (pools there: "aws", "gpu")`) {
		t.Errorf("unknown pool: %v", err)
	}
}

func TestInWritesNameMetadataAndRef(t *testing.T) {
	bare := newRepo(t, []string{"aws"},
		lock{pool: "aws", name: "env-1", content: "first\nconfig"},
		lock{pool: "aws", name: "env-2", content: "second", claimed: true})
	claim := testenv.Git(t, bare, "rev-parse", "main")
	c := testenv.NewClone(t, fileURL(bare), "main")
	for range 30 {
		testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "noise")
	}
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")

	for _, c := range []struct {
		name   string
		depth  int
		params map[string]any
	}{
		{"default depth", 16, nil},
		{"shallow clone deepened", 1, nil},
		{"params.depth", 16, map[string]any{"depth": 1}},
	} {
		inDepth = c.depth
		dir := filepath.Join(t.TempDir(), "lock")
		r, err := in(t, dir, src(fileURL(bare)), claim, c.params)
		inDepth = 16
		if err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, r.log)
		}
		if r.Version.Ref != claim || r.lock() != "env-2" || r.meta("pool_name") != "aws" {
			t.Errorf("%s: answer %+v", c.name, r)
		}
		for file, want := range map[string]string{"name": "env-2\n", "metadata": "second", "ref": claim + "\n"} {
			got, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil || string(got) != want {
				t.Errorf("%s: %s = %q (%v), want %q", c.name, file, got, err, want)
			}
		}
	}

	if _, err := in(t, t.TempDir(), src(fileURL(bare)), strings.Repeat("0", 40), nil); err == nil ||
		!strings.Contains(err.Error(), "is not in the history of branch main") {
		t.Errorf("unknown version: %v", err)
	}
	if _, err := in(t, t.TempDir(), src(fileURL(bare)), "main", nil); err == nil ||
		!strings.Contains(err.Error(), "is not a commit id") {
		t.Errorf("symbolic version: %v", err)
	}
}

// in as upstream's: the pool's newest lock commit at or before the version names the
// lock, and a claim that no longer holds its lock fails, however far back in a
// shallow clone's history either lies. The claim is the ref only for a version that
// is about the lock.
func TestInFollowsTheClaimThroughShallowHistory(t *testing.T) {
	bare := newRepo(t, []string{"aws", "gpu"},
		lock{pool: "aws", name: "env-1", content: "one"},
		lock{pool: "aws", name: "env-2", content: "two", claimed: true})
	claim := testenv.Git(t, bare, "rev-parse", "main")
	c := testenv.NewClone(t, fileURL(bare), "main")
	for range 30 {
		testenv.Git(t, c.Dir, "commit", "-q", "--allow-empty", "-m", "noise")
	}
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")
	noise := testenv.Git(t, bare, "rev-parse", "main")
	t.Cleanup(func() { inDepth = 16 })
	for _, depth := range []int{16, 1} {
		inDepth = depth
		dir := t.TempDir()
		r, err := in(t, dir, src(fileURL(bare)), noise, nil)
		if err != nil || r.Version.Ref != noise || r.lock() != "env-2" {
			t.Fatalf("depth %d: in of a later commit about no pool: %+v %v", depth, r, err)
		}
		// The version is not env-2's claim, so the claim is no fence for it.
		if ref, _ := os.ReadFile(filepath.Join(dir, "ref")); string(ref) != noise+"\n" {
			t.Errorf("depth %d: ref %q, want the version", depth, ref)
		}
		own := t.TempDir()
		if _, err := in(t, own, src(fileURL(bare)), claim, nil); err != nil {
			t.Fatalf("depth %d: in of the claim: %v", depth, err)
		}
		if ref, _ := os.ReadFile(filepath.Join(own, "ref")); string(ref) != claim+"\n" {
			t.Errorf("depth %d: ref %q for the claim itself, want the claim", depth, ref)
		}
	}

	c.Move(t, "aws/claimed/env-2", "aws/unclaimed/env-2", "unclaiming: env-2")
	for _, depth := range []int{16, 1} {
		inDepth = depth
		for _, v := range []string{claim, noise} {
			if r, err := in(t, t.TempDir(), src(fileURL(bare)), v, nil); err == nil || !strings.HasPrefix(err.Error(), notAcquired) {
				t.Errorf("depth %d: in of %s after the release: %+v %v", depth, v, r, err)
			}
		}
	}
	c.Move(t, "aws/unclaimed/env-2", "aws/claimed/env-2", "claiming: env-2")
	inDepth = 1
	if _, err := in(t, t.TempDir(), src(fileURL(bare)), claim, nil); err == nil || !strings.Contains(err.Error(), "claimed again") {
		t.Errorf("in of a claim taken over: %v", err)
	}
}

// pythonPoolBoy is the original Python pool boy's claim regex, applied as it does
// to `git log -1 --pretty=oneline PATH` (re.match: anchored at the start).
const pythonPoolBoy = `^[0-9a-f]+\s+(?P<team>.*)/(?P<pipeline>.*)/(?P<job>.*)\s+build\s+(?P<build>.*)\s+claiming:\s+.*`

func TestHolderRecordIsReadBack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name                           string
		env                            map[string]string
		team, pipeline, job, build, id string
		vars, url                      string
		python                         bool
	}{
		{name: "job build (v8: BUILD_URL)", env: jobEnv, team: "main", pipeline: "deploy", job: "test", build: "12",
			url: jobEnv["BUILD_URL"], python: true},
		{name: "job build before v8: URL composed", env: map[string]string{
			"BUILD_ID": "77", "BUILD_NAME": "3.1", "BUILD_TEAM_NAME": "ops", "BUILD_PIPELINE_NAME": "infra",
			"BUILD_JOB_NAME": "apply", "ATC_EXTERNAL_URL": "https://ci.example.com/"},
			team: "ops", pipeline: "infra", job: "apply", build: "3.1",
			url: "https://ci.example.com/teams/ops/pipelines/infra/jobs/apply/builds/3.1", python: true},
		{name: "instanced pipeline before v8", env: map[string]string{
			"BUILD_ID": "78", "BUILD_NAME": "4", "BUILD_TEAM_NAME": "ops", "BUILD_PIPELINE_NAME": "infra",
			"BUILD_PIPELINE_INSTANCE_VARS": `{"env":"stage/eu","n":2}`, "BUILD_JOB_NAME": "apply",
			"ATC_EXTERNAL_URL": "https://ci.example.com"},
			team: "ops", pipeline: "infra", job: "apply", build: "4", vars: `{"env":"stage/eu","n":2}`,
			url: "https://ci.example.com/teams/ops/pipelines/infra/jobs/apply/builds/4?vars.env=%22stage%2Feu%22&vars.n=2"},
		{name: "nested and dotted vars before v8: Concourse's own encoding", env: map[string]string{
			"BUILD_ID": "79", "BUILD_NAME": "5", "BUILD_TEAM_NAME": "ops", "BUILD_PIPELINE_NAME": "infra",
			"BUILD_PIPELINE_INSTANCE_VARS": `{"a.b":{"c":1},"env":{"region":"eu west"}}`, "BUILD_JOB_NAME": "apply",
			"ATC_EXTERNAL_URL": "https://ci.example.com"},
			team: "ops", pipeline: "infra", job: "apply", build: "5", vars: `{"a.b":{"c":1},"env":{"region":"eu west"}}`,
			url: "https://ci.example.com/teams/ops/pipelines/infra/jobs/apply/builds/5?vars.%22a.b%22.c=1&vars.env.region=%22eu+west%22"},
		{name: "one-off build before v8", env: map[string]string{"BUILD_ID": "9001", "BUILD_TEAM_NAME": "main",
			"ATC_EXTERNAL_URL": "https://ci.example.com"}, id: "9001", url: "https://ci.example.com/builds/9001"},
		{name: "no build at all", env: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			bare := awsRepo(t)
			r := mustOut(t, t.TempDir(), src(fileURL(bare)), map[string]any{"acquire": true}, c.env)
			msg := message(t, bare, r.Version.Ref)
			m := commitmsg.Parse(msg)
			if m.Op != commitmsg.OpClaim || m.Lock != "env-1" {
				t.Errorf("message %q parses as %+v", msg, m)
			}
			o := m.Owner
			if o.Team != c.team || o.Pipeline != c.pipeline || o.Job != c.job || o.Build != c.build ||
				o.BuildID != c.id || o.VarsJSON() != c.vars || o.URL != c.url {
				t.Errorf("message %q: owner %+v (vars %s), want team %q pipeline %q job %q build %q id %q vars %s url %q",
					msg, o, o.VarsJSON(), c.team, c.pipeline, c.job, c.build, c.id, c.vars, c.url)
			}
			if c.env != nil && !strings.Contains(msg, "\n\nPoolboy-Build-Id: "+c.env["BUILD_ID"]+"\n") {
				t.Errorf("message %q lacks the trailers", msg)
			}
			if o.ID != c.env["BUILD_ID"] {
				t.Errorf("message %q: recorded build id %q, want %q", msg, o.ID, c.env["BUILD_ID"])
			}
			oneline := testenv.Git(t, bare, "log", "-1", "--pretty=oneline", "main", "--", "aws/claimed/env-1")
			if !c.python {
				return
			}
			groups := matchGroups(pythonPoolBoy, oneline)
			if groups == nil || groups["team"] != c.team || groups["pipeline"] != c.pipeline ||
				groups["job"] != c.job || groups["build"] != c.build {
				t.Errorf("the Python pool boy reads %q as %v", oneline, groups)
			}
		})
	}
}

func TestOutAnswerAndLogs(t *testing.T) {
	t.Parallel()
	bare := awsRepo(t)
	before := head(t, bare)
	var stdout bytes.Buffer
	log := &logBuffer{}
	err := Out(context.Background(), t.TempDir(), marshal(t, map[string]any{"source": src(fileURL(bare)), "params": map[string]any{"acquire": true}}),
		&stdout, log, envOf(jobEnv))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("stdout %q: %v", stdout.String(), err)
	}
	ref := head(t, bare)
	want := `{"version":{"ref":"` + ref + `"},"metadata":[{"name":"lock_name","value":"env-1"},{"name":"pool_name","value":"aws"}]}` + "\n"
	if stdout.String() != want {
		t.Errorf("stdout = %s, want %s", stdout.String(), want)
	}
	if parent := testenv.Git(t, bare, "rev-parse", "main^"); parent != before {
		t.Errorf("the claim's parent is %s, want the old head %s: one commit per operation", parent, before)
	}
	if !strings.Contains(log.String(), "acquiring lock on: aws") {
		t.Errorf("log = %q", log.String())
	}
}

func TestTransports(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	newRepoAt := func(name string) string {
		bare := filepath.Join(root, name)
		spec := fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: time.Now().Add(-time.Hour),
			Ops: []fixture.Op{{Kind: fixture.Add, Pool: "aws", Lock: "env-1", Content: "x", At: time.Now().Add(-time.Hour)}}}
		if err := fixture.Build(context.Background(), bare, spec); err != nil {
			t.Fatal(err)
		}
		return bare
	}
	daemonRepo := newRepoAt("daemon.git")
	httpRepo := newRepoAt("http.git")
	daemon := testenv.GitDaemon(t, root)
	const user, password = "bot", "pw-8c1e5f-secret"
	server := testenv.GitHTTP(t, root, user, password)

	for _, c := range []struct {
		name   string
		bare   string
		source map[string]any
	}{
		{"git daemon", daemonRepo, src(daemon + "daemon.git")},
		{"smart HTTP with basic auth", httpRepo, src(server.URL+"http.git", "username", user, "password", password)},
	} {
		dir := t.TempDir()
		acq := mustOut(t, dir, c.source, map[string]any{"acquire": true}, jobEnv)
		get(t, dir, "lock", c.source, acq.Version.Ref)
		rel := mustOut(t, dir, c.source, map[string]any{"release": "lock"}, jobEnv)
		if acq.lock() != "env-1" || rel.lock() != "env-1" || head(t, c.bare) != rel.Version.Ref {
			t.Errorf("%s: acquire %+v, release %+v", c.name, acq, rel)
		}
		wantTree(t, c.bare, "aws/unclaimed/env-1")
	}

	// A wrong password fails, and no secret shows anywhere.
	log := &logBuffer{}
	_, err := out(t, context.Background(), t.TempDir(),
		src(server.URL+"http.git", "username", user, "password", "wrong-"+password, "private_key", "-----BEGIN KEY-----\nAAAAsecretkeymaterial\n-----END KEY-----\n"),
		map[string]any{"acquire": true}, nil, log)
	if err == nil {
		t.Fatal("a wrong password worked")
	}
	for _, s := range []string{password, "AAAAsecretkeymaterial"} {
		if strings.Contains(err.Error(), s) || strings.Contains(log.String(), s) {
			t.Errorf("secret %q shown: error %q, log %q", s, err, log)
		}
	}
}
