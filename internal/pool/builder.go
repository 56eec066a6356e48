package pool

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"strings"
)

// builder edits the trees of a chain of commits in memory and writes the versions
// into a pack. Invariants: dirs holds every directory read or edited so far, by
// path ("" is the root); a directory entry with no dirs entry is as it was in the
// parent commit, so its content is in trees; dirty are the directories changed
// since their last version was written, each with all its parents.
type builder struct {
	sum   func() hash.Hash
	size  int // bytes of an object id
	root  []byte
	trees map[string][]byte // contents read from the parent commit, by raw id
	blobs map[string][]byte // the edits' blobs, raw ids by hex
	dirs  map[string]*dir
	dirty map[string]bool
	last  map[string]*version // each directory's last version, by path
	seen  map[string]version  // every tree written into the pack, by raw id
	pack  *packWriter
}

// version is a tree object in the pack: a delta base for the next.
type version struct {
	off, depth int
	content    []byte
	spare      []byte // the buffer of the version before, to write the next into
}

// newBuilder picks the hash of the repository from the parent's id: SHA-1, or
// SHA-256 for a repository made with --object-format=sha256.
func newBuilder(parent string) (*builder, error) {
	b := &builder{trees: map[string][]byte{}, blobs: map[string][]byte{}, dirs: map[string]*dir{},
		dirty: map[string]bool{}, last: map[string]*version{}, seen: map[string]version{}}
	switch len(parent) {
	case 2 * sha1.Size:
		b.sum, b.size = sha1.New, sha1.Size
	case 2 * sha256.Size:
		b.sum, b.size = sha256.New, sha256.Size
	}
	if _, err := hex.DecodeString(parent); err != nil || b.sum == nil || strings.ToLower(parent) != parent {
		return nil, fmt.Errorf("parent %q is not a commit id", parent)
	}
	b.pack = newPackWriter(b.sum)
	return b, nil
}

// check refuses, before anything is read or written, an edit git would not take
// or could not store in a tree.
func (b *builder) check(changes []Change) error {
	for _, c := range changes {
		if strings.ContainsRune(c.Msg, 0) {
			return fmt.Errorf("a commit message cannot hold a NUL")
		}
		for _, e := range c.Edits {
			for _, part := range strings.Split(e.Path, "/") {
				if gitRefuses(part) {
					return fmt.Errorf("path %q cannot be written", e.Path)
				}
			}
			if e.Blob == "" {
				continue
			}
			if !fileModes[e.Mode] {
				return fmt.Errorf("%s: mode %q cannot be written", e.Path, e.Mode)
			}
			raw, err := hex.DecodeString(e.Blob)
			if err != nil || len(raw) != b.size || strings.ToLower(e.Blob) != e.Blob {
				return fmt.Errorf("%s: %q is not an object id", e.Path, e.Blob)
			}
			b.blobs[e.Blob] = raw
		}
	}
	return nil
}

// load reads what the edits build on: the type of the parent's root tree and of
// each blob an edit names (a submodule's commit is not in the repository, a
// lock's blob must be), then the directories along the edits' paths, one level a
// cat-file, each by its id (git reads a path given on a line its own way).
func (b *builder) load(ctx context.Context, w Writer, parent string, changes []Change) error {
	names := []string{parent + "^{tree}"}
	for _, c := range changes {
		for _, e := range c.Edits {
			if e.Blob != "" && e.Mode != "160000" {
				names = append(names, e.Blob)
			}
		}
	}
	infos, err := batchCheck(ctx, w, names)
	if err != nil {
		return err
	}
	for i, info := range infos {
		switch {
		case i == 0 && info.typ != "tree":
			return fmt.Errorf("%s has no tree", parent)
		case i > 0 && info.typ != "blob":
			return fmt.Errorf("blob %s is not in the repository", names[i])
		}
	}
	b.root, _ = hex.DecodeString(infos[0].id) // git's own answer
	level := map[string][]byte{"": b.root}    // directories to read, by path
	for depth := 1; len(level) > 0; depth++ {
		ids := slices.Compact(slices.Sorted(func(yield func(string) bool) {
			for _, id := range level {
				if !yield(hex.EncodeToString(id)) {
					return
				}
			}
		}))
		objs, err := catFile(ctx, w, ids)
		if err != nil {
			return err
		}
		for i, id := range ids {
			if objs[i].typ == "tree" {
				raw, _ := hex.DecodeString(id)
				b.trees[string(raw)] = objs[i].data
			}
		}
		next := map[string][]byte{}
		for _, c := range changes {
			for _, e := range c.Edits {
				parts := strings.Split(e.Path, "/")
				if len(parts) <= depth {
					continue
				}
				up, p := strings.Join(parts[:depth-1], "/"), strings.Join(parts[:depth], "/")
				if _, ok := level[up]; !ok {
					continue
				}
				d, err := b.dir(up, level[up])
				if err != nil {
					return err
				}
				if i := d.find(parts[depth-1]); i >= 0 && d.entries[i].dir {
					next[p] = d.entries[i].id(b.size)
				}
			}
		}
		level = next
	}
	if _, err := b.dir("", b.root); err != nil {
		return fmt.Errorf("%s: %w", parent, err)
	}
	return nil
}

// dir is the directory at path p as the parent commit has it, tree id.
func (b *builder) dir(p string, id []byte) (*dir, error) {
	if d, ok := b.dirs[p]; ok {
		return d, nil
	}
	data, ok := b.trees[string(id)]
	if !ok {
		// An entry says tree, the repository does not have one by that id.
		return nil, fmt.Errorf("%q: the repository has no tree %x", p, id)
	}
	d, err := parseTree(data, b.size)
	if err != nil {
		if p == "" {
			return nil, fmt.Errorf("the root tree: %w", err)
		}
		return nil, fmt.Errorf("the tree at %q: %w", p, err)
	}
	b.dirs[p] = d
	return d, nil
}

// apply makes one edit as git fast-import would: a file put where a directory
// is (or a directory where a file is) replaces it, a directory left empty by a
// removal goes too, and removing what is not there changes nothing.
func (b *builder) apply(e Edit) error {
	parts := strings.Split(e.Path, "/")
	stack := []*dir{b.dirs[""]}
	for k, part := range parts[:len(parts)-1] {
		d, p := stack[k], strings.Join(parts[:k+1], "/")
		i := d.find(part)
		var child *dir
		switch {
		case i >= 0 && d.entries[i].dir:
			var err error
			if child, err = b.dir(p, d.entries[i].id(b.size)); err != nil {
				return err
			}
		case e.Blob == "":
			return nil // nothing to remove
		default:
			if i >= 0 {
				b.remove(d, i, p)
			}
			child = &dir{}
			b.dirs[p] = child
			d.put(newEntry(treeMode, part, make([]byte, b.size)))
		}
		stack = append(stack, child)
	}
	d, name := stack[len(stack)-1], parts[len(parts)-1]
	if i := d.find(name); i >= 0 {
		b.remove(d, i, e.Path)
	} else if e.Blob == "" {
		return nil
	}
	if e.Blob != "" {
		d.put(newEntry(e.Mode, name, b.blobs[e.Blob]))
	}
	for k := len(stack) - 1; k > 0 && len(stack[k].entries) == 0; k-- {
		p := strings.Join(parts[:k], "/")
		b.remove(stack[k-1], stack[k-1].find(parts[k-1]), p)
		stack = stack[:k]
	}
	for k := range stack {
		b.dirty[strings.Join(parts[:k], "/")] = true
	}
	return nil
}

// remove takes entry i, at path p, out of d, and forgets what was edited below it.
func (b *builder) remove(d *dir, i int, p string) {
	if d.entries[i].dir {
		for q := range b.dirs {
			if q == p || strings.HasPrefix(q, p+"/") {
				delete(b.dirs, q)
				delete(b.dirty, q)
			}
		}
	}
	d.remove(i)
}

// writeTrees writes the new version of every changed directory, deepest first so
// that each parent names its subdirectories' new ids, and returns what
// batch-check must then answer for each object written.
func (b *builder) writeTrees() []string {
	depth := func(p string) int {
		if p == "" {
			return 0
		}
		return strings.Count(p, "/") + 1
	}
	paths := slices.SortedFunc(maps.Keys(b.dirty), func(p, q string) int {
		return cmp.Or(depth(q)-depth(p), strings.Compare(p, q))
	})
	clear(b.dirty)
	var wrote []string
	for _, p := range paths {
		v := b.last[p]
		if v == nil {
			v = &version{}
			b.last[p] = v
		}
		content := append(v.spare[:0], b.dirs[p].bytes...)
		id := b.hash("tree", content)
		at, ok := b.seen[string(id)]
		switch {
		case ok:
		case v.content != nil && len(content) > 0 && v.depth < maxDepth && len(v.content) < 1<<32:
			// (git reads no delta to an empty tree: a delta is 4 bytes at least)
			at = version{off: b.pack.delta(v.off, v.content, content), depth: v.depth + 1}
		default:
			at = version{off: b.pack.whole(objTree, content)}
		}
		if !ok {
			b.seen[string(id)] = at
			wrote = append(wrote, fmt.Sprintf("%x tree", id))
		}
		v.off, v.depth, v.spare, v.content = at.off, at.depth, v.content, content
		if p == "" {
			b.root = id
			continue
		}
		up, name := "", p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			up, name = p[:i], p[i+1:]
		}
		d := b.dirs[up]
		d.setID(d.find(name), id)
	}
	return wrote
}

// hash is the id git gives an object of this kind and content.
func (b *builder) hash(kind string, content []byte) []byte {
	h := b.sum()
	fmt.Fprintf(h, "%s %d\x00", kind, len(content))
	h.Write(content)
	return h.Sum(nil)
}

// verify asks git for every object written ("ID TYPE" each): a difference means
// poolboy's idea of an object is not git's, and nothing may be built on it.
func (b *builder) verify(ctx context.Context, w Writer, want []string) error {
	ids := make([]string, len(want))
	for i, wt := range want {
		ids[i], _, _ = strings.Cut(wt, " ")
	}
	infos, err := batchCheck(ctx, w, ids)
	if err != nil {
		return err
	}
	for i, info := range infos {
		if info.id+" "+info.typ != want[i] {
			return fmt.Errorf("internal error: git has %s as %q, poolboy wrote a %s", ids[i], info.typ, strings.TrimPrefix(want[i], ids[i]+" "))
		}
	}
	return nil
}

// objectInfo is git's answer about one object: its id and type, or "missing".
type objectInfo struct{ id, typ string }

// batchCheck asks one git cat-file for the id and type of each name.
func batchCheck(ctx context.Context, w Writer, names []string) ([]objectInfo, error) {
	out, err := w.Input(ctx, strings.NewReader(strings.Join(names, "\n")+"\n"), nil, "cat-file", "--batch-check=%(objectname) %(objecttype)")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(names) {
		return nil, fmt.Errorf("cat-file: %d answers to %d questions", len(lines), len(names))
	}
	infos := make([]objectInfo, len(names))
	for i, l := range lines {
		if strings.HasSuffix(l, " missing") || strings.HasSuffix(l, " ambiguous") {
			infos[i] = objectInfo{typ: "missing"}
			continue
		}
		id, typ, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("cat-file: answered %q", l)
		}
		infos[i] = objectInfo{id, typ}
	}
	return infos, nil
}

// object is one answer of cat-file --batch: the type, and the content unless
// missing or larger than the limit asked.
type object struct {
	typ  string
	data []byte
}

// catFile reads objects whole with one git cat-file, in order.
func catFile(ctx context.Context, w Writer, ids []string) ([]object, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	out, err := w.Input(ctx, strings.NewReader(strings.Join(ids, "\n")+"\n"), nil, "cat-file", "--batch")
	if err != nil {
		return nil, err
	}
	return readBatch(bufio.NewReader(bytes.NewReader(out)), len(ids), -1)
}

// readBatch reads n answers of cat-file --batch; the content of one larger than
// limit bytes (when limit ≥ 0) is not kept.
func readBatch(r *bufio.Reader, n, limit int) ([]object, error) {
	objs := make([]object, n)
	for i := range n {
		hdr, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("cat-file: %w", err)
		}
		if strings.HasSuffix(hdr, " missing\n") {
			objs[i].typ = "missing"
			continue
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
		objs[i].typ = typ
		if limit < 0 || size <= limit {
			objs[i].data = body[:size]
		}
	}
	return objs, nil
}
