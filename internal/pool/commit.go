package pool

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
)

// Edit is one change to a commit's tree: the file at Path becomes Blob with Mode,
// or, when Blob is "", is removed.
type Edit struct {
	Path, Mode, Blob string
}

// Move is a lock changing state: same content, same mode, other directory.
func Move(from Lock, toClaimed bool) []Edit {
	to := from
	to.Claimed = toClaimed
	return []Edit{{Path: from.Path()}, {Path: to.Path(), Mode: from.Mode, Blob: from.Blob}}
}

// Writer is the part of a repository that makes commits.
type Writer interface {
	Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error)
}

// Commit makes one commit on top of parent with edits applied, through a private
// index file: no work tree, so nothing is read from or written to disk but git's
// own objects, no lock content is touched, and no symlink can be followed.
func Commit(ctx context.Context, w Writer, parent string, edits []Edit, msg string) (string, error) {
	idx, err := os.CreateTemp("", "poolboy-index-")
	if err != nil {
		return "", err
	}
	idx.Close()
	os.Remove(idx.Name()) // git wants to create it; we only want a private name
	defer os.Remove(idx.Name())
	env := []string{"GIT_INDEX_FILE=" + idx.Name()}

	if _, err := w.Input(ctx, nil, env, "read-tree", parent); err != nil {
		return "", err
	}
	var info strings.Builder
	for _, e := range edits {
		if e.Blob == "" {
			// Mode 0 removes the path; the null object id has the repository's hash length.
			fmt.Fprintf(&info, "0 %s\t%s\x00", strings.Repeat("0", len(parent)), e.Path)
		} else {
			fmt.Fprintf(&info, "%s %s\t%s\x00", e.Mode, e.Blob, e.Path)
		}
	}
	if _, err := w.Input(ctx, strings.NewReader(info.String()), env, "update-index", "-z", "--index-info"); err != nil {
		return "", err
	}
	tree, err := w.Input(ctx, nil, env, "write-tree")
	if err != nil {
		return "", err
	}
	out, err := w.Input(ctx, strings.NewReader(msg), nil,
		"commit-tree", strings.TrimSpace(string(tree)), "-p", parent, "-F", "-")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
