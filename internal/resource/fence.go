package resource

import (
	"context"
	"fmt"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/claims"
	"github.com/poolboy-ci/poolboy/internal/commitmsg"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// fence decides whether this build may free or remove the claimed lock l at head:
// only the claim it holds, the commit in wrote to the step's ref file. It returns
// the claim acted on ("" when the step has no ref file), or an error saying why not.
//
//   - The lock's current claim is that commit: the build holds it.
//   - The commit claimed this lock, but the current claim is another: the lock was
//     freed and claimed again by someone else. Refuse.
//   - The commit claimed other locks: the step names the wrong lock (a copy-pasted
//     release). Refuse, naming both.
//   - The commit is not in the branch's history (rewritten and force-pushed) or claimed
//     nothing: act only if the current claim names this very build; else refuse.
//   - The lock was claimed on two merged branches: nobody can tell whose claim the
//     build holds. Refuse.
//   - No ref file (a name file a task wrote, as upstream's README shows): act by name,
//     as upstream does, with a warning.
func (o *outRun) fence(ctx context.Context, head string, l pool.Lock) (string, error) {
	held := o.step.ref
	found, err := claims.Find(ctx, o.repo, head, []string{l.Path()})
	if err != nil {
		return "", err
	}
	if cs := found.Conflicts[l.Path()]; len(cs) > 0 {
		return "", fmt.Errorf("lock %q in pool %q: %s: not %s it", l.Name, l.Pool, reaper.ConflictDetail(cs), o.verbing())
	}
	current, ok := found.Claims[l.Path()]
	if held == "" {
		fmt.Fprintf(o.log, "warning: no ref file for lock %s (was it fetched by the upstream pool resource?): %s it without checking who holds it\n", l.Name, o.verbing())
		return "", nil
	}
	if ok && current.Commit == held {
		return held, nil
	}
	present, err := have(ctx, o.repo, held)
	if err != nil {
		return "", err
	}
	// Present is not enough: a local remote's clone has every branch's objects.
	inHistory := present && gitx.IsAncestor(ctx, o.repo, held, head)
	if inHistory {
		took, err := claimedBy(ctx, o.repo, held)
		if err != nil {
			return "", err
		}
		for _, p := range took {
			if p == l.Path() {
				return "", fmt.Errorf("lock %q was claimed by this build (%s), then %s, and is now claimed by %s: not %s it",
					l.Name, held, o.endOf(ctx, held, head, l.Path()), describe(current, ok), o.verbing())
			}
		}
		if len(took) > 0 {
			other := strings.SplitN(took[0], "/", 3)
			return "", fmt.Errorf("the step's ref %s is the claim of lock %q in pool %q, not of lock %q in pool %q: not %s %q (does params.%s name the step that got this lock?)",
				held, other[2], other[0], l.Name, l.Pool, o.verbing(), l.Name, o.op)
		}
	}
	where := "is not in the history of branch " + o.src.Branch + " (was the branch rewritten?)"
	if inHistory {
		where = "claimed no lock"
	}
	if ok && o.holder.owns(current.Message) {
		fmt.Fprintf(o.log, "warning: the step's ref %s %s, but the current claim of lock %s (%s) names this build: %s it\n", held, where, l.Name, current.Commit, o.verbing())
		return current.Commit, nil
	}
	return "", fmt.Errorf("cannot tell whose claim lock %q is: the step's ref %s %s, and the current claim is %s, not this build's: not %s it",
		l.Name, held, where, describe(current, ok), o.verbing())
}

// verbing is the operation in words: "releasing" or "removing".
func (o *outRun) verbing() string {
	if o.op == "remove" {
		return "removing"
	}
	return "releasing"
}

// describe names a claim and its build for people.
func describe(c claims.Claim, ok bool) string {
	if !ok {
		return "not in the history"
	}
	return fmt.Sprintf("%s (claim %s)", ownerOf(c.Message), c.Commit)
}

// claimedBy lists the claimed/ paths commit added: the locks it claimed (or added claimed).
func claimedBy(ctx context.Context, repo *gitx.Repo, commit string) ([]string, error) {
	out, err := repo.Output(ctx, "diff-tree", "-r", "-z", "--root", "--no-renames", "--no-commit-id",
		"--diff-filter=A", "--name-only", commit)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range strings.Split(string(out), "\x00") {
		if parts := strings.Split(p, "/"); len(parts) == 3 && parts[1] == "claimed" && pool.ValidName(parts[2]) == nil {
			paths = append(paths, p)
		}
	}
	return paths, nil
}

// endOf says what ended the claim commit made at path, as history shows it: the
// first commit after it, on the way to head, that took the file out of claimed/.
func (o *outRun) endOf(ctx context.Context, claim, head, path string) string {
	out, err := o.repo.Output(ctx, "log", "--ancestry-path", "--reverse", "--no-renames", "--diff-filter=D",
		"--format=%H%x00%B%x00", claim+".."+head, "--", path)
	commit, msg, _ := strings.Cut(string(out), "\x00")
	if err != nil || commit == "" {
		return "was taken out of claimed/"
	}
	m := commitmsg.Parse(msg)
	if by := commitmsg.Trailer(msg, "Poolboy-Released-By"); by != "" {
		return fmt.Sprintf("was released by hand by %s (%s) in %s", oneLine(by), oneLine(commitmsg.Trailer(msg, "Poolboy-Reason")), commit)
	}
	if rule := commitmsg.Trailer(msg, "Poolboy-Rule"); rule != "" {
		if to := commitmsg.Trailer(msg, "Poolboy-Reaped-To"); to != "" {
			return fmt.Sprintf("was reaped by poolboy (%s) to pool %s in %s", oneLine(rule), oneLine(to), commit)
		}
		return fmt.Sprintf("was reaped by poolboy (%s) in %s", oneLine(rule), commit)
	}
	by := ownerOf(msg)
	switch m.Op {
	case commitmsg.OpRemove:
		return fmt.Sprintf("was removed by %s in %s", by, commit)
	case commitmsg.OpUnclaim:
		return fmt.Sprintf("was released by %s in %s", by, commit)
	}
	return fmt.Sprintf("was taken out of claimed/ by %s", commit)
}

// ownerOf names the build a claim message names, for error messages.
func ownerOf(msg string) string {
	o := commitmsg.Parse(msg).Owner
	if !o.Known() {
		return "an unknown build"
	}
	return oneLine(o.String())
}
