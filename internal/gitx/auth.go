package gitx

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/redact"
)

// askpass answers git's username and password prompts from the environment, so
// neither ever appears in a process argument or a file.
const askpass = `#!/bin/sh
case "$1" in
Username*) printf '%s\n' "$POOLBOY_GIT_USERNAME" ;;
*) printf '%s\n' "$POOLBOY_GIT_PASSWORD" ;;
esac
`

// sshAskpass answers ssh's passphrase prompt from the environment.
const sshAskpass = `#!/bin/sh
printf '%s\n' "$POOLBOY_SSH_PASSPHRASE"
`

// prepareAuth sets up the environment every git command runs with: credentials
// through files and variables (never arguments), and the user's git settings.
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
		d, err := private()
		if err != nil {
			return err
		}
		keyFile = filepath.Join(d, "key")
		if err := os.WriteFile(keyFile, key, 0o600); err != nil {
			return err
		}
	}
	if keyFile != "" || a.SSHUser != "" || a.ForwardAgent {
		// A server that accepts the connection and then says nothing: the handshake
		// and a silence afterwards are bounded, as HTTP's are by lowSpeed below.
		ssh := fmt.Sprintf("ssh -o StrictHostKeyChecking=accept-new -o ConnectTimeout=%d -o ServerAliveInterval=%d -o ServerAliveCountMax=%d",
			int(StallTimeout/time.Second), int(StallTimeout/time.Second)/3, 3)
		if keyFile != "" {
			ssh += " -i " + shellQuote(keyFile) + " -o IdentitiesOnly=yes"
		}
		if a.SSHUser != "" {
			ssh += " -o User=" + shellQuote(a.SSHUser)
		}
		if a.ForwardAgent {
			ssh += " -o ForwardAgent=yes"
		}
		if a.PrivateKeyPassphrase != "" {
			// BatchMode would stop ssh from asking; SSH_ASKPASS_REQUIRE=force makes it
			// ask our script, which reads the passphrase from the environment.
			d, err := private()
			if err != nil {
				return err
			}
			script := filepath.Join(d, "ssh-askpass")
			if err := os.WriteFile(script, []byte(sshAskpass), 0o700); err != nil {
				return err
			}
			r.env = append(r.env, "SSH_ASKPASS="+script, "SSH_ASKPASS_REQUIRE=force",
				"POOLBOY_SSH_PASSPHRASE="+a.PrivateKeyPassphrase)
		} else {
			ssh += " -o BatchMode=yes"
		}
		r.env = append(r.env, "GIT_SSH_COMMAND="+ssh)
	}
	// The stall bound comes first, so the pool resource's git_config can change it.
	config := append(lowSpeed(), r.opts.GitConfig...)
	if a.Username != "" || a.Password != "" {
		d, err := private()
		if err != nil {
			return err
		}
		script := filepath.Join(d, "askpass")
		if err := os.WriteFile(script, []byte(askpass), 0o700); err != nil {
			return err
		}
		r.env = append(r.env,
			"GIT_ASKPASS="+script,
			"POOLBOY_GIT_USERNAME="+a.Username,
			"POOLBOY_GIT_PASSWORD="+a.Password,
		)
		// A credential helper from the user's config would store our password.
		config = append(config, ConfigEntry{"credential.helper", ""})
	}
	if r.opts.HTTPSProxy != "" {
		config = append(config, ConfigEntry{"http.proxy", r.opts.HTTPSProxy})
	}
	if r.opts.SkipSSLVerify {
		r.env = append(r.env, "GIT_SSL_NO_VERIFY=true")
	}
	// Settings travel in the environment, not as -c arguments: a value may be secret.
	if len(config) > 0 {
		r.env = append(r.env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(config)))
		for i, c := range config {
			r.env = append(r.env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, c.Name), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, c.Value))
		}
	}
	return nil
}

// StallTimeout is how long git waits on a remote that sends nothing before it
// gives up (ErrUnreachable): over HTTP(S), less than 1 byte/s for this long;
// over SSH with a key poolboy was given, the connection and handshake, or this
// long without an answer to ssh's keepalives.
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
	var s []string
	for _, raw := range []string{rawURL, proxy} {
		if u, err := url.Parse(raw); err == nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				s = append(s, pw)
			}
		}
	}
	s = append(s, a.PrivateKeyPassphrase, a.Password)
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
	for _, l := range strings.Split(string(stderr), "\n") {
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
