package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// indexHead is the commit the claim index in cache's clone is at ("" when none).
func indexHead(t *testing.T, cache string) (head string, raw []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cache, "*.git", claims.IndexFile))
	if len(files) != 1 {
		return "", nil
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Head string `json:"head"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("index file: %v", err)
	}
	return f.Head, raw
}

// Two poolboys share one cache dir: the claim index is kept in the cached clone,
// written only by the poolboy holding the cache dir's lock, and used by the next
// one: a run with nothing new walks no history, one after a push walks only it.
func TestCachedClaimIndexSharedByTwoPoolboys(t *testing.T) {
	r := newLockRepo(t, "main")
	url := "file://" + r.dir
	cache := t.TempDir()
	args := []string{"status", "--repo", url, "--cache-dir", cache, "--pools", "aws:1h", "--output", "json", "--verbose"}
	walks := func(stderr string) int { return strings.Count(stderr, "--full-history") }

	first := mustRun(t, nil, args...)
	if walks(first.stderr) != 1 {
		t.Fatalf("first run: %d history walks, want 1\n%s", walks(first.stderr), first.stderr)
	}
	head, before := indexHead(t, cache)
	if head != r.head(t, "main") {
		t.Fatalf("index at %q after the first run, want the head %s", head, r.head(t, "main"))
	}

	// Another poolboy holds the cache dir: ours waits, and writes nothing meanwhile,
	// while a build claims env-3.
	lock, err := os.OpenFile(filepath.Join(cache, "poolboy.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	other := testenv.NewClone(t, url, "main")
	other.Move(t, "aws/unclaimed/env-3", "aws/claimed/env-3", "main/deploy/test build 7 claiming: env-3")
	stderr := &notifyWriter{text: "waiting for the cache dir", seen: make(chan struct{})}
	var stdout bytes.Buffer
	code := make(chan int)
	go func() {
		code <- cli.Main(t.Context(), args, &stdout, stderr, func(string) (string, bool) { return "", false })
	}()
	select {
	case <-stderr.seen:
	case <-time.After(time.Minute):
		t.Fatalf("the second poolboy did not wait for the cache dir:\n%s", stderr)
	}
	if _, now := indexHead(t, cache); !bytes.Equal(now, before) {
		t.Errorf("the index changed while another poolboy held the cache dir")
	}
	lock.Close()
	if c := <-code; c != cli.ExitOK {
		t.Fatalf("second run: exit %d\n%s", c, stderr)
	}
	doc := decodeStatus(t, stdout.String())
	_, _, _, _, locks := doc.pool(t, "aws")
	if got, want := locks["env-3"].ClaimCommit, other.RemoteHead(t); got != want {
		t.Errorf("env-3 claimed by %q, want the new commit %s", got, want)
	}
	if got, want := locks["env-1"].ClaimCommit, r.commitWithMessage(t, "main", staleMsg); got != want {
		t.Errorf("env-1 claimed by %q, want %s", got, want)
	}
	if head, _ := indexHead(t, cache); head != other.RemoteHead(t) {
		t.Errorf("index at %q after the second run, want the new head %s", head, other.RemoteHead(t))
	}

	// Nothing new: the same answer, without a walk.
	third := mustRun(t, nil, args...)
	if walks(third.stderr) != 0 {
		t.Errorf("third run, nothing new: %d history walks\n%s", walks(third.stderr), third.stderr)
	}
	_, _, _, _, again := decodeStatus(t, third.stdout).pool(t, "aws")
	for name, l := range locks {
		if again[name].ClaimCommit != l.ClaimCommit {
			t.Errorf("%s: claim %q from the index, %q from the walk", name, again[name].ClaimCommit, l.ClaimCommit)
		}
	}
}
