package gitx

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/redact"
)

// askpass answers git's username and password prompts from the in-memory files
// the environment names: neither is in a process argument or environment (the
// user name may be a token). An empty file is an empty answer. Any other prompt
// gets nothing.
const askpass = `#!/bin/sh
case "$1" in
"Username for "*) cat "$POOLBOY_GIT_USERNAME_FILE" ;;
"Password for "*) cat "$POOLBOY_GIT_PASSWORD_FILE" ;;
*) exit 1 ;;
esac
`

// sshAskpass answers ssh's prompt for a key's passphrase ("Enter passphrase for
// key '%.100s': ", written by ssh itself) from the in-memory file the
// environment names, and nothing else: a server's password or
// keyboard-interactive prompt (ssh puts "(user@host) " before those) gets no
// answer and a failure.
const sshAskpass = `#!/bin/sh
case "$1" in
"Enter passphrase for key '"*) cat "$POOLBOY_SSH_PASSPHRASE_FILE" ;;
*) exit 1 ;;
esac
`

// prepareAuth sets up the environment every git command runs with: credentials
// through in-memory files (never arguments or variables), and the user's git
// settings. What it writes to disk, in a private directory, holds no secret
// (the askpass scripts) where memfds work (see secretFile).
func (r *Repo) prepareAuth() error {
	a := r.opts.Auth
	if len(a.PrivateKey) > 0 && a.PrivateKeyFile != "" {
		return errors.New("give the SSH key either as a file or in POOL_REPO_SSH_PRIVATE_KEY, not both")
	}
	var dir string
	private := func() (string, error) {
		if dir != "" {
			return dir, nil
		}
		d, remove, err := tempDir("poolboy-auth-")
		if err != nil {
			return "", err
		}
		dir = d
		r.cleanup = append(r.cleanup, remove)
		return dir, nil
	}
	secret := func(name string, data []byte) (string, error) {
		path, closeIt, err := secretFile(private, name, data)
		if err != nil {
			return "", err
		}
		r.cleanup = append(r.cleanup, closeIt)
		return path, nil
	}
	script := func(name, text string) (string, error) {
		d, err := private()
		if err != nil {
			return "", err
		}
		path := filepath.Join(d, name)
		return path, os.WriteFile(path, []byte(text), 0o700)
	}
	keyFile := a.PrivateKeyFile
	if keyFile != "" {
		if _, err := os.Stat(keyFile); err != nil {
			return fmt.Errorf("private key file: %w", err)
		}
		abs, err := filepath.Abs(keyFile)
		if err != nil {
			return err
		}
		keyFile = abs
	}
	if len(a.PrivateKey) > 0 {
		key := a.PrivateKey
		// Keys pasted into env vars often lose their final newline; ssh then calls the key invalid.
		if !bytes.HasSuffix(key, []byte("\n")) {
			key = append(append([]byte{}, key...), '\n')
		}
		var err error
		if keyFile, err = secret("key", key); err != nil {
			return err
		}
	}
	if keyFile != "" || a.SSHUser != "" || a.ForwardAgent {
		// A server that accepts the connection and then says nothing: the handshake
		// and a silence afterwards are bounded, as HTTP's are by lowSpeed below.
		// No password or keyboard-interactive login: poolboy has no password for
		// ssh, and accept-new lets ssh reach a server never seen before (a typo'd
		// host), which must not be handed an answer to its prompt. LogLevel=ERROR
		// keeps ssh's notes ("Permanently added ... to the list of known hosts")
		// out of git's errors; ssh's errors stay in them.
		ssh := fmt.Sprintf("ssh -o StrictHostKeyChecking=accept-new -o ConnectTimeout=%d -o ServerAliveInterval=%d -o ServerAliveCountMax=%d"+
			" -o PasswordAuthentication=no -o KbdInteractiveAuthentication=no -o LogLevel=ERROR",
			int(StallTimeout/time.Second), int(StallTimeout/time.Second)/3, 3)
		// ssh finds known_hosts under the passwd entry's home, not $HOME: where HOME
		// is set (a container's, a test's), the host keys it accepts are kept there
		// (ssh makes only its default directory, so .ssh is made here).
		if home := os.Getenv("HOME"); filepath.IsAbs(home) && os.MkdirAll(filepath.Join(home, ".ssh"), 0o700) == nil {
			ssh += " -o UserKnownHostsFile=" + shellQuote(filepath.Join(home, ".ssh", "known_hosts"))
		}
		if keyFile != "" {
			// Only this key, by public key only: an agent's keys (IdentitiesOnly)
			// or another method (hostbased, GSSAPI) would log in as someone else.
			ssh += " -i " + shellQuote(keyFile) + " -o IdentitiesOnly=yes -o PreferredAuthentications=publickey"
		}
		if a.SSHUser != "" {
			ssh += " -o User=" + shellQuote(a.SSHUser)
		}
		if a.ForwardAgent {
			ssh += " -o ForwardAgent=yes"
		}
		if a.PrivateKeyPassphrase != "" {
			// BatchMode would stop ssh from asking; SSH_ASKPASS_REQUIRE=force makes it
			// ask our script, which reads the passphrase from memory.
			pass, err := secret("passphrase", []byte(a.PrivateKeyPassphrase+"\n"))
			if err != nil {
				return err
			}
			ask, err := script("ssh-askpass", sshAskpass)
			if err != nil {
				return err
			}
			r.env = append(r.env, "SSH_ASKPASS="+ask, "SSH_ASKPASS_REQUIRE=force", "POOLBOY_SSH_PASSPHRASE_FILE="+pass)
		} else {
			ssh += " -o BatchMode=yes"
		}
		r.env = append(r.env, "GIT_SSH_COMMAND="+ssh)
	}
	// The stall bound comes first, so the pool resource's git_config can change it.
	config := append(lowSpeed(), r.opts.GitConfig...)
	// git's automatic upkeep (a fetch's gc --auto) runs inside the command that
	// starts it, not detached: bounded and stopped with it, and never writing in
	// the clone beside poolboy's next command.
	config = append(config, ConfigEntry{"gc.autoDetach", "false"}, ConfigEntry{"maintenance.autoDetach", "false"})
	if a.Username != "" || a.Password != "" {
		user, err := secret("username", []byte(a.Username))
		if err != nil {
			return err
		}
		pass, err := secret("password", []byte(a.Password))
		if err != nil {
			return err
		}
		ask, err := script("askpass", askpass)
		if err != nil {
			return err
		}
		r.env = append(r.env, "GIT_ASKPASS="+ask, "POOLBOY_GIT_USERNAME_FILE="+user, "POOLBOY_GIT_PASSWORD_FILE="+pass)
		if a.Password != "" {
			// A credential helper from the user's config would store our password.
			config = append(config, ConfigEntry{"credential.helper", ""})
		} else if a.Username != "" {
			// Only a user name (an https URL's): the user's credential helper may
			// hold its password; git asks it first, askpass only after.
			config = append(config, ConfigEntry{"credential.username", a.Username})
		}
	}
	if r.opts.HTTPSProxy != "" {
		config = append(config, ConfigEntry{"http.proxy", r.opts.HTTPSProxy})
	}
	if r.opts.SkipSSLVerify {
		r.env = append(r.env, "GIT_SSL_NO_VERIFY=true")
	}
	// Settings reach git in a file included from the environment: as -c arguments
	// or GIT_CONFIG_VALUE_n variables a secret value (a proxy's password, an
	// extraHeader's token) would show in git's arguments or environment.
	text, err := configText(config)
	if err != nil {
		return err
	}
	path, err := secret("config", text)
	if err != nil {
		return err
	}
	r.env = append(r.env, "GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=include.path", "GIT_CONFIG_VALUE_0="+path)
	return nil
}

// configText writes settings in git's config file syntax.
func configText(entries []ConfigEntry) ([]byte, error) {
	var b bytes.Buffer
	for _, e := range entries {
		first, last := strings.Index(e.Name, "."), strings.LastIndex(e.Name, ".")
		if first <= 0 || last == len(e.Name)-1 || strings.ContainsAny(e.Name, "\n\x00") {
			return nil, fmt.Errorf("git setting %q: want section.key or section.subsection.key", e.Name)
		}
		if first == last {
			fmt.Fprintf(&b, "[%s]\n", e.Name[:first])
		} else {
			fmt.Fprintf(&b, "[%s %s]\n", e.Name[:first], configQuote(e.Name[first+1:last]))
		}
		fmt.Fprintf(&b, "\t%s = %s\n", e.Name[last+1:], configQuote(e.Value))
	}
	return b.Bytes(), nil
}

// configQuote is s as a quoted string of git's config syntax.
func configQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`).Replace(s) + `"`
}

// StallTimeout is how long a remote may send nothing before git gives up
// (ErrUnreachable): on every transport, a network command that prints nothing
// for this long is stopped (silenceBound); besides, over HTTP(S), less than
// 1 byte/s for this long; over SSH with a key poolboy was given, the
// connection and handshake, or this long without an answer to ssh's keepalives.
const StallTimeout = 30 * time.Second

// lowSpeed is git's HTTP stall bound (curl's low-speed limit).
func lowSpeed() []ConfigEntry {
	return []ConfigEntry{
		{"http.lowSpeedLimit", "1"},
		{"http.lowSpeedTime", strconv.Itoa(int(StallTimeout / time.Second))},
	}
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func secretsOf(rawURL, proxy string, a Auth) []string {
	s := append(redact.URLPasswords(rawURL, proxy), a.PrivateKeyPassphrase, a.Password)
	// Any line of a key is secret, should git or ssh ever echo one.
	return append(s, redact.KeyLines(string(a.PrivateKey))...)
}

// Redact removes every secret this Repo knows of from s, and passwords written
// into URLs.
func (r *Repo) Redact(s string) string { return r.red.String(s) }

func (r *Repo) redactArgs(args []string) string {
	return r.Redact(strings.Join(args, " "))
}

// gitError turns a failed git command into one line: the command and what git said,
// without hints, progress or secrets. The whole message is classified before it is
// shortened: errors.Is tells ErrUnreachable and a lost ref update.
func (r *Repo) gitError(args []string, err error, stderr []byte) error {
	var lines []string
	for _, l := range strings.Split(withoutProgress(stderr), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "hint:") {
			continue
		}
		lines = append(lines, l)
	}
	msg := strings.Join(lines, "; ")
	if msg == "" {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			msg = exit.String()
		} else {
			msg = err.Error()
		}
	}
	var classes []error
	if unreachable(msg) {
		classes = append(classes, ErrUnreachable)
	}
	if lostRefUpdate(msg) {
		classes = append(classes, errLostRefUpdate)
	}
	return classify(fmt.Errorf("git %s: %s", args[0], r.red.Clip(msg, 400)), classes...)
}

// unreachable says whether git's message is about reaching the remote (refused,
// reset, timed out, cut off, a 5xx from an HTTP server) rather than about what
// the remote answered. Authentication failures, missing repositories and unknown
// host names are not in the list: retrying them only delays the error. git runs
// with LC_ALL=C, so the wording is git's and curl's English.
func unreachable(msg string) bool {
	if strings.Contains(msg, "Permission denied") || strings.Contains(msg, "Authentication failed") {
		return false
	}
	for _, s := range []string{
		"unable to connect to", "Connection refused", "Connection reset", "Connection timed out",
		"Operation timed out", "the remote end hung up unexpectedly", "early EOF", "Failed to connect to",
		"Empty reply from server", "Recv failure", "returned error: 502", "returned error: 503",
		"returned error: 504", "Broken pipe", "Operation too slow", "not responding",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// classified is an error whose text is err's and which errors.Is also matches
// against each of classes (ErrUnreachable, context.Canceled, ...).
type classified struct {
	err     error
	classes []error
}

func classify(err error, classes ...error) error {
	if len(classes) == 0 {
		return err
	}
	return &classified{err, classes}
}

func (e *classified) Error() string   { return e.err.Error() }
func (e *classified) Unwrap() []error { return append([]error{e.err}, e.classes...) }
