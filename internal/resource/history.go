package resource

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
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

// check lists the commits that touched the pool after v, oldest first; with no
// version, or one no longer in the branch's history (a force-push), the newest
// such commit, as upstream does. The given version itself is not listed (upstream
// lists ref..HEAD).
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
			return versions(out), nil
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

// in writes, for the version's commit, DIR/name and DIR/metadata of the lock the
// commit changed in the pool, and DIR/ref, the commit: the fence out's release
// checks. Unlike upstream, DIR holds no checkout of the repository.
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
	if ref == "" { // upstream takes HEAD when there is no version
		if ref, err = repo.Head(ctx); err != nil {
			return nil, err
		}
	}
	found, err := have(ctx, repo, ref)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("version %s is not in the history of branch %s", ref, s.src.Branch)
	}
	name, metadata, err := s.changedLock(ctx, repo, ref)
	if err != nil {
		return nil, err
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
		{"ref", []byte(ref + "\n")},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o644); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(s.log, "fetched lock %q of pool %q at %s\n", name, s.src.Pool, ref)
	return s.answer(ref, name), nil
}

// changedLock finds the lock of the pool that commit changed and its content at
// that commit. Like upstream it takes the first changed path (so a claim gives the
// lock's new place, claimed/); unlike upstream it looks only in the pool, reads
// only regular files, and warns instead of failing when there is nothing to read.
func (s *script) changedLock(ctx context.Context, repo *gitx.Repo, commit string) (string, []byte, error) {
	out, err := repo.Output(ctx, "diff-tree", "-r", "-z", "--root", "--no-renames", "--no-commit-id", commit, "--", s.src.Pool)
	if err != nil {
		return "", nil, err
	}
	type change struct{ name, mode, blob string }
	var first, present *change
	rec := bytes.Split(out, []byte{0})
	for i := 0; i+1 < len(rec); i += 2 {
		// ":oldmode newmode oldblob newblob status" then the path.
		f := strings.Fields(strings.TrimPrefix(string(rec[i]), ":"))
		parts := strings.Split(string(rec[i+1]), "/")
		if len(f) < 5 || len(parts) != 3 || parts[0] != s.src.Pool ||
			(parts[1] != "claimed" && parts[1] != "unclaimed") || pool.ValidName(parts[2]) != nil {
			continue
		}
		c := &change{name: parts[2], mode: f[1], blob: f[3]}
		if first == nil {
			first = c
		}
		if present == nil && f[4] != "D" {
			present = c
		}
	}
	switch {
	case first == nil:
		fmt.Fprintf(s.log, "warning: commit %s changed no lock of pool %q: name and metadata are empty\n", commit, s.src.Pool)
		return "", nil, nil
	case present == nil || present.name != first.name:
		fmt.Fprintf(s.log, "warning: commit %s removed lock %q: its metadata is empty\n", commit, first.name)
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
