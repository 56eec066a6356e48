package gitx

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/redact"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// remote builds a bare repo under root/name with pool aws and n extra commits on
// branch, and returns its path.
func remote(t *testing.T, root, name, branch string, n int) string {
	t.Helper()
	testenv.RequireCommand(t, "git")
	now := time.Now()
	ops := []fixture.Op{{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-time.Hour)}}
	for i := 0; i < n; i++ {
		kind := fixture.Claim
		if i%2 == 1 {
			kind = fixture.Release
		}
		ops = append(ops, fixture.Op{Kind: kind, Pool: "aws", Lock: "env-1", At: now.Add(-time.Duration(n-i) * time.Minute)})
	}
	dir := filepath.Join(root, name)
	if err := fixture.Build(context.Background(), dir, fixture.Spec{Branch: branch, Pools: []string{"aws"}, Start: now.Add(-2 * time.Hour), Ops: ops}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustOpen(t *testing.T, o Options) *Repo {
	t.Helper()
	r, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestOpenFindsDefaultBranchOverEveryTransport(t *testing.T) {
	root := t.TempDir()
	dir := remote(t, root, "locks.git", "locks", 3)
	want := testenv.Git(t, dir, "rev-parse", "locks")
	for name, url := range map[string]string{
		"local path": dir,
		"file":       "file://" + dir,
		"git daemon": testenv.GitDaemon(t, root) + "locks.git",
		"http":       testenv.GitHTTP(t, root, "", "").URL + "locks.git",
	} {
		t.Run(name, func(t *testing.T) {
			r := mustOpen(t, Options{URL: url, Depth: 2})
			if r.Branch() != "locks" {
				t.Errorf("branch %q, want the remote's default, locks", r.Branch())
			}
			head, err := r.Head(context.Background())
			if err != nil || head != want {
				t.Errorf("head %s %v, want %s", head, err, want)
			}
		})
	}
}

func TestPushIsFastForwardOnly(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	ctx := context.Background()
	r := mustOpen(t, Options{URL: "file://" + dir})
	head, _ := r.Head(ctx)
	mk := func(parent, msg string) string {
		tree, err := r.Output(ctx, "rev-parse", parent+"^{tree}")
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.Input(ctx, strings.NewReader(msg), nil, "commit-tree", strings.TrimSpace(string(tree)), "-p", parent, "-F", "-")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(c))
	}
	// Someone else pushes first.
	other := testenv.NewClone(t, "file://"+dir, "main")
	other.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "claiming: env-1")
	theirs := other.RemoteHead(t)

	err := r.Push(ctx, mk(head, "ours"))
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("push over a moved branch: %v, want ErrRejected", err)
	}
	if other.RemoteHead(t) != theirs {
		t.Fatal("a rejected push changed the remote")
	}
	newHead, err := r.Fetch(ctx)
	if err != nil || newHead != theirs {
		t.Fatalf("fetch: %s %v, want %s", newHead, err, theirs)
	}
	ours := mk(newHead, "ours again")
	if err := r.Push(ctx, ours); err != nil {
		t.Fatal(err)
	}
	if other.RemoteHead(t) != ours {
		t.Error("push did not land")
	}
	if h, _ := r.Head(ctx); h != ours {
		t.Errorf("local mirror at %s after push, want %s", h, ours)
	}
}

func TestCacheDirIsReusedAndUpdated(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	cache := t.TempDir()
	url := "file://" + dir
	r1 := mustOpen(t, Options{URL: url, CacheDir: cache})
	clone := r1.Dir()
	marker := filepath.Join(clone, "poolboy-test-marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r1.Close()

	other := testenv.NewClone(t, url, "main")
	other.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "claiming: env-1")

	r2 := mustOpen(t, Options{URL: url, CacheDir: cache})
	if r2.Dir() != clone {
		t.Fatalf("second run cloned to %s, want reuse of %s", r2.Dir(), clone)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("cached clone was replaced, not reused")
	}
	if h, _ := r2.Head(context.Background()); h != other.RemoteHead(t) {
		t.Error("cached clone was not updated")
	}
	r2.Close()
	if _, err := os.Stat(clone); err != nil {
		t.Error("Close removed the cached clone")
	}
}

func TestShallowCloneDeepensToCompleteHistory(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 40)
	r := mustOpen(t, Options{URL: "file://" + dir, Depth: 2})
	ctx := context.Background()
	count := func() int {
		out, err := r.Output(ctx, "rev-list", "--count", "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, c := range strings.TrimSpace(string(out)) {
			n = n*10 + int(c-'0')
		}
		return n
	}
	if !r.IsShallow() || count() != 2 {
		t.Fatalf("shallow=%v with %d commits, want a 2-commit shallow clone", r.IsShallow(), count())
	}
	sh, _ := r.Shallow()
	if len(sh) != 1 {
		t.Errorf("boundary: %v", sh)
	}
	for steps := []int{8, 32, 42}; len(steps) > 0; steps = steps[1:] {
		if err := r.Deepen(ctx); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != steps[0] {
			t.Fatalf("after deepening: %d commits, want %d", got, steps[0])
		}
	}
	if r.IsShallow() {
		t.Error("still shallow with all 42 commits")
	}
}

// A remote that is itself a shallow mirror cannot give more history: Deepen says
// so instead of succeeding with nothing new (every caller would ask for ever).
func TestDeepenFromAShallowMirrorSaysThereIsNoMore(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 40)
	mirror := filepath.Join(t.TempDir(), "mirror.git")
	testenv.Git(t, "", "clone", "-q", "--bare", "--depth=5", "file://"+dir, mirror)
	r := mustOpen(t, Options{URL: "file://" + mirror, Depth: 2})
	ctx := context.Background()
	var err error
	for range 10 {
		if err = r.Deepen(ctx); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrNoMoreHistory) {
		t.Fatalf("Deepen from a 5-commit mirror, 10 times: %v, want ErrNoMoreHistory", err)
	}
	if out, _ := r.Output(ctx, "rev-list", "--count", "HEAD"); strings.TrimSpace(string(out)) != "5" {
		t.Errorf("%s commits, want the mirror's 5", out)
	}
}

// A cached shallow clone reused by a later run deepens from the depth it has, as a
// fresh one does, not from a depth of nothing.
func TestReusedShallowCacheDeepensFromItsDepth(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 40)
	cache := t.TempDir()
	opts := Options{URL: "file://" + dir, Depth: 2, CacheDir: cache}
	mustOpen(t, opts).Close()
	r := mustOpen(t, opts)
	ctx := context.Background()
	count := func() string {
		out, err := r.Output(ctx, "rev-list", "--count", "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if !r.IsShallow() || count() != "2" {
		t.Fatalf("shallow=%v with %s commits, want the cached 2-commit clone", r.IsShallow(), count())
	}
	for _, want := range []string{"8", "32"} {
		if err := r.Deepen(ctx); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != want {
			t.Fatalf("after deepening: %s commits, want %s", got, want)
		}
	}
}

func TestErrorsAreOneLineAndNameTheProblem(t *testing.T) {
	testenv.RequireCommand(t, "git")
	root := t.TempDir()
	dir := remote(t, root, "locks.git", "main", 1)
	empty := filepath.Join(root, "empty.git")
	testenv.Git(t, "", "init", "-q", "--bare", empty)
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"missing branch", Options{URL: dir, Branch: "nope"}, `branch "nope" does not exist`},
		{"empty", Options{URL: "file://" + empty}, "empty"},
		{"unreachable", Options{URL: "file:///nonexistent/locks.git"}, "git clone"},
		{"option injection", Options{URL: "--upload-pack=touch /tmp/x"}, "must not start with '-'"},
		{"two keys", Options{URL: dir, Auth: Auth{PrivateKey: []byte("k"), PrivateKeyFile: "/k"}}, "either"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(context.Background(), c.o)
			if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, c.want)
			}
		})
	}
}

// spyGit puts a git on PATH, and git-remote-http(s) in a copy of git's exec path,
// that record their arguments in argsLog and their environment in argsLog+".env",
// then run the real ones: what every process poolboy starts, and git's remote
// helpers, were given.
func spyGit(t *testing.T) (argsLog string) {
	t.Helper()
	real := testenv.RequireCommand(t, "git")
	bin := t.TempDir()
	argsLog = filepath.Join(bin, "args.log")
	spy := func(name, real string) string {
		return "#!/bin/sh\nprintf '%s\\n' \"" + name + " $*\" >> " + argsLog + "\nenv >> " + argsLog + ".env\nexec " + real + " \"$@\"\n"
	}
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(spy("git", real)), 0o755); err != nil {
		t.Fatal(err)
	}
	realExec := strings.TrimSpace(testenv.Git(t, "", "--exec-path"))
	entries, err := os.ReadDir(realExec)
	if err != nil {
		t.Fatal(err)
	}
	execDir := t.TempDir()
	for _, e := range entries {
		from, to := filepath.Join(realExec, e.Name()), filepath.Join(execDir, e.Name())
		if e.Name() == "git-remote-http" || e.Name() == "git-remote-https" {
			err = os.WriteFile(to, []byte(spy(e.Name(), from)), 0o755)
		} else {
			err = os.Symlink(from, to)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("GIT_EXEC_PATH", execDir)
	return argsLog
}

func TestSecretsStayOutOfArgumentsErrorsAndDisk(t *testing.T) {
	root := t.TempDir()
	remote(t, root, "locks.git", "main", 1)
	const password = "canary-pw-7f3a9d"
	const keyLine = "canaryKEYmaterialAAAAB3NzaC1yc2E"
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\n" + keyLine + "\n-----END OPENSSH PRIVATE KEY-----"
	srv := testenv.GitHTTP(t, root, "alice", password)
	argsLog := spyGit(t)

	// Right password: works, and neither secret reaches an argument.
	r := mustOpen(t, Options{URL: srv.URL + "locks.git", Auth: Auth{Username: "alice", Password: password, PrivateKey: []byte(key)}})
	keyFile := ""
	for _, e := range r.env {
		if cmd, ok := strings.CutPrefix(e, "GIT_SSH_COMMAND="); ok {
			f := strings.Fields(cmd)
			if i := slices.Index(f, "-i"); i >= 0 && i+1 < len(f) {
				keyFile = strings.Trim(f[i+1], "'")
			}
		}
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file %q: %v %v, want mode 0600", keyFile, st, err)
	}
	r.Close()
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file survives Close: %v", err)
	}

	// The right password written into the URL: works, and is no argument either.
	inURL := mustOpen(t, Options{URL: strings.Replace(srv.URL, "://", "://alice:"+password+"@", 1) + "locks.git"})
	if cfg, _ := inURL.Output(context.Background(), "config", "--get", "remote.origin.url"); strings.Contains(string(cfg), password) {
		t.Errorf("password stored in the clone's config: %s", cfg)
	}

	// Wrong password: git's reason is shown, the password is not.
	wrong := "canary-wrong-91bd"
	_, err = Open(context.Background(), Options{URL: srv.URL + "locks.git", Auth: Auth{Username: "alice", Password: wrong}})
	if err == nil || strings.Contains(err.Error(), wrong) || !strings.Contains(err.Error(), "Authentication failed") {
		t.Fatalf("err = %v", err)
	}
	// A password written into the URL is redacted from errors too.
	_, err = Open(context.Background(), Options{URL: strings.Replace(srv.URL, "://", "://alice:"+wrong+"@", 1) + "nope.git"})
	if err == nil || strings.Contains(err.Error(), wrong) {
		t.Fatalf("err = %v", err)
	}

	args, err := os.ReadFile(argsLog)
	if err != nil || len(args) == 0 {
		t.Fatalf("spy saw no git run: %v", err)
	}
	for _, s := range []string{password, keyLine} {
		if strings.Contains(string(args), s) {
			t.Errorf("secret %q in a git argument:\n%s", s, args)
		}
	}
}

func TestIsLocalPath(t *testing.T) {
	for u, want := range map[string]bool{
		"/srv/locks.git":            true,
		"./locks":                   true,
		"locks":                     true,
		"./a:b":                     true,
		"file:///srv/locks.git":     false,
		"git@github.com:org/locks":  false,
		"ssh://git@host/locks.git":  false,
		"https://host/org/locks":    false,
		"host:locks.git":            false,
		"git://127.0.0.1:9418/x.gi": false,
	} {
		if got := isLocalPath(u); got != want {
			t.Errorf("isLocalPath(%q) = %v, want %v", u, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	r := &Repo{red: redact.New(secretsOf("https://bob:url-pw-55@host/x", "", Auth{Password: "hunter2-xyz", PrivateKey: []byte("-----BEGIN-----\nAAAAsecretline\n-----END-----")})...)}
	for in, want := range map[string]string{
		"fatal: bad password hunter2-xyz":             "fatal: bad password [redacted]",
		"https://bob:tok3n@example.com/locks.git":     "https://bob:[redacted]@example.com/locks.git",
		"key AAAAsecretline leaked":                   "key [redacted] leaked",
		"ssh://git@example.com/locks.git is fine too": "ssh://git@example.com/locks.git is fine too",
		"git@github.com:org/locks.git stays":          "git@github.com:org/locks.git stays",
		"unable to look up u:pw9@127.0.0.1:1":         "unable to look up u:[redacted]@127.0.0.1:1",
		"the URL's own password url-pw-55 alone":      "the URL's own password [redacted] alone",
	} {
		if got := r.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStreamStopsEarlyButReportsFailures(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 40)
	r := mustOpen(t, Options{URL: dir})
	ctx := context.Background()
	// Reading one line of a long log and stopping is not an error.
	var first string
	err := r.Stream(ctx, func(rd io.Reader) error {
		line, err := bufio.NewReader(rd).ReadString('\n')
		first = line
		return err
	}, "log", "--format=%H")
	head, _ := r.Head(ctx)
	if err != nil || strings.TrimSpace(first) != head {
		t.Fatalf("early stop: %q %v", first, err)
	}
	// A command that fails is an error even though fn read everything.
	err = r.Stream(ctx, func(rd io.Reader) error { _, err := io.Copy(io.Discard, rd); return err }, "log", "no-such-revision")
	if err == nil || !strings.Contains(err.Error(), "no-such-revision") {
		t.Fatalf("failing command: %v", err)
	}
}

func TestRemoteHeadSeesTheRemoteWithoutFetching(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 2)
	ctx := context.Background()
	r := mustOpen(t, Options{URL: "file://" + dir})
	local, _ := r.Head(ctx)
	if h, err := r.RemoteHead(ctx); err != nil || h != local {
		t.Fatalf("remote head %s %v, want %s", h, err, local)
	}
	other := testenv.NewClone(t, "file://"+dir, "main")
	other.Move(t, "aws/unclaimed/env-1", "aws/claimed/env-1", "claiming: env-1")
	if h, err := r.RemoteHead(ctx); err != nil || h != other.RemoteHead(t) {
		t.Fatalf("remote head %s %v, want the new head", h, err)
	}
	if h, _ := r.Head(ctx); h != local {
		t.Error("RemoteHead fetched")
	}
}

func TestGitConfigAndProxyReachGitThroughTheEnvironment(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	argsLog := spyGit(t)
	r := mustOpen(t, Options{URL: dir, GitConfig: []ConfigEntry{{"poolboy.test", "yes"}},
		HTTPSProxy: "http://proxyuser:proxy-pw-31c@127.0.0.1:3128", Auth: Auth{Username: "u", Password: "p"}})
	ctx := context.Background()
	for key, want := range map[string]string{"poolboy.test": "yes", "http.proxy": "http://proxyuser:proxy-pw-31c@127.0.0.1:3128", "credential.helper": ""} {
		out, err := r.Output(ctx, "config", "--get", key)
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s = %q %v, want %q", key, out, err, want)
		}
	}
	if got := r.Redact("proxy said proxy-pw-31c"); strings.Contains(got, "proxy-pw-31c") {
		t.Errorf("proxy password not redacted: %s", got)
	}
	if args, _ := os.ReadFile(argsLog); strings.Contains(string(args), "proxy-pw-31c") {
		t.Errorf("proxy password in git's arguments:\n%s", args)
	}
}

// Two pushes can both pass the fast-forward check; the one whose ref update comes
// second fails with "cannot lock ref ...: is at X but expected Y". That is a lost
// race, like a non-fast-forward, and must be reported as one. A pre-receive hook
// that moves the branch itself stages the race deterministically; a stale ref
// lock file (a server problem, not a race) must not pass for one.
func TestPushThatLostTheRefUpdateIsRejected(t *testing.T) {
	root := t.TempDir()
	dir := remote(t, root, "locks.git", "main", 2)
	ctx := context.Background()
	r := mustOpen(t, Options{URL: "file://" + dir})
	head, _ := r.Head(ctx)
	tree, err := r.Output(ctx, "rev-parse", head+"^{tree}")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(msg string) string {
		c, err := r.Input(ctx, strings.NewReader(msg), nil, "commit-tree", strings.TrimSpace(string(tree)), "-p", head, "-F", "-")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(c))
	}
	theirs := mk("theirs")
	if _, err := r.Output(ctx, "push", "origin", theirs+":refs/heads/theirs"); err != nil {
		t.Fatal(err)
	}
	// (Outside the quarantine, which forbids ref updates.)
	hook := "#!/bin/sh\nunset GIT_QUARANTINE_PATH\ngit update-ref refs/heads/main refs/heads/theirs\n"
	if err := os.WriteFile(filepath.Join(dir, "hooks", "pre-receive"), []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx, mk("ours")); !errors.Is(err, ErrRejected) {
		t.Fatalf("push whose ref update lost: %v, want ErrRejected", err)
	}
	if got := testenv.Git(t, dir, "rev-parse", "main"); got != theirs {
		t.Fatalf("remote main = %s, want theirs %s", got, theirs)
	}

	if err := os.Remove(filepath.Join(dir, "hooks", "pre-receive")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "refs", "heads", "main.lock"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	head = theirs
	err = r.Push(ctx, mk("ours again"))
	if err == nil || errors.Is(err, ErrRejected) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "main.lock") {
		t.Fatalf("push against a stale ref lock: %v, want ErrRefused naming the lock file", err)
	}
	if err := os.Remove(filepath.Join(dir, "refs", "heads", "main.lock")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hooks", "pre-receive"), []byte("#!/bin/sh\necho no pushes today >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = r.Push(ctx, mk("declined"))
	if errors.Is(err, ErrRejected) || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no pushes today") {
		t.Fatalf("push declined by a hook: %v, want ErrRefused with the hook's words", err)
	}
}

// A server that is down (or cut the connection) is ErrUnreachable, worth another
// try; a missing repository or a wrong password is an answer, and is not.
func TestUnreachableTellsAServerThatIsDownFromAnAnswer(t *testing.T) {
	root := t.TempDir()
	remote(t, root, "locks.git", "main", 1)
	daemon := testenv.StartGitDaemon(t, root)
	web := testenv.GitHTTP(t, root, "alice", "right")
	for _, c := range []struct {
		name        string
		o           Options
		unreachable bool
	}{
		{"missing repository over git://", Options{URL: daemon.URL + "nope.git"}, false},
		{"missing repository over file://", Options{URL: "file://" + filepath.Join(root, "nope.git")}, false},
		{"wrong password over http", Options{URL: web.URL + "locks.git", Auth: Auth{Username: "alice", Password: "wrong"}}, false},
		{"server down", Options{URL: daemon.URL + "locks.git"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.unreachable {
				daemon.Stop()
			}
			_, err := Open(context.Background(), c.o)
			if err == nil || errors.Is(err, ErrUnreachable) != c.unreachable {
				t.Fatalf("err = %v; errors.Is(err, ErrUnreachable) = %v, want %v", err, errors.Is(err, ErrUnreachable), c.unreachable)
			}
		})
	}
	for msg, want := range map[string]bool{
		"fatal: unable to connect to 127.0.0.1:; 127.0.0.1[0: 127.0.0.1]: errno=Connection refused":      true,
		"fatal: read error: Connection reset by peer":                                                    true,
		"fatal: the remote end hung up unexpectedly; fatal: early EOF":                                   true,
		"fatal: unable to access 'https://h/x.git/': The requested URL returned error: 503":              true,
		"fatal: unable to access 'https://h/x.git/': Failed to connect to h port 443: Couldn't connect":  true,
		"git@h: Permission denied (publickey).; fatal: Could not read from remote repository.":           false,
		"fatal: Authentication failed for 'https://h/x.git/'":                                            false,
		"fatal: unable to access 'https://h/x.git/': The requested URL returned error: 404":              false,
		"fatal: remote error: no such repository: /nope.git":                                             false,
		"ssh: Could not resolve hostname gitt.example: Name or service not known; fatal: Could not read": false,
	} {
		if got := unreachable(msg); got != want {
			t.Errorf("unreachable(%q) = %v, want %v", msg, got, want)
		}
	}
	// The class comes from the whole message, not from the shortened one.
	banner := strings.Repeat("remote: a long banner line\n", 40)
	err := (&Repo{}).gitError([]string{"fetch"}, errors.New("exit status 128"), []byte(banner+"fatal: read error: Connection reset by peer\n"))
	if !errors.Is(err, ErrUnreachable) || len(err.Error()) > 450 {
		t.Errorf("long message: %d bytes, errors.Is(ErrUnreachable) = %v", len(err.Error()), errors.Is(err, ErrUnreachable))
	}
}

func TestRetryUnreachable(t *testing.T) {
	down := classify(errors.New("git fetch: Connection refused"), ErrUnreachable)
	answer := errors.New("git fetch: Authentication failed")
	for _, c := range []struct {
		name      string
		results   []error // what f returns, call after call
		wantCalls int
		wantErr   error
	}{
		{"ok at once", []error{nil}, 1, nil},
		{"back after two failures", []error{down, down, nil}, 3, nil},
		{"an answer is final", []error{answer, nil}, 1, answer},
		{"down for good", []error{down, down, down, down}, 3, down},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls, notes := 0, 0
			err := RetryUnreachable(context.Background(), 3, time.Millisecond, func(error, time.Duration) { notes++ }, func() error {
				calls++
				return c.results[calls-1]
			})
			if err != c.wantErr || calls != c.wantCalls || notes != calls-1 { // the last failure is not retried, so not noted
				t.Errorf("err %v after %d calls (%d notes), want %v after %d", err, calls, notes, c.wantErr, c.wantCalls)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := RetryUnreachable(ctx, 5, time.Hour, func(error, time.Duration) { cancel() }, func() error { calls++; return down })
	if err != down || calls != 1 {
		t.Errorf("cancelled while waiting: %v after %d calls, want the failure after 1", err, calls)
	}
}

// A git command killed because ctx ended says so (errors.Is), and Head does not
// blame the branch for it.
func TestCancelledCommandsSayWhy(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	r := mustOpen(t, Options{URL: "file://" + dir})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := r.Head(ctx)
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "has no commit") {
		t.Errorf("Head after cancel: %v, want an error wrapping context.Canceled", err)
	}
	if _, err := r.Fetch(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch after cancel: %v, want an error wrapping context.Canceled", err)
	}
}

// No URL form may put a password on a command line: git hands ssh:// and scp-like
// URLs to ssh as arguments, and git://, file:// have no use for one. Such URLs are
// refused before anything runs, without the password in the error.
func TestPasswordsThatWouldReachACommandLineAreRefused(t *testing.T) {
	const pw = "canary-url-pw-7c1e"
	for _, u := range []string{
		"ssh://bot:" + pw + "@git.example.com/locks.git",
		"bot:" + pw + "@git.example.com:acme/locks.git",
		"git://bot:" + pw + "@git.example.com/locks.git",
		"file://bot:" + pw + "@/srv/locks.git",
	} {
		_, err := Open(context.Background(), Options{URL: u})
		if err == nil || !strings.Contains(err.Error(), "would reach a command line") || strings.Contains(err.Error(), pw) {
			t.Errorf("Open(%s): %v", strings.ReplaceAll(u, pw, "PW"), err)
		}
	}
	for _, u := range []string{"git@git.example.com:acme/locks.git", "ssh://git@git.example.com/locks.git", "/srv/l@cks:x"} {
		if err := passwordOnCommandLine(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// blockingReader gives its bytes, then blocks until ctx ends: a pack that stops
// coming (os/exec waits for a reader that is not a file to return).
type blockingReader struct {
	data []byte
	ctx  context.Context
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		<-b.ctx.Done()
		return 0, io.ErrUnexpectedEOF
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// A git that fails or is stopped while it writes a pack leaves no temporary pack
// in the clone: git itself leaves index-pack's tmp_pack_* behind when it dies.
func TestAFailedOrStoppedGitLeavesNoTemporaryPack(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	r := mustOpen(t, Options{URL: "file://" + dir})
	temps := func() []string {
		files, _ := filepath.Glob(filepath.Join(r.dir, "objects", "pack", "tmp_*"))
		return files
	}
	header := []byte{'P', 'A', 'C', 'K', 0, 0, 0, 2, 0, 0, 0, 3}
	// Fails on its own: the pack ends early.
	if _, err := r.Input(context.Background(), strings.NewReader(string(header)+"x"), nil, "index-pack", "--stdin"); err == nil {
		t.Fatal("index-pack took a broken pack")
	}
	if left := temps(); len(left) > 0 {
		t.Errorf("after a failed index-pack: %v", left)
	}
	// Stopped: the pack stops coming, and the command is cancelled once git has its
	// temporary file.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := r.Input(ctx, &blockingReader{data: header, ctx: ctx}, nil, "index-pack", "--stdin")
		done <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); len(temps()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("index-pack made no temporary pack")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("stopped index-pack: %v", err)
	}
	if left := temps(); len(left) > 0 {
		t.Errorf("after a stopped index-pack: %v", left)
	}
}

// Another git's temporary pack in the clone (git's own upkeep, were it ever to run
// beside poolboy) survives poolboy's failing commands, and git's upkeep never runs
// detached from the command that starts it.
func TestAFailedGitLeavesAnotherGitsTemporaryPack(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	r := mustOpen(t, Options{URL: "file://" + dir})
	for _, key := range []string{"gc.autoDetach", "maintenance.autoDetach"} {
		if out, err := r.Output(context.Background(), "config", "--get", key); err != nil || strings.TrimSpace(string(out)) != "false" {
			t.Errorf("%s: %q, %v", key, out, err)
		}
	}
	other := exec.Command("git", "index-pack", "--stdin")
	other.Env = append(os.Environ(), "GIT_DIR="+r.dir)
	in, err := other.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); _ = other.Wait() }()
	if _, err := in.Write([]byte{'P', 'A', 'C', 'K', 0, 0, 0, 2, 0, 0, 0, 3}); err != nil {
		t.Fatal(err)
	}
	var theirs []string
	for deadline := time.Now().Add(30 * time.Second); len(theirs) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other git made no temporary pack")
		}
		theirs, _ = filepath.Glob(filepath.Join(r.dir, "objects", "pack", "tmp_*"))
	}
	// A command that fails as a matter of course, and one that writes packs.
	if _, err := r.Output(context.Background(), "rev-parse", "--verify", "--quiet", "refs/heads/nothing"); err == nil {
		t.Fatal("rev-parse found refs/heads/nothing")
	}
	if _, err := r.Input(context.Background(), strings.NewReader("PACK"), nil, "index-pack", "--stdin"); err == nil {
		t.Fatal("index-pack took a broken pack")
	}
	for _, f := range theirs {
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("the other git's %s: %v", filepath.Base(f), err)
		}
	}
}

// --branch naming a tag (git clone --branch takes one) says so, not that the
// repository is empty.
func TestABranchThatIsATagIsNamed(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	testenv.Git(t, dir, "tag", "v1", "main")
	_, err := Open(context.Background(), Options{URL: "file://" + dir, Branch: "v1"})
	if err == nil || !strings.Contains(err.Error(), `branch "v1" does not exist`) || errors.Is(err, ErrEmpty) {
		t.Errorf("error %v", err)
	}
}
