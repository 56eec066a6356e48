package cli

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
)

// benchRepo is the BENCHMARKS.md repository: 100,000 commits, 10 pools × 50 locks,
// 250 claimed, 25 of them claimed at the very start and never touched since.
func benchRepo(b *testing.B) string {
	b.Helper()
	spec, err := fixture.Synthetic(10, 50, 250, 25, 100_000, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		b.Fatal(err)
	}
	// Pack it as a server's repository is after gc; fast-import's pack is not.
	if out, err := exec.Command("git", "-C", dir, "repack", "-adq").CombinedOutput(); err != nil {
		b.Fatalf("repack: %v %s", err, out)
	}
	return dir
}

// busyRepo is a pool in daily use (fixture.Busy): 100,000 commits, 10 pools × 50
// locks with content, about half claimed at any time, every commit moving one lock
// at random, and 25 locks claimed at the very start and kept since.
func busyRepo(b *testing.B) string {
	b.Helper()
	spec, err := fixture.Busy(10, 50, 25, 100_000, time.Now(), 1)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("git", "-C", dir, "repack", "-adq").CombinedOutput(); err != nil {
		b.Fatalf("repack: %v %s", err, out)
	}
	return dir
}

// benchStatus runs the real binary end to end, as a user would, and reports the
// peak resident memory of the largest process of the run (poolboy or a git it ran).
func benchStatus(b *testing.B, repo string) { benchStatusVsLog(b, repo, false) }

// benchStatusVsLog is benchStatus; with vsLog, each iteration also runs git's own
// single `git log` over the whole history and the claimed/ directories (what the
// walk reads, with git's default settings), and reports both, side by side.
func benchStatusVsLog(b *testing.B, repo string, vsLog bool) {
	bin := filepath.Join(b.TempDir(), "poolboy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/poolboy-ci/poolboy/cmd/poolboy").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v %s", err, out)
	}
	var peak, logPeak int64
	var took, logTook, cpu, logCPU time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		cmd := exec.Command(bin, "status", "--repo", repo, "--output", "json")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("status: %v %s", err, out)
		}
		took += time.Since(start)
		// wait4's usage covers the gits poolboy ran and waited for, too.
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		peak = max(peak, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
		if vsLog {
			b.StopTimer()
			args := []string{"-C", repo, "log", "--full-history", "--sparse", "--no-renames", "--root", "--name-status", "-z",
				"--format=%H %P", "main", "--"}
			for p := range 10 {
				args = append(args, fmt.Sprintf("pool-%02d/claimed", p))
			}
			start := time.Now()
			log := exec.Command("git", args...)
			if err := log.Run(); err != nil {
				b.Fatalf("git log: %v", err)
			}
			logTook += time.Since(start)
			logCPU += log.ProcessState.UserTime() + log.ProcessState.SystemTime()
			logPeak = max(logPeak, log.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	if vsLog {
		b.ReportMetric(logCPU.Seconds()/float64(b.N), "git-log-cpu-s/op")
		b.ReportMetric(logTook.Seconds()/float64(b.N), "git-log-s/op")
		b.ReportMetric(float64(logPeak)/1024, "git-log-peak-RSS-MB")
		b.ReportMetric(took.Seconds()/logTook.Seconds(), "status/git-log")
	}
}

func BenchmarkStatusLocalPath(b *testing.B) { benchStatus(b, benchRepo(b)) }

// BenchmarkStatusBusyLocalPath is the cold status of a busy repository, beside
// git's own walk of the same history.
func BenchmarkStatusBusyLocalPath(b *testing.B) { benchStatusVsLog(b, busyRepo(b), true) }

func BenchmarkStatusFileURL(b *testing.B) { benchStatus(b, "file://"+benchRepo(b)) }

func BenchmarkStatusFileURLFullClone(b *testing.B) {
	repo := benchRepo(b)
	b.Setenv("POOLBOY_DEPTH", "0")
	benchStatus(b, "file://"+repo)
}
