package cli

import (
	"context"
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

// benchStatus runs the real binary end to end, as a user would, and reports the
// peak resident memory of the largest process of the run (poolboy or a git it ran).
func benchStatus(b *testing.B, repo string) {
	bin := filepath.Join(b.TempDir(), "poolboy")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/poolboy-ci/poolboy/cmd/poolboy").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v %s", err, out)
	}
	var peak int64
	b.ResetTimer()
	for b.Loop() {
		cmd := exec.Command(bin, "status", "--repo", repo, "--output", "json")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("status: %v %s", err, out)
		}
		peak = max(peak, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	}
	b.ReportMetric(float64(peak)/1024, "peak-RSS-MB")
}

func BenchmarkStatusLocalPath(b *testing.B) { benchStatus(b, benchRepo(b)) }

func BenchmarkStatusFileURL(b *testing.B) { benchStatus(b, "file://"+benchRepo(b)) }

func BenchmarkStatusFileURLFullClone(b *testing.B) {
	repo := benchRepo(b)
	b.Setenv("POOLBOY_DEPTH", "0")
	benchStatus(b, "file://"+repo)
}
