package watch

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
)

// benchRepo is the BENCHMARKS.md repository: 100,000 commits, 10 pools × 50 locks,
// 250 claimed, 25 of them claimed at the very start and kept since.
func benchRepo(b *testing.B) string {
	b.Helper()
	spec, err := fixture.Synthetic(10, 50, 250, 25, 100_000, time.Now().Add(-time.Hour))
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

// pushMoves adds n commits to the remote's main, each moving one lock as a build
// does: a free lock claimed, then released, and so on.
func pushMoves(b *testing.B, dir string, n int) {
	b.Helper()
	git := func(stdin string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	head := git("", "rev-parse", "main")
	free := ""
	for _, p := range strings.Split(git("", "ls-tree", "--name-only", "main", "pool-00/unclaimed/"), "\n") {
		if !strings.HasSuffix(p, ".gitkeep") {
			free = p
			break
		}
	}
	claimed := strings.Replace(free, "/unclaimed/", "/claimed/", 1)
	var s strings.Builder
	at := time.Now().Unix()
	for i := range n {
		from, to, verb := free, claimed, "claiming"
		if i%2 == 1 {
			from, to, verb = claimed, free, "unclaiming"
		}
		msg := fmt.Sprintf("main/bench/cycle build %d %s: %s", i, verb, filepath.Base(free))
		fmt.Fprintf(&s, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata %d\n%s\n", at+int64(i), len(msg), msg)
		if i == 0 {
			fmt.Fprintf(&s, "from %s\n", head)
		}
		fmt.Fprintf(&s, "C %s %s\nD %s\n\n", from, to, from)
	}
	s.WriteString("done\n")
	git(s.String(), "fast-import", "--quiet", "--done")
}

// cpu is the CPU time of this process and of the children it has waited for.
func cpu() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	d := func(tv syscall.Timeval) time.Duration { return time.Duration(tv.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(kids.Utime) + d(kids.Stime)
}

// benchWorker is a daemon's worker for the repository at dir, after its first
// cycle (the clone and the cold walk).
func benchWorker(b *testing.B, dir string) *worker {
	b.Helper()
	cfg := &Config{File: "bench.yaml", Interval: time.Minute, CacheDir: b.TempDir(), Repos: []Repo{{
		Name: "locks", URI: dir, Branch: "main", ReapOnSuccess: map[string]bool{},
	}}}
	d, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	w := d.workers[0]
	b.Cleanup(func() { w.repo.Close() })
	cycle(b, w)
	return w
}

func cycle(b *testing.B, w *worker) {
	b.Helper()
	doc, _, err := w.reap(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if len(doc.Pools) != 10 {
		b.Fatalf("%d pools in the report", len(doc.Pools))
	}
}

// BenchmarkWatchCycle is one watch cycle (fetch, clean, report) once the daemon
// has run, with 0 or 100 commits pushed since the last; cpu-ms/cycle counts poolboy
// and every git it ran.
func BenchmarkWatchCycle(b *testing.B) {
	dir := benchRepo(b)
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("new=%d", n), func(b *testing.B) {
			w := benchWorker(b, dir)
			var used time.Duration
			for b.Loop() {
				if n > 0 {
					b.StopTimer()
					pushMoves(b, dir, n)
					b.StartTimer()
				}
				start := cpu()
				cycle(b, w)
				used += cpu() - start
			}
			b.ReportMetric(float64(used.Microseconds())/1000/float64(b.N), "cpu-ms/cycle")
		})
	}
}

// BenchmarkWatchCycleMemory runs cycles with nothing new (-benchtime 1000x for the
// issue's 1,000) and reports how much the heap grew from the first to the last.
func BenchmarkWatchCycleMemory(b *testing.B) {
	w := benchWorker(b, benchRepo(b))
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for b.Loop() {
		cycle(b, w)
	}
	after := heap()
	b.ReportMetric((float64(after)-float64(before))/1024, "heap-growth-KB")
	b.ReportMetric(float64(after)/1024/1024, "heap-MB")
}
