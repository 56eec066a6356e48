package cli_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/cli"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// within checks that got lies in [want, want+slack].
func within(t *testing.T, what string, got int64, want, slack time.Duration) {
	t.Helper()
	lo, hi := int64(want/time.Second), int64((want+slack)/time.Second)
	if got < lo || got > hi {
		t.Errorf("%s = %ds, want between %ds and %ds", what, got, lo, hi)
	}
}

func TestStatusOverEveryTransport(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	staleClaim := r.commitWithMessage(t, "main", staleMsg)
	freshClaim := r.commitWithMessage(t, "main", freshMsg)
	oneOffClaim := r.commitWithMessage(t, "main", oneOffMsg)
	head := r.head(t, "main")
	before := r.refs(t)

	for _, tr := range serve(t, r, "path", "file", "git", "http") {
		t.Run(tr.name, func(t *testing.T) {
			t.Run("text", func(t *testing.T) {
				res := mustRun(t, tr.env, "status", "--repo", tr.url, "--pools", "aws:1h")
				first, _, _ := strings.Cut(res.stdout, "\n")
				if !strings.Contains(first, "branch main") || !strings.Contains(first, head[:10]) {
					t.Errorf("header %q does not name branch main at %s", first, head[:10])
				}
				blocks := textBlocks(res.stdout)
				if len(blocks) != 2 {
					t.Fatalf("want one block per pool (aws, gpu), got %d:\n%s", len(blocks), res.stdout)
				}
				for pool, want := range map[string]string{
					"aws": "pool aws (timeout 1h): 2 claimed, 1 unclaimed, 1 stale",
					"gpu": "pool gpu (no timeout): 1 claimed, 0 unclaimed, 0 stale",
				} {
					if got := blocks[pool]; len(got) == 0 || got[0] != want {
						t.Errorf("pool %s header %q, want %q", pool, got, want)
					}
				}
				for _, c := range []struct{ pool, lock, owner, verdict string }{
					{"aws", "env-1", staleOwner, "stale"},
					{"aws", "env-2", freshOwner, "held"},
					{"gpu", "gpu-a", oneOff, "unwatched"},
				} {
					line := row(blocks[c.pool], c.lock)
					if line == "" {
						t.Errorf("pool %s has no row for %s:\n%s", c.pool, c.lock, res.stdout)
						continue
					}
					if !strings.Contains(line, "  "+c.owner+"  ") || !strings.Contains(line, "  "+c.verdict+"  ") {
						t.Errorf("row %q: want owner %q and verdict %q", line, c.owner, c.verdict)
					}
				}
				if line := row(blocks["aws"], "env-3"); line != "" {
					t.Errorf("unclaimed env-3 has a row: %q", line)
				}
			})

			t.Run("json", func(t *testing.T) {
				res := mustRun(t, tr.env, "status", "--repo", tr.url, "--pools", "aws:1h", "--output", "json")
				d := decodeStatus(t, res.stdout)
				if d.Schema != "poolboy.status/v2" {
					t.Errorf("schema %q", d.Schema)
				}
				if d.Branch != "main" || d.Commit != head {
					t.Errorf("branch %q commit %q, want main %s", d.Branch, d.Commit, head)
				}
				if d.GeneratedAt.Before(r.now) {
					t.Errorf("generated_at %v is before the fixture was built (%v)", d.GeneratedAt, r.now)
				}
				if got := timeouts(t, res.stdout); got["aws"] != "3600" || got["gpu"] != "null" {
					t.Errorf("timeout_seconds %v, want aws 3600 and gpu null", got)
				}

				claimed, unclaimed, stale, _, locks := d.pool(t, "aws")
				if claimed != 2 || unclaimed != 1 || stale != 1 || len(locks) != 2 {
					t.Errorf("aws: %d claimed %d unclaimed %d stale %d rows, want 2 1 1 2", claimed, unclaimed, stale, len(locks))
				}
				l := locks["env-1"]
				if l.Verdict != "stale" || l.Rule != "timeout" || l.ClaimCommit != staleClaim {
					t.Errorf("env-1: verdict %q rule %q claim %s, want stale timeout %s", l.Verdict, l.Rule, l.ClaimCommit, staleClaim)
				}
				within(t, "env-1 age", l.AgeSeconds, 5*time.Hour, 2*time.Minute)
				if l.ClaimedAt == nil || !l.ClaimedAt.Equal(time.Unix(r.now.Add(-5*time.Hour).Unix(), 0)) {
					t.Errorf("env-1 claimed_at %v, want %v", l.ClaimedAt, r.now.Add(-5*time.Hour).Truncate(time.Second))
				}
				if o := l.Owner; o == nil || o.Display != staleOwner || o.Team != "main" || o.Pipeline != "deploy" ||
					o.Job != "integration" || o.Build != "41" || o.URL != "" || o.BuildID != "" {
					t.Errorf("env-1 owner %+v", o)
				}

				l = locks["env-2"]
				if l.Verdict != "held" || l.ClaimCommit != freshClaim {
					t.Errorf("env-2: verdict %q claim %s, want held %s", l.Verdict, l.ClaimCommit, freshClaim)
				}
				within(t, "env-2 age", l.AgeSeconds, 5*time.Minute, 2*time.Minute)
				if o := l.Owner; o == nil || o.Display != freshOwner || o.URL != buildURL || o.Team != "main" ||
					o.Pipeline != "deploy" || o.Job != "smoke" || o.Build != "7" {
					t.Errorf("env-2 owner %+v", o)
				}

				claimed, unclaimed, stale, _, locks = d.pool(t, "gpu")
				if claimed != 1 || unclaimed != 0 || stale != 0 {
					t.Errorf("gpu: %d claimed %d unclaimed %d stale, want 1 0 0", claimed, unclaimed, stale)
				}
				l = locks["gpu-a"]
				if l.Verdict != "unwatched" || l.ClaimCommit != oneOffClaim {
					t.Errorf("gpu-a: verdict %q claim %s, want unwatched %s", l.Verdict, l.ClaimCommit, oneOffClaim)
				}
				within(t, "gpu-a age", l.AgeSeconds, 3*time.Hour, 2*time.Minute)
				if o := l.Owner; o == nil || o.Display != oneOff || o.BuildID != "5512" || o.Pipeline != "" {
					t.Errorf("gpu-a owner %+v", o)
				}
				if d.Clean != nil {
					t.Error("status wrote a clean section")
				}
			})
		})
	}
	if after := r.refs(t); after != before {
		t.Errorf("status changed the remote:\nbefore %s\nafter  %s", before, after)
	}
}

// The default branch is whatever the remote's HEAD names, not a guess at main/master.
func TestBranchDefaultsToRemoteHEAD(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "locks")
	initial := r.commitWithMessage(t, "locks", "initial pools")
	staleClaim := r.commitWithMessage(t, "locks", staleMsg)
	// Decoys a guesser would pick, and a branch to ask for explicitly: on staging
	// env-1 is claimed (5h ago) and env-2 not yet.
	testenv.Git(t, r.dir, "branch", "main", initial)
	testenv.Git(t, r.dir, "branch", "master", initial)
	testenv.Git(t, r.dir, "branch", "staging", staleClaim)

	for _, tr := range serve(t, r, "file", "git", "http") {
		t.Run(tr.name, func(t *testing.T) {
			d := decodeStatus(t, mustRun(t, tr.env, "status", "--repo", tr.url, "--output", "json").stdout)
			if d.Branch != "locks" || d.Commit != r.head(t, "locks") {
				t.Errorf("default: branch %q at %s, want locks at %s", d.Branch, d.Commit, r.head(t, "locks"))
			}
			if c, u, _, _, _ := d.pool(t, "aws"); c != 2 || u != 1 {
				t.Errorf("default: aws %d claimed %d unclaimed, want locks' 2 and 1", c, u)
			}

			d = decodeStatus(t, mustRun(t, tr.env, "status", "--repo", tr.url, "--branch", "staging", "--output", "json").stdout)
			if d.Branch != "staging" || d.Commit != staleClaim {
				t.Errorf("--branch staging: branch %q at %s, want staging at %s", d.Branch, d.Commit, staleClaim)
			}
			if c, u, _, _, _ := d.pool(t, "aws"); c != 1 || u != 2 {
				t.Errorf("--branch staging: aws %d claimed %d unclaimed, want 1 and 2", c, u)
			}
		})
	}

	t.Run("clean on an explicit branch moves only that branch", func(t *testing.T) {
		locksHead := r.head(t, "locks")
		res := mustRun(t, nil, "clean", "--repo", "file://"+r.dir, "--branch", "staging", "--pools", "aws:1h")
		if !strings.Contains(res.stdout, "cleaned 1 lock") {
			t.Errorf("stdout:\n%s", res.stdout)
		}
		if got := r.head(t, "locks"); got != locksHead {
			t.Errorf("locks moved from %s to %s", locksHead, got)
		}
		newStaging := r.head(t, "staging")
		if testenv.Git(t, r.dir, "rev-parse", newStaging+"^") != staleClaim {
			t.Errorf("staging %s is not one commit on top of %s", newStaging, staleClaim)
		}
		for _, b := range []string{"main", "master"} {
			if got := r.head(t, b); got != initial {
				t.Errorf("%s moved to %s", b, got)
			}
		}
	})
}

// notifyWriter is a stderr that closes seen once it has received text.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	text string
	seen chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := strings.Contains(w.buf.String(), w.text)
	w.buf.Write(p)
	if !had && strings.Contains(w.buf.String(), w.text) {
		close(w.seen)
	}
	return len(p), nil
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// A git server that is down when status starts gets three tries, two seconds
// apart: back by then, the run succeeds; still down, it fails with git's error.
func TestStatusRidesOutAGitServerRestart(t *testing.T) {
	r := newLockRepo(t, "main")
	daemon := testenv.StartGitDaemon(t, r.root)
	url := daemon.URL + "locks.git"
	daemon.Stop()

	stderr := &notifyWriter{text: "could not reach the repository", seen: make(chan struct{})}
	var stdout bytes.Buffer
	code := make(chan int)
	go func() {
		code <- cli.Main(t.Context(), []string{"status", "--repo", url, "--pools", "aws:1h", "--verbose"}, &stdout, stderr, func(string) (string, bool) { return "", false })
	}()
	select {
	case <-stderr.seen:
	case <-time.After(time.Minute):
		t.Fatalf("no retry announced:\n%s", stderr)
	}
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	if c := <-code; c != 0 || !strings.Contains(stdout.String(), "env-1") {
		t.Fatalf("status after the restart: exit %d\n%s\n%s", c, stdout.String(), stderr)
	}

	daemon.Stop()
	res := run(t, nil, "status", "--repo", url, "--pools", "aws:1h", "--verbose")
	if res.code != 1 || strings.Count(res.stderr, "could not reach the repository") != 2 || !strings.Contains(res.stderr, "Connection refused") {
		t.Errorf("status against a server that stays down: want exit 1 after 3 tries (2 retried)\n%s", res)
	}
	// Without --verbose the failure is one line.
	res = run(t, nil, "status", "--repo", url, "--pools", "aws:1h")
	if lines := strings.Split(strings.TrimSpace(res.stderr), "\n"); res.code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], "poolboy: git clone: ") {
		t.Errorf("status against a server that stays down, not verbose: want one line\n%s", res)
	}
}
