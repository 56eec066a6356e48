//go:build unix

package gitx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// No git inherits a variable holding a secret, whatever its name, nor the
// secrets gitx passes to git and ssh itself (they are in memory files).
func TestChildrenInheritNoSecret(t *testing.T) {
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	const (
		password   = "child-env-pw-4b1e"
		passphrase = "child-env-passphrase-77c"
		proxyPW    = "child-env-proxy-pw-0d2"
		concealed  = "child-env-concourse-token-9e"
	)
	t.Setenv("A_COPY_OF_THE_TOKEN", "Bearer "+concealed)
	t.Setenv("SHORT_WORD", "the xy9 word")
	t.Setenv("SHORT_INSIDE", "abxy9cd") // a short secret counts only as a word
	// A short secret that is a word of PATH or HOME leaves them to git, which
	// cannot work without them; a long one drops them too.
	t.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+"/nonexistent/zq7")
	t.Setenv("HOME", filepath.Join(t.TempDir(), "zq7"))
	Conceal(concealed, "xy9", "zq7")
	r := mustOpen(t, Options{URL: dir, HTTPSProxy: "http://p:" + proxyPW + "@127.0.0.1:1",
		Auth: Auth{Username: "u", Password: password, PrivateKey: []byte("-----BEGIN KEY-----\nchildEnvKeyLineAAAA\n-----END KEY-----\n"), PrivateKeyPassphrase: passphrase}})
	env := strings.Join(r.command(context.Background(), nil, "version").Env, "\n")
	for _, s := range []string{password, passphrase, proxyPW, concealed, "childEnvKeyLineAAAA", "SHORT_WORD"} {
		if strings.Contains(env, s) {
			t.Errorf("%q in git's environment:\n%s", s, env)
		}
	}
	if !strings.Contains(env, "SHORT_INSIDE=abxy9cd") {
		t.Errorf("SHORT_INSIDE dropped: a short secret inside a word is no secret there")
	}
	for _, name := range []string{"PATH", "HOME"} {
		if !strings.Contains(env, name+"="+os.Getenv(name)) {
			t.Errorf("%s dropped for a short secret that is a word of it:\n%s", name, env)
		}
	}
	// git still gets the settings and credentials, through the files.
	for key, want := range map[string]string{"http.proxy": "http://p:" + proxyPW + "@127.0.0.1:1", "credential.helper": ""} {
		if out, err := r.Output(context.Background(), "config", "--get", key); err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s = %q %v, want %q", key, out, err, want)
		}
	}
}

func TestConfigText(t *testing.T) {
	got, err := configText([]ConfigEntry{{"http.proxy", `a"b\c`}, {"http.https://h/x.sslVerify", "false"}, {"core.x", "two\nlines"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "[http]\n\tproxy = \"a\\\"b\\\\c\"\n[http \"https://h/x\"]\n\tsslVerify = \"false\"\n[core]\n\tx = \"two\\nlines\"\n"
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	for _, bad := range []string{"nodot", ".x", "x.", "a.b\n.c"} {
		if _, err := configText([]ConfigEntry{{bad, "v"}}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The watchdog, once its input ends, removes the directories and kills the
// process groups still listed, and leaves those taken back alone.
func TestWatchdogRemovesWhatIsLeft(t *testing.T) {
	left, taken := t.TempDir(), t.TempDir()
	sleeper := exec.Command("sleep", "600")
	newGroup(sleeper)
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	events := fmt.Sprintf("dir %q\ndir %q\nundir %q\ngroup %q\ngroup %q\nungroup %q\nnonsense\n",
		left, taken, taken, strconv.Itoa(sleeper.Process.Pid), "999999999", "999999999")
	Watchdog(strings.NewReader(events))
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s survives: %v", left, err)
	}
	if _, err := os.Stat(taken); err != nil {
		t.Errorf("%s removed though taken back: %v", taken, err)
	}
	err := sleeper.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("sleep ended with %v, want SIGKILL", err)
	}
}

// On Linux no secret is written to a disk: nothing under TMPDIR (the clone, the
// askpass scripts) holds the key, the password, the passphrase or the proxy's
// password while the Repo is open.
func TestSecretsAreNotOnDisk(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memfds are Linux's; elsewhere secrets are 0600 files")
	}
	dir := remote(t, t.TempDir(), "locks.git", "main", 1)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	const keyLine = "notOnDiskKeyLineAAAAC3NzaC1lZDI1"
	secrets := []string{keyLine, "not-on-disk-pw-5e1", "not-on-disk-passphrase-2a", "not-on-disk-proxy-pw-8c"}
	r := mustOpen(t, Options{URL: dir, HTTPSProxy: "http://p:" + secrets[3] + "@127.0.0.1:1",
		Auth: Auth{Username: "u", Password: secrets[1], PrivateKey: []byte("-----BEGIN KEY-----\n" + keyLine + "\n-----END KEY-----\n"), PrivateKeyPassphrase: secrets[2]}})
	defer r.Close()
	files := 0
	err := filepath.WalkDir(tmp, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q", path, s)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("nothing under TMPDIR: the test would prove nothing")
	}
}
