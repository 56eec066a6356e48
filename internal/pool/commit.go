package pool

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
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

// Change is one commit to make: its edits and its message.
type Change struct {
	Edits []Edit
	Msg   string
}

// Writer is the part of a repository that makes commits.
type Writer interface {
	Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error)
}

// Commit makes one commit on top of parent with edits applied.
func Commit(ctx context.Context, w Writer, parent string, edits []Edit, msg string) (string, error) {
	ids, err := Commits(ctx, w, parent, []Change{{edits, msg}})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// Commits makes a chain of commits on top of parent, one per change, each on the
// one before, and returns their ids in order. One `git fast-import` builds them
// all, whatever their number: no work tree and no index, so nothing is read from or
// written to disk but git's own objects, no lock content is touched, and no symlink
// can be followed. The commits are reachable from no ref until they are pushed
// (fast-import's branch is reset before it ends).
func Commits(ctx context.Context, w Writer, parent string, changes []Change) ([]string, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	author, err := ident(ctx, w, "GIT_AUTHOR_IDENT")
	if err != nil {
		return nil, err
	}
	committer, err := ident(ctx, w, "GIT_COMMITTER_IDENT")
	if err != nil {
		return nil, err
	}
	// A private branch name: two writers in one repository never share one.
	ref := "refs/poolboy/commits-" + strings.ToLower(rand.Text())
	var in bytes.Buffer
	for i, c := range changes {
		fmt.Fprintf(&in, "commit %s\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n", ref, i+1, author, committer, len(c.Msg), c.Msg)
		if i == 0 {
			fmt.Fprintf(&in, "from %s\n", parent)
		} else {
			fmt.Fprintf(&in, "from :%d\n", i)
		}
		for _, e := range c.Edits {
			p, err := quote(e.Path)
			if err != nil {
				return nil, err
			}
			if e.Blob == "" {
				fmt.Fprintf(&in, "D %s\n", p)
			} else {
				fmt.Fprintf(&in, "M %s %s %s\n", e.Mode, e.Blob, p)
			}
		}
		in.WriteString("\n")
	}
	fmt.Fprintf(&in, "reset %s\n\n", ref)
	for i := range changes {
		fmt.Fprintf(&in, "get-mark :%d\n", i+1)
	}
	in.WriteString("done\n")
	out, err := w.Input(ctx, &in, nil, "fast-import", "--quiet", "--done", "--date-format=raw")
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(string(out))
	if len(ids) != len(changes) {
		return nil, fmt.Errorf("git fast-import: %d commits made, %d asked for", len(ids), len(changes))
	}
	return ids, nil
}

// ident is git's idea of who commits now ("Name <email> SECONDS ZONE"), from the
// same environment a commit-tree would read.
func ident(ctx context.Context, w Writer, which string) (string, error) {
	out, err := w.Input(ctx, nil, nil, "var", which)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// quote writes a path as fast-import reads it: C-style quoted, so spaces and
// quotes in pool and lock names are taken literally. A path with a line break or a
// NUL cannot be a lock (names are validated long before).
func quote(p string) (string, error) {
	if strings.ContainsAny(p, "\n\x00") {
		return "", fmt.Errorf("path %q cannot be written", p)
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p) + `"`, nil
}

// CatBlobs reads blobs with one git cat-file, in order; a blob larger than limit
// bytes is nil (files read from a repository are capped: anyone can push them).
func CatBlobs(ctx context.Context, w Writer, blobs []string, limit int) ([][]byte, error) {
	out, err := w.Input(ctx, strings.NewReader(strings.Join(blobs, "\n")+"\n"), nil, "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(bytes.NewReader(out))
	data := make([][]byte, len(blobs))
	for i := range blobs {
		hdr, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("cat-file: %w", err)
		}
		var id, typ string
		var size int
		if _, err := fmt.Sscanf(hdr, "%s %s %d", &id, &typ, &size); err != nil {
			return nil, fmt.Errorf("cat-file: header %q", hdr)
		}
		body := make([]byte, size+1) // with the newline after the content
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("cat-file: %w", err)
		}
		if size <= limit {
			data[i] = body[:size]
		}
	}
	return data, nil
}

// WriteBlob stores data as a blob, byte for byte (no filters), and returns its id.
func WriteBlob(ctx context.Context, w Writer, data []byte) (string, error) {
	out, err := w.Input(ctx, bytes.NewReader(data), nil, "hash-object", "-w", "--no-filters", "--stdin")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
