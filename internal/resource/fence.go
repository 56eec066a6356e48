package resource

import (
	"context"
	"maps"
	"slices"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
)

// claimOf finds the claim commit of the lock at path (claimed at head), deepening
// a shallow clone until it is found or the whole history has been walked. Each
// round walks only what the last deepening brought, from the old shallow
// boundary on, as the reaper does. ok is false when no commit claims it.
func claimOf(ctx context.Context, repo *gitx.Repo, head, path string) (c claims.Claim, ok bool, err error) {
	from := []string{head}
	for {
		shallow, err := repo.Shallow()
		if err != nil {
			return c, false, err
		}
		found, err := claims.Find(ctx, repo, from, []string{path}, shallow)
		if err != nil {
			return c, false, err
		}
		if c, ok := found[path]; ok {
			return c, true, nil
		}
		if !repo.IsShallow() {
			return c, false, nil
		}
		from = slices.Sorted(maps.Keys(shallow))
		if err := repo.Deepen(ctx); err != nil {
			return c, false, err
		}
	}
}

// added reports whether commit put a file at path (claiming or adding a claimed
// lock, for a claimed/ path). A commit not in the branch's history added nothing.
func added(ctx context.Context, repo *gitx.Repo, commit, path string) (bool, error) {
	found, err := have(ctx, repo, commit)
	if err != nil || !found {
		return false, err
	}
	out, err := repo.Output(ctx, "diff-tree", "-r", "-z", "--root", "--no-renames", "--no-commit-id",
		"--diff-filter=A", "--name-only", commit, "--", path)
	if err != nil {
		return false, err
	}
	return len(out) > 0, nil
}

// ownerOf names the build a claim message names, for error messages.
func ownerOf(msg string) string {
	o := commitmsg.Parse(msg).Owner
	if !o.Known() {
		return "an unknown build"
	}
	return oneLine(o.String())
}
