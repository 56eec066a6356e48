package cli_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

var (
	demoCommand = regexp.MustCompile(`^\$ poolboy (status|clean) --repo file://(\S+) --pools (\S+)( --concourse-url http://127\.0\.0\.1:\d+ --concourse-username demo   # and CONCOURSE_PASSWORD)?$`)
	columns     = regexp.MustCompile(`\s{2,}`)
)

// demoStep is one command of the demo's transcript and what it printed.
type demoStep struct {
	cmd, repo string
	concourse bool
	out       string
}

// demoSteps splits the demo's transcript at its commands: the introduction, then
// each command.
func demoSteps(t *testing.T, stdout string) (intro string, steps []demoStep) {
	t.Helper()
	var lines []string
	flush := func() {
		if len(steps) == 0 {
			intro = strings.Join(lines, "\n")
		} else {
			steps[len(steps)-1].out = strings.Join(lines, "\n")
		}
		lines = nil
	}
	for _, line := range strings.Split(stdout, "\n") {
		if m := demoCommand.FindStringSubmatch(line); m != nil {
			flush()
			steps = append(steps, demoStep{cmd: m[1], repo: m[2], concourse: m[4] != ""})
			continue
		}
		if strings.HasPrefix(line, "$ ") {
			t.Fatalf("unexpected command line %q", line)
		}
		lines = append(lines, line)
	}
	flush()
	return intro, steps
}

// verdicts reads the lock rows of a status text: pool/lock -> [build, verdict].
func verdicts(out string) map[string][2]string {
	v := map[string][2]string{}
	for pool, block := range textBlocks(out) {
		for _, line := range block[1:] {
			f := columns.Split(strings.TrimSpace(line), -1)
			if len(f) < 7 || f[0] == "LOCK" {
				continue
			}
			v[pool+"/"+f[0]] = [2]string{f[4], f[5]}
		}
	}
	return v
}

// Issue 17.1: the demo shows the decisions that matter. The timeouts alone would
// free a running build's lock and a handed-off one, and keep an aborted and a
// failed build's; asking the stand-in Concourse gets each right; clean frees
// exactly those, and then shows the pools as they are.
func TestDemo(t *testing.T) {
	t.Parallel()
	testenv.RequireCommand(t, "git")
	// The caller's settings must not reach the demo: each would break it if used.
	env := map[string]string{
		"POOL_REPO":          "file:///nonexistent/locks.git",
		"POOLS":              "aws",
		"POOL_BRANCH":        "nope",
		"POOLBOY_OUTPUT":     "yaml",
		"CONCOURSE_URL":      "http://127.0.0.1:1",
		"CONCOURSE_USERNAME": "someone",
	}
	res := mustRun(t, env, "demo")
	if res.stderr != "" {
		t.Errorf("the demo wrote to stderr (warnings and --verbose only):\n%s", res.stderr)
	}
	intro, steps := demoSteps(t, res.stdout)
	if !strings.Contains(intro, "STAND-IN for the Concourse API") || !strings.Contains(intro, "not a real Concourse") {
		t.Errorf("the introduction does not say the Concourse is a stand-in:\n%s", intro)
	}
	if len(steps) != 4 || steps[0].cmd != "status" || steps[0].concourse ||
		steps[1].cmd != "status" || !steps[1].concourse || steps[2].cmd != "clean" || !steps[2].concourse ||
		steps[3].cmd != "status" || !steps[3].concourse {
		t.Fatalf("want status (timeouts only), status (with Concourse), clean (with Concourse), status (the queue):\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "nonexistent") || strings.Contains(res.stdout, "someone") {
		t.Errorf("the demo used the caller's settings:\n%s", res.stdout)
	}

	want := func(step demoStep, want map[string][2]string) {
		t.Helper()
		got := verdicts(step.out)
		for lock, w := range want {
			if got[lock] != w {
				t.Errorf("%s (concourse %v): %s is %v, want %v", step.cmd, step.concourse, lock, got[lock], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s (concourse %v): locks %v, want %v", step.cmd, step.concourse, got, want)
		}
	}
	want(steps[0], map[string][2]string{
		"aws/env-1":         {"-", "stale"}, // a running build's lock: the timeout alone would steal it
		"aws/env-2":         {"-", "held"},  // an aborted build's: kept for the rest of the hour
		"aws/env-3":         {"-", "held"},
		"aws/env-4":         {"-", "stale"},
		"gpu/gpu-a":         {"-", "stale"}, // handed off: stolen from the downstream job
		"licences/matlab-1": {"-", "unwatched"},
	})
	want(steps[1], map[string][2]string{
		"aws/env-1":         {"started", "alive"},
		"aws/env-2":         {"aborted", "stale"},
		"aws/env-3":         {"failed", "stale"},
		"aws/env-4":         {"not found", "stale"},
		"gpu/gpu-a":         {"succeeded", "alive"},
		"licences/matlab-1": {"-", "unwatched"},
	})
	if !strings.Contains(steps[1].out, "handed the lock off to main/train/train #3") {
		t.Errorf("the hand-off is not shown:\n%s", steps[1].out)
	}
	// The comparison, between the second status and clean: the changed verdicts.
	for _, l := range []string{"aws/env-1", "aws/env-2", "aws/env-3", "gpu/gpu-a"} {
		if !regexp.MustCompile(`(?m)^  ` + l + `\s.*<- changed$`).MatchString(steps[1].out) {
			t.Errorf("the comparison does not mark %s as changed:\n%s", l, steps[1].out)
		}
	}

	// clean: what it did first, in order, then the pools as they are now.
	clean := steps[2].out
	var freed []string
	for _, line := range strings.Split(clean, "\n") {
		if rest, ok := strings.CutPrefix(line, "freed "); ok {
			lock, _, _ := strings.Cut(rest, " ")
			freed = append(freed, lock)
		}
	}
	if !slices.Equal(freed, []string{"aws/env-2", "aws/env-3", "aws/env-4"}) {
		t.Errorf("clean freed %v, want aws/env-2, aws/env-3, aws/env-4 in that order:\n%s", freed, clean)
	}
	summary := strings.Index(clean, "cleaned 3 locks (1 attempt)")
	if summary < 0 || summary > strings.Index(clean, "\npool aws ") {
		t.Errorf("clean does not say what it did before the pools:\n%s", clean)
	}
	if !strings.Contains(clean, "pool aws (timeout 1h): 1 claimed, 4 unclaimed, 0 stale") {
		t.Errorf("clean does not show the pools as they are after it:\n%s", clean)
	}
	want(steps[2], map[string][2]string{
		"aws/env-1":         {"started", "alive"},
		"gpu/gpu-a":         {"succeeded", "alive"},
		"licences/matlab-1": {"-", "unwatched"},
	})

	// Issue 17 (the queue scene): three builds queue for the one licence, each once
	// the one before is in the queue; the last has the highest priority.
	arrivals := regexp.MustCompile(`(?m)^      waiting for a lock in pool licences: (position \d of \d)`).FindAllStringSubmatch(clean, -1)
	var arrived []string
	for _, m := range arrivals {
		arrived = append(arrived, m[1])
	}
	if got := strings.Join(arrived, ", "); got != "position 1 of 1, position 2 of 2, position 1 of 3" {
		t.Errorf("the builds' logs as they queued: %s, want positions 1 of 1, 2 of 2, 1 of 3:\n%s", got, clean)
	}
	// status shows the queue in the order it is served...
	var queued []string
	for _, line := range textBlocks(steps[3].out)["licences"] {
		if f := columns.Split(strings.TrimSpace(line), -1); len(f) == 6 && f[0] != "POS" {
			queued = append(queued, f[0]+" "+f[1]+" "+f[5])
		}
	}
	wantQueue := []string{"1 main/release/sign #5 5", "2 main/reports/render #12 0", "3 main/reports/render #13 0"}
	if !slices.Equal(queued, wantQueue) {
		t.Errorf("status shows the queue %q, want %q:\n%s", queued, wantQueue, steps[3].out)
	}
	// ...and that is the order the builds get the lock.
	var served []string
	for _, m := range regexp.MustCompile(`(?m)^  (\d)\. (.+) \(priority \d+\) gets matlab-1$`).FindAllStringSubmatch(steps[3].out, -1) {
		served = append(served, m[1]+" "+m[2])
	}
	if want := []string{"1 main/release/sign #5", "2 main/reports/render #12", "3 main/reports/render #13"}; !slices.Equal(served, want) {
		t.Errorf("served %q, want %q:\n%s", served, want, steps[3].out)
	}

	// The throwaway repository is gone.
	if _, err := os.Stat(steps[0].repo); !os.IsNotExist(err) {
		t.Errorf("demo repository %s left behind: %v", steps[0].repo, err)
	}
}

// Issue 17.1: --keep keeps the repository and prints the commands to run by hand;
// the stand-in Concourse is gone, so they are the timeouts-only ones, and they work.
func TestDemoKeep(t *testing.T) {
	t.Parallel()
	testenv.RequireCommand(t, "git")
	res := mustRun(t, nil, "demo", "--keep")
	_, steps := demoSteps(t, res.stdout)
	if len(steps) != 4 {
		t.Fatalf("want 4 commands:\n%s", res.stdout)
	}
	repo := steps[0].repo
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(repo)) })
	if _, err := os.Stat(repo); err != nil {
		t.Fatalf("--keep: %v", err)
	}
	if !strings.Contains(steps[3].out, "kept at "+repo) || !strings.Contains(steps[3].out, "stand-in Concourse stops with the demo") {
		t.Errorf("--keep does not say where the repository is and that the stand-in is gone:\n%s", steps[3].out)
	}
	var commands [][]string
	for _, line := range strings.Split(steps[3].out, "\n") {
		if rest, ok := strings.CutPrefix(line, "  poolboy "); ok {
			commands = append(commands, strings.Fields(rest))
		}
	}
	if len(commands) != 3 || commands[0][0] != "status" || commands[1][0] != "clean" || commands[2][0] != "doctor" {
		t.Fatalf("--keep commands %v, want status, clean --dry-run, doctor:\n%s", commands, steps[3].out)
	}
	for _, c := range commands {
		if slices.Contains(c, "--concourse-url") {
			t.Errorf("%v names the stand-in Concourse, which is gone", c)
		}
		if r := run(t, nil, c...); r.code != 0 {
			t.Errorf("the printed command %v failed: %s", c, r)
		}
	}
	// By hand, only the timeouts decide: the running build's lock is stale again.
	v := verdicts(mustRun(t, nil, commands[0]...).stdout)
	if v["aws/env-1"][1] != "stale" {
		t.Errorf("by hand, aws/env-1 is %v, want stale (no Concourse)", v["aws/env-1"])
	}
}

// The demo sets every flag it needs itself, so no POOLBOY_* setting of the caller's,
// however wrong, can break it.
func TestDemoIgnoresInvalidSettings(t *testing.T) {
	t.Parallel()
	testenv.RequireCommand(t, "git")
	res := run(t, map[string]string{"POOLBOY_DEPTH": "abc", "POOLBOY_VERBOSE": "maybe", "CONCOURSE_INSECURE": "maybe"}, "demo")
	if res.code != 0 {
		t.Fatalf("demo failed under invalid caller settings: %s", res)
	}
	if !strings.Contains(res.stdout, "cleaned 3 locks") {
		t.Errorf("demo did not clean:\n%s", res.stdout)
	}
}
