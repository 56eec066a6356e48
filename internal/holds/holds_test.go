package holds_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/gitx"
	"github.com/poolboy-ci/poolboy/internal/holds"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

func TestParseTarget(t *testing.T) {
	cases := []struct{ in, pool, lock, err string }{
		{"aws/env-1", "aws", "env-1", ""},
		{"aws/a..b", "aws", "a..b", ""},
		{"aws", "", "", `"aws": want POOL/LOCK`},
		{"aws/", "", "", `"aws/": empty lock name`},
		{"/env-1", "", "", `"/env-1": pool: empty name`},
		{"aws/env/1", "", "", `"aws/env/1": lock name contains '/'`},
		{"aws/.gitkeep", "", "", `"aws/.gitkeep": lock name starts with '.'`},
		{".poolboy-holds/x", "", "", `".poolboy-holds/x": pool: name starts with '.'`},
	}
	for _, c := range cases {
		p, l, err := holds.ParseTarget(c.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if p != c.pool || l != c.lock || got != c.err {
			t.Errorf("ParseTarget(%q) = %q, %q, %q; want %q, %q, %q", c.in, p, l, got, c.pool, c.lock, c.err)
		}
	}
}

// Read takes the holds it can read and ignores the rest: another version, a file
// whose content names another lock, a misnamed file, malformed JSON, a time
// outside the years 0 to 9999 (UTC). Each file still counts as the lock's hold file.
func TestReadIgnoresWhatItCannotRead(t *testing.T) {
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, fixture.Spec{Branch: "main", Pools: []string{"aws"}, Start: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := testenv.NewClone(t, "file://"+dir, "main")
	until := time.Now().Add(time.Hour).UTC()
	good := holds.Hold{Pool: "aws", Lock: "env-1", Claim: "abc", By: "ann", Reason: "x", Since: until, Until: until}
	other := good
	other.Lock = "env-9"
	files := map[string][]byte{
		holds.Path("aws", "env-1"):    good.Encode(),
		holds.Path("aws", "env-2"):    []byte(`{"v": 2, "pool": "aws", "lock": "env-2", "claim_commit": "abc", "until": "2999-01-01T00:00:00Z"}`),
		holds.Path("aws", "env-3"):    other.Encode(),
		holds.Path("aws", "env-4"):    []byte("not json"),
		holds.Root + "/aws/env-5.txt": good.Encode(),
		holds.Path("aws", "env-6"):    append(good.Encode(), bytes.Repeat([]byte(" "), 1<<20)...), // too large to read
		// RFC 3339 times that leave the years 0 to 9999 in UTC, which no JSON can write.
		holds.Path("aws", "env-7"): []byte(`{"v": 1, "pool": "aws", "lock": "env-7", "claim_commit": "abc", "since": "2026-01-01T00:00:00Z", "until": "9999-12-31T23:59:59-23:59"}`),
		holds.Path("aws", "env-8"): []byte(`{"v": 1, "pool": "aws", "lock": "env-8", "claim_commit": "abc", "since": "0000-01-01T00:00:00+01:00", "until": "2999-01-01T00:00:00Z"}`),
	}
	for path, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(c.Dir, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, path), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, c.Dir, "add", ".")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "holds")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:main")

	repo, err := gitx.Open(context.Background(), gitx.Options{URL: "file://" + dir})
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	head, err := repo.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	set, err := holds.Read(context.Background(), repo, head)
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := set.Of("aws", "env-1"); !ok || h.By != "ann" || !h.Until.Equal(until) {
		t.Errorf("env-1: %+v %v", h, ok)
	}
	if !set.File("aws", "env-6") {
		t.Error("env-6's file, too large to read, does not count as a hold file")
	}
	for _, lock := range []string{"env-2", "env-3", "env-4", "env-5", "env-6", "env-7", "env-8"} {
		if _, ok := set.Of("aws", lock); ok {
			t.Errorf("%s read as a hold", lock)
		}
	}
	for lock, want := range map[string]bool{"env-1": true, "env-2": true, "env-3": true, "env-4": true, "env-5": false, "env-7": true, "env-8": true} {
		if set.File("aws", lock) != want {
			t.Errorf("File(%s) = %v, want %v", lock, !want, want)
		}
	}
}
