package cli_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

var (
	demoCommand = regexp.MustCompile(`^\$ poolboy (status|clean) --repo file://(\S+) --pools \S+$`)
	poolHeader  = regexp.MustCompile(`^pool (\S+) \([^)]*\): (\d+) claimed, (\d+) unclaimed, (\d+) stale$`)
	cleanedN    = regexp.MustCompile(`(?m)^cleaned (\d+) locks? \(`)
)

func TestDemo(t *testing.T) {
	t.Parallel()
	testenv.RequireCommand(t, "git")
	// The caller's settings must not reach the demo: each would break it if used.
	env := map[string]string{
		"POOL_REPO":      "file:///nonexistent/locks.git",
		"POOLS":          "aws",
		"POOL_BRANCH":    "nope",
		"POOLBOY_OUTPUT": "yaml",
	}
	res := mustRun(t, env, "demo")

	// Split the transcript into its three runs.
	type step struct {
		cmd, repo string
		lines     []string
	}
	var steps []*step
	for _, line := range strings.Split(res.stdout, "\n") {
		if m := demoCommand.FindStringSubmatch(line); m != nil {
			steps = append(steps, &step{cmd: m[1], repo: m[2]})
			continue
		}
		if strings.HasPrefix(line, "$ ") {
			t.Fatalf("unexpected command line %q", line)
		}
		if len(steps) > 0 {
			steps[len(steps)-1].lines = append(steps[len(steps)-1].lines, line)
		}
	}
	if len(steps) != 3 || steps[0].cmd != "status" || steps[1].cmd != "clean" || steps[2].cmd != "status" {
		t.Fatalf("want status, clean, status:\n%s", res.stdout)
	}
	if strings.Contains(res.stdout, "nonexistent") {
		t.Errorf("the demo used POOL_REPO from the environment:\n%s", res.stdout)
	}

	// counts sums the pool headers of a step: claimed and stale locks, and pools.
	counts := func(s *step) (claimed, stale, pools int) {
		for _, l := range s.lines {
			if m := poolHeader.FindStringSubmatch(l); m != nil {
				c, _ := strconv.Atoi(m[2])
				st, _ := strconv.Atoi(m[4])
				claimed, stale, pools = claimed+c, stale+st, pools+1
			}
		}
		return
	}
	claimedBefore, staleBefore, pools := counts(steps[0])
	if pools == 0 || staleBefore == 0 {
		t.Fatalf("first status shows %d pools, %d stale locks:\n%s", pools, staleBefore, res.stdout)
	}
	m := cleanedN.FindStringSubmatch(strings.Join(steps[1].lines, "\n"))
	if m == nil {
		t.Fatalf("clean did not say \"cleaned N locks\":\n%s", res.stdout)
	}
	if n, _ := strconv.Atoi(m[1]); n != staleBefore {
		t.Errorf("cleaned %d locks, but status showed %d stale", n, staleBefore)
	}
	freed := 0
	for _, l := range steps[1].lines {
		if strings.HasPrefix(l, "freed ") {
			freed++
		}
	}
	if freed != staleBefore {
		t.Errorf("clean listed %d freed locks, want %d", freed, staleBefore)
	}
	claimedAfter, staleAfter, poolsAfter := counts(steps[2])
	if staleAfter != 0 || poolsAfter != pools || claimedAfter != claimedBefore-staleBefore {
		t.Errorf("second status: %d pools, %d claimed, %d stale; want %d pools, %d claimed, 0 stale:\n%s",
			poolsAfter, claimedAfter, staleAfter, pools, claimedBefore-staleBefore, res.stdout)
	}
	// The throwaway repository is gone.
	if _, err := os.Stat(steps[0].repo); !os.IsNotExist(err) {
		t.Errorf("demo repository %s left behind: %v", steps[0].repo, err)
	}
}

// The demo sets every flag it needs itself, so no POOLBOY_* setting of the caller's,
// however wrong, can break it.
func TestDemoIgnoresInvalidSettings(t *testing.T) {
	t.Parallel()
	testenv.RequireCommand(t, "git")
	res := run(t, map[string]string{"POOLBOY_DEPTH": "abc", "POOLBOY_VERBOSE": "maybe"}, "demo")
	if res.code != 0 {
		t.Fatalf("demo failed under invalid caller settings: %s", res)
	}
	if !cleanedN.MatchString(res.stdout) {
		t.Errorf("demo did not clean:\n%s", res.stdout)
	}
}
