package pool

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// fastImport is the reference Commits is held to: git fast-import given the same
// changes on the same parent, with the same author and committer, returns the ids
// of the commits it made.
func fastImport(t *testing.T, w Writer, parent string, changes []Change) []string {
	t.Helper()
	ctx := context.Background()
	author, err := ident(ctx, w, "GIT_AUTHOR_IDENT")
	if err != nil {
		t.Fatal(err)
	}
	committer, err := ident(ctx, w, "GIT_COMMITTER_IDENT")
	if err != nil {
		t.Fatal(err)
	}
	quote := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	var in bytes.Buffer
	for i, c := range changes {
		fmt.Fprintf(&in, "commit refs/fast-import\nmark :%d\nauthor %s\ncommitter %s\ndata %d\n%s\n", i+1, author, committer, len(c.Msg), c.Msg)
		if i == 0 {
			fmt.Fprintf(&in, "from %s\n", parent)
		}
		for _, e := range c.Edits {
			if e.Blob == "" {
				fmt.Fprintf(&in, "D \"%s\"\n", quote.Replace(e.Path))
			} else {
				fmt.Fprintf(&in, "M %s %s \"%s\"\n", e.Mode, e.Blob, quote.Replace(e.Path))
			}
		}
		in.WriteString("\n")
	}
	in.WriteString("reset refs/fast-import\n\n")
	for i := range changes {
		fmt.Fprintf(&in, "get-mark :%d\n", i+1)
	}
	in.WriteString("done\n")
	out, err := w.Input(ctx, &in, nil, "fast-import", "--quiet", "--done")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// The commits Commits builds are, byte for byte, the ones git's fast-import makes
// from the same changes, in both of git's object formats: over hundreds of random
// changes to names that sort around '/' (a, a-b, a.b, a0, a/), quotes, spaces and
// non-ASCII; files put where directories are and directories through files;
// directories emptied and so removed; removals of what is not there; executable,
// symlink and submodule entries; a directory rewritten more times than a delta
// chain may be long, and one larger than a delta's copy instruction. git fsck --strict then finds nothing wrong.
func TestCommitsAreTheCommitsGitWouldMake(t *testing.T) {
	t.Setenv("GIT_AUTHOR_DATE", "1700000000 +0000")
	t.Setenv("GIT_COMMITTER_DATE", "1700000000 +0000")
	for _, format := range []string{"sha1", "sha256"} {
		t.Run(format, func(t *testing.T) {
			bare := filepath.Join(t.TempDir(), "r.git")
			testenv.Git(t, "", "init", "-q", "--bare", "--object-format="+format, bare)
			w := execWriter{t, bare}
			var blobs []string
			for i := range 5 {
				id, err := WriteBlob(context.Background(), w, []byte(fmt.Sprintf("content %d\n", i)))
				if err != nil {
					t.Fatal(err)
				}
				blobs = append(blobs, id)
			}
			names := []string{"a", "a-b", "a.b", "a0", "b", `q "x"`, "sp ace", "é", "-dash", "z\\y"}
			modes := []string{"100644", "100644", "100755", "120000"}
			rng := rand.New(rand.NewPCG(1, 2))
			path := func() string {
				n := 1 + rng.IntN(3)
				parts := make([]string, n)
				for i := range parts {
					parts[i] = names[rng.IntN(len(names))]
				}
				return strings.Join(parts, "/")
			}
			put := func(p string) Edit {
				mode := modes[rng.IntN(len(modes))]
				if rng.IntN(20) == 0 {
					return Edit{Path: p, Mode: "160000", Blob: strings.Repeat("ab", len(blobs[0])/2)}
				}
				return Edit{Path: p, Mode: mode, Blob: blobs[rng.IntN(len(blobs))]}
			}
			// The parent: a few dozen files, made by fast-import itself.
			var seed []Edit
			for range 40 {
				seed = append(seed, put(path()))
			}
			// A directory larger than one copy instruction of a delta (64 KiB).
			for i := range 2000 {
				seed = append(seed, Edit{Path: fmt.Sprintf("big/lock-%04d", i), Mode: "100644", Blob: blobs[i%len(blobs)]})
			}
			empty := strings.TrimSpace(testenv.Git(t, bare, "hash-object", "-t", "tree", "-w", "/dev/null"))
			root := strings.TrimSpace(testenv.Git(t, bare, "commit-tree", "-m", "root", empty))
			parent := fastImport(t, w, root, []Change{{Edits: seed, Msg: "seed\n"}})[0]
			// A hot directory, rewritten in most commits: longer than a delta chain.
			var changes []Change
			for i := range 300 {
				var edits []Edit
				for range 1 + rng.IntN(3) {
					switch rng.IntN(5) {
					case 4:
						l := fmt.Sprintf("big/lock-%04d", rng.IntN(2100))
						edits = append(edits, Edit{Path: l}, put(fmt.Sprintf("big/lock-%04d", rng.IntN(2100))))
					case 0:
						edits = append(edits, Edit{Path: path()})
					case 1:
						edits = append(edits, put(path()))
					default:
						edits = append(edits, put("hot/"+names[rng.IntN(len(names))]), Edit{Path: "hot/" + names[rng.IntN(len(names))]})
					}
				}
				changes = append(changes, Change{Edits: edits, Msg: fmt.Sprintf("change %d\n\nwith a body\n", i)})
			}
			want := fastImport(t, w, parent, changes)
			got, err := Commits(context.Background(), w, parent, changes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d commits, fast-import made %d", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("commit %d is %s, fast-import's is %s: edits %+v\n%s", i, got[i], want[i], changes[i].Edits,
						testenv.Git(t, bare, "diff-tree", "-r", want[i], got[i]))
				}
			}
			testenv.Git(t, bare, "update-ref", "refs/heads/main", got[len(got)-1])
			if out := testenv.Git(t, bare, "fsck", "--strict", "--no-dangling"); strings.TrimSpace(out) != "" {
				t.Errorf("fsck: %s", out)
			}
			// Every delta chain in poolboy's packs is within the bound.
			packs, _ := filepath.Glob(filepath.Join(bare, "objects", "pack", "*.idx"))
			longest := 0
			for _, idx := range packs {
				for _, m := range regexp.MustCompile(`chain length = (\d+)`).FindAllStringSubmatch(testenv.Git(t, bare, "verify-pack", "-v", idx), -1) {
					n, _ := strconv.Atoi(m[1])
					longest = max(longest, n)
				}
			}
			if longest < maxDepth/2 || longest > maxDepth {
				t.Errorf("longest delta chain %d, want up to %d", longest, maxDepth)
			}
		})
	}
}

// What Commits cannot write as asked, or git would not take, is refused before
// anything is written: no pack, no loose object appears.
func TestCommitsRefuseAndWriteNothing(t *testing.T) {
	bare, head, locks := lockTree(t, 1, 2)
	w := execWriter{t, bare}
	tree := strings.TrimSpace(testenv.Git(t, bare, "rev-parse", head+"^{tree}"))
	good := locks[0].Blob
	objects := func() string {
		return testenv.Git(t, bare, "count-objects", "-v")
	}
	before := objects()
	for _, c := range []struct {
		name   string
		parent string
		edits  []Edit
		want   string
	}{
		{"a line break", head, []Edit{{Path: "p/claimed/a\nb"}}, "cannot be written"},
		{"an empty component", head, []Edit{{Path: "p//x", Mode: "100644", Blob: good}}, "cannot be written"},
		{"a leading slash", head, []Edit{{Path: "/p/x", Mode: "100644", Blob: good}}, "cannot be written"},
		{"a trailing slash", head, []Edit{{Path: "p/x/", Mode: "100644", Blob: good}}, "cannot be written"},
		{"dot", head, []Edit{{Path: "p/./x", Mode: "100644", Blob: good}}, "cannot be written"},
		{"dot dot", head, []Edit{{Path: "p/../x", Mode: "100644", Blob: good}}, "cannot be written"},
		{".git", head, []Edit{{Path: "p/.GIT/x", Mode: "100644", Blob: good}}, "cannot be written"},
		{"the empty path", head, []Edit{{Path: ""}}, "cannot be written"},
		{"a tree's mode", head, []Edit{{Path: "p/x", Mode: "040000", Blob: tree}}, `mode "040000"`},
		{"an odd mode", head, []Edit{{Path: "p/x", Mode: "100666", Blob: good}}, `mode "100666"`},
		{"a short id", head, []Edit{{Path: "p/x", Mode: "100644", Blob: good[:7]}}, "not an object id"},
		{"an upper-case id", head, []Edit{{Path: "p/x", Mode: "100644", Blob: strings.ToUpper(good)}}, "not an object id"},
		{"a missing blob", head, []Edit{{Path: "p/x", Mode: "100644", Blob: strings.Repeat("0", 40)}}, "not in the repository"},
		{"a tree as a file", head, []Edit{{Path: "p/x", Mode: "100644", Blob: tree}}, "not in the repository"},
		{"a parent that is a name", "main", []Edit{{Path: "p/x"}}, "not a commit id"},
		{"a missing parent", strings.Repeat("1", 40), []Edit{{Path: "p/x"}}, "has no tree"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Commits(context.Background(), w, c.parent, []Change{{Edits: c.edits, Msg: "x\n"}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if after := objects(); after != before {
				t.Errorf("objects written:\n%s\nwere\n%s", after, before)
			}
		})
	}
}

// A tree git would call corrupt (out of order, a name twice, an entry cut short)
// is not built on: every commit on top would copy it.
func TestCommitsRefuseACorruptTree(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "r.git")
	testenv.Git(t, "", "init", "-q", "--bare", bare)
	w := execWriter{t, bare}
	blob, err := WriteBlob(context.Background(), w, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	raw := testenv.Git(t, bare, "rev-parse", blob)
	id := make([]byte, 20)
	if _, err := fmt.Sscanf(raw, "%x", &id); err != nil {
		t.Fatal(err)
	}
	line := func(mode, name string) string { return mode + " " + name + "\x00" + string(id) }
	for _, c := range []struct{ name, content, want string }{
		{"out of order", line("100644", "b") + line("100644", "a"), "out of git's order"},
		{"a name twice", line("100644", "a") + line("100644", "a"), "out of git's order"},
		{"a file and a directory of one name", line("100644", "a") + line("100644", "a-b") + line("40000", "a"), "named twice"},
		{"cut short", line("100644", "a")[:10], "cut short"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "tree")
			if err := os.WriteFile(f, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			tree := strings.TrimSpace(testenv.Git(t, bare, "hash-object", "-t", "tree", "-w", "--literally", f))
			commit := strings.TrimSpace(testenv.Git(t, bare, "commit-tree", "-m", "bad", tree))
			_, err := Commits(context.Background(), w, commit, []Change{{Edits: []Edit{{Path: "c", Mode: "100644", Blob: blob}}, Msg: "x\n"}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

// Two writers in one repository at once each get their own whole chain.
func TestCommitsTwoWritersInOneRepository(t *testing.T) {
	bare, head, locks := lockTree(t, 1, 40)
	w := execWriter{t, bare}
	var wg sync.WaitGroup
	ids := make([][]string, 2)
	errs := make([]error, 2)
	for k := range 2 {
		wg.Go(func() {
			var changes []Change
			for _, l := range locks[k*20 : (k+1)*20] {
				changes = append(changes, Change{Edits: Move(l, false), Msg: fmt.Sprintf("writer %d: %s\n", k, l.Name)})
			}
			ids[k], errs[k] = Commits(context.Background(), w, head, changes)
		})
	}
	wg.Wait()
	for k := range 2 {
		if errs[k] != nil {
			t.Fatal(errs[k])
		}
		testenv.Git(t, bare, "update-ref", fmt.Sprintf("refs/heads/w%d", k), ids[k][19])
		if n := strings.Count(testenv.Git(t, bare, "ls-tree", "-r", "--name-only", ids[k][19]), "/unclaimed/env"); n != 20 {
			t.Errorf("writer %d: %d locks unclaimed, want 20", k, n)
		}
	}
	if out := testenv.Git(t, bare, "fsck", "--strict", "--no-dangling"); strings.TrimSpace(out) != "" {
		t.Errorf("fsck: %s", out)
	}
}

// sameAsFastImport runs Commits and fast-import on the same changes, fails on any
// difference, and checks the last commit with git fsck --strict.
func sameAsFastImport(t *testing.T, bare string, w Writer, parent string, changes []Change) []string {
	t.Helper()
	for i := range changes {
		if changes[i].Msg == "" {
			changes[i].Msg = fmt.Sprintf("change %d\n", i)
		}
	}
	want := fastImport(t, w, parent, changes)
	got, err := Commits(context.Background(), w, parent, changes)
	if err != nil {
		t.Fatalf("Commits: %v (fast-import made %d commits)", err, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("commit %d is %s, fast-import's is %s", i, got[i], want[i])
		}
	}
	testenv.Git(t, bare, "update-ref", "refs/heads/main", got[len(got)-1])
	if out := testenv.Git(t, bare, "fsck", "--strict", "--no-dangling"); strings.TrimSpace(out) != "" {
		t.Errorf("fsck: %s", out)
	}
	return got
}

// literalTree stores content as a tree object as it is, as only a tool other than
// git would write it.
func literalTree(t *testing.T, bare, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "tree")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(testenv.Git(t, bare, "hash-object", "-t", "tree", "-w", "--literally", f))
}

// Edits that go through the corners of fast-import's rules, one scenario each,
// come out as fast-import's commits, in both object formats.
func TestCommitsScenariosAsFastImport(t *testing.T) {
	t.Setenv("GIT_AUTHOR_DATE", "1700000000 +0000")
	t.Setenv("GIT_COMMITTER_DATE", "1700000000 +0000")
	for _, format := range []string{"sha1", "sha256"} {
		bare := filepath.Join(t.TempDir(), "r.git")
		testenv.Git(t, "", "init", "-q", "--bare", "--object-format="+format, bare)
		w := execWriter{t, bare}
		// The zero-padded trees in a repository of their own: fsck finds them anywhere.
		paddedBare := filepath.Join(t.TempDir(), "padded.git")
		testenv.Git(t, "", "init", "-q", "--bare", "--object-format="+format, paddedBare)
		pw := execWriter{t, paddedBare}
		if _, err := WriteBlob(context.Background(), pw, []byte("1")); err != nil {
			t.Fatal(err)
		}
		b1, _ := WriteBlob(context.Background(), w, []byte("1"))
		b2, _ := WriteBlob(context.Background(), w, []byte("2"))
		m := func(p, blob string) Edit { return Edit{Path: p, Mode: "100644", Blob: blob} }
		d := func(p string) Edit { return Edit{Path: p} }
		empty := strings.TrimSpace(testenv.Git(t, bare, "hash-object", "-t", "tree", "-w", "/dev/null"))
		root := strings.TrimSpace(testenv.Git(t, bare, "commit-tree", "-m", "root", empty))
		seed := fastImport(t, w, root, []Change{{Edits: []Edit{
			m("p/claimed/a", b1), m("p/claimed/b", b1), m("p/unclaimed/c", b1), m("a/a/a", b1), m("a-b", b1), m("a.b/a", b1), m("q/q/q/q", b2),
		}, Msg: "seed\n"}})[0]
		raw := func(id string) string {
			var r []byte
			if _, err := fmt.Sscanf(id, "%x", &r); err != nil {
				t.Fatal(err)
			}
			return string(r)
		}
		sub := literalTree(t, paddedBare, "100644 f\x00"+raw(b1))
		padded := strings.TrimSpace(testenv.Git(t, paddedBare, "commit-tree", "-m", "padded",
			literalTree(t, paddedBare, "040000 d\x00"+raw(sub)+"0100644 g\x00"+raw(b1))))
		crSeed := fastImport(t, w, root, []Change{{Edits: []Edit{m("pool\r/claimed/a", b1), m("pool/claimed/b", b1)}, Msg: "seed\n"}})[0]
		var backAndForth []Change
		for i := range 120 { // two trees over and over: objects the pack has already
			from, to := "p/claimed/a", "p/unclaimed/a"
			if i%2 == 1 {
				from, to = to, from
			}
			backAndForth = append(backAndForth, Change{Edits: []Edit{d(from), m(to, b1)}})
		}
		for _, c := range []struct {
			name    string
			parent  string
			changes []Change
		}{
			{"a directory deleted and written under, then again", seed, []Change{
				{Edits: []Edit{d("p/claimed"), m("p/claimed/x", b2)}}, {Edits: []Edit{m("p/claimed/y", b2)}}}},
			{"a directory, a file, nothing, a deep directory", seed, []Change{
				{Edits: []Edit{d("p"), m("p", b1), d("p"), m("p/claimed/z/w", b1)}}}},
			{"files and directories swapped at depth", seed, []Change{
				{Edits: []Edit{m("a/a", b2), m("a/a/a/a/a", b1)}}, {Edits: []Edit{m("q/q/q", b1)}}, {Edits: []Edit{m("q/q/q/q", b2)}}}},
			{"one path edited thrice in a commit", seed, []Change{
				{Edits: []Edit{m("a/a/a", b1), m("a/a/a", b1), m("a/a/a", b2), d("x/y")}}}},
			{"the root emptied after a commit that rewrote it", seed, []Change{
				{Edits: []Edit{m("r", b1)}}, {Edits: []Edit{d("a"), d("a-b"), d("a.b"), d("p"), d("q"), d("r")}}, {Edits: []Edit{d("nothing")}},
				{Edits: []Edit{m("a/a/a", b1)}}}},
			{"a lock moved back and forth", seed, backAndForth},
			{"a directory name ending in a carriage return", crSeed, []Change{
				{Edits: []Edit{d("pool\r/claimed/a"), m("pool\r/unclaimed/a", b1)}}}},
		} {
			t.Run(format+"/"+c.name, func(t *testing.T) { sameAsFastImport(t, bare, w, c.parent, c.changes) })
		}
		t.Run(format+"/a zero-padded mode in the parent", func(t *testing.T) {
			// Only the trees written are canonical (fsck still finds the parent's), so no fsck.
			changes := []Change{{Edits: []Edit{m("h", b1)}, Msg: "x\n"}}
			got, err := Commits(context.Background(), pw, padded, changes)
			if err != nil {
				t.Fatal(err)
			}
			if want := fastImport(t, pw, padded, changes); got[0] != want[0] {
				t.Fatalf("commit %s, fast-import's %s", got[0], want[0])
			}
		})
	}
}

// Paths git refuses in a tree (fsck's hasDotgit as HFS+ and NTFS read .git) are
// never written, and a commit message with a NUL is refused (fsck's nulInCommit).
func TestCommitsRefuseWhatFsckRefuses(t *testing.T) {
	bare, head, locks := lockTree(t, 1, 1)
	w := execWriter{t, bare}
	for _, name := range []string{".git.", ".git ", "git~1", "GIT~1", ".git\u200c", "\u200d.Git", `x\.git`, ".git::$INDEX_ALLOCATION"} {
		_, err := Commits(context.Background(), w, head, []Change{{Edits: []Edit{{Path: "p/" + name + "/x", Mode: "100644", Blob: locks[0].Blob}}, Msg: "x\n"}})
		if err == nil || !strings.Contains(err.Error(), "cannot be written") {
			t.Errorf("%q: error %v", name, err)
		}
	}
	for _, name := range []string{".gitkeep", "git~2", ".gitx", "git", "a.git"} {
		if gitRefuses(name) {
			t.Errorf("%q refused", name)
		}
	}
	if _, err := Commits(context.Background(), w, head, []Change{{Edits: Move(locks[0], false), Msg: "a\x00b\n"}}); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("a NUL in a message: error %v", err)
	}
}
