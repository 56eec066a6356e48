package gitx

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/redact"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// Credentials written into a repository URL, in every form git accepts (url.Parse
// refuses '^', '{', a '%' without two hex digits): an http(s) URL's user
// information, a password or a token given as the user name, is moved out of it
// and reaches git through askpass; it is in no process argument (git's, and
// git-remote-http's, which git runs through the git on PATH), no environment
// (POOL_REPO itself is dropped), not the cached clone's config, and Repo.URL()
// masks it. Every other form with a password is refused with one line naming it.
func TestURLCredentialsNeverReachGit(t *testing.T) {
	root := t.TempDir()
	remote(t, root, "locks.git", "main", 1)
	for _, c := range []struct {
		name string
		// userinfo goes between "http://" and the server's host:port; the server
		// wants user and pass (none when user is "").
		userinfo, user, pass string
		secrets              []string // what must never reach git
	}{
		{"caret", "bot:pa^ssword123", "bot", "pa^ssword123", []string{"pa^ssword123"}},
		{"percent without hex digits", "bot:50%zzoff-pw", "bot", "50%zzoff-pw", []string{"50%zzoff-pw"}},
		{"braces", "bot:pa{ss}word|x", "bot", "pa{ss}word|x", []string{"pa{ss}word|x"}},
		{"escaped at", "bot:p%40ssword1", "bot", "p@ssword1", []string{"p@ssword1", "p%40ssword1"}},
		{"user only", "bot", "bot", "", nil},
		{"token as the user name", "ghp_SECRETTOKEN123456", "ghp_SECRETTOKEN123456", "", []string{"ghp_SECRETTOKEN123456"}},
		{"token and a password with a caret", "ghp_SECRETTOKEN123456:x^y-pw-77", "ghp_SECRETTOKEN123456", "x^y-pw-77", []string{"ghp_SECRETTOKEN123456", "x^y-pw-77"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := testenv.GitHTTP(t, root, c.user, c.pass)
			plain := srv.URL + "locks.git"
			raw := strings.Replace(plain, "http://", "http://"+c.userinfo+"@", 1)
			t.Setenv("POOL_REPO", raw)
			argsLog := spyGit(t)
			cache := t.TempDir()
			r := mustOpen(t, Options{URL: raw, CacheDir: cache})
			if _, err := r.Fetch(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got, want := r.URL(), strings.Replace(plain, "http://", "http://[redacted]@", 1); got != want {
				t.Errorf("URL() = %q, want %q", got, want)
			}
			cfg, err := r.Output(context.Background(), "config", "--get", "remote.origin.url")
			if err != nil || strings.TrimSpace(string(cfg)) != plain {
				t.Errorf("remote.origin.url = %q %v, want %q", cfg, err, plain)
			}
			args, err := os.ReadFile(argsLog)
			if err != nil || !strings.Contains(string(args), "git-remote-http origin "+plain) {
				t.Errorf("the spy did not see git-remote-http run with the plain URL: %v\n%s", err, args)
			}
			env, err := os.ReadFile(argsLog + ".env")
			if err != nil {
				t.Fatal(err)
			}
			env = append(env, strings.Join(r.command(context.Background(), nil, "version").Env, "\n")...)
			if strings.Contains(string(env), "POOL_REPO=") {
				t.Errorf("POOL_REPO reached git's environment")
			}
			for _, s := range append(c.secrets, c.userinfo+"@") {
				if strings.Contains(string(args), s) {
					t.Errorf("%q in a git argument:\n%s", s, args)
				}
				if strings.Contains(string(env), s) {
					t.Errorf("%q in git's environment", s)
				}
				if err := filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					b, err := os.ReadFile(p)
					if strings.Contains(string(b), s) {
						t.Errorf("%q on disk in %s", s, p)
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// Without a port nothing after the '@' has a ':', and url.Parse refuses the '^':
// the password is still moved out of the URL and masked (the clone fails, nothing
// listens there).
func TestURLPasswordWithoutAPortNeverReachesGit(t *testing.T) {
	const pw = "pa^ssword123"
	argsLog := spyGit(t)
	_, err := Open(context.Background(), Options{URL: "http://bot:" + pw + "@127.0.0.1/locks.git"})
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("err = %v, want a failed clone without the password", err)
	}
	args, err := os.ReadFile(argsLog)
	if err != nil || !strings.Contains(string(args), "http://127.0.0.1/locks.git") || strings.Contains(string(args), pw) {
		t.Errorf("git's arguments (%v):\n%s", err, args)
	}
}

// Which URLs are refused, with which one-line message, what git is given instead
// of the URL, and what Repo.URL() would show.
func TestURLCredentialForms(t *testing.T) {
	const refused = "would reach a command line"
	for _, c := range []struct {
		url, refusal   string // refusal: "" when accepted
		gitURL         string // what git is given
		user, password string // what askpass answers
		shown          string // redact.URL: what Repo.URL() shows
	}{
		{"http://bot:pa^ssword123@127.0.0.1/locks.git", "", "http://127.0.0.1/locks.git", "bot", "pa^ssword123", "http://[redacted]@127.0.0.1/locks.git"},
		{"https://bot:pa^ss@127.0.0.1:18081/x.git", "", "https://127.0.0.1:18081/x.git", "bot", "pa^ss", "https://[redacted]@127.0.0.1:18081/x.git"},
		{"https://bot:50%zz@h/x", "", "https://h/x", "bot", "50%zz", "https://[redacted]@h/x"},
		{"https://bot:a{b}@h/x", "", "https://h/x", "bot", "a{b}", "https://[redacted]@h/x"},
		{"https://bot:a@b@h/x@y", "", "https://h/x@y", "bot", "a@b", "https://[redacted]@h/x@y"},
		{"https://ghp_SECRETTOKEN123456@h/x", "", "https://h/x", "ghp_SECRETTOKEN123456", "", "https://[redacted]@h/x"},
		{"https://git@h/x", "", "https://h/x", "git", "", "https://[redacted]@h/x"},
		{"https://h/x", "", "https://h/x", "", "", "https://h/x"},
		{"ssh://bot:pw-1@h/x", "a password in a ssh:// URL " + refused, "", "", "", ""},
		{"ssh://bot:pa^ss@h:22/x", "a password in a ssh:// URL " + refused, "", "", "", ""},
		{"bot:pw-1@h:acme/x.git", "a password in a user@host:path URL " + refused, "", "", "", ""},
		{"bot:pa^ss@h:acme/x.git", "a password in a user@host:path URL " + refused, "", "", "", ""},
		{"git://bot:pw-1@h/x", "a password in a git:// URL " + refused, "", "", "", ""},
		{"file://bot:pw-1@/srv/x", "a password in a file:// URL " + refused, "", "", "", ""},
		{"file:///srv/x", "", "file:///srv/x", "", "", "file:///srv/x"},
		{"git@h:acme/x.git", "", "git@h:acme/x.git", "", "", "git@h:acme/x.git"},
		{"ssh://git@h/x", "", "ssh://git@h/x", "", "", "ssh://git@h/x"},
		{"/srv/l@cks:x", "", "/srv/l@cks:x", "", "", "/srv/l@cks:x"},
	} {
		err := passwordOnCommandLine(c.url)
		switch {
		case c.refusal == "" && err != nil:
			t.Errorf("%s refused: %v", c.url, err)
		case c.refusal != "" && (err == nil || !strings.HasPrefix(err.Error(), c.refusal)):
			t.Errorf("%s: %v, want %q", c.url, err, c.refusal)
		case c.refusal != "":
			continue
		}
		o := moveURLCredentials(Options{URL: c.url})
		if o.URL != c.gitURL || o.Auth.Username != c.user || o.Auth.Password != c.password {
			t.Errorf("%s: git gets %q, askpass %q/%q; want %q, %q/%q", c.url, o.URL, o.Auth.Username, o.Auth.Password, c.gitURL, c.user, c.password)
		}
		if got := redact.URL(c.url); got != c.shown { // what Open gives Repo.URL()
			t.Errorf("%s shown as %q, want %q", c.url, got, c.shown)
		}
	}
}

// An https URL with only a user name, whose password the user's own credential
// helper keeps: the helper is still asked (for that user), as git does without
// poolboy. Moving the user name out of the URL had also switched the user's
// helpers off, and the clone failed to authenticate (found by a review).
func TestURLUserNameLeavesTheCredentialHelperOn(t *testing.T) {
	root := t.TempDir()
	remote(t, root, "locks.git", "main", 1)
	srv := testenv.GitHTTP(t, root, "bot", "helper-pw-5150")
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	store := filepath.Join(home, "creds")
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte("[credential]\n\thelper = store --file "+store+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store, []byte(strings.Replace(srv.URL, "http://", "http://bot:helper-pw-5150@", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustOpen(t, Options{URL: strings.Replace(srv.URL, "http://", "http://bot@", 1) + "locks.git"})
	if _, err := r.Fetch(context.Background()); err != nil {
		t.Fatalf("fetch with the password in the user's credential helper: %v", err)
	}
}
