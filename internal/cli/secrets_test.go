package cli_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// A password given the recommended way (POOL_REPO_PASSWORD) or written into the URL
// is used, and never shows up in output, verbose logs, commits or the cached clone.
func TestPasswordNeverLeaks(t *testing.T) {
	t.Parallel()
	const canary = "canary-pw-8c1f-9e27"
	r := newLockRepo(t, "main")
	srv := testenv.GitHTTP(t, r.root, httpUser, canary)
	url := srv.URL + "locks.git"
	inURL := strings.Replace(url, "http://", "http://"+httpUser+":"+canary+"@", 1)
	env := map[string]string{"POOL_REPO_USERNAME": httpUser, "POOL_REPO_PASSWORD": canary}
	cache := t.TempDir()
	old := r.head(t, "main")

	runs := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"status text", env, []string{"status", "--repo", url, "--pools", "aws:1h", "--verbose"}},
		{"status json", env, []string{"status", "--repo", url, "--pools", "aws:1h", "--verbose", "--output", "json"}},
		{"status cached", env, []string{"status", "--repo", url, "--verbose", "--cache-dir", cache}},
		{"password in URL, status json", nil, []string{"status", "--repo", inURL, "--pools", "aws:1h", "--verbose", "--output", "json"}},
		{"password in URL, dry run", nil, []string{"clean", "--repo", inURL, "--pools", "aws:1h", "--verbose", "--dry-run"}},
		{"clean", env, []string{"clean", "--repo", url, "--pools", "aws:1h", "--verbose"}},
		{"clean json, nothing to do", env, []string{"clean", "--repo", url, "--pools", "aws:1h", "--verbose", "--output", "json"}},
	}
	for _, c := range runs {
		res := mustRun(t, c.env, c.args...)
		if strings.Contains(res.stdout, canary) || strings.Contains(res.stderr, canary) {
			t.Errorf("%s: the password leaked:\n%s", c.name, res)
		}
		if !strings.Contains(res.stderr, "level=DEBUG") || !strings.Contains(res.stderr, "clone") {
			t.Errorf("%s: --verbose logged no git commands:\n%s", c.name, res.stderr)
		}
		if strings.Contains(c.args[len(c.args)-1], "json") {
			if d := decodeStatus(t, res.stdout); d.Commit == "" || !strings.Contains(d.Repo, srv.URL[len("http://"):]) {
				t.Errorf("%s: repo %q commit %q", c.name, d.Repo, d.Commit)
			}
		}
	}

	head := r.head(t, "main")
	if head == old {
		t.Fatal("clean over HTTP freed nothing")
	}
	if log := testenv.Git(t, r.dir, "log", "--all", "--format=raw"); strings.Contains(log, canary) {
		t.Errorf("the password is in the repository's history:\n%s", log)
	}
	err := filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), canary) {
			t.Errorf("the password is on disk in the cache: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Credentials written into the URL that url.Parse cannot parse (a '^' in the
// password) or given as the user name (a token) are used, and show nowhere: not
// in the text or JSON status (its repo is the URL with its user information
// masked), nor in the cached clone's remote.origin.url.
func TestURLCredentialsNeverShow(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	for _, c := range []struct {
		name, user, pass, userinfo string
		secrets                    []string
	}{
		{"caret in the password", "bot", "pa^ssword123", "bot:pa^ssword123", []string{"pa^ssword123"}},
		{"token as the user name", "ghp_SECRETTOKEN123456", "", "ghp_SECRETTOKEN123456", []string{"ghp_SECRETTOKEN123456"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := testenv.GitHTTP(t, r.root, c.user, c.pass)
			inURL := strings.Replace(srv.URL, "http://", "http://"+c.userinfo+"@", 1) + "locks.git"
			shown := strings.Replace(srv.URL, "http://", "http://[redacted]@", 1) + "locks.git"
			cache := t.TempDir()
			text := mustRun(t, nil, "status", "--repo", inURL, "--pools", "aws:1h", "--verbose", "--cache-dir", cache)
			jsonRun := mustRun(t, nil, "status", "--repo", inURL, "--pools", "aws:1h", "--output", "json", "--cache-dir", cache)
			if d := decodeStatus(t, jsonRun.stdout); d.Repo != shown {
				t.Errorf("json repo %q, want %q", d.Repo, shown)
			}
			if first, _, _ := strings.Cut(text.stdout, "\n"); !strings.Contains(first, shown) {
				t.Errorf("text status's first line %q does not name %q", first, shown)
			}
			clones, err := filepath.Glob(filepath.Join(cache, "*.git"))
			if err != nil || len(clones) != 1 {
				t.Fatalf("cached clones %q %v", clones, err)
			}
			origin := strings.TrimSpace(testenv.Git(t, clones[0], "config", "--get", "remote.origin.url"))
			if origin != srv.URL+"locks.git" {
				t.Errorf("cached clone's remote.origin.url %q, want %q", origin, srv.URL+"locks.git")
			}
			for _, s := range append(c.secrets, c.userinfo+"@") {
				for _, out := range []string{text.stdout, text.stderr, jsonRun.stdout, jsonRun.stderr} {
					if strings.Contains(out, s) {
						t.Errorf("%q shown:\n%s", s, out)
					}
				}
			}
		})
	}
}
