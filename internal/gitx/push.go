package gitx

import (
	"context"
	"errors"
	"fmt"
)

// Pusher is what PushChecked needs of a mirror (a *Repo, or a wrapper of one).
type Pusher interface {
	Push(ctx context.Context, commit string) error
	Fetch(ctx context.Context) (string, error)
	Output(ctx context.Context, args ...string) ([]byte, error)
}

// PushChecked makes commit, built on parent, the head of the remote branch, as
// Push does, and settles a push that ended without a verdict (a connection cut
// after the remote took it, a ref lock held by a concurrent push) by the remote's
// history: nil when commit is in the branch's history (it landed; someone may have
// pushed on top already, so "the head is not ours" proves nothing), an error
// wrapping ErrRejected when the branch moved on without it, and otherwise the
// push's own error: its fate is unknown, and the caller must find out before it
// decides again (a second claim, or a second reap, would follow).
func PushChecked(ctx context.Context, r Pusher, parent, commit string) error {
	err := r.Push(ctx, commit)
	if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrRefused) {
		return err
	}
	head, ferr := r.Fetch(ctx)
	if ferr != nil {
		return err
	}
	if head == commit || IsAncestor(ctx, r, commit, head) {
		return nil
	}
	if head != parent {
		return fmt.Errorf("%w", ErrRejected)
	}
	return err
}

// IsAncestor says whether commit is in head's history. git answers 1 for "no" and
// 128 for trouble (an unknown commit): both mean it is not.
func IsAncestor(ctx context.Context, r interface {
	Output(ctx context.Context, args ...string) ([]byte, error)
}, commit, head string) bool {
	_, err := r.Output(ctx, "merge-base", "--is-ancestor", commit, head)
	return err == nil
}
