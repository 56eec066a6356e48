package claims

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// execGit is a claims.Git over the real git CLI: `git --git-dir=DIR args...`
// with stdout streamed to fn. Like gitx it reads pathspecs literally, and it
// stops git once fn returns. It counts the bytes fn read and the walks made.
type execGit struct {
	t     *testing.T
	dir   string
	read  int64
	calls [][]string
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

func (g *execGit) Stream(ctx context.Context, fn func(io.Reader) error, args ...string) error {
	g.calls = append(g.calls, args)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.RequireCommand(g.t, "git"), append([]string{"--git-dir=" + g.dir}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+g.t.TempDir(), "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C", "GIT_LITERAL_PATHSPECS=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	ferr := fn(countingReader{stdout, &g.read})
	stopped := ferr != nil || !atEOF(stdout)
	if stopped {
		cancel() // fn has what it wanted: stop git instead of reading on
	}
	_, _ = io.Copy(io.Discard, stdout)
	werr := cmd.Wait()
	if ferr != nil {
		return ferr
	}
	if werr != nil && !stopped {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), werr, stderr.Bytes())
	}
	return nil
}

// atEOF says whether git had nothing more to say (fn read it all).
func atEOF(r io.Reader) bool {
	var b [1]byte
	n, _ := r.Read(b[:])
	return n == 0
}

func newGit(t *testing.T, dir string) *execGit { return &execGit{t: t, dir: dir} }

var t0 = time.Date(2026, 2, 1, 8, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func build(t *testing.T, spec fixture.Spec) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	dir := filepath.Join(t.TempDir(), "locks.git")
	if err := fixture.Build(context.Background(), dir, spec); err != nil {
		t.Fatalf("fixture.Build: %v", err)
	}
	return dir
}

// opCommit is the commit op i of spec made: ops are one commit each after the
// initial one, on a linear branch.
func opCommit(t *testing.T, dir string, spec fixture.Spec, i int) string {
	t.Helper()
	return testenv.Git(t, dir, "rev-parse", fmt.Sprintf("main~%d", len(spec.Ops)-1-i))
}

func TestFind(t *testing.T) {
	add := func(pool, lock string, m int) fixture.Op {
		return fixture.Op{Kind: fixture.Add, Pool: pool, Lock: lock, At: at(m), Content: lock}
	}
	op := func(k fixture.Kind, pool, lock string, m int, msg string) fixture.Op {
		return fixture.Op{Kind: k, Pool: pool, Lock: lock, At: at(m), Message: msg, Content: "new " + lock}
	}
	tests := []struct {
		name  string
		pools []string
		ops   []fixture.Op
		paths []string
		want  map[string]int // path -> index of the op that claimed it
	}{
		{
			name:  "most recent claim wins",
			pools: []string{"aws"},
			ops: []fixture.Op{
				add("aws", "env-1", 1),
				op(fixture.Claim, "aws", "env-1", 2, "p/j build 1 claiming: env-1"),
				op(fixture.Release, "aws", "env-1", 3, "p/j build 1 unclaiming: env-1"),
				op(fixture.Claim, "aws", "env-1", 4, "p/j build 2 claiming: env-1\nBuild URL: https://ci/builds/2"),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 3},
		},
		{
			name:  "an update after the claim is not a claim",
			pools: []string{"aws"},
			ops: []fixture.Op{
				add("aws", "env-1", 1),
				op(fixture.Claim, "aws", "env-1", 2, ""),
				op(fixture.Update, "aws", "env-1", 3, "p/j build 1 updating: env-1"),
				op(fixture.Update, "aws", "env-1", 4, ""),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 1},
		},
		{
			name:  "adding claimed is a claim",
			pools: []string{"aws"},
			ops: []fixture.Op{
				op(fixture.AddClaimed, "aws", "env-1", 1, ""),
				op(fixture.Update, "aws", "env-1", 2, ""),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 0},
		},
		{
			name:  "removed and added claimed again",
			pools: []string{"aws"},
			ops: []fixture.Op{
				op(fixture.AddClaimed, "aws", "env-1", 1, ""),
				op(fixture.Remove, "aws", "env-1", 2, ""),
				op(fixture.AddClaimed, "aws", "env-1", 3, ""),
			},
			paths: []string{"aws/claimed/env-1"},
			want:  map[string]int{"aws/claimed/env-1": 2},
		},
		{
			name:  "glob characters and spaces in names",
			pools: []string{"p*", "px", "my pool"},
			ops: []fixture.Op{
				add("p*", "*", 1), add("p*", "a?", 2), add("p*", "a b", 3), add("p*", "[ab]", 4),
				add("px", "*", 5), add("px", "ab", 6), add("my pool", "x y", 7), add("p*", "ab", 8),
				op(fixture.Claim, "p*", "*", 10, ""),
				op(fixture.Claim, "p*", "a?", 11, ""),
				op(fixture.Claim, "p*", "a b", 12, ""),
				op(fixture.Claim, "p*", "[ab]", 13, ""),
				op(fixture.Claim, "my pool", "x y", 14, ""),
				// Later claims a glob reading would mistake for the ones above.
				op(fixture.Claim, "px", "*", 15, ""),
				op(fixture.Claim, "px", "ab", 16, ""),
				op(fixture.Claim, "p*", "ab", 17, ""),
			},
			paths: []string{"p*/claimed/*", "p*/claimed/a?", "p*/claimed/a b", "p*/claimed/[ab]", "my pool/claimed/x y"},
			want: map[string]int{"p*/claimed/*": 8, "p*/claimed/a?": 9, "p*/claimed/a b": 10,
				"p*/claimed/[ab]": 11, "my pool/claimed/x y": 12},
		},
		{
			name:  "many pools in one walk",
			pools: []string{"aws", "gpu", "licences"},
			ops: []fixture.Op{
				add("aws", "env-1", 1), add("gpu", "gpu-a", 2), add("licences", "m-1", 3), add("aws", "env-2", 4),
				op(fixture.Claim, "licences", "m-1", 5, ""),
				op(fixture.Claim, "aws", "env-1", 6, ""),
				op(fixture.Claim, "gpu", "gpu-a", 7, ""),
				op(fixture.Claim, "aws", "env-2", 8, ""),
				op(fixture.Release, "aws", "env-2", 9, ""),
				op(fixture.Claim, "aws", "env-2", 10, ""),
			},
			paths: []string{"aws/claimed/env-1", "gpu/claimed/gpu-a", "licences/claimed/m-1", "aws/claimed/env-2"},
			want: map[string]int{"aws/claimed/env-1": 5, "gpu/claimed/gpu-a": 6, "licences/claimed/m-1": 4,
				"aws/claimed/env-2": 9},
		},
		{
			name:  "paths never claimed are not found",
			pools: []string{"aws"},
			ops: []fixture.Op{
				add("aws", "env-1", 1), add("aws", "env-2", 2),
				op(fixture.Claim, "aws", "env-2", 3, ""),
			},
			paths: []string{"aws/claimed/env-1", "aws/claimed/ghost", "nope/claimed/x", "aws/claimed/env-2"},
			want:  map[string]int{"aws/claimed/env-2": 2},
		},
		{
			name:  "no paths",
			pools: []string{"aws"},
			ops:   []fixture.Op{op(fixture.AddClaimed, "aws", "env-1", 1, "")},
			want:  map[string]int{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fixture.Spec{Pools: tt.pools, Start: t0, Ops: tt.ops}
			dir := build(t, spec)
			g := newGit(t, dir)
			got, err := Find(context.Background(), g, []string{"main"}, tt.paths, nil)
			if err != nil {
				t.Fatalf("Find: %v", err)
			}
			wantCalls := 1
			if len(tt.paths) == 0 {
				wantCalls = 0
			}
			if len(g.calls) != wantCalls {
				t.Errorf("%d git walks, want %d", len(g.calls), wantCalls)
			}
			if len(got) != len(tt.want) {
				t.Errorf("found %d claims %v, want %d", len(got), keys(got), len(tt.want))
			}
			for p, i := range tt.want {
				c, ok := got[p]
				if !ok {
					t.Errorf("%s: not found", p)
					continue
				}
				if want := opCommit(t, dir, spec, i); c.Commit != want {
					t.Errorf("%s: claim %s (%q), want %s (op %d)", p, c.Commit, c.Message, want, i)
				}
				if !c.Time.Equal(tt.ops[i].At) || c.Time.Location() != time.UTC {
					t.Errorf("%s: time %v, want %v UTC", p, c.Time, tt.ops[i].At)
				}
				if want := testenv.Git(t, dir, "log", "-1", "--format=%B", c.Commit); c.Message != want {
					t.Errorf("%s: message %q, want %q", p, c.Message, want)
				}
			}
		})
	}
}

func keys(m map[string]Claim) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestFindGitError(t *testing.T) {
	dir := build(t, fixture.Spec{Pools: []string{"aws"}, Start: t0})
	got, err := Find(context.Background(), newGit(t, dir), []string{"no-such-branch"}, []string{"aws/claimed/x"}, nil)
	if err == nil {
		t.Fatalf("Find on a missing head = %v, want an error", got)
	}
}

// A claim below a shallow clone's boundary is not found: the boundary commit,
// which git shows as adding every file, proves nothing. With the full history
// it is found.
func TestFindShallow(t *testing.T) {
	spec := fixture.Spec{Pools: []string{"aws"}, Start: t0, Ops: []fixture.Op{
		{Kind: fixture.Add, Pool: "aws", Lock: "old", At: at(1)},
		{Kind: fixture.Add, Pool: "aws", Lock: "new", At: at(2)},
		{Kind: fixture.Claim, Pool: "aws", Lock: "old", At: at(3)}, // op 2: far below the boundary
	}}
	for i := 0; i < 6; i++ {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Update, Pool: "aws", Lock: "old", At: at(10 + i), Content: fmt.Sprint(i)})
	}
	spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "new", At: at(20)}) // op 9: head
	src := build(t, spec)
	oldPath, newPath := "aws/claimed/old", "aws/claimed/new"

	dst := filepath.Join(t.TempDir(), "shallow.git")
	testenv.Git(t, "", "clone", "-q", "--bare", "--depth=3", "file://"+src, dst)
	shallow := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(dst, "shallow"))
	if err != nil {
		t.Fatalf("not a shallow clone: %v", err)
	}
	for _, l := range strings.Fields(string(data)) {
		shallow[l] = true
	}
	boundary := testenv.Git(t, dst, "rev-parse", "main~2")
	if len(shallow) != 1 || !shallow[boundary] {
		t.Fatalf("shallow set %v, want the boundary main~2 = %s", shallow, boundary)
	}

	// Without the shallow set the boundary commit would pass for the claim:
	// that is what the set is for.
	got, err := Find(context.Background(), newGit(t, dst), []string{"main"}, []string{oldPath, newPath}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got[oldPath].Commit != boundary {
		t.Fatalf("without the shallow set, claim of old = %q, want the boundary %s (test premise)", got[oldPath].Commit, boundary)
	}

	got, err = Find(context.Background(), newGit(t, dst), []string{"main"}, []string{oldPath, newPath}, shallow)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := got[oldPath]; ok {
		t.Errorf("claim of old found in shallow history: %+v", c)
	}
	if want := opCommit(t, src, spec, 9); got[newPath].Commit != want {
		t.Errorf("claim of new = %q, want %s", got[newPath].Commit, want)
	}

	// Deepen to the full history: now the real claim is found.
	testenv.Git(t, dst, "fetch", "-q", "--unshallow", "file://"+src, "main")
	if _, err := os.Stat(filepath.Join(dst, "shallow")); !os.IsNotExist(err) {
		t.Fatalf("still shallow after --unshallow: %v", err)
	}
	got, err = Find(context.Background(), newGit(t, dst), []string{"main"}, []string{oldPath, newPath}, map[string]bool{})
	if err != nil {
		t.Fatal(err)
	}
	if want := opCommit(t, src, spec, 2); got[oldPath].Commit != want || !got[oldPath].Time.Equal(at(3)) {
		t.Errorf("full history: claim of old = %+v, want %s at %v", got[oldPath], want, at(3))
	}
	if want := opCommit(t, src, spec, 9); got[newPath].Commit != want {
		t.Errorf("full history: claim of new = %q, want %s", got[newPath].Commit, want)
	}
	// A commit in the shallow set is never taken as a claim, whatever git shows.
	got, err = Find(context.Background(), newGit(t, dst), []string{"main"}, []string{oldPath}, map[string]bool{opCommit(t, src, spec, 2): true})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[oldPath]; ok {
		t.Errorf("a commit in the shallow set was taken as a claim: %+v", got[oldPath])
	}
}

// The walk stops once every path is found: it must not read the rest of a long
// history. Asserted on bytes read, not on time.
func TestFindStopsEarly(t *testing.T) {
	end := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	spec, err := fixture.Synthetic(2, 5, 4, 2, 3000, end)
	if err != nil {
		t.Fatal(err)
	}
	dir := build(t, spec)

	// The last two commits are the final (non-ancient) claims.
	var recent, ancient []string
	for _, f := range strings.Split(testenv.Git(t, dir, "ls-tree", "-r", "--name-only", "main"), "\n") {
		if !strings.Contains(f, "/claimed/") || strings.HasSuffix(f, ".gitkeep") {
			continue
		}
		if testenv.Git(t, dir, "log", "-1", "--format=%s", "--diff-filter=A", "main", "--", f) == "main/ancient/hold build 1 claiming: "+filepath.Base(f) {
			ancient = append(ancient, f)
		} else {
			recent = append(recent, f)
		}
	}
	if len(recent) != 2 || len(ancient) != 2 {
		t.Fatalf("recent %q, ancient %q: want 2 each", recent, ancient)
	}

	tests := []struct {
		name      string
		paths     []string
		wantEarly bool
	}{
		{"recent claims only", recent, true},
		{"ancient claims need the whole walk", append(append([]string(nil), recent...), ancient...), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGit(t, dir)
			got, err := Find(context.Background(), g, []string{"main"}, tt.paths, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.paths {
				want := testenv.Git(t, dir, "log", "-1", "--format=%H", "--diff-filter=A", "main", "--", p)
				if got[p].Commit != want {
					t.Errorf("%s: claim %q, want %s", p, got[p].Commit, want)
				}
			}
			if len(g.calls) != 1 {
				t.Fatalf("%d walks, want 1", len(g.calls))
			}
			// The whole output of the same walk, read to the end.
			full := newGit(t, dir)
			if err := full.Stream(context.Background(), func(r io.Reader) error {
				_, err := io.Copy(io.Discard, r)
				return err
			}, g.calls[0]...); err != nil {
				t.Fatal(err)
			}
			t.Logf("read %d of %d bytes", g.read, full.read)
			if full.read < 100_000 {
				t.Fatalf("history output is only %d bytes: too small to tell", full.read)
			}
			if early := g.read < full.read/4; early != tt.wantEarly {
				t.Errorf("read %d of %d bytes; stopped early = %v, want %v", g.read, full.read, early, tt.wantEarly)
			}
		})
	}
}

type visit struct {
	commit, msg, path string
	secs              int64
}

func TestParse(t *testing.T) {
	const a, b = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	rec := func(sha, secs, msg string, paths ...string) string {
		s := "\x01" + sha + "\x00" + secs + "\x00" + msg + "\x00"
		for i, p := range paths {
			if i == 0 {
				p = "\n" + p
			}
			s += p + "\x00"
		}
		return s
	}
	tests := []struct {
		name    string
		in      string
		stopAt  int // stop after this many visits; 0 = never
		want    []visit
		wantErr string
	}{
		{name: "empty input", in: ""},
		{
			name: "multi-line message",
			in:   rec(a, "100", "claiming: x\nBuild URL: https://ci/builds/1\n", "p/claimed/x", "p/claimed/y"),
			want: []visit{{a, "claiming: x\nBuild URL: https://ci/builds/1", "p/claimed/x", 100}, {a, "claiming: x\nBuild URL: https://ci/builds/1", "p/claimed/y", 100}},
		},
		{
			name: "empty message",
			in:   rec(a, "100", "", "p/claimed/x") + rec(b, "50", "\n", "p/claimed/z"),
			want: []visit{{a, "", "p/claimed/x", 100}, {b, "", "p/claimed/z", 50}},
		},
		{
			name: "record without paths",
			in:   rec(a, "100", "merge\n") + rec(b, "50", "claiming: y\n", "p/claimed/y"),
			want: []visit{{b, "claiming: y", "p/claimed/y", 50}},
		},
		{
			name: "message with blank lines and trailing newlines",
			in:   rec(a, "100", "claiming: x\n\n\nbody\n\n", "p/claimed/x"),
			want: []visit{{a, "claiming: x\n\n\nbody", "p/claimed/x", 100}},
		},
		{
			name: "path with spaces and glob characters",
			in:   rec(a, "100", "m\n", "my pool/claimed/a *?[b]"),
			want: []visit{{a, "m", "my pool/claimed/a *?[b]", 100}},
		},
		{
			name: "no trailing NUL",
			in:   strings.TrimSuffix(rec(a, "100", "m\n", "p/claimed/x"), "\x00"),
			want: []visit{{a, "m", "p/claimed/x", 100}},
		},
		{
			name: "paths before any record are ignored",
			in:   "stray\x00" + rec(a, "100", "m\n", "p/claimed/x"),
			want: []visit{{a, "m", "p/claimed/x", 100}},
		},
		{
			name:   "stops when told",
			in:     rec(a, "100", "m\n", "p/claimed/x", "p/claimed/y") + rec(b, "50", "n\n", "p/claimed/z"),
			stopAt: 2,
			want:   []visit{{a, "m", "p/claimed/x", 100}, {a, "m", "p/claimed/y", 100}},
		},
		{
			name:    "bad time",
			in:      rec(a, "yesterday", "m\n", "p/claimed/x"),
			wantErr: "bad time",
		},
		{
			name:    "ends after the sha",
			in:      "\x01" + a,
			wantErr: "ends early",
		},
		{
			name:    "ends after the time",
			in:      "\x01" + a + "\x00100",
			wantErr: "ends early",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []visit
			err := parse(strings.NewReader(tt.in), func(c Claim, p string) bool {
				got = append(got, visit{c.Commit, c.Message, p, c.Time.Unix()})
				if c.Time.Location() != time.UTC {
					t.Errorf("time %v not UTC", c.Time)
				}
				return tt.stopAt > 0 && len(got) == tt.stopAt
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("visits:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
