package soak

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

var (
	duration = flag.Duration("soak.duration", 60*time.Second, "how long the actors run (the long soak: 30m or more, with a larger -timeout)")
	builders = flag.Int("soak.builders", 8, "concurrent build actors")
	report   = flag.String("soak.report", "", "also write the figures to this file")
)

// The pre-receive hook logs every push attempt (time in ns, old, new, ref,
// verdict), refuses any that is not a fast-forward (or that it cannot tell is
// one), and declines about half of the pushes while the fault flag file exists.
const preReceive = `#!/bin/sh
log=%q
flag=%q
status=0
while read old new ref; do
	now=$(date +%%s%%N)
	ff=0
	[ "$old" = 0000000000000000000000000000000000000000 ] || git merge-base --is-ancestor "$old" "$new" || ff=$?
	if [ $ff -gt 1 ]; then
		echo "$now $old $new $ref error" >>"$log"
		echo "soak: cannot tell whether the push is a fast-forward" >&2
		status=1
		continue
	fi
	if [ $ff -eq 1 ]; then
		echo "$now $old $new $ref nonff" >>"$log"
		echo "soak: refusing a push that is not a fast-forward" >&2
		status=1
		continue
	fi
	if [ -e "$flag" ]; then
		case $now in *[02468])
			echo "$now $old $new $ref declined" >>"$log"
			echo "soak: push declined (injected fault)" >&2
			status=1
			continue
		esac
	fi
	echo "$now $old $new $ref ok" >>"$log"
done
exit $status
`

// TestSoak runs the actors against one lock repository over git daemon, injects
// the faults, and checks the invariants after every step and at the end. See
// docs/RELIABILITY.md for what it does and the latest figures.
func TestSoak(t *testing.T) {
	testenv.RequireCommand(t, "git")
	goBin := testenv.RequireCommand(t, "go")
	w := newWorld(t)
	base := t.TempDir()
	w.poolboy, w.res = buildBinary(t, goBin, base)

	// The repository: four pools, built 1h ago.
	root := filepath.Join(base, "srv")
	w.bare = filepath.Join(root, "locks.git")
	now := time.Now()
	spec := fixture.Spec{Branch: "main", Pools: []string{"envs", "devices", "queue", "scratch"}, Start: now.Add(-time.Hour)}
	for pool, names := range map[string][]string{
		"envs":    {"env-1", "env-2", "env-3", "env-4", "env-5", "env-6"},
		"devices": {"dev-1", "dev-2", "dev-3", "dev-4"},
		"queue":   {"q-1", "q-2"},
		"scratch": {"tmp-1", "tmp-2", "tmp-3"},
	} {
		for _, n := range names {
			spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Add, Pool: pool, Lock: n, At: now.Add(-50 * time.Minute), Content: `{"name":"` + n + `"}`})
		}
	}
	if err := fixture.Build(context.Background(), w.bare, spec); err != nil {
		t.Fatal(err)
	}
	start := strings.TrimSpace(testenv.Git(t, w.bare, "rev-parse", "refs/heads/main"))
	w.hookLog = filepath.Join(base, "pushes.log")
	hook := fmt.Sprintf(preReceive, w.hookLog, filepath.Join(w.bare, "soak-reject"))
	if err := os.WriteFile(filepath.Join(w.bare, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	// No automatic gc on the server either: a detached one outlives the test.
	testenv.Git(t, w.bare, "config", "receive.autogc", "false")
	testenv.Git(t, w.bare, "config", "gc.auto", "0")
	w.daemon = testenv.StartGitDaemon(t, root)
	w.url = w.daemon.URL + "locks.git"

	w.cc = fakeconcourse.New(t)
	w.ccUser, w.ccPass = "reaper", "soak-password"
	w.cc.AddUser(w.ccUser, w.ccPass, "main")

	began := time.Now()
	stop := began.Add(*duration)
	// Builds still running two minutes after stop are aborted (SIGTERM).
	hard, cancel := context.WithDeadline(context.Background(), stop.Add(2*time.Minute))
	defer cancel()
	var actors, reapers sync.WaitGroup
	for i := range *builders {
		a := w.newActor(base, fmt.Sprintf("builder-%d", i+1))
		actors.Go(func() { a.builder(hard, i, stop) })
	}
	for i := range 2 {
		a := w.newActor(base, fmt.Sprintf("orphan-%d", i+1))
		actors.Go(func() { a.orphan(hard, stop) })
	}
	for i := range 3 {
		a := w.newActor(base, fmt.Sprintf("queuer-%d", i+1))
		actors.Go(func() { a.queuer(hard, i, stop) })
	}
	admin := w.newActor(base, "admin")
	actors.Go(func() { admin.admin(hard, stop) })
	actors.Go(func() { w.injector(hard, stop) })
	// Reapers run until every other actor is done: waiting builds need them.
	reaping, stopReaping := context.WithCancel(context.Background())
	for i := range 2 {
		a := w.newActor(base, fmt.Sprintf("reaper-%d", i+1))
		reapers.Go(func() { a.reaper(reaping) })
	}
	actors.Wait()
	stopReaping()
	reapers.Wait()

	// Everything healthy again: one last clean must free every dead build's lock.
	for _, f := range faults {
		f.heal(w)
	}
	last := w.newActor(base, "final")
	cleanAt := time.Now()
	if !last.clean(context.Background(), filepath.Join(last.dir, "cache")) {
		t.Errorf("the final clean, with every fault healed, failed")
	}
	state := w.replay(start)
	w.checkEnd(state, cleanAt)
	w.summary(t, time.Since(began))

	// The run must have exercised what it claims to. With the defaults (8
	// builders, 60 s) these hold on any machine, because scenarios and faults run
	// round-robin: each builder starts on another scenario, and a round of the
	// faults takes 50 s at most. Shorter or smaller runs are for debugging.
	for _, key := range []string{"reaps: build-aborted", "reaps: build-failed", "reaps: timeout", "ops: releases", "conflicts resolved",
		"queue: tickets written", "queue: grants to a ticket", "queue: waiters aborted (SIGTERM) in the queue",
		"queue: waiters killed (SIGKILL) in the queue", "queue: expired tickets deleted by another build"} {
		if w.stats.get(key) == 0 {
			t.Errorf("the soak never saw %q: the run is too short to mean anything", key)
		}
	}
	for _, f := range faults {
		if w.stats.get("fault: "+f.name) == 0 {
			t.Errorf("fault %q was never injected: the run is too short", f.name)
		}
	}
}

// buildBinary builds poolboy (with the race detector when the test has it) and
// lays out check, in and out as the image does.
func buildBinary(t *testing.T, goBin, base string) (bin, res string) {
	bin = filepath.Join(base, "bin", "poolboy")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, "github.com/poolboy-ci/poolboy/cmd/poolboy")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res = filepath.Join(base, "opt", "resource")
	if err := os.MkdirAll(res, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"check", "in", "out"} {
		if err := os.Symlink(bin, filepath.Join(res, s)); err != nil {
			t.Fatal(err)
		}
	}
	return bin, res
}

// summary prints the figures (and writes them to -soak.report).
func (w *world) summary(t *testing.T, took time.Duration) {
	w.stats.mu.Lock()
	keys := slices.Sorted(maps.Keys(w.stats.counts))
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %s, %d builders, 3 queuers, 2 orphans, 1 admin, 2 reapers, faults every few seconds\n", took.Round(time.Second), *builders)
	for _, k := range keys {
		fmt.Fprintf(&b, "  %-70s %6d\n", k, w.stats.counts[k])
	}
	for _, k := range keys {
		if ex, ok := w.stats.examples[k]; ok {
			fmt.Fprintf(&b, "  e.g. %s: %s\n", strings.TrimPrefix(k, "error: "), ex)
		}
	}
	w.stats.mu.Unlock()
	w.mu.Lock()
	fmt.Fprintf(&b, "  %-70s %6d\n", "VIOLATIONS", len(w.violations))
	w.mu.Unlock()
	t.Log("\n" + b.String())
	if *report != "" {
		if err := os.WriteFile(*report, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
