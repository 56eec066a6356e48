package claims

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// IndexFile is the name of the index's file, kept in the cached clone's directory:
// it goes where the clone goes, and only the poolboy holding the cache dir's lock
// has the clone open.
const IndexFile = "poolboy-claims.json"

// indexVersion changes whenever the file's meaning does: a poolboy reading a file
// of another version, newer or older, ignores it and walks anew.
const indexVersion = 1

// Index keeps what the last walk found, so that the next one only looks at the
// commits since: the answers at the head of the last walk are known, and a trace
// from the new head that reaches that commit ends there with its answer (see
// walk.reach). History rewritten under it (a force-push) is walked in full: its
// traces never reach the old head. The answers are facts about a commit and its
// history, which the commit's id fixes, so an index can be out of date but never
// wrong for the commits it names.
//
// An Index is not safe for concurrent use; each cached clone has its own.
type Index struct {
	file string // "" keeps it in memory only
	at   string // the commit the answers are for
	ans  answers
}

// OpenIndex returns the index kept in file ("" for one kept in memory only). A file
// that is missing, unreadable, of another version or damaged in any way is an empty
// index: the next walk is a full one, and rewrites it.
func OpenIndex(file string) *Index {
	x := &Index{file: file}
	if file == "" {
		return x
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return x
	}
	var f indexFormat
	if json.Unmarshal(data, &f) != nil || f.Version != indexVersion || !isCommit(f.Head) {
		return x
	}
	ans := answers{}
	for p, es := range f.Paths {
		var cs []Claim
		for _, e := range es {
			if !isCommit(e.Commit) {
				return x
			}
			c := Claim{Commit: e.Commit, Message: e.Message}
			if e.Time != nil {
				c.Time = commitTime(*e.Time)
			}
			cs = append(cs, c)
		}
		if len(cs) == 0 {
			return x
		}
		ans[p] = cs
	}
	x.at, x.ans = f.Head, ans
	return x
}

// indexFormat is the file: the head of the last walk and, per path claimed there
// whose claim was found, its standing claims.
type indexFormat struct {
	Version int                     `json:"version"`
	Head    string                  `json:"head"`
	Paths   map[string][]indexEntry `json:"paths"`
}

type indexEntry struct {
	Commit  string `json:"commit"`
	Time    *int64 `json:"time,omitempty"` // Unix seconds; none: the commit has no readable date
	Message string `json:"message"`
}

// Find is claims.Find, using what the index knows and keeping what this walk finds.
func (x *Index) Find(ctx context.Context, repo Repo, head string, paths []string) (Result, error) {
	var known map[string]answers
	if x.at != "" {
		known = map[string]answers{x.at: x.ans}
	}
	res, err := findKnown(ctx, repo, head, paths, known)
	if err != nil {
		return res, err
	}
	ans := answers{}
	for p, c := range res.Claims {
		ans[p] = []Claim{c}
	}
	maps.Copy(ans, res.Conflicts)
	if head == x.at && maps.EqualFunc(ans, x.ans, sameClaims) {
		return res, nil // nothing new to keep
	}
	x.at, x.ans = head, ans
	if err := x.save(); err != nil {
		return res, fmt.Errorf("keeping the claim index: %w", err)
	}
	return res, nil
}

func sameClaims(a, b []Claim) bool {
	return slices.EqualFunc(a, b, func(a, b Claim) bool {
		return a.Commit == b.Commit && a.Time.Equal(b.Time) && a.Message == b.Message
	})
}

// save writes the file whole or not at all: a temporary file renamed over the old
// one, so that a crash leaves the old index or the new, never part of one.
func (x *Index) save() error {
	if x.file == "" {
		return nil
	}
	f := indexFormat{Version: indexVersion, Head: x.at, Paths: map[string][]indexEntry{}}
	for p, cs := range x.ans {
		for _, c := range cs {
			e := indexEntry{Commit: c.Commit, Message: c.Message}
			if !c.Time.IsZero() {
				secs := c.Time.Unix()
				e.Time = &secs
			}
			f.Paths[p] = append(f.Paths[p], e)
		}
	}
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	// What a crash left behind is nobody's: only the holder of the cache dir writes here.
	dir, prefix := filepath.Dir(x.file), filepath.Base(x.file)+".tmp-"
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	tmp, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), x.file)
	}
	if werr != nil {
		if rerr := os.Remove(tmp.Name()); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			werr = errors.Join(werr, rerr)
		}
		return werr
	}
	return nil
}

// isCommit says whether s is a full object id (SHA-1 or SHA-256, lower-case hex).
func isCommit(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
