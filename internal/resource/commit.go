package resource

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/pool"
)

// edit is one change to a commit's tree: the file at path becomes blob with mode,
// or, when blob is "", is removed.
type edit struct {
	path, mode, blob string
}

// move is a lock changing state: same content, same mode, other directory.
func move(from pool.Lock, toClaimed bool) []edit {
	to := from
	to.Claimed = toClaimed
	return []edit{{path: from.Path()}, {path: to.Path(), mode: from.Mode, blob: from.Blob}}
}

// commitEdits makes one commit on top of parent with edits applied, through a
// private index file (as reaper does): no work tree, so nothing is read from or
// written to disk but git's own objects, and no symlink can be followed.
func commitEdits(ctx context.Context, repo *gitx.Repo, parent string, edits []edit, msg string) (string, error) {
	idx, err := os.CreateTemp("", "poolboy-index-")
	if err != nil {
		return "", err
	}
	idx.Close()
	os.Remove(idx.Name()) // git wants to create it; we only want a private name
	defer os.Remove(idx.Name())
	env := []string{"GIT_INDEX_FILE=" + idx.Name()}

	if _, err := repo.Input(ctx, nil, env, "read-tree", parent); err != nil {
		return "", err
	}
	var info strings.Builder
	for _, e := range edits {
		if e.blob == "" {
			// Mode 0 removes the path; the null object id has the repository's hash length.
			fmt.Fprintf(&info, "0 %s\t%s\x00", strings.Repeat("0", len(parent)), e.path)
		} else {
			fmt.Fprintf(&info, "%s %s\t%s\x00", e.mode, e.blob, e.path)
		}
	}
	if _, err := repo.Input(ctx, strings.NewReader(info.String()), env, "update-index", "-z", "--index-info"); err != nil {
		return "", err
	}
	tree, err := repo.Input(ctx, nil, env, "write-tree")
	if err != nil {
		return "", err
	}
	out, err := repo.Input(ctx, strings.NewReader(msg), nil,
		"commit-tree", strings.TrimSpace(string(tree)), "-p", parent, "-F", "-")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// writeBlob stores data as a blob, byte for byte (no filters), and returns its id.
func writeBlob(ctx context.Context, repo *gitx.Repo, data []byte) (string, error) {
	out, err := repo.Input(ctx, bytes.NewReader(data), nil, "hash-object", "-w", "--no-filters", "--stdin")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
