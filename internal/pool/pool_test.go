package pool

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// recGit is a Git over the real git CLI that records every command, so a test
// can prove Read looks at nothing but the tree listing.
type recGit struct {
	t     *testing.T
	dir   string
	calls [][]string
}

func (g *recGit) Output(_ context.Context, args ...string) ([]byte, error) {
	g.calls = append(g.calls, args)
	// testenv.Git trims whitespace; -z output starts with a mode digit and
	// ends with NUL, so nothing of it is lost.
	return []byte(testenv.Git(g.t, g.dir, args...)), nil
}

// work is a scratch working tree; every helper writes one entry.
type work struct {
	t   *testing.T
	dir string
	// late entries go straight into the index after `git add -A`.
	late []func()
}

func (w *work) file(p string, mode os.FileMode) {
	w.t.Helper()
	full := filepath.Join(w.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte("metadata of "+p+"\n"), mode); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil { // umask must not decide the git mode
		w.t.Fatal(err)
	}
}

func (w *work) files(ps ...string) {
	w.t.Helper()
	for _, p := range ps {
		w.file(p, 0o644)
	}
}

func (w *work) symlink(p, target string) {
	w.t.Helper()
	full := filepath.Join(w.dir, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Symlink(target, full); err != nil {
		w.t.Fatal(err)
	}
}

// index adds an entry straight to the index: for names the file system refuses
// (longer than 255 bytes) and for gitlinks.
func (w *work) index(mode, p string) {
	w.late = append(w.late, func() { w.addIndex(mode, p) })
}

func (w *work) addIndex(mode, p string) {
	w.t.Helper()
	obj := testenv.Git(w.t, w.dir, "hash-object", "-w", "--stdin")
	if mode == "160000" {
		obj = testenv.Git(w.t, w.dir, "rev-parse", "HEAD")
	}
	testenv.Git(w.t, w.dir, "update-index", "--add", "--cacheinfo", mode+","+obj+","+p)
}

func (w *work) pool(name string) {
	w.t.Helper()
	w.files(name+"/claimed/.gitkeep", name+"/unclaimed/.gitkeep")
}

type wantProblem struct {
	pool, lock, path string
	detail           string // substring
}

type wantPool struct {
	claimed, unclaimed []string
	intact             bool
}

func TestRead(t *testing.T) {
	testenv.RequireCommand(t, "git")
	tests := []struct {
		name     string
		setup    func(w *work)
		pools    map[string]wantPool
		problems []wantProblem
		modes    map[string]string // lock path -> mode
	}{
		{
			name: "normal pools",
			setup: func(w *work) {
				w.pool("aws")
				w.pool("gpu")
				w.pool("empty")
				w.files("aws/claimed/env-2", "aws/claimed/env-1", "aws/unclaimed/env-3", "gpu/unclaimed/gpu-a")
			},
			pools: map[string]wantPool{
				"aws":   {claimed: []string{"env-1", "env-2"}, unclaimed: []string{"env-3"}, intact: true},
				"empty": {intact: true},
				"gpu":   {unclaimed: []string{"gpu-a"}, intact: true},
			},
			modes: map[string]string{"aws/claimed/env-1": "100644"},
		},
		{
			name: "dot files are not locks",
			setup: func(w *work) {
				w.pool("aws")
				w.files("aws/claimed/.hidden", "aws/unclaimed/.DS_Store", "aws/unclaimed/env-1")
			},
			pools: map[string]wantPool{"aws": {unclaimed: []string{"env-1"}, intact: true}},
		},
		{
			name: "top-level files and dot dirs are not pools",
			setup: func(w *work) {
				w.pool("aws")
				w.pool(".hidden-pool")
				w.files("README.md", ".gitattributes", ".github/workflows/ci.yml", ".hidden-pool/claimed/x",
					"aws/README.md", "aws/other/x", "aws/claimed/env-1")
			},
			pools: map[string]wantPool{"aws": {claimed: []string{"env-1"}, intact: true}},
		},
		{
			name: "lock in both claimed and unclaimed",
			setup: func(w *work) {
				w.pool("aws")
				w.files("aws/claimed/env-1", "aws/unclaimed/env-1", "aws/claimed/env-2")
			},
			pools: map[string]wantPool{"aws": {claimed: []string{"env-1", "env-2"}, unclaimed: []string{"env-1"}, intact: true}},
			problems: []wantProblem{
				{pool: "aws", lock: "env-1", path: "aws/{claimed,unclaimed}/env-1", detail: "both"},
			},
		},
		{
			name: "pool missing a state directory",
			setup: func(w *work) {
				w.pool("aws")
				w.files("half/unclaimed/.gitkeep", "half/unclaimed/env-1", "none/README", "noun/claimed/.gitkeep")
			},
			pools: map[string]wantPool{
				"aws":  {intact: true},
				"half": {unclaimed: []string{"env-1"}},
				"none": {},
				"noun": {},
			},
			problems: []wantProblem{
				{pool: "half", path: "half/claimed", detail: "missing claimed/"},
				{pool: "none", path: "none/claimed", detail: "missing claimed/"},
				{pool: "none", path: "none/unclaimed", detail: "missing unclaimed/"},
				{pool: "noun", path: "noun/unclaimed", detail: "missing unclaimed/"},
			},
		},
		{
			name: "state directory that is a file or a symlink",
			setup: func(w *work) {
				w.pool("aws")
				w.files("flat/claimed", "flat/unclaimed/.gitkeep", "flat/unclaimed/env-1")
				w.files("link/unclaimed/.gitkeep")
				w.symlink("link/claimed", "../aws/claimed")
			},
			pools: map[string]wantPool{
				"aws":  {intact: true},
				"flat": {unclaimed: []string{"env-1"}},
				"link": {},
			},
			problems: []wantProblem{
				{pool: "flat", path: "flat/claimed", detail: "not a directory"},
				{pool: "link", path: "link/claimed", detail: "not a directory"},
			},
		},
		{
			name: "symlinks are never locks",
			setup: func(w *work) {
				w.pool("aws")
				w.files("aws/unclaimed/env-2")
				w.symlink("aws/claimed/passwd", "/etc/passwd")
				w.symlink("aws/claimed/escape", "../../../../../../etc/shadow")
				w.symlink("aws/unclaimed/env-3", "env-2")
			},
			pools: map[string]wantPool{"aws": {unclaimed: []string{"env-2"}, intact: true}},
			problems: []wantProblem{
				{pool: "aws", lock: "escape", path: "aws/claimed/escape", detail: "symlink"},
				{pool: "aws", lock: "passwd", path: "aws/claimed/passwd", detail: "symlink"},
				{pool: "aws", lock: "env-3", path: "aws/unclaimed/env-3", detail: "symlink"},
			},
		},
		{
			name: "directory and submodule where a lock should be",
			setup: func(w *work) {
				w.pool("aws")
				w.files("aws/claimed/sub/inner", "aws/claimed/sub/deeper/x", "aws/claimed/env-1")
				w.index("160000", "aws/unclaimed/module")
			},
			pools: map[string]wantPool{"aws": {claimed: []string{"env-1"}, intact: true}},
			problems: []wantProblem{
				{pool: "aws", lock: "sub", path: "aws/claimed/sub", detail: "directory"},
				{pool: "aws", lock: "module", path: "aws/unclaimed/module", detail: "submodule"},
			},
		},
		{
			name: "executable lock is a lock",
			setup: func(w *work) {
				w.pool("aws")
				w.file("aws/claimed/run-me", 0o755)
				w.file("aws/unclaimed/plain", 0o644)
			},
			pools: map[string]wantPool{"aws": {claimed: []string{"run-me"}, unclaimed: []string{"plain"}, intact: true}},
			modes: map[string]string{"aws/claimed/run-me": "100755", "aws/unclaimed/plain": "100644"},
		},
		{
			name: "invalid names",
			setup: func(w *work) {
				w.pool("aws")
				w.files("aws/claimed/ctl\x01char", "aws/claimed/new\nline", "aws/unclaimed/tab\tname",
					"aws/claimed/bad-\xff-utf8", "aws/claimed/ok lock*?", "aws/unclaimed/ünïcode")
				w.index("100644", "aws/unclaimed/"+strings.Repeat("x", 300))
			},
			pools: map[string]wantPool{"aws": {claimed: []string{"ok lock*?"}, unclaimed: []string{"ünïcode"}, intact: true}},
			problems: []wantProblem{
				{pool: "aws", lock: "bad-\xff-utf8", path: "aws/claimed/bad-\xff-utf8", detail: "UTF-8"},
				{pool: "aws", lock: "ctl\x01char", path: "aws/claimed/ctl\x01char", detail: "control"},
				{pool: "aws", lock: "new\nline", path: "aws/claimed/new\nline", detail: "control"},
				{pool: "aws", lock: "tab\tname", path: "aws/unclaimed/tab\tname", detail: "control"},
				{pool: "aws", lock: strings.Repeat("x", 300), path: "aws/unclaimed/" + strings.Repeat("x", 300), detail: "255"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			testenv.Git(t, dir, "init", "-q", "-b", "main")
			testenv.Git(t, dir, "config", "core.symlinks", "true")
			testenv.Git(t, dir, "config", "core.fileMode", "true")
			testenv.Git(t, dir, "commit", "-q", "--allow-empty", "-m", "root")
			w := &work{t: t, dir: dir}
			tt.setup(w)
			testenv.Git(t, dir, "add", "-A")
			for _, f := range w.late {
				f()
			}
			testenv.Git(t, dir, "commit", "-q", "-m", "locks")
			head := testenv.Git(t, dir, "rev-parse", "HEAD")

			g := &recGit{t: t, dir: dir}
			snap, err := Read(context.Background(), g, head)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			// Only the tree is listed: no lock (and no symlink target) is read.
			if len(g.calls) != 1 || g.calls[0][0] != "ls-tree" {
				t.Errorf("git calls = %q, want one ls-tree", g.calls)
			}
			if snap.Commit != head {
				t.Errorf("Commit = %q, want %q", snap.Commit, head)
			}

			var wantNames []string
			for n := range tt.pools {
				wantNames = append(wantNames, n)
			}
			sort.Strings(wantNames)
			if got := snap.Names(); !slices.Equal(got, wantNames) {
				t.Fatalf("pools = %q, want %q", got, wantNames)
			}

			var gotProblems []wantProblem
			for _, name := range wantNames {
				p, want := snap.Pool(name), tt.pools[name]
				if p == nil || p.Name != name {
					t.Fatalf("Pool(%q) = %v", name, p)
				}
				if got := lockNames(t, p.Claimed, name, true); !slices.Equal(got, want.claimed) {
					t.Errorf("%s claimed = %q, want %q", name, got, want.claimed)
				}
				if got := lockNames(t, p.Unclaimed, name, false); !slices.Equal(got, want.unclaimed) {
					t.Errorf("%s unclaimed = %q, want %q", name, got, want.unclaimed)
				}
				if p.Intact() != want.intact {
					t.Errorf("%s Intact() = %v, want %v (problems %v)", name, p.Intact(), want.intact, p.Problems)
				}
				broken := map[string]bool{}
				for _, pr := range p.Problems {
					if pr.Pool != name {
						t.Errorf("problem %v filed under pool %q", pr, name)
					}
					gotProblems = append(gotProblems, wantProblem{pool: pr.Pool, lock: pr.Lock, path: pr.Path, detail: pr.Detail})
					if pr.Lock != "" {
						broken[pr.Lock] = true
						if p.Broken[pr.Lock] != pr.Detail {
							t.Errorf("Broken[%q] = %q, want %q", pr.Lock, p.Broken[pr.Lock], pr.Detail)
						}
					}
				}
				if len(p.Broken) != len(broken) {
					t.Errorf("%s Broken = %q, want exactly the locks with problems %v", name, p.Broken, broken)
				}
				for _, l := range append(append([]Lock(nil), p.Claimed...), p.Unclaimed...) {
					if blob := testenv.Git(t, dir, "rev-parse", head+":"+l.Path()); l.Blob != blob {
						t.Errorf("%s: Blob = %q, want %q", l.Path(), l.Blob, blob)
					}
					if l.Mode != "100644" && l.Mode != "100755" {
						t.Errorf("%s: Mode = %q", l.Path(), l.Mode)
					}
					if want, ok := tt.modes[l.Path()]; ok && l.Mode != want {
						t.Errorf("%s: Mode = %q, want %q", l.Path(), l.Mode, want)
					}
				}
			}
			matchProblems(t, gotProblems, tt.problems)
			if snap.Pool("no-such-pool") != nil || snap.Pool("") != nil || snap.Pool("zzz") != nil {
				t.Errorf("Pool() found a pool that does not exist")
			}
		})
	}
}

// lockNames returns the names, checking each lock's pool and state on the way.
func lockNames(t *testing.T, ls []Lock, pool string, claimed bool) []string {
	t.Helper()
	var names []string
	for _, l := range ls {
		if l.Pool != pool || l.Claimed != claimed {
			t.Errorf("lock %+v listed under %s claimed=%v", l, pool, claimed)
		}
		names = append(names, l.Name)
	}
	return names
}

func matchProblems(t *testing.T, got, want []wantProblem) {
	t.Helper()
	used := make([]bool, len(got))
next:
	for _, w := range want {
		for i, g := range got {
			if !used[i] && g.pool == w.pool && g.lock == w.lock && g.path == w.path && strings.Contains(g.detail, w.detail) {
				used[i] = true
				continue next
			}
		}
		t.Errorf("missing problem %+v", w)
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected problem %+v", g)
		}
	}
}

// Fed bytes git itself could print but a file system might not hold.
func TestParseRawBytes(t *testing.T) {
	const blob = "e69de29bb2d1d6434b8b29ae77e5e09b7ab3c0b1"
	const tree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	rec := func(mode, typ, obj, path string) string { return mode + " " + typ + " " + obj + "\t" + path + "\x00" }
	pool := rec("040000", "tree", tree, "aws") +
		rec("040000", "tree", tree, "aws/claimed") +
		rec("040000", "tree", tree, "aws/unclaimed")
	tests := []struct {
		name      string
		in        string
		wantErr   bool
		claimed   []string
		problems  []wantProblem
		wantPools []string
	}{
		{name: "empty", in: "", wantPools: nil},
		{name: "non-UTF-8 name", in: pool + rec("100644", "blob", blob, "aws/claimed/\xc3\x28") + rec("100644", "blob", blob, "aws/claimed/ok"),
			claimed: []string{"ok"}, wantPools: []string{"aws"},
			problems: []wantProblem{{pool: "aws", lock: "\xc3\x28", path: "aws/claimed/\xc3\x28", detail: "UTF-8"}}},
		{name: "NUL-free control char", in: pool + rec("100644", "blob", blob, "aws/claimed/a\x7fb"),
			wantPools: []string{"aws"},
			problems:  []wantProblem{{pool: "aws", lock: "a\x7fb", path: "aws/claimed/a\x7fb", detail: "control"}}},
		{name: "odd mode", in: pool + rec("100664", "blob", blob, "aws/claimed/old"),
			wantPools: []string{"aws"},
			problems:  []wantProblem{{pool: "aws", lock: "old", path: "aws/claimed/old", detail: "100664"}}},
		{name: "no trailing NUL", in: strings.TrimSuffix(pool+rec("100644", "blob", blob, "aws/claimed/last"), "\x00"),
			claimed: []string{"last"}, wantPools: []string{"aws"}},
		// Not what git prints, but a lock must sit in a real claimed/ tree.
		{name: "lock under a non-tree claimed", in: rec("040000", "tree", tree, "aws") +
			rec("100644", "blob", blob, "aws/claimed") + rec("100644", "blob", blob, "aws/claimed/x") +
			rec("040000", "tree", tree, "aws/unclaimed"),
			wantPools: []string{"aws"},
			problems:  []wantProblem{{pool: "aws", path: "aws/claimed", detail: "not a directory"}}},
		{name: "lock without its directory entry (no -t)", in: rec("040000", "tree", tree, "aws") +
			rec("100644", "blob", blob, "aws/claimed/x") + rec("040000", "tree", tree, "aws/unclaimed"),
			wantPools: []string{"aws"},
			problems:  []wantProblem{{pool: "aws", path: "aws/claimed", detail: "missing claimed/"}}},
		{name: "no tab", in: pool + "100644 blob " + blob + " aws/claimed/x\x00", wantErr: true},
		{name: "two fields", in: pool + "100644 " + blob + "\taws/claimed/x\x00", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := Parse("c0ffee", []byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Parse = %+v, want an error", snap)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.Equal(snap.Names(), tt.wantPools) {
				t.Fatalf("pools = %q, want %q", snap.Names(), tt.wantPools)
			}
			var got []wantProblem
			for _, p := range snap.Pools {
				if names := lockNames(t, p.Claimed, p.Name, true); !slices.Equal(names, tt.claimed) {
					t.Errorf("claimed = %q, want %q", names, tt.claimed)
				}
				for _, pr := range p.Problems {
					got = append(got, wantProblem{pool: pr.Pool, lock: pr.Lock, path: pr.Path, detail: pr.Detail})
				}
			}
			matchProblems(t, got, tt.problems)
		})
	}
}

func TestLockPath(t *testing.T) {
	tests := []struct {
		l    Lock
		want string
	}{
		{Lock{Pool: "aws", Name: "env-1", Claimed: true}, "aws/claimed/env-1"},
		{Lock{Pool: "aws", Name: "env-1"}, "aws/unclaimed/env-1"},
		{Lock{Pool: "my pool", Name: "a*b"}, "my pool/unclaimed/a*b"},
	}
	for _, tt := range tests {
		if got := tt.l.Path(); got != tt.want {
			t.Errorf("%+v.Path() = %q, want %q", tt.l, got, tt.want)
		}
	}
	if got := (Problem{Path: "aws/claimed/x", Detail: "bad"}).String(); got != "aws/claimed/x: bad" {
		t.Errorf("Problem.String() = %q", got)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // substring of the error; "" means valid
	}{
		{"dot dot slash", "../x", "'/'"},
		{"slash", "a/b", "'/'"},
		{"hidden", ".hidden", "'.'"},
		{"dot", ".", "'.'"},
		{"empty", "", "empty"},
		{"NUL", "a\x00b", "control"},
		{"newline", "env\n1", "control"},
		{"carriage return", "env\r1", "control"},
		{"escape", "env\x1b[31m", "control"},
		{"DEL", "env\x7f", "control"},
		{"C1 control", "env\u0085", "control"},
		{"300 bytes", strings.Repeat("a", 300), "255"},
		{"256 bytes", strings.Repeat("a", 256), "255"},
		{"non-UTF-8", "env-\xff", "UTF-8"},
		{"truncated UTF-8", "env-\xc3", "UTF-8"},
		{"leading space", " env-1", "white space"},
		{"trailing space", "env-1 ", "white space"},
		{"trailing no-break space", "env-1\u00a0", "white space"},
		{"leading ideographic space", "\u3000env-1", "white space"},
		{"NTFS's short name of .git", "GIT~1", "git refuses"},
		{"NTFS's .git after a backslash", `a\.git`, "git refuses"},
		{"255 bytes", strings.Repeat("a", 255), ""},
		{"normal", "env-1", ""},
		{"dots inside", "env.1..2", ""},
		{"spaces", "my lock 1", ""},
		{"star", "lock*", ""},
		{"glob chars", "a?[b]*", ""},
		{"unicode", "gpu-ünï-日本", ""},
		{"colon", ":(exclude)x", ""},
		{"dash", "-rf", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.in)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("ValidName(%q) = %v, want valid", tt.in, err)
			case tt.want != "" && err == nil:
				t.Errorf("ValidName(%q) = nil, want an error about %s", tt.in, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("ValidName(%q) = %v, want it to mention %s", tt.in, err, tt.want)
			}
		})
	}
}
