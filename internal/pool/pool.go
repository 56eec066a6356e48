// Package pool is the model of a pool-resource lock repository at one commit: which
// pools exist, which locks each holds in claimed/ and unclaimed/, and what is wrong
// with the layout. It reads git trees only (modes and object ids), never lock
// contents, and never a checked-out file, so a symlink can never be followed.
package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Lock is one lock file at the snapshot's commit.
type Lock struct {
	Pool    string
	Name    string
	Claimed bool
	Mode    string // git file mode, 100644 or 100755
	Blob    string
}

// Path is the lock's path in the repository.
func (l Lock) Path() string { return LockPath(l.Pool, l.Name, l.Claimed) }

// LockPath is where a lock lives in either state.
func LockPath(pool, name string, claimed bool) string {
	if claimed {
		return pool + "/claimed/" + name
	}
	return pool + "/unclaimed/" + name
}

// Problem is an integrity problem: reported, never repaired silently.
type Problem struct {
	Pool   string `json:"pool"`
	Lock   string `json:"lock,omitempty"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Path + ": " + p.Detail }

// Pool is one top-level directory.
type Pool struct {
	Name      string
	Claimed   []Lock // sorted by name
	Unclaimed []Lock // sorted by name
	Problems  []Problem
	// Broken names the locks that have a problem; the reaper never touches them.
	Broken map[string]string
}

// Intact says whether the pool has both state directories, so a lock can move.
func (p *Pool) Intact() bool { return p.Unusable() == "" }

// Unusable says what keeps locks from moving in the pool (its own problems, not
// its locks'), "" when nothing does.
func (p *Pool) Unusable() string {
	var why []string
	for _, pr := range p.Problems {
		if pr.Lock == "" {
			why = append(why, pr.String())
		}
	}
	return strings.Join(why, "; ")
}

// Snapshot is the whole repository at one commit.
type Snapshot struct {
	Commit string
	Pools  []*Pool // sorted by name, naturally (CompareNames)
}

// Pool returns the named pool, or nil.
func (s *Snapshot) Pool(name string) *Pool {
	if i, ok := slices.BinarySearchFunc(s.Pools, name, func(p *Pool, name string) int { return CompareNames(p.Name, name) }); ok {
		return s.Pools[i]
	}
	return nil
}

// Names lists the pools.
func (s *Snapshot) Names() []string {
	names := make([]string, len(s.Pools))
	for i, p := range s.Pools {
		names[i] = p.Name
	}
	return names
}

// Git is the part of a repository this package needs.
type Git interface {
	Output(ctx context.Context, args ...string) ([]byte, error)
}

// Read loads the snapshot at commit.
func Read(ctx context.Context, git Git, commit string) (*Snapshot, error) {
	out, err := git.Output(ctx, "ls-tree", "-r", "-t", "-z", "--full-tree", commit)
	if err != nil {
		return nil, err
	}
	return Parse(commit, out)
}

// Parse builds a snapshot from `git ls-tree -r -t -z` output.
func Parse(commit string, lsTree []byte) (*Snapshot, error) {
	pools := map[string]*Pool{}
	hasDir := map[string]bool{} // "pool/claimed" -> is a directory
	for _, rec := range bytes.Split(lsTree, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, path, ok := bytes.Cut(rec, []byte{'\t'})
		if !ok {
			return nil, fmt.Errorf("ls-tree: malformed entry %q", rec)
		}
		f := strings.Fields(string(meta))
		if len(f) != 3 {
			return nil, fmt.Errorf("ls-tree: malformed entry %q", rec)
		}
		mode, typ, obj := f[0], f[1], f[2]
		parts := strings.Split(string(path), "/")
		if strings.HasPrefix(parts[0], ".") {
			continue // .github and friends are not pools
		}
		switch len(parts) {
		case 1:
			if typ == "tree" {
				pools[parts[0]] = &Pool{Name: parts[0], Broken: map[string]string{}}
			}
		case 2:
			if parts[1] == "claimed" || parts[1] == "unclaimed" {
				hasDir[string(path)] = typ == "tree"
			}
		case 3:
			p := pools[parts[0]]
			state := parts[1]
			if p == nil || (state != "claimed" && state != "unclaimed") || !hasDir[parts[0]+"/"+state] {
				continue
			}
			name := parts[2]
			if strings.HasPrefix(name, ".") {
				continue // .gitkeep: not a lock
			}
			if why := kindProblem(mode, typ); why != "" {
				p.problem(name, string(path), why)
				continue
			}
			if err := ValidName(name); err != nil {
				p.problem(name, string(path), err.Error())
				continue
			}
			l := Lock{Pool: p.Name, Name: name, Claimed: state == "claimed", Mode: mode, Blob: obj}
			if l.Claimed {
				p.Claimed = append(p.Claimed, l)
			} else {
				p.Unclaimed = append(p.Unclaimed, l)
			}
		}
	}
	s := &Snapshot{Commit: commit}
	for _, p := range pools {
		if err := ValidName(p.Name); err != nil {
			p.problem("", p.Name, "not a valid pool name: "+strings.TrimPrefix(err.Error(), "lock name "))
		}
		for _, state := range []string{"claimed", "unclaimed"} {
			isDir, present := hasDir[p.Name+"/"+state]
			switch {
			case !present:
				p.problem("", p.Name+"/"+state, "missing "+state+"/ directory")
			case !isDir:
				p.problem("", p.Name+"/"+state, state+" is not a directory")
			}
		}
		sortLocks(p.Claimed)
		sortLocks(p.Unclaimed)
		inClaimed := map[string]bool{}
		for _, l := range p.Claimed {
			inClaimed[l.Name] = true
		}
		for _, l := range p.Unclaimed {
			if inClaimed[l.Name] {
				p.problem(l.Name, p.Name+"/{claimed,unclaimed}/"+l.Name, "lock is in both claimed/ and unclaimed/")
			}
		}
		s.Pools = append(s.Pools, p)
	}
	slices.SortFunc(s.Pools, func(a, b *Pool) int { return CompareNames(a.Name, b.Name) })
	return s, nil
}

func (p *Pool) problem(lock, path, detail string) {
	p.Problems = append(p.Problems, Problem{Pool: p.Name, Lock: lock, Path: path, Detail: detail})
	if lock != "" {
		p.Broken[lock] = detail
	}
}

func kindProblem(mode, typ string) string {
	switch {
	case mode == "120000":
		return "a symlink where a lock should be (never followed)"
	case typ == "tree":
		return "a directory where a lock should be"
	case typ == "commit":
		return "a submodule where a lock should be"
	case mode != "100644" && mode != "100755":
		return "not a regular file (mode " + mode + ")"
	}
	return ""
}

func sortLocks(ls []Lock) {
	slices.SortFunc(ls, func(a, b Lock) int { return CompareNames(a.Name, b.Name) })
}

// ValidName reports why name cannot be a lock name: locks become file names and
// parts of commit messages, so nothing that could escape either is allowed ("a..b"
// is fine: without '/' it cannot leave its directory). It is the one rule for
// names found in a repository and names a put step gives. White
// space at either end is refused because names read from files are trimmed: such
// a lock could be claimed but never released by its name.
func ValidName(name string) error {
	switch {
	case name == "":
		return errors.New("empty lock name")
	case strings.ContainsRune(name, '/'):
		return errors.New("lock name contains '/'")
	case strings.HasPrefix(name, "."):
		return errors.New("lock name starts with '.'")
	case !utf8.ValidString(name):
		return errors.New("lock name is not valid UTF-8")
	case len(name) > 255:
		return errors.New("lock name is longer than 255 bytes")
	case strings.ContainsFunc(name, unicode.IsControl):
		return errors.New("lock name contains a control character")
	case strings.TrimSpace(name) != name:
		return errors.New("lock name starts or ends with white space")
	case gitRefuses(name):
		return errors.New("lock name is one git refuses in a path (.git as NTFS reads it)")
	}
	return nil
}
