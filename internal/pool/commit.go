package pool

import (
	"bufio"
	"bytes"
	"context"
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
// one before, and returns their ids in order. poolboy builds the objects itself
// and hands them to git as one pack (`git index-pack`): the trees of the
// directories the changes touch, each edited entry by entry from the version
// before and stored as a delta against it, and the commits. fast-import, which
// did this before, re-formats and re-sorts a whole directory for every commit, so
// a batch of frees in a pool of thousands of locks cost seconds per hundred.
//
// Git stays the judge of what enters the repository: index-pack hashes every
// object of the pack, and every id poolboy computed is then looked up (an
// internal-consistency error if git does not have it as that type). Trees it
// builds on are refused when git would call them corrupt, and an edit's blob must
// be a blob git has. No work tree and no index: no lock content is read or
// written, and no symlink can be followed. The commits are reachable from no ref
// until they are pushed.
func Commits(ctx context.Context, w Writer, parent string, changes []Change) ([]string, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	b, err := newBuilder(parent)
	if err != nil {
		return nil, err
	}
	if err := b.check(changes); err != nil {
		return nil, err
	}
	author, err := ident(ctx, w, "GIT_AUTHOR_IDENT")
	if err != nil {
		return nil, err
	}
	committer, err := ident(ctx, w, "GIT_COMMITTER_IDENT")
	if err != nil {
		return nil, err
	}
	if err := b.load(ctx, w, parent, changes); err != nil {
		return nil, err
	}
	ids := make([]string, len(changes))
	want := make([]string, 0, 3*len(changes))
	prev := parent
	for i, c := range changes {
		for _, e := range c.Edits {
			if err := b.apply(e); err != nil {
				return nil, err
			}
		}
		want = append(want, b.writeTrees()...)
		commit := fmt.Appendf(nil, "tree %x\nparent %s\nauthor %s\ncommitter %s\n\n%s", b.root, prev, author, committer, c.Msg)
		id := b.hash("commit", commit)
		b.pack.whole(objCommit, commit)
		ids[i] = fmt.Sprintf("%x", id)
		want = append(want, ids[i]+" commit")
		prev = ids[i]
	}
	out, err := w.Input(ctx, bytes.NewReader(b.pack.bytes()), nil, "index-pack", "--stdin")
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(out, []byte("pack\t")) {
		return nil, fmt.Errorf("git index-pack: answered %q", out)
	}
	return ids, b.verify(ctx, w, want)
}

// ident is git's idea of who commits now ("Name <email> SECONDS ZONE"), from the
// same environment a commit-tree would read.
func ident(ctx context.Context, w Writer, which string) (string, error) {
	out, err := w.Input(ctx, nil, nil, "var", which)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(out))
	if id == "" || strings.ContainsAny(id, "\n\x00") {
		return "", fmt.Errorf("git var %s: answered %q", which, out)
	}
	return id, nil
}

// CatBlobs reads blobs with one git cat-file, in order; a blob larger than limit
// bytes is nil (files read from a repository are capped: anyone can push them).
func CatBlobs(ctx context.Context, w Writer, blobs []string, limit int) ([][]byte, error) {
	out, err := w.Input(ctx, strings.NewReader(strings.Join(blobs, "\n")+"\n"), nil, "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	objs, err := readBatch(bufio.NewReader(bytes.NewReader(out)), len(blobs), limit)
	if err != nil {
		return nil, err
	}
	data := make([][]byte, len(objs))
	for i, o := range objs {
		data[i] = o.data
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
