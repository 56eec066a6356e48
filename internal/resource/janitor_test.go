package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/reaper"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

var janitorEnv = map[string]string{
	"BUILD_ID": "77", "BUILD_NAME": "3", "BUILD_TEAM_NAME": "main",
	"BUILD_PIPELINE_NAME": "janitor", "BUILD_JOB_NAME": "clean-env",
}

// checkFrom is check's answer for source from version ref.
func checkFrom(t *testing.T, source map[string]any, ref string) []string {
	t.Helper()
	var stdout bytes.Buffer
	if err := Check(context.Background(), marshal(t, map[string]any{"source": source, "version": map[string]string{"ref": ref}}), &stdout, &bytes.Buffer{}, envOf(nil)); err != nil {
		t.Fatal(err)
	}
	var vs []version
	if err := json.Unmarshal(stdout.Bytes(), &vs); err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, v := range vs {
		refs = append(refs, v.Ref)
	}
	return refs
}

// The janitor cycle, end to end with the resource's own operations: a stale lock
// is reaped to the quarantine pool envs-dirty; the build that held it releases
// it without failing; a janitor job acquires it from envs-dirty and, once it is
// clean, returns it to envs with one release commit (params.to).
func TestJanitorCycle(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"envs", "envs-dirty"},
		lock{pool: "envs", name: "env-1", content: "one", claimed: true, age: 5 * time.Hour},
		lock{pool: "envs", name: "env-2", content: "two"})
	url := fileURL(bare)
	envs := src(url, "pool", "envs", "stale_timeout", "1h", "reap_to", "envs-dirty")
	dirty := src(url, "pool", "envs-dirty")
	claim := testenv.Git(t, bare, "log", "-1", "--format=%H", "main", "--", "envs/claimed/env-1")
	dir := t.TempDir()

	// Dirty on reap: one commit moves the lock to the quarantine.
	beforeReap := head(t, bare)
	r := mustOut(t, dir, envs, map[string]any{"reap": true}, nil)
	if r.lock() != "env-1" || !strings.Contains(r.log, "reaping stale locks of pool: envs to pool envs-dirty") {
		t.Errorf("reap answered %+v\n%s", r, r.log)
	}
	wantTree(t, bare, "envs-dirty/unclaimed/env-1", "envs/unclaimed/env-2")
	if n := testenv.Git(t, bare, "rev-list", "--count", beforeReap+"..main"); n != "1" {
		t.Errorf("the reap made %s commits", n)
	}
	if got := checkFrom(t, dirty, beforeReap); len(got) != 2 || got[1] != head(t, bare) {
		t.Errorf("check of envs-dirty does not see the dirty lock: %v", got)
	}

	// The build that held it releases it: reaped, so nothing to do, and no failure.
	writeStep(t, dir, "env", map[string]string{"name": "env-1", "ref": claim})
	before := head(t, bare)
	r = mustOut(t, dir, envs, map[string]any{"release": "env"}, jobEnv)
	if !strings.Contains(r.log, "warning: lock env-1 was reaped by poolboy to pool envs-dirty") || head(t, bare) != before {
		t.Errorf("release of the quarantined lock: %+v\n%s", r, r.log)
	}

	// Cleaning: the janitor takes the dirty lock with the same resource type.
	r = mustOut(t, dir, dirty, map[string]any{"acquire": true}, janitorEnv)
	if r.lock() != "env-1" {
		t.Fatalf("janitor acquired %q", r.lock())
	}
	get(t, dir, "dirty-env", dirty, r.Version.Ref)
	wantTree(t, bare, "envs-dirty/claimed/env-1", "envs/unclaimed/env-2")

	// Return: one commit, the lock free in envs again, unchanged.
	before = head(t, bare)
	r = mustOut(t, dir, dirty, map[string]any{"release": "dirty-env", "to": "envs"}, janitorEnv)
	wantTree(t, bare, "envs/unclaimed/env-1", "envs/unclaimed/env-2")
	if n := testenv.Git(t, bare, "rev-list", "--count", before+"..main"); n != "1" {
		t.Errorf("the return made %s commits", n)
	}
	if g := get(t, dir, "returned", dirty, r.Version.Ref); g.Version.Ref != r.Version.Ref {
		t.Errorf("the return's implicit get answered %+v", g)
	}
	if c := testenv.Git(t, bare, "cat-file", "-p", "main:envs/unclaimed/env-1"); c != "one" {
		t.Errorf("content %q", c)
	}
	msg := message(t, bare, "main")
	if !strings.HasPrefix(msg, "main/janitor/clean-env build 3 unclaiming: env-1") || !strings.Contains(msg, "Poolboy-Returned-To: envs") {
		t.Errorf("return message:\n%s", msg)
	}
	// Both pools' check see the return; a job can take the lock from envs again.
	if got := checkFrom(t, envs, before); len(got) != 2 || got[1] != head(t, bare) {
		t.Errorf("check of envs: %v", got)
	}
	if r = mustOut(t, dir, src(url, "pool", "envs"), map[string]any{"claim": "env-1"}, jobEnv); r.lock() != "env-1" {
		t.Errorf("claim after the return: %+v", r)
	}
}

// A return refuses a destination that would get a second lock of the name, a
// destination that does not exist, and params.to on other operations; nothing
// is pushed.
func TestJanitorReturnRefusals(t *testing.T) {
	t.Parallel()
	bare := newRepo(t, []string{"envs", "envs-dirty"},
		lock{pool: "envs", name: "env-1", content: "copy"},
		lock{pool: "envs-dirty", name: "env-1", content: "one", claimed: true})
	dirty := src(fileURL(bare), "pool", "envs-dirty")
	claim := testenv.Git(t, bare, "log", "-1", "--format=%H", "main", "--", "envs-dirty/claimed/env-1")
	dir := t.TempDir()
	writeStep(t, dir, "dirty-env", map[string]string{"name": "env-1", "ref": claim})
	before := head(t, bare)
	cases := []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"release": "dirty-env", "to": "envs"}, `pool "envs" (params.to) already has a lock "env-1" (unclaimed)`},
		{map[string]any{"release": "dirty-env", "to": "gone"}, `pool "gone" (params.to) does not exist (pools: envs, envs-dirty)`},
		{map[string]any{"release": "dirty-env", "to": "envs-dirty"}, `params.to "envs-dirty" is the resource's own pool`},
		{map[string]any{"release": "dirty-env", "to": "../x"}, `invalid payload: pool "../x"`},
		{map[string]any{"acquire": true, "to": "envs"}, "invalid payload: params.to goes with release only, not acquire"},
	}
	for _, c := range cases {
		_, err := out(t, context.Background(), dir, dirty, c.params, janitorEnv, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want one line with %q", c.params, err, c.want)
		}
	}
	if head(t, bare) != before {
		t.Error("a refused return pushed")
	}
}

// A hold is outside every pool: upstream's check, and ours, see no new version.
func TestHoldIsNoVersionOfThePool(t *testing.T) {
	t.Parallel()
	bare := awsRepo(t)
	before := head(t, bare)
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: fileURL(bare)})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if _, err := reaper.Hold(context.Background(), repo, reaper.Config{}, "aws", "env-2", time.Hour, reaper.Person{By: "ann", Reason: "debugging"}); err != nil {
		t.Fatal(err)
	}
	if head(t, bare) == before {
		t.Fatal("the hold pushed nothing")
	}
	if got := checkFrom(t, src(fileURL(bare)), before); len(got) != 1 || got[0] != before {
		t.Errorf("check after a hold: %v, want only %s", got, before)
	}
	// Upstream's check is git log of the pool's directory.
	if log := testenv.Git(t, bare, "log", "--format=%H", before+"..main", "--", "aws"); log != "" {
		t.Errorf("the hold touched the pool: %s", log)
	}
}

// A build whose lock a person released, and another build claimed since, is
// refused its release; the refusal names the person's release.
func TestReleaseAfterAPersonsReleaseNamesIt(t *testing.T) {
	t.Parallel()
	bare, dir := awsRepo(t), t.TempDir()
	acq := mustOut(t, dir, src(fileURL(bare)), map[string]any{"acquire": true}, jobEnv)
	get(t, dir, "lock", src(fileURL(bare)), acq.Version.Ref)
	repo, err := gitx.Open(context.Background(), gitx.Options{URL: fileURL(bare)})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	if _, err := reaper.Release(context.Background(), repo, reaper.Config{}, "aws", "env-1", reaper.Person{By: "ann", Reason: "worker lost"}); err != nil {
		t.Fatal(err)
	}
	mustOut(t, t.TempDir(), src(fileURL(bare)), map[string]any{"claim": "env-1"}, janitorEnv)
	before := head(t, bare)
	_, err = out(t, context.Background(), dir, src(fileURL(bare)), map[string]any{"release": "lock"}, jobEnv, nil)
	if err == nil || !strings.Contains(err.Error(), "then was released by hand by ann (worker lost) in ") ||
		!strings.Contains(err.Error(), "now claimed by main/janitor/clean-env #3") {
		t.Fatalf("err = %v", err)
	}
	if head(t, bare) != before {
		t.Error("the refused release pushed")
	}
}
