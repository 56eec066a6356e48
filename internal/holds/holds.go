// Package holds is the record of locks kept on purpose (poolboy hold): one file
// per held lock, .poolboy-holds/POOL/LOCK.json on the pool's branch. The directory
// is outside every pool (pool.Parse skips top-level names starting with '.'), so
// upstream resources, whose check lists only commits that touch their pool's
// directory, never see a hold or an unhold as a version.
//
// A hold names the claim commit it was taken on: it keeps that claim only. Once
// the lock is released and claimed again, the old file holds nothing (and the next
// hold, unhold, release or reap of that lock deletes it).
package holds

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/pool"
)

// Root is the top-level directory of all holds.
const Root = ".poolboy-holds"

// Version is the hold format this package writes and reads.
const Version = 1

// maxHold caps a hold file read from the repository.
const maxHold = 16 << 10

// Path is where the hold of poolName's lock lives.
func Path(poolName, lock string) string { return Root + "/" + poolName + "/" + lock + ".json" }

// Hold is one lock kept on purpose.
type Hold struct {
	V      int       `json:"v"`
	Pool   string    `json:"pool"`
	Lock   string    `json:"lock"`
	Claim  string    `json:"claim_commit"` // the claim it keeps
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
	Until  time.Time `json:"until"`
}

// Encode is the hold's file content.
func (h Hold) Encode() []byte {
	h.V = Version
	b, _ := json.MarshalIndent(h, "", "  ") // strings and times cannot fail
	return append(b, '\n')
}

// Git is the part of a repository Read needs.
type Git interface {
	Output(ctx context.Context, args ...string) ([]byte, error)
	Input(ctx context.Context, stdin io.Reader, env []string, args ...string) ([]byte, error)
}

// Set is the holds at one commit, by pool and lock, and every hold file's path
// (readable or not), so that whoever frees a lock can delete its file.
type Set struct {
	holds map[[2]string]Hold
	files map[[2]string]bool
}

// Of returns the hold on poolName's lock, if there is a readable one.
func (s *Set) Of(poolName, lock string) (Hold, bool) {
	if s == nil {
		return Hold{}, false
	}
	h, ok := s.holds[[2]string{poolName, lock}]
	return h, ok
}

// File says whether the lock has a hold file, readable or not.
func (s *Set) File(poolName, lock string) bool {
	return s != nil && s.files[[2]string{poolName, lock}]
}

// Read returns the holds at commit. A file this version cannot read (another
// format version, malformed, misnamed, a time outside the years 0 to 9999 UTC)
// holds nothing.
func Read(ctx context.Context, git Git, commit string) (*Set, error) {
	// --long gives each blob's size: a file too large to be a hold is never read.
	out, err := git.Output(ctx, "ls-tree", "-r", "-z", "--long", "--full-tree", commit, "--", Root+"/")
	if err != nil {
		return nil, err
	}
	s := &Set{holds: map[[2]string]Hold{}, files: map[[2]string]bool{}}
	var keys [][2]string
	var blobs []string
	for _, rec := range bytes.Split(out, []byte{0}) {
		meta, path, ok := bytes.Cut(rec, []byte{'\t'})
		f := strings.Fields(string(meta))
		if !ok || len(f) != 4 || f[1] != "blob" || (f[0] != "100644" && f[0] != "100755") {
			continue
		}
		poolName, file, ok := strings.Cut(strings.TrimPrefix(string(path), Root+"/"), "/")
		lock, isJSON := strings.CutSuffix(file, ".json")
		if !ok || !isJSON || pool.ValidName(poolName) != nil || pool.ValidName(lock) != nil {
			continue
		}
		k := [2]string{poolName, lock}
		s.files[k] = true
		if size, err := strconv.ParseInt(f[3], 10, 64); err != nil || size > maxHold {
			continue // a file, but no hold this version reads
		}
		keys, blobs = append(keys, k), append(blobs, f[2])
	}
	if len(blobs) == 0 {
		return s, nil
	}
	data, err := pool.CatBlobs(ctx, git, blobs, maxHold)
	if err != nil {
		return nil, err
	}
	for i, d := range data {
		var h Hold
		if json.Unmarshal(d, &h) != nil || h.V != Version || h.Pool != keys[i][0] || h.Lock != keys[i][1] ||
			h.Claim == "" || h.Until.IsZero() || !pool.TimeInRange(h.Since) || !pool.TimeInRange(h.Until) {
			continue
		}
		s.holds[keys[i]] = h
	}
	return s, nil
}

// ParseTarget reads "POOL/LOCK", the way a person names a lock.
func ParseTarget(s string) (poolName, lock string, err error) {
	poolName, lock, ok := strings.Cut(s, "/")
	if !ok {
		return "", "", fmt.Errorf("%q: want POOL/LOCK", s)
	}
	if err := pool.ValidName(poolName); err != nil {
		return "", "", fmt.Errorf("%q: pool: %s", s, strings.Replace(err.Error(), "lock name", "name", 1))
	}
	if err := pool.ValidName(lock); err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	return poolName, lock, nil
}
