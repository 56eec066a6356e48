package pool

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// entry is one line of a tree object, kept as the tree stores it.
type entry struct {
	raw  []byte // "MODE NAME\x00" and the object id, byte for byte
	name string
	dir  bool // a tree: git sorts it as if its name ended in '/'
}

// id is the entry's object id, the last hash-size bytes of raw.
func (e *entry) id(size int) []byte { return e.raw[len(e.raw)-size:] }

func newEntry(mode, name string, id []byte) entry {
	raw := make([]byte, 0, len(mode)+len(name)+2+len(id))
	raw = append(append(append(append(raw, mode...), ' '), name...), 0)
	return entry{raw: append(raw, id...), name: name, dir: mode == treeMode}
}

// gitRefuses says whether git refuses part as a component of a path in a tree:
// empty, "." and "..", a NUL or a line break (no tree or commit can say it), and
// what fsck calls .git: ".git" as HFS+ reads it (with invisible format characters
// anywhere) and as NTFS does (with trailing dots or spaces, an alternate stream
// ":…", "git~1", after a backslash). Checkouts refuse such paths, servers refuse
// their pushes.
func gitRefuses(part string) bool {
	if part == "" || part == "." || part == ".." || strings.ContainsAny(part, "\n\x00") {
		return true
	}
	visible := strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, part)
	for _, s := range strings.Split(visible, "\\") {
		s, _, _ = strings.Cut(s, ":")
		s = strings.TrimRight(s, ". ")
		if strings.EqualFold(s, ".git") || strings.EqualFold(s, "git~1") {
			return true
		}
	}
	return false
}

// treeMode is how a tree object writes a subtree's mode (no leading zero).
const treeMode = "40000"

// fileModes are the modes an Edit may give, as a tree object writes them.
var fileModes = map[string]bool{"100644": true, "100755": true, "120000": true, "160000": true}

// order is git's order of tree entries (base_name_compare): bytes, with a
// subtree's name compared as if it ended in '/'. fsck calls anything else a
// corrupt tree, and git's own lookups rely on it.
func order(a string, aDir bool, b string, bDir bool) int {
	n := min(len(a), len(b))
	if c := strings.Compare(a[:n], b[:n]); c != 0 {
		return c
	}
	return cmp.Compare(after(a, n, aDir), after(b, n, bDir))
}

func after(s string, n int, dir bool) byte {
	switch {
	case n < len(s):
		return s[n]
	case dir:
		return '/'
	}
	return 0
}

// dir is one directory being edited: its entries in git's order, and the tree
// object's content they make, kept in step with them (a lock's move changes one
// entry of thousands: the content is spliced, not written again).
type dir struct {
	entries []entry
	bytes   []byte
}

// parseTree reads a tree object's content, refusing one that git itself would call
// corrupt (an entry cut short, entries out of order or named twice): built on, it
// would be copied into every commit made on top.
func parseTree(data []byte, size int) (*dir, error) {
	d := &dir{}
	data = bytes.Clone(data) // entries are edited in place; two paths may share a tree
	for len(data) > 0 {
		sp := bytes.IndexByte(data, ' ')
		nul := bytes.IndexByte(data, 0)
		if sp <= 0 || nul < sp+2 || len(data) < nul+1+size {
			return nil, fmt.Errorf("a tree entry is cut short")
		}
		mode, err := strconv.ParseUint(string(data[:sp]), 8, 32)
		if err != nil {
			return nil, fmt.Errorf("a tree entry has mode %q", data[:sp])
		}
		e := entry{raw: data[: nul+1+size : nul+1+size], name: string(data[sp+1 : nul]), dir: mode&0o170000 == 0o040000}
		if text := strconv.FormatUint(mode, 8); text != string(data[:sp]) {
			// A zero-padded mode ("040000"): written as git writes it, as fast-import does.
			e.raw = newEntry(text, e.name, e.raw[len(e.raw)-size:]).raw
		}
		if n := len(d.entries); n > 0 {
			last := d.entries[n-1]
			if order(last.name, last.dir, e.name, e.dir) >= 0 || last.name == e.name {
				return nil, fmt.Errorf("tree entries %q and %q are out of git's order", last.name, e.name)
			}
		}
		d.entries = append(d.entries, e)
		data = data[nul+1+size:]
	}
	for _, e := range d.entries {
		d.bytes = append(d.bytes, e.raw...)
	}
	for i, e := range d.entries {
		if e.dir && d.find(e.name) != i { // find looks for a file of that name first
			return nil, fmt.Errorf("tree entry %q is named twice", e.name)
		}
	}
	return d, nil
}

// find is the index of the entry called name, whatever its type, or -1.
func (d *dir) find(name string) int {
	for _, isDir := range []bool{false, true} {
		i, ok := slices.BinarySearchFunc(d.entries, name, func(e entry, name string) int {
			return order(e.name, e.dir, name, isDir)
		})
		if ok && d.entries[i].dir == isDir {
			return i
		}
	}
	return -1
}

// put adds e in its place; an entry of the same name must have been removed.
func (d *dir) put(e entry) {
	i, _ := slices.BinarySearchFunc(d.entries, e, func(a, b entry) int { return order(a.name, a.dir, b.name, b.dir) })
	d.bytes = slices.Insert(d.bytes, d.offset(i), e.raw...)
	d.entries = slices.Insert(d.entries, i, e)
}

// remove takes entry i out.
func (d *dir) remove(i int) {
	off := d.offset(i)
	d.bytes = slices.Delete(d.bytes, off, off+len(d.entries[i].raw))
	d.entries = slices.Delete(d.entries, i, i+1)
}

// setID gives entry i, a subdirectory, its new version's id.
func (d *dir) setID(i int, id []byte) {
	e := &d.entries[i]
	copy(e.id(len(id)), id)
	copy(d.bytes[d.offset(i)+len(e.raw)-len(id):], id)
}

// offset is where entry i starts in the content.
func (d *dir) offset(i int) int {
	n := 0
	for _, e := range d.entries[:i] {
		n += len(e.raw)
	}
	return n
}
