// Package demo describes the lock repository `poolboy demo` builds: a few pools with
// a realistic history, claims written in several of the message formats the pool
// resource has used over the years, some fresh and some hours old.
package demo

import (
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
)

// Pools is the --pools value the demo uses: "licences" is left without a timeout,
// so it is reported and never cleaned.
const Pools = "aws:1h,gpu:2h"

// Spec is the demo repository's history, ending just before now.
func Spec(now time.Time) fixture.Spec {
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	ops := []fixture.Op{}
	add := func(kind fixture.Kind, pool, lock string, at time.Duration, msg string) {
		ops = append(ops, fixture.Op{Kind: kind, Pool: pool, Lock: lock, At: ago(at), Message: msg,
			Content: `{"lock":"` + lock + `"}`})
	}
	for _, l := range []string{"env-1", "env-2", "env-3", "env-4"} {
		add(fixture.Add, "aws", l, 72*time.Hour, "")
	}
	for _, l := range []string{"gpu-a", "gpu-b", "gpu-c"} {
		add(fixture.Add, "gpu", l, 72*time.Hour, "")
	}
	add(fixture.Add, "licences", "matlab-1", 72*time.Hour, "")
	// Yesterday's traffic: claimed and released, as a busy pool looks.
	for i := 0; i < 6; i++ {
		at := time.Duration(30-i) * time.Hour
		add(fixture.Claim, "aws", "env-1", at, "main/deploy/integration build 3"+string(rune('0'+i))+" claiming: env-1")
		add(fixture.Release, "aws", "env-1", at-40*time.Minute, "main/deploy/integration build 3"+string(rune('0'+i))+" unclaiming: env-1")
	}
	// A build that died five hours ago (2018+ team/pipeline/job form).
	add(fixture.Claim, "aws", "env-1", 5*time.Hour, "main/deploy/integration build 41 claiming: env-1")
	// The 2015 form, three hours old; updated since, which does not renew a claim.
	add(fixture.Claim, "aws", "env-4", 3*time.Hour, "deploy/smoke #12 claiming: env-4")
	add(fixture.Update, "aws", "env-4", 20*time.Minute, "deploy/smoke #12 updating: env-4")
	// Fresh, written by the upstream resource v1.8+ on Concourse v8.
	add(fixture.Claim, "aws", "env-2", 10*time.Minute,
		"claiming: env-2\nBuild URL: https://ci.example.com/teams/main/pipelines/deploy/jobs/smoke/builds/7")
	// A one-off build (fly execute) holding a GPU for three hours.
	add(fixture.Claim, "gpu", "gpu-a", 3*time.Hour, "one-off build 5512 claiming: gpu-a")
	// An instanced pipeline whose vars hold a '/', rerun 12.1, thirty minutes ago.
	add(fixture.Claim, "gpu", "gpu-b", 30*time.Minute, `ml/training/{"region":"eu/west"}/train build 12.1 claiming: gpu-b`)
	// Someone took a licence by hand two days ago: no owner, and no timeout on the pool.
	add(fixture.Claim, "licences", "matlab-1", 48*time.Hour, "claiming: matlab-1")
	return fixture.Spec{Branch: "main", Pools: []string{"aws", "gpu", "licences"}, Start: ago(96 * time.Hour), Ops: ops}
}
