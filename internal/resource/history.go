package resource

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// Depths of the first clone. Every script runs in a fresh container and nearly
// everything it needs is near the branch head, so the clone is shallow; the
// helpers below deepen it (×4 a round) when they need more. Variables so that
// tests can force the deepening paths.
var (
	checkDepth   = 16
	inDepth      = 16
	outDepth     = 1  // acquire, claim, add, update, remove, check: the head's tree is enough
	releaseDepth = 64 // release and remove walk back to the lock's claim commit
	reapDepth    = 256
)

// isCommitID accepts a full SHA-1 or SHA-256 object id, so that a version from
// the request can never be taken by git for an option or a revision expression.
func isCommitID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// have reports whether commit is in the local history with its parents, deepening
// a shallow clone until it is or the whole history is here. (A shallow boundary
// commit is here without its parents: git would show every file of it as added.)
func have(ctx context.Context, repo *gitx.Repo, commit string) (bool, error) {
	for {
		_, err := repo.Output(ctx, "cat-file", "-e", commit+"^{commit}")
		present := err == nil
		shallow, err := repo.Shallow()
		if err != nil {
			return false, err
		}
		if present && !shallow[commit] {
			return true, nil
		}
		if !repo.IsShallow() {
			return present, nil
		}
		if err := repo.Deepen(ctx); err != nil {
			return false, err
		}
	}
}

// poolIn returns the named pool of snap, or an error naming the pools there are:
// a typo should not look like an empty pool, nor make anyone wait forever.
func poolIn(snap *pool.Snapshot, name, branch string) (*pool.Pool, error) {
	if p := snap.Pool(name); p != nil {
		return p, nil
	}
	var quoted []string
	for _, n := range snap.Names() {
		quoted = append(quoted, strconv.Quote(n))
	}
	pools := strings.Join(quoted, ", ")
	if pools == "" {
		pools = "none"
	}
	return nil, fmt.Errorf("pool %q does not exist in branch %s (pools there: %s)", name, branch, pools)
}

// check lists v and the commits that touched the pool after it, oldest first, as
// Concourse's resource contract asks (upstream lists ref~1..HEAD); with no
// version, or one no longer in the branch's history (a force-push), the newest
// such commit, as upstream does.
func (s *script) check(ctx context.Context, v *version) ([]version, error) {
	repo, err := s.open(ctx, checkDepth)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := pool.Read(ctx, repo, head)
	if err != nil {
		return nil, err
	}
	if _, err := poolIn(snap, s.src.Pool, s.src.Branch); err != nil {
		return nil, err
	}
	if v != nil && isCommitID(v.Ref) {
		found, err := have(ctx, repo, v.Ref)
		if err != nil {
			return nil, err
		}
		// --is-ancestor answers 1 for "no" and 128 for trouble: both mean "not ours".
		if _, aerr := repo.Output(ctx, "merge-base", "--is-ancestor", v.Ref, head); found && aerr == nil {
			out, err := repo.Output(ctx, "rev-list", "--reverse", v.Ref+".."+head, "--", s.src.Pool)
			if err != nil {
				return nil, err
			}
			return append([]version{{Ref: v.Ref}}, versions(out)...), nil
		}
		fmt.Fprintf(s.log, "version %s is not in the history of branch %s any more; starting again from the newest commit\n", v.Ref, s.src.Branch)
	}
	for {
		out, err := repo.Output(ctx, "log", "-1", "--format=%H", head, "--", s.src.Pool)
		if err != nil {
			return nil, err
		}
		newest := strings.TrimSpace(string(out))
		shallow, err := repo.Shallow()
		if err != nil {
			return nil, err
		}
		if (newest != "" && !shallow[newest]) || !repo.IsShallow() {
			return versions(out), nil
		}
		// Only the shallow boundary "touched" the pool, which proves nothing.
		if err := repo.Deepen(ctx); err != nil {
			return nil, err
		}
	}
}

func versions(out []byte) []version {
	vs := []version{} // [] rather than null when there is none
	for _, l := range strings.Fields(string(out)) {
		vs = append(vs, version{Ref: l})
	}
	return vs
}

type inParams struct {
	Depth int `json:"depth"`
}

// notAcquired is upstream's in's complaint, word for word (users search their logs
// for it), about a version whose lock is no longer held by the claim it saw.
const notAcquired = "error: lock instance is no longer acquired"

// in writes, for the version's commit, DIR/name and DIR/metadata of the lock the
// pool's newest lock commit at or before it changed (the version itself when it
// changed one; upstream takes `git log -1 -- POOL` at the version), and DIR/ref:
// the claim the lock is held by when it is claimed there and the version changed
// it, else the version. That is the fence out's release checks. As upstream, a version at which the lock is
// claimed fails once that claim no longer holds it (see acquired). Unlike
// upstream, DIR holds no checkout of the repository.
func (s *script) in(ctx context.Context, dir string, v *version, p inParams) (*answer, error) {
	if p.Depth < 0 {
		return nil, fmt.Errorf("invalid payload: params.depth %d must not be negative", p.Depth)
	}
	ref := ""
	if v != nil {
		ref = v.Ref
	}
	if ref != "" && !isCommitID(ref) {
		return nil, fmt.Errorf("invalid payload: version ref %q is not a commit id", ref)
	}
	depth := inDepth
	if p.Depth > 0 {
		depth = p.Depth
	}
	repo, err := s.open(ctx, depth)
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	head, err := repo.Head(ctx)
	if err != nil {
		return nil, err
	}
	if ref == "" { // upstream takes HEAD when there is no version
		ref = head
	}
	found, err := have(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("version %s is not in the history of branch %s", ref, s.src.Branch)
	}
	var name string
	var metadata []byte
	lockCommit, err := s.newestLockCommit(ctx, repo, ref)
	switch {
	case err != nil:
		return nil, err
	case lockCommit == "":
		fmt.Fprintf(s.log, "warning: no commit up to %s changed a lock of pool %q: name and metadata are empty\n", ref, s.src.Pool)
	default:
		if name, metadata, err = s.changedLock(ctx, repo, lockCommit); err != nil {
			return nil, err
		}
	}
	fence := ref
	var set []commitmsg.LockRef
	if name != "" {
		claim, err := s.acquired(ctx, repo, ref, head, name)
		if err != nil {
			return nil, err
		}
		// The claim is the fence only when the version is about that lock: a
		// version that changed no lock of the pool (another pool's commit, a
		// queue commit) names the pool's newest lock commit's lock, as upstream,
		// which may be another build's; its ref then stays the version, and a
		// release through it must find the claim naming this build.
		if claim != "" && lockCommit == ref {
			fence = claim
			if set, err = s.acquiredSet(ctx, repo, ref, head, claim); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
	}{
		{"name", []byte(name + "\n")}, // upstream: echo NAME > name
		{"metadata", metadata},
		{"ref", []byte(fence + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	if err := s.writeLocks(ctx, repo, dir, ref, name, metadata, set); err != nil {
		return nil, err
	}
	ans := s.answer(ref, name)
	if set != nil {
		fmt.Fprintf(s.log, "fetched locks %s at %s\n", lockList(set), ref)
		ans.Metadata = append(ans.Metadata, metadataPair{Name: "locks", Value: lockList(set)})
		return ans, nil
	}
	fmt.Fprintf(s.log, "fetched lock %q of pool %q at %s\n", name, s.src.Pool, ref)
	return ans, nil
}

// acquiredSet is the locks of claim when it took several at once (nil when it
// took one), each still held by it at head: as upstream's in fails for a lock no
// longer held, in fails for a multi-lock claim any lock of which is not.
func (s *script) acquiredSet(ctx context.Context, repo *gitx.Repo, v, head, claim string) ([]commitmsg.LockRef, error) {
	set, err := lockSetOf(ctx, repo, claim)
	if err != nil || set == nil || v == head {
		return set, err
	}
	var paths []string
	for _, l := range set {
		paths = append(paths, pool.LockPath(l.Pool, l.Name, true))
	}
	found, err := claims.Find(ctx, repo, head, paths)
	if err != nil {
		return nil, err
	}
	for i, l := range set {
		if c, ok := found.Claims[paths[i]]; !ok || c.Commit != claim {
			return nil, fmt.Errorf("%s: lock %q of pool %q, claimed by %s with %d other locks, is not held by that claim any more", notAcquired, l.Name, l.Pool, claim, len(set)-1)
		}
	}
	return set, nil
}

// writeLocks writes DIR/locks/POOL/NAME, the metadata of every lock of the step:
// each lock of a multi-lock claim (set), as it was at version v, else the one
// lock the step names.
func (s *script) writeLocks(ctx context.Context, repo *gitx.Repo, dir, v, name string, metadata []byte, set []commitmsg.LockRef) error {
	type file struct {
		ref  commitmsg.LockRef
		data []byte
	}
	var files []file
	if set == nil && name != "" {
		files = append(files, file{commitmsg.LockRef{Pool: s.src.Pool, Name: name}, metadata})
	}
	for _, l := range set {
		data, err := lockFileAt(ctx, repo, v, pool.LockPath(l.Pool, l.Name, true))
		if err != nil {
			return err
		}
		files = append(files, file{l, data})
	}
	if err := os.MkdirAll(filepath.Join(dir, "locks"), 0o755); err != nil {
		return err
	}
	for _, f := range files {
		d := filepath.Join(dir, "locks", f.ref.Pool)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, f.ref.Name), f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// lockFileAt is the content of the lock file at path in commit; a lock that is not
// a regular file there is never read: empty.
func lockFileAt(ctx context.Context, repo *gitx.Repo, commit, path string) ([]byte, error) {
	out, err := repo.Output(ctx, "ls-tree", "-z", commit, "--", path)
	if err != nil {
		return nil, err
	}
	meta, _, _ := strings.Cut(string(out), "\t")
	f := strings.Fields(meta)
	if len(f) != 3 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
		return nil, nil
	}
	return repo.Output(ctx, "cat-file", "blob", f[2])
}

// acquired is upstream's check that a version's lock is still held: when the lock
// is claimed at version v, the claim holding it there (per the one claim walk) must
// still be its claim at head; then it returns that claim. A lock not claimed at v
// (an unclaim, an add, an update of a free lock, a removal) is nobody's: "".
// Upstream fails too when the lock was merely updated since; an update does not
// release a claim, so here it does not.
func (s *script) acquired(ctx context.Context, repo *gitx.Repo, v, head, name string) (string, error) {
	path := pool.LockPath(s.src.Pool, name, true)
	// claimAt is the lock's claim at commit; none when it is not claimed there.
	claimAt := func(commit string) (claims.Claim, bool, error) {
		out, err := repo.Output(ctx, "ls-tree", "--name-only", commit, "--", path)
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			return claims.Claim{}, false, err
		}
		found, err := claims.Find(ctx, repo, commit, []string{path})
		if err != nil {
			return claims.Claim{}, false, err
		}
		if cs := found.Conflicts[path]; len(cs) > 0 {
			return claims.Claim{}, false, fmt.Errorf("lock %q in pool %q at %s: %s", name, s.src.Pool, commit, reaper.ConflictDetail(cs))
		}
		c, ok := found.Claims[path]
		return c, ok, nil
	}
	held, ok, err := claimAt(v)
	if err != nil || !ok {
		return "", err
	}
	if v == head {
		return held.Commit, nil
	}
	current, ok, err := claimAt(head)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return "", fmt.Errorf("%s: lock %q of pool %q, claimed by %s, is not claimed any more (released, reaped or removed)", notAcquired, name, s.src.Pool, held.Commit)
	case current.Commit != held.Commit:
		return "", fmt.Errorf("%s: lock %q of pool %q, claimed by %s, has been claimed again since by %s", notAcquired, name, s.src.Pool, held.Commit, describe(current, true))
	}
	return held.Commit, nil
}

// lockScanBatch is how many commits newestLockCommit asks git for at a time: the
// first nearly always is the one.
const lockScanBatch = 32

// newestLockCommit returns the newest commit at or before at that changed a lock
// of the pool (not .gitkeep, nor any other name that is no lock), or "" if none
// did. A shallow clone is deepened until it has the commit with its parents, or
// all history.
func (s *script) newestLockCommit(ctx context.Context, repo *gitx.Repo, at string) (string, error) {
	paths := []string{s.src.Pool + "/claimed", s.src.Pool + "/unclaimed"}
	for {
		shallow, err := repo.Shallow()
		if err != nil {
			return "", err
		}
		commit, err := s.scanLockCommits(ctx, repo, at, paths, shallow)
		if err != nil || commit != "" || !repo.IsShallow() {
			return commit, err
		}
		if err := repo.Deepen(ctx); err != nil {
			return "", err
		}
	}
}

// scanLockCommits walks the commits at or before at that touched paths, newest
// first, up to the first that changed a lock, or to a shallow boundary (whose diff
// proves nothing): "" then.
func (s *script) scanLockCommits(ctx context.Context, repo *gitx.Repo, at string, paths []string, shallow map[string]bool) (string, error) {
	for skip := 0; ; skip += lockScanBatch {
		args := append([]string{"rev-list", fmt.Sprintf("--max-count=%d", lockScanBatch), fmt.Sprintf("--skip=%d", skip), at, "--"}, paths...)
		out, err := repo.Output(ctx, args...)
		if err != nil {
			return "", err
		}
		ids := strings.Fields(string(out))
		if len(ids) == 0 {
			return "", nil
		}
		for _, id := range ids {
			if shallow[id] {
				return "", nil
			}
			first, _, err := s.lockChanges(ctx, repo, id)
			if err != nil {
				return "", err
			}
			if first != nil {
				return id, nil
			}
		}
	}
}

// lockChange is one lock file a commit changed.
type lockChange struct{ name, mode, blob string }

// lockChanges returns the first lock of the pool commit changed (in git's path
// order, so a claim gives the lock's new place, claimed/), and the first it did not
// delete; nil when there is none. Only valid lock names count.
func (s *script) lockChanges(ctx context.Context, repo *gitx.Repo, commit string) (first, present *lockChange, err error) {
	out, err := repo.Output(ctx, "diff-tree", "-r", "-z", "--root", "--no-renames", "--no-commit-id", commit, "--", s.src.Pool)
	if err != nil {
		return nil, nil, err
	}
	rec := bytes.Split(out, []byte{0})
	for i := 0; i+1 < len(rec); i += 2 {
		// ":oldmode newmode oldblob newblob status" then the path.
		f := strings.Fields(strings.TrimPrefix(string(rec[i]), ":"))
		parts := strings.Split(string(rec[i+1]), "/")
		if len(f) < 5 || len(parts) != 3 || parts[0] != s.src.Pool ||
			(parts[1] != "claimed" && parts[1] != "unclaimed") || pool.ValidName(parts[2]) != nil {
			continue
		}
		c := &lockChange{name: parts[2], mode: f[1], blob: f[3]}
		if first == nil {
			first = c
		}
		if present == nil && f[4] != "D" {
			present = c
		}
	}
	return first, present, nil
}

// changedLock finds the lock of the pool that commit changed and its content at
// that commit. Like upstream it takes the first changed path; unlike upstream it
// looks only at lock names of the pool, reads only regular files, and warns
// instead of failing when there is nothing to read. A removed lock has no
// metadata, as expected: that is said, not warned about.
func (s *script) changedLock(ctx context.Context, repo *gitx.Repo, commit string) (string, []byte, error) {
	first, present, err := s.lockChanges(ctx, repo, commit)
	switch {
	case err != nil:
		return "", nil, err
	case first == nil:
		fmt.Fprintf(s.log, "warning: commit %s changed no lock of pool %q: name and metadata are empty\n", commit, s.src.Pool)
		return "", nil, nil
	case present == nil || present.name != first.name:
		fmt.Fprintf(s.log, "lock %q was removed in %s\n", first.name, commit)
		return first.name, nil, nil
	case present.mode != "100644" && present.mode != "100755":
		fmt.Fprintf(s.log, "warning: lock %q is not a regular file at %s (mode %s): never read; its metadata is empty\n", present.name, commit, present.mode)
		return present.name, nil, nil
	}
	data, err := repo.Output(ctx, "cat-file", "blob", present.blob)
	if err != nil {
		return "", nil, err
	}
	return present.name, data, nil
}

// answer is the JSON in and out print.
func (s *script) answer(ref, lock string) *answer {
	return &answer{
		Version: version{Ref: ref},
		Metadata: []metadataPair{
			{Name: "lock_name", Value: lock},
			{Name: "pool_name", Value: s.src.Pool},
		},
	}
}
