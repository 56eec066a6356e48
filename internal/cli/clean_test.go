package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// receivePacks is how many push requests reached the HTTP server; -1 for other transports.
func receivePacks(tr transport) int {
	if tr.http == nil {
		return -1
	}
	return tr.http.Requests()["receive-pack"]
}

// checkUnclaimCommit checks the commit that freed pool/lock: its parent, that it only
// moves the lock's blob (same mode) from claimed/ to unclaimed/, and its message.
func checkUnclaimCommit(t *testing.T, r *lockRepo, commit, parent, pool, lock, claim, owner string, age, timeout time.Duration) {
	t.Helper()
	if got := testenv.Git(t, r.dir, "rev-parse", commit+"^"); got != parent {
		t.Errorf("%s: parent %s, want %s", lock, got, parent)
	}
	claimed, unclaimed := pool+"/claimed/"+lock, pool+"/unclaimed/"+lock
	if got, want := testenv.Git(t, r.dir, "diff", "--no-renames", "--name-status", parent, commit),
		"D\t"+claimed+"\nA\t"+unclaimed; got != want {
		t.Errorf("%s: commit changes\n%s\nwant\n%s", lock, got, want)
	}
	oldEntry, _, _ := strings.Cut(testenv.Git(t, r.dir, "ls-tree", parent, claimed), "\t")
	newEntry, _, _ := strings.Cut(testenv.Git(t, r.dir, "ls-tree", commit, unclaimed), "\t")
	if oldEntry == "" || oldEntry != newEntry {
		t.Errorf("%s: lock file changed in the move: %q -> %q", lock, oldEntry, newEntry)
	}

	msg := testenv.Git(t, r.dir, "log", "-1", "--format=%B", commit)
	subject, body, _ := strings.Cut(msg, "\n")
	if subject != "unclaiming: "+lock {
		t.Errorf("%s: first line %q, want %q", lock, subject, "unclaiming: "+lock)
	}
	for _, want := range []string{
		policyHuman(age), policyHuman(timeout) + " timeout", claim, owner,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("%s: message body does not mention %q:\n%s", lock, want, msg)
		}
	}
	if !strings.Contains("\n"+msg+"\n", "\nPoolboy-Rule: timeout\n") {
		t.Errorf("%s: no Poolboy-Rule: timeout line:\n%s", lock, msg)
	}
	// git itself must read the trailer block as trailers.
	trailers := testenv.Git(t, r.dir, "log", "-1", "--format=%(trailers:only,unfold)", commit)
	for _, want := range []string{"Poolboy-Rule: timeout", "Poolboy-Claim-Commit: " + claim, "Poolboy-Pool: " + pool, "Poolboy-Lock: " + lock} {
		if !strings.Contains(trailers, want) {
			t.Errorf("%s: git does not parse trailer %q; trailers:\n%s", lock, want, trailers)
		}
	}
}

// policyHuman is how poolboy writes the whole hours the fixtures use ("5h", "1h").
func policyHuman(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func TestCleanOverEveryTransport(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"file", "git", "http"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r := newLockRepo(t, "main")
			tr := serve(t, r, kind)[0]
			staleClaim := r.commitWithMessage(t, "main", staleMsg)
			old := r.head(t, "main")
			oldRefs := r.refs(t)
			args := []string{"clean", "--repo", tr.url, "--pools", "aws:1h"}

			// Dry run: lists the lock, pushes nothing.
			pushesBefore := receivePacks(tr)
			res := mustRun(t, tr.env, append(args, "--dry-run")...)
			if !strings.Contains(res.stdout, "would free aws/env-1: ") ||
				!strings.Contains(res.stdout, "dry run: 1 stale lock, nothing pushed") {
				t.Errorf("dry run output:\n%s", res.stdout)
			}
			if strings.Contains(res.stdout, "env-2:") || strings.Contains(res.stdout, "gpu-a:") {
				t.Errorf("dry run would free more than env-1:\n%s", res.stdout)
			}
			if got := r.refs(t); got != oldRefs {
				t.Fatalf("dry run changed the remote:\n%s\n->\n%s", oldRefs, got)
			}
			if got := receivePacks(tr); got != pushesBefore {
				t.Errorf("dry run made %d push requests", got-pushesBefore)
			}
			d := decodeStatus(t, mustRun(t, tr.env, append(args, "--dry-run", "--output", "json")...).stdout)
			if d.Clean == nil || !d.Clean.DryRun || len(d.Clean.Freed) != 1 || d.Clean.Freed[0].Lock != "env-1" ||
				d.Clean.Freed[0].Pool != "aws" || d.Clean.Freed[0].Commit != "" || d.Clean.Freed[0].Rule != "timeout" {
				t.Errorf("dry run JSON clean section: %+v", d.Clean)
			}

			// The real thing: exactly env-1, one commit, fast-forward.
			res = mustRun(t, tr.env, args...)
			head := r.head(t, "main")
			if head == old {
				t.Fatalf("clean pushed nothing:\n%s", res)
			}
			if !strings.Contains(res.stdout, "freed aws/env-1 in "+head[:10]+": ") ||
				!strings.Contains(res.stdout, "cleaned 1 lock (1 attempt)") {
				t.Errorf("clean output:\n%s", res.stdout)
			}
			testenv.Git(t, r.dir, "merge-base", "--is-ancestor", old, head)
			if n := testenv.Git(t, r.dir, "rev-list", "--count", old+".."+head); n != "1" {
				t.Errorf("%s commits pushed, want 1", n)
			}
			checkUnclaimCommit(t, r, head, old, "aws", "env-1", staleClaim, staleOwner, 5*time.Hour, time.Hour)
			// Only the branch moved.
			if got, want := r.refs(t), strings.ReplaceAll(oldRefs, old, head); got != want {
				t.Errorf("refs after clean:\n%s\nwant\n%s", got, want)
			}
			// Fresh claims and pools without a timeout are untouched.
			for _, p := range []string{"aws/claimed/env-2", "gpu/claimed/gpu-a", "aws/unclaimed/env-3"} {
				if a, b := testenv.Git(t, r.dir, "rev-parse", old+":"+p), testenv.Git(t, r.dir, "rev-parse", head+":"+p); a != b {
					t.Errorf("%s changed: %s -> %s", p, a, b)
				}
			}
			if tr.http != nil && receivePacks(tr) == pushesBefore {
				t.Error("the HTTP server saw no push")
			}

			// Again: nothing to do, nothing pushed.
			refs := r.refs(t)
			res = mustRun(t, tr.env, args...)
			if !strings.Contains(res.stdout, "nothing to clean") {
				t.Errorf("second clean:\n%s", res.stdout)
			}
			if got := r.refs(t); got != refs {
				t.Errorf("second clean changed the remote:\n%s\n->\n%s", refs, got)
			}
		})
	}
}

func TestCleanMakesOneCommitPerLock(t *testing.T) {
	t.Parallel()
	now := time.Now()
	const msg3 = "main/deploy/integration build 42 claiming: env-3"
	r := newLockRepo(t, "main", fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-3", At: now.Add(-2 * time.Hour), Message: msg3})
	claims := map[string]string{"env-1": r.commitWithMessage(t, "main", staleMsg), "env-3": r.commitWithMessage(t, "main", msg3)}
	old := r.head(t, "main")

	res := mustRun(t, nil, "clean", "--repo", "file://"+r.dir, "--pools", "aws:1h,gpu:10h", "--output", "json")
	d := decodeStatus(t, res.stdout)
	head := r.head(t, "main")
	commits := strings.Fields(testenv.Git(t, r.dir, "rev-list", "--reverse", old+".."+head))
	if len(commits) != 2 {
		t.Fatalf("%d commits pushed, want one per stale lock (2)", len(commits))
	}
	if d.Clean == nil || d.Clean.DryRun || d.Clean.Attempts != 1 || len(d.Clean.Freed) != 2 {
		t.Fatalf("clean section %+v, want 2 locks freed in 1 attempt", d.Clean)
	}
	for i, f := range d.Clean.Freed {
		if f.Commit != commits[i] || f.Pool != "aws" || f.Rule != "timeout" {
			t.Errorf("freed[%d] = %+v, want aws, rule timeout, commit %s", i, f, commits[i])
		}
	}
	parent := old
	for _, c := range commits {
		lock := strings.TrimPrefix(testenv.Git(t, r.dir, "log", "-1", "--format=%s", c), "unclaiming: ")
		claim, ok := claims[lock]
		if !ok {
			t.Fatalf("commit %s frees %q, want env-1 or env-3", c, lock)
		}
		delete(claims, lock)
		owner, age := staleOwner, 5*time.Hour
		if lock == "env-3" {
			owner, age = "main/deploy/integration #42", 2*time.Hour
		}
		checkUnclaimCommit(t, r, c, parent, "aws", lock, claim, owner, age, time.Hour)
		parent = c
	}
	// gpu-a (3h) is within gpu's 10h; env-2 is fresh.
	for _, p := range []string{"aws/claimed/env-2", "gpu/claimed/gpu-a"} {
		testenv.Git(t, r.dir, "rev-parse", "--verify", head+":"+p)
	}
}

// Issue 17.3: clean's text says what happened, then the pools as they are now
// (env-1 freed: not listed, 0 stale), and stderr does not repeat it.
func TestCleanTextReadsOnce(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	res := mustRun(t, nil, "clean", "--repo", "file://"+r.dir, "--pools", "aws:1h")
	if res.stderr != "" {
		t.Errorf("stderr repeats stdout:\n%s", res.stderr)
	}
	freed, summary, pool := strings.Index(res.stdout, "freed aws/env-1 in "), strings.Index(res.stdout, "cleaned 1 lock"), strings.Index(res.stdout, "\npool aws ")
	if freed < 0 || summary < freed || pool < summary {
		t.Fatalf("want the frees, the summary, then the pools:\n%s", res.stdout)
	}
	after := textBlocks(res.stdout[pool:])["aws"]
	if len(after) == 0 || after[0] != "pool aws (timeout 1h): 1 claimed, 2 unclaimed, 0 stale" || row(after, "env-1") != "" {
		t.Errorf("the pools are not shown as they are after the clean:\n%s", res.stdout)
	}
	if !strings.Contains(res.stdout, "(branch main at "+r.head(t, "main")[:10]+")") {
		t.Errorf("the header does not name the new head:\n%s", res.stdout)
	}
}
