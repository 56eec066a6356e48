package pool

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// execWriter is a Writer over the git CLI in a bare repository.
type execWriter struct {
	t   testing.TB
	dir string
}

func (w execWriter) Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, testenv.RequireCommand(w.t, "git"), append([]string{"--git-dir=" + w.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=poolboy", "GIT_AUTHOR_EMAIL=poolboy@localhost",
		"GIT_COMMITTER_NAME=poolboy", "GIT_COMMITTER_EMAIL=poolboy@localhost", "GIT_CONFIG_NOSYSTEM=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("git %s: %v: %s", args[0], err, stderr.Bytes())
	}
	return out, nil
}

// lockTree makes a bare repository whose one commit has n locks in each of pools
// ("my "pool"" when 1, else "pool-N"), all claimed, and returns it with the commit
// and the locks.
func lockTree(t testing.TB, pools, n int) (string, string, []Lock) {
	t.Helper()
	work := t.TempDir()
	testenv.Git(t, work, "init", "-q", "-b", "main")
	names := []string{`my "pool"`}
	for i := 1; i < pools; i++ {
		names = append(names, fmt.Sprintf("pool-%d", i))
	}
	for _, pool := range names {
		for _, d := range []string{"claimed", "unclaimed"} {
			if err := os.MkdirAll(filepath.Join(work, pool, d), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(work, pool, d, ".gitkeep"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			if err := os.WriteFile(filepath.Join(work, pool, "claimed", fmt.Sprintf(`env \%d`, i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Git(t, work, "add", "-A")
	testenv.Git(t, work, "commit", "-q", "-m", "setup")
	bare := filepath.Join(t.TempDir(), "locks.git")
	testenv.Git(t, "", "clone", "-q", "--bare", work, bare)
	head := strings.TrimSpace(testenv.Git(t, bare, "rev-parse", "main"))
	out, err := execWriter{t, bare}.Input(context.Background(), nil, nil, "ls-tree", "-r", "-t", "-z", "--full-tree", head)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := Parse(head, out)
	if err != nil {
		t.Fatal(err)
	}
	var locks []Lock
	for _, p := range snap.Pools {
		locks = append(locks, p.Claimed...)
	}
	return bare, head, locks
}

// A chain of commits, each on the one before, each moving its lock unchanged; names
// with spaces, quotes and backslashes are taken literally.
func TestCommits(t *testing.T) {
	bare, head, locks := lockTree(t, 1, 3)
	w := execWriter{t, bare}
	var changes []Change
	for _, l := range locks {
		changes = append(changes, Change{Edits: Move(l, false), Msg: "unclaiming: " + l.Name + "\n\nbody\n"})
	}
	ids, err := Commits(context.Background(), w, head, changes)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 {
		t.Fatalf("ids %v", ids)
	}
	for i, id := range ids {
		parent := head
		if i > 0 {
			parent = ids[i-1]
		}
		if p := strings.TrimSpace(testenv.Git(t, bare, "rev-parse", id+"^")); p != parent {
			t.Errorf("commit %d's parent is %s, want %s", i, p, parent)
		}
		raw, err := w.Input(context.Background(), nil, nil, "cat-file", "commit", id)
		if err != nil {
			t.Fatal(err)
		}
		if _, msg, _ := strings.Cut(string(raw), "\n\n"); msg != changes[i].Msg {
			t.Errorf("commit %d message %q, want %q", i, msg, changes[i].Msg)
		}
		if who := testenv.Git(t, bare, "log", "-1", "--format=%an <%ae> / %cn <%ce>", id); who != "poolboy <poolboy@localhost> / poolboy <poolboy@localhost>" {
			t.Errorf("commit %d by %q", i, who)
		}
		diff := testenv.Git(t, bare, "diff-tree", "-r", "--no-renames", "--name-status", "--no-commit-id", id)
		want := fmt.Sprintf("D\t\"my \\\"pool\\\"/claimed/env \\\\%d\"\nA\t\"my \\\"pool\\\"/unclaimed/env \\\\%d\"", i, i)
		if diff != want {
			t.Errorf("commit %d changes\n%s\nwant\n%s", i, diff, want)
		}
		if blob := strings.TrimSpace(testenv.Git(t, bare, "rev-parse", id+":"+locks[i].Pool+"/unclaimed/"+locks[i].Name)); blob != locks[i].Blob {
			t.Errorf("commit %d: content changed: %s, was %s", i, blob, locks[i].Blob)
		}
	}
	if refs := testenv.Git(t, bare, "for-each-ref", "--format=%(refname)"); refs != "refs/heads/main" {
		t.Errorf("refs left behind: %s", refs)
	}
	if _, err := Commits(context.Background(), w, head, []Change{{Edits: []Edit{{Path: "a\nb"}}, Msg: "x"}}); err == nil {
		t.Error("a path with a line break was written")
	}
}

// 1,000 frees on a tree of 10,000 locks, built as clean builds them: in one pool
// (every commit rewrites a directory of 10,000 entries), and in 100 pools of 100.
func BenchmarkCommits1000On10kTree(b *testing.B) {
	for _, shape := range []struct {
		name         string
		pools, locks int
	}{{"1x10000", 1, 10_000}, {"100x100", 100, 100}} {
		b.Run(shape.name, func(b *testing.B) {
			bare, head, locks := lockTree(b, shape.pools, shape.locks)
			w := execWriter{b, bare}
			changes := make([]Change, 1000)
			for i := range changes {
				l := locks[(i*7919)%len(locks)] // spread over the pools
				changes[i] = Change{Edits: Move(l, false), Msg: "unclaiming: " + l.Name + "\n"}
			}
			before := childCPU(b)
			b.ResetTimer()
			for range b.N {
				if _, err := Commits(context.Background(), w, head, changes); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric((childCPU(b)-before).Seconds()/float64(b.N), "git-cpu-s/op")
		})
	}
}

// childCPU is the user + system time of every child process waited for so far: the
// gits Commits runs.
func childCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
