package commitmsg

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// want is an Owner flattened for comparison: Vars as VarsJSON, plus String().
type want struct {
	op                               Op
	lock                             string
	team, pipeline, vars, job, build string
	buildID, url, str                string
}

const host = "http://ci.local:8080"

var parseTests = []struct {
	name string
	msg  string
	want want
}{
	// No prefix: every operation.
	{"claim", "claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"unclaim", "unclaiming: env-1", want{op: OpUnclaim, lock: "env-1", str: "unknown"}},
	{"remove", "removing: env-1", want{op: OpRemove, lock: "env-1", str: "unknown"}},
	{"add claimed", "adding claimed: env-1", want{op: OpAddClaimed, lock: "env-1", str: "unknown"}},
	{"add unclaimed", "adding unclaimed: env-1", want{op: OpAddUnclaimed, lock: "env-1", str: "unknown"}},
	{"bare adding", "adding: env-1", want{op: OpAddUnclaimed, lock: "env-1", str: "unknown"}},
	{"update", "updating: env-1", want{op: OpUpdate, lock: "env-1", str: "unknown"}},
	{"trailing whitespace and CR", "claiming: env-1 \t\r\nbody", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"lock with spaces and keyword", "claiming: my lock claiming: x", want{op: OpClaim, lock: "my lock claiming: x", str: "unknown"}},

	// 2015.
	{"2015 job", "locks/hold #12 claiming: env-1",
		want{op: OpClaim, lock: "env-1", pipeline: "locks", job: "hold", build: "12", str: "locks/hold #12"}},
	{"2015 job backquoted", "locks/hold `#12` unclaiming: env-1",
		want{op: OpUnclaim, lock: "env-1", pipeline: "locks", job: "hold", build: "12", str: "locks/hold #12"}},
	{"2015 one-off", "one-off #123 claiming: env-1",
		want{op: OpClaim, lock: "env-1", buildID: "123", str: "one-off build 123"}},
	{"2015 one-off backquoted", "one-off `#123` removing: env-1",
		want{op: OpRemove, lock: "env-1", buildID: "123", str: "one-off build 123"}},

	// 2016.
	{"2016 job", "locks/hold build 12 adding claimed: env-1",
		want{op: OpAddClaimed, lock: "env-1", pipeline: "locks", job: "hold", build: "12", str: "locks/hold #12"}},
	{"2016 one-off", "one-off build 123 adding unclaimed: env-1",
		want{op: OpAddUnclaimed, lock: "env-1", buildID: "123", str: "one-off build 123"}},
	{"2016 bare adding", "locks/hold build 3 adding: env-1",
		want{op: OpAddUnclaimed, lock: "env-1", pipeline: "locks", job: "hold", build: "3", str: "locks/hold #3"}},

	// 2018.
	{"2018 team", "main/locks/hold build 12 updating: env-1",
		want{op: OpUpdate, lock: "env-1", team: "main", pipeline: "locks", job: "hold", build: "12", str: "main/locks/hold #12"}},
	{"2018 rerun", "main/locks/hold build 12.1 unclaiming: env-1",
		want{op: OpUnclaim, lock: "env-1", team: "main", pipeline: "locks", job: "hold", build: "12.1", str: "main/locks/hold #12.1"}},

	// 2026-01: raw instance vars.
	{"2026-01 vars", `main/locks/{"env":"stage"}/hold build 3 claiming: env-1`,
		want{op: OpClaim, lock: "env-1", team: "main", pipeline: "locks", vars: `{"env":"stage"}`, job: "hold", build: "3",
			str: `main/locks/{"env":"stage"}/hold #3`}},
	{"2026-01 vars with slash brace space", `main/locks/{"path":"a/b } c","z":1}/hold build 3 removing: env-1`,
		want{op: OpRemove, lock: "env-1", team: "main", pipeline: "locks", vars: `{"path":"a/b } c","z":1}`, job: "hold", build: "3",
			str: `main/locks/{"path":"a/b } c","z":1}/hold #3`}},
	{"2026-01 nested vars sorted", `main/locks/{"z":true,"a":{"y":2.50,"b":[1,"x/y",null]}}/hold build 4.2 unclaiming: env-2`,
		want{op: OpUnclaim, lock: "env-2", team: "main", pipeline: "locks", vars: `{"a":{"b":[1,"x/y",null],"y":2.50},"z":true}`,
			job: "hold", build: "4.2", str: `main/locks/{"a":{"b":[1,"x/y",null],"y":2.50},"z":true}/hold #4.2`}},
	{"2026-01 keyword inside vars", `main/locks/{"note":"p/j build 1 claiming: y"}/hold build 5 claiming: env-3`,
		want{op: OpClaim, lock: "env-3", team: "main", pipeline: "locks", vars: `{"note":"p/j build 1 claiming: y"}`, job: "hold", build: "5",
			str: `main/locks/{"note":"p/j build 1 claiming: y"}/hold #5`}},
	{"2026-01 spaced JSON compacted", `main/locks/{ "env" : "stage" }/hold build 3 claiming: env-1`,
		want{op: OpClaim, lock: "env-1", team: "main", pipeline: "locks", vars: `{"env":"stage"}`, job: "hold", build: "3",
			str: `main/locks/{"env":"stage"}/hold #3`}},

	// 2026-05: Build URL line.
	{"url job", "claiming: env-3\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/1",
		want{op: OpClaim, lock: "env-3", team: "main", pipeline: "locks", job: "hold", build: "1",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/1", str: "main/locks/hold #1"}},
	{"url instanced quoted", "claiming: env-3\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/1?vars.env=%22stage%22",
		want{op: OpClaim, lock: "env-3", team: "main", pipeline: "locks", vars: `{"env":"stage"}`, job: "hold", build: "1",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/1?vars.env=%22stage%22", str: `main/locks/{"env":"stage"}/hold #1`}},
	{"url instanced unquoted v8.0", "unclaiming: env-3\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/2?vars.env=stage&vars.n=3",
		want{op: OpUnclaim, lock: "env-3", team: "main", pipeline: "locks", vars: `{"env":"stage","n":3}`, job: "hold", build: "2",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/2?vars.env=stage&vars.n=3", str: `main/locks/{"env":"stage","n":3}/hold #2`}},
	{"url vars object", "claiming: env-3\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/1?vars=%7B%22env%22%3A%22stage%22%7D",
		want{op: OpClaim, lock: "env-3", team: "main", pipeline: "locks", vars: `{"env":"stage"}`, job: "hold", build: "1",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/1?vars=%7B%22env%22%3A%22stage%22%7D", str: `main/locks/{"env":"stage"}/hold #1`}},
	{"url nested dotted vars", "claiming: env-3\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/1?vars.a.b=1&vars.%22c.d%22=%22x%2Fy%22",
		want{op: OpClaim, lock: "env-3", team: "main", pipeline: "locks", vars: `{"a":{"b":1},"c.d":"x/y"}`, job: "hold", build: "1",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/1?vars.a.b=1&vars.%22c.d%22=%22x%2Fy%22", str: `main/locks/{"a":{"b":1},"c.d":"x/y"}/hold #1`}},
	{"url one-off", "claiming: env-3\nBuild URL: " + host + "/builds/11",
		want{op: OpClaim, lock: "env-3", buildID: "11", url: host + "/builds/11", str: "one-off build 11"}},
	{"url with path prefix", "updating: env-3\n\nsome text\nBuild URL: https://ci.example.com/concourse/teams/main/pipelines/locks/jobs/hold/builds/7.2\n",
		want{op: OpUpdate, lock: "env-3", team: "main", pipeline: "locks", job: "hold", build: "7.2",
			url: "https://ci.example.com/concourse/teams/main/pipelines/locks/jobs/hold/builds/7.2", str: "main/locks/hold #7.2"}},
	{"url empty (v7 server)", "claiming: env-6\nBuild URL: ",
		want{op: OpClaim, lock: "env-6", str: "unknown"}},
	{"url escaped segments", "claiming: env-3\nBuild URL: " + host + "/teams/my%20team/pipelines/a%2Fb/jobs/deploy%3Aprod/builds/3",
		want{op: OpClaim, lock: "env-3", team: "my team", pipeline: "a/b", job: "deploy:prod", build: "3",
			url: host + "/teams/my%20team/pipelines/a%2Fb/jobs/deploy%3Aprod/builds/3", str: "my team/a/b/deploy:prod #3"}},
	{"url CRLF", "removing: env-1\r\n\r\nBuild URL: " + host + "/builds/5\r\n",
		want{op: OpRemove, lock: "env-1", buildID: "5", url: host + "/builds/5", str: "one-off build 5"}},

	// Prefix and Build URL together.
	{"prefix plus url fills team", "locks/hold build 12 claiming: env-1\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/12",
		want{op: OpClaim, lock: "env-1", team: "main", pipeline: "locks", job: "hold", build: "12",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/12", str: "main/locks/hold #12"}},
	{"2015 prefix plus instanced url", "locks/hold #12 claiming: env-1\nBuild URL: " + host + "/teams/main/pipelines/locks/jobs/hold/builds/12?vars.env=%22qa%22",
		want{op: OpClaim, lock: "env-1", team: "main", pipeline: "locks", vars: `{"env":"qa"}`, job: "hold", build: "12",
			url: host + "/teams/main/pipelines/locks/jobs/hold/builds/12?vars.env=%22qa%22", str: `main/locks/{"env":"qa"}/hold #12`}},
	{"prefix and url disagree: prefix wins", "locks/hold build 12 claiming: env-1\nBuild URL: " + host + "/teams/main/pipelines/other/jobs/hold/builds/99",
		want{op: OpClaim, lock: "env-1", pipeline: "locks", job: "hold", build: "12",
			url: host + "/teams/main/pipelines/other/jobs/hold/builds/99", str: "locks/hold #12"}},
	{"one-off prefix plus url", "one-off build 8 claiming: env-1\nBuild URL: " + host + "/builds/8",
		want{op: OpClaim, lock: "env-1", buildID: "8", url: host + "/builds/8", str: "one-off build 8"}},

	// Garbage and edges: unknown owner, Op and Lock only when recognisable.
	{"empty", "", want{str: "unknown"}},
	{"whitespace only", "  \n\t\r\n ", want{str: "unknown"}},
	{"merge", "Merge branch 'x' into master", want{str: "unknown"}},
	{"human", "Initial commit", want{str: "unknown"}},
	{"human mentioning op", "fix claiming docs", want{str: "unknown"}},
	{"op only in body", "Update README\n\nclaiming: env-1", want{str: "unknown"}},
	{"no space after colon", "claiming:env-1", want{str: "unknown"}},
	{"not a whole word", "reclaiming: env-1", want{str: "unknown"}},
	{"op with empty lock", "claiming:   ", want{op: OpClaim, str: "unknown"}},
	{"human prefix", "WIP claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"too many slashes", "a/b/c/d build 1 claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"too few slashes", "hold build 1 claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"empty segment", "main//hold build 1 claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"build without number", "locks/hold build claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"bad build number", "locks/hold build 1a claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"bad rerun number", "locks/hold build 1. claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"one-off non-numeric", "one-off build abc claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"unbalanced backquote", "locks/hold `#12 claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"2015 form with team", "main/locks/hold #12 claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"non-UTF-8", "\xff\xfe/locks build 1 claiming: env-1", want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"broken vars JSON", `main/locks/{"env":"stage"/hold build 1 claiming: env-1`, want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"vars not an object", `main/locks/["a"]/hold build 1 claiming: env-1`, want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"vars then two segments", `main/locks/{"a":1}/x/hold build 1 claiming: env-1`, want{op: OpClaim, lock: "env-1", str: "unknown"}},
	{"url garbage", "claiming: env-1\nBuild URL: not a url", want{op: OpClaim, lock: "env-1", url: "not a url", str: "unknown"}},
	{"url bad build name", "claiming: env-1\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/abc",
		want{op: OpClaim, lock: "env-1", url: host + "/teams/main/pipelines/p/jobs/j/builds/abc", str: "unknown"}},
	{"url missing team", "claiming: env-1\nBuild URL: " + host + "/pipelines/p/jobs/j/builds/1",
		want{op: OpClaim, lock: "env-1", url: host + "/pipelines/p/jobs/j/builds/1", str: "unknown"}},
	{"url bad vars object", "claiming: env-1\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/1?vars=stage",
		want{op: OpClaim, lock: "env-1", url: host + "/teams/main/pipelines/p/jobs/j/builds/1?vars=stage", str: "unknown"}},
	{"url bad escape", "claiming: env-1\nBuild URL: " + host + "/teams/m%zz/pipelines/p/jobs/j/builds/1",
		want{op: OpClaim, lock: "env-1", url: host + "/teams/m%zz/pipelines/p/jobs/j/builds/1", str: "unknown"}},
	{"url on first line only", "Build URL: " + host + "/builds/5", want{str: "unknown"}},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse(tt.msg)
			o := m.Owner
			got := want{
				op: m.Op, lock: m.Lock,
				team: o.Team, pipeline: o.Pipeline, vars: o.VarsJSON(), job: o.Job, build: o.Build,
				buildID: o.BuildID, url: o.URL, str: o.String(),
			}
			if got != tt.want {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.msg, got, tt.want)
			}
			if (o.Vars == nil) != (tt.want.vars == "") {
				t.Errorf("Vars = %v, want nil only when not instanced", o.Vars)
			}
			if o.Known() != (tt.want.str != "unknown") {
				t.Errorf("Known() = %v for %q", o.Known(), tt.want.str)
			}
			if o.IsOneOff() != (tt.want.buildID != "") {
				t.Errorf("IsOneOff() = %v", o.IsOneOff())
			}
		})
	}
}

func TestOwnerString(t *testing.T) {
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, tt := range []struct {
		o         Owner
		str, vars string
	}{
		{Owner{}, "unknown", ""},
		{Owner{Team: "main", Pipeline: "p"}, "unknown", ""}, // no job or build
		{Owner{Pipeline: "p", Job: "j", Build: "12"}, "p/j #12", ""},
		{Owner{Team: "t", Pipeline: "p", Job: "j", Build: "12.1"}, "t/p/j #12.1", ""},
		{Owner{BuildID: "123"}, "one-off build 123", ""},
		// Written by hand: spacing and nested key order are normalised.
		{Owner{Team: "t", Pipeline: "p", Job: "j", Build: "1",
			Vars: map[string]json.RawMessage{"z": raw(`1`), "b": raw(`{ "y": 1, "x": [ 2 ] }`)}},
			`t/p/{"b":{"x":[2],"y":1},"z":1}/j #1`, `{"b":{"x":[2],"y":1},"z":1}`},
		// Invalid raw JSON renders no vars rather than failing.
		{Owner{Pipeline: "p", Job: "j", Build: "1", Vars: map[string]json.RawMessage{"a": raw(`{`)}}, "p/j #1", ""},
		{Owner{Pipeline: "p", Job: "j", Build: "1", Vars: map[string]json.RawMessage{}}, "p/j #1", ""},
	} {
		if got := tt.o.String(); got != tt.str {
			t.Errorf("%+v.String() = %q, want %q", tt.o, got, tt.str)
		}
		if got := tt.o.VarsJSON(); got != tt.vars {
			t.Errorf("%+v.VarsJSON() = %q, want %q", tt.o, got, tt.vars)
		}
	}
}

// The claim's own build: the server its Build URL names and the id poolboy's
// resource records, so evidence about another build can be told apart.
func TestServerAndID(t *testing.T) {
	for _, tt := range []struct {
		name, msg, server, id string
	}{
		{"job url", "claiming: e\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/1", host, ""},
		{"one-off url", "claiming: e\nBuild URL: " + host + "/builds/11", host, ""},
		{"path prefix", "claiming: e\nBuild URL: https://ci.example.com/concourse/teams/main/pipelines/p/jobs/j/builds/7.2?vars.env=%22qa%22",
			"https://ci.example.com/concourse", ""},
		{"poolboy resource", "main/p/j build 3 claiming: e\n\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/3\n\n" +
			"Poolboy-Build-Id: 4711\nPoolboy-Build-Team: main\nPoolboy-Build-Url: " + host + "/teams/main/pipelines/p/jobs/j/builds/3\n", host, "4711"},
		{"prefix and url disagree: no server", "p/j build 12 claiming: e\nBuild URL: " + host + "/teams/main/pipelines/other/jobs/j/builds/99", "", ""},
		{"prefix only", "main/p/j build 3 claiming: e", "", ""},
		{"non-numeric id ignored", "main/p/j build 3 claiming: e\n\nPoolboy-Build-Id: 12a\n", "", ""},
		{"relative url", "claiming: e\nBuild URL: /teams/main/pipelines/p/jobs/j/builds/1", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Parse(tt.msg).Owner
			if o.Server != tt.server || o.ID != tt.id {
				t.Errorf("Server, ID = %q, %q; want %q, %q", o.Server, o.ID, tt.server, tt.id)
			}
		})
	}
}

// A message whose parts name different builds says so: poolboy cannot tell
// whose claim it is. Parts that agree, or a part missing, are no conflict.
func TestConflict(t *testing.T) {
	for _, tt := range []struct {
		name, msg string
		conflict  []string // words of the conflict; nil: none
	}{
		{"first line and Build URL of another Concourse's build", "main/p/j build 3 claiming: e\nBuild URL: http://staging.local/teams/main/pipelines/p/jobs/j/builds/4",
			[]string{"main/p/j #3", "main/p/j #4", "http://staging.local"}},
		{"another pipeline", "p/j build 12 claiming: e\nBuild URL: " + host + "/teams/main/pipelines/other/jobs/j/builds/12", []string{"p/j #12", "main/other/j #12"}},
		{"another team", "ops/p/j build 12 claiming: e\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/12", []string{"ops/p/j #12"}},
		{"one-off ids", "one-off build 8 claiming: e\nBuild URL: " + host + "/builds/9", []string{"one-off build 8", "one-off build 9"}},
		{"agree", "main/p/j build 3 claiming: e\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/3", nil},
		{"the URL fills the team", "p/j build 3 claiming: e\nBuild URL: " + host + "/teams/main/pipelines/p/jobs/j/builds/3", nil},
		{"no Build URL", "main/p/j build 3 claiming: e", nil},
		{"empty Build URL (v7)", "main/p/j build 3 claiming: e\nBuild URL: ", nil},
		{"Build URL only", "claiming: e\nBuild URL: " + host + "/builds/9", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := Parse(tt.msg).Owner
			if (o.Conflict != "") != (tt.conflict != nil) {
				t.Fatalf("Conflict = %q, want one: %v", o.Conflict, tt.conflict != nil)
			}
			for _, w := range tt.conflict {
				if !strings.Contains(o.Conflict, w) {
					t.Errorf("Conflict %q lacks %q", o.Conflict, w)
				}
			}
		})
	}
}

func TestMultiLockMessages(t *testing.T) {
	const multi = "main/deploy/test build 12 claiming: env-1" + " (+2 more)\n\nBuild URL: " + host + "/teams/main/pipelines/deploy/jobs/test/builds/12\n\n" +
		"Poolboy-Build-Id: 99\nPoolboy-Lock-Set: aws/env-1\nPoolboy-Lock-Set: aws/env 2\nPoolboy-Lock-Set: gpu/g-1\nPoolboy-Nonce: X\n"
	cases := []struct {
		name  string
		msg   string
		op    Op
		lock  string
		locks []LockRef
	}{
		{"claim of three", multi, OpClaim, "env-1", []LockRef{{"aws", "env-1"}, {"aws", "env 2"}, {"gpu", "g-1"}}},
		{"release of three", strings.Replace(multi, "claiming:", "unclaiming:", 1), OpUnclaim, "env-1", []LockRef{{"aws", "env-1"}, {"aws", "env 2"}, {"gpu", "g-1"}}},
		{"single claim: upstream's message, no set", "main/deploy/test build 12 claiming: env-1\n", OpClaim, "env-1", nil},
		{"one set line is no set", "claiming: env-1\n\nPoolboy-Lock-Set: aws/env-1\n", OpClaim, "env-1", nil},
		{"a malformed set line spoils the set", strings.Replace(multi, "gpu/g-1", "g-1", 1), OpClaim, "env-1 (+2 more)", nil},
		{"a reap keeps its own lock", "unclaiming: env-1\n\nPoolboy-Lock: env-1\n", OpUnclaim, "env-1", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := Parse(c.msg)
			if m.Op != c.op || m.Lock != c.lock || !reflect.DeepEqual(m.Locks, c.locks) {
				t.Errorf("Parse = op %q lock %q locks %v, want %q %q %v", m.Op, m.Lock, m.Locks, c.op, c.lock, c.locks)
			}
			if c.msg[:4] == "main" && m.Owner.String() != "main/deploy/test #12" {
				t.Errorf("owner %q, want main/deploy/test #12", m.Owner)
			}
		})
	}
	if got := MultiSuffix(2); got != " (+2 more)" {
		t.Errorf("MultiSuffix(2) = %q", got)
	}
}
