package cli

import (
	"context"
	"io"
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

func benchStatus(b *testing.B, repo string) {
	env := func(string) (string, bool) { return "", false }
	b.ResetTimer()
	for b.Loop() {
		if code := Main(context.Background(), []string{"status", "--repo", repo, "--output", "json"}, io.Discard, io.Discard, env); code != 0 {
			b.Fatalf("status exited %d", code)
		}
	}
	b.StopTimer()
	// Peak resident memory of poolboy itself and of the largest git process it ran.
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	b.ReportMetric(float64(self.Maxrss)/1024, "self-peak-MB")
	b.ReportMetric(float64(children.Maxrss)/1024, "git-peak-MB")
}

func BenchmarkStatusLocalPath(b *testing.B) { benchStatus(b, benchRepo(b)) }

func BenchmarkStatusFileURL(b *testing.B) { benchStatus(b, "file://"+benchRepo(b)) }
