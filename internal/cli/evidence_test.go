package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
)

// Issue 10.3, end to end: after main/deploy was destroyed and re-created, its
// new build integration #3 (another id) failed; the claim, written by the old
// #3 (its id recorded by poolboy's resource), is not freed on that word.
func TestCleanIgnoresTheRecreatedPipelinesBuild(t *testing.T) {
	t.Parallel()
	g := newRig(t, nil)
	old := g.job("integration", "3", "started")
	g.cc.DeletePipeline("main", "deploy", nil)
	g.job("integration", "3", "failed")
	msg := fmt.Sprintf("main/deploy/integration build 3 claiming: env-4\n\nBuild URL: %s/teams/main/pipelines/deploy/jobs/integration/builds/3\n\nPoolboy-Build-Id: %d\n", ccExternal, old)
	g.r = newLockRepo(t, "main",
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: time.Now().Add(-time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-4", At: time.Now().Add(-2 * time.Minute), Message: msg})
	g.repo = "file://" + g.r.dir

	d, res := g.json(t, "clean", "--pools", "aws:1h")
	wantLock(t, d.lock(t, "aws", "env-4"), "held", "within-timeout", true)
	wantClaimed(t, g.r, "aws", []string{"env-4"}, nil)
	wantStderr(t, res.stderr, "build id "+strconv.Itoa(old))
}

// Issue 10.3: prod and staging share the lock repository. A claim from staging
// is not judged by prod's build of the same name; with both configured
// (--fly-target prod,staging) staging's running build keeps it.
func TestCleanJudgesAClaimByItsOwnConcourse(t *testing.T) {
	t.Parallel()
	const stagingExternal = "https://staging.example.com"
	msg := "claiming: env-4\nBuild URL: " + stagingExternal + "/teams/main/pipelines/deploy/jobs/integration/builds/3"
	setup := func(t *testing.T) (*rig, *fakeconcourse.Server) {
		g := newRig(t, nil,
			fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: time.Now().Add(-9 * time.Hour)},
			fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-4", At: time.Now().Add(-2 * time.Hour), Message: msg})
		g.job("integration", "3", "failed") // prod's #3: not the claim's
		staging := fakeconcourse.New(t, fakeconcourse.WithExternalURL(stagingExternal))
		staging.AddUser(ccAdmin, ccAdminPW, "main")
		staging.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "integration", Name: "3", Status: "started"})
		return g, staging
	}
	t.Run("staging not configured: the timeout decides, with a warning naming it", func(t *testing.T) {
		t.Parallel()
		g, _ := setup(t)
		d, res := g.json(t, "status", "--pools", "aws:3h")
		wantLock(t, d.lock(t, "aws", "env-4"), "held", "within-timeout", true)
		wantStderr(t, res.stderr, stagingExternal)
	})
	t.Run("both configured: staging's running build keeps it", func(t *testing.T) {
		t.Parallel()
		g, staging := setup(t)
		home := t.TempDir()
		rc := fmt.Sprintf("targets:\n  prod:\n    api: %s\n    team: main\n    token: {type: bearer, value: %s}\n"+
			"  staging:\n    api: %s\n    team: main\n    token: {type: bearer, value: %s}\n",
			g.cc.URL, g.token, staging.URL, staging.Token(ccAdmin))
		if err := os.WriteFile(filepath.Join(home, ".flyrc"), []byte(rc), 0o600); err != nil {
			t.Fatal(err)
		}
		res := mustRun(t, map[string]string{"FLY_HOME": home},
			"clean", "--repo", g.repo, "--fly-target", "prod,staging", "--pools", "aws:1h", "--output", "json")
		d := decodeStatus(t, res.stdout)
		wantLock(t, d.lock(t, "aws", "env-4"), "alive", "build-running", false)
		wantClaimed(t, g.r, "aws", []string{"env-4"}, nil)
	})
}

// Issue 16.1, end to end: deploy2 claims with put: claim-env, resource: env and
// succeeds; test2 took the claim (get: env, passed: [deploy2]) and is running.
// The lock is 2h old in a 1h pool: only the hand-off keeps it.
func TestCleanKeepsALockHandedOnFromARenamedPutStep(t *testing.T) {
	t.Parallel()
	const msg = "main/deploy/deploy2 build 1 claiming: env-4"
	g := newRig(t, nil,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-4", At: time.Now().Add(-9 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-4", At: time.Now().Add(-2 * time.Hour), Message: msg})
	claim := g.r.commitWithMessage(t, "main", msg)
	g.cc.AddBuild(fakeconcourse.Build{Pipeline: "deploy", Job: "deploy2", Name: "1", Status: "succeeded",
		Outputs: []fakeconcourse.Version{{Resource: "env", Ref: claim}}, PutSteps: map[string]string{"env": "claim-env"}})
	g.job("test2", "1", "started", []fakeconcourse.Version{{Resource: "env", Ref: claim}})

	d, _ := g.json(t, "clean", "--pools", "aws:1h")
	l := d.lock(t, "aws", "env-4")
	wantLock(t, l, "alive", "handed-off", false)
	if l.Build == nil || l.Build.HandedOffTo != "main/deploy/test2 #1" {
		t.Errorf("build evidence %+v, want handed off to main/deploy/test2 #1", l.Build)
	}
	wantClaimed(t, g.r, "aws", []string{"env-4"}, nil)
}

func wantStderr(t *testing.T, stderr, want string) {
	t.Helper()
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
}
