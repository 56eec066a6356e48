package testenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SSHServer is an OpenSSH sshd started by SSHD, serving the current user on
// 127.0.0.1 with public-key authentication only (SSHDWithPasswords: and
// passwords).
type SSHServer struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Port is the TCP port sshd listens on.
	Port int
	// User is the login name repositories are reached as: the current user.
	User string

	root    string // repositories live under here (absolute)
	dir     string // private directory: config, host key, authorized_keys
	hostKey string // "ssh-ed25519 AAAA..." (no comment)
	keygen  string // absolute path of ssh-keygen

	log  *lockedBuffer       // what sshd and its connections logged
	stop func(graceful bool) // stops sshd and the connections it serves

	mu    sync.Mutex
	nKeys int
}

// sshdCandidates are where distributions install sshd when its directory
// is not in PATH (/usr/sbin usually is not for a normal user).
var sshdCandidates = []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd"}

// requireSSHD returns the absolute path of sshd, with RequireCommand's
// semantics (fail under CI=true, skip otherwise).
func requireSSHD(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("sshd"); err == nil {
		if p, err = filepath.Abs(p); err == nil {
			return p
		}
	}
	for _, p := range sshdCandidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	missing(t, "sshd not found in PATH nor at %s (Debian package openssh-server)", strings.Join(sshdCandidates, ", "))
	return ""
}

// SSHD starts OpenSSH's sshd as the current user on 127.0.0.1 and a free
// port, with a freshly generated ed25519 host key, a private config (no
// PAM, public-key authentication only, keys authorized with AddKey) and
// its pid file in a temporary directory. It waits until sshd answers with
// its SSH banner and stops it (its process group, and the per-connection
// children it forked) at cleanup.
//
// A bare repository root/locks.git is then reachable as
// s.URL("locks.git"), i.e. ssh://USER@127.0.0.1:PORT/ABS/ROOT/locks.git;
// git needs GIT_SSH_COMMAND=s.GitSSHCommand(t, key) (or its own ssh
// options with KnownHostsLine) to connect.
//
// Run as root, sshd needs its privilege separation directory (/run/sshd
// on Debian, normally created by the service unit); SSHD creates it when
// sshd reports it missing.
func SSHD(t testing.TB, root string) *SSHServer {
	t.Helper()
	return startSSHServer(t, root, false)
}

// SSHDWithPasswords is SSHD with password authentication allowed too (root
// included), as a careless server has it. No password is ever right (sshd
// runs without PAM and knows none), but each one a client sends is in Stop's
// log as "Failed password for USER".
func SSHDWithPasswords(t testing.TB, root string) *SSHServer {
	t.Helper()
	return startSSHServer(t, root, true)
}

func startSSHServer(t testing.TB, root string, passwords bool) *SSHServer {
	t.Helper()
	sshd := requireSSHD(t)
	keygen := RequireCommand(t, "ssh-keygen")
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("abs %q: %v", root, err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}

	dir := t.TempDir()
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	runKeygen(t, keygen, "-q", "-t", "ed25519", "-N", "", "-C", "poolboy-test-host", "-f", hostKey)
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatalf("read host key: %v", err)
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		t.Fatalf("malformed host public key %q", pub)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	s := &SSHServer{
		User:    u.Username,
		root:    root,
		dir:     dir,
		hostKey: f[0] + " " + f[1],
		keygen:  keygen,
	}

	// FreePort releases the port before sshd binds it; if someone else
	// grabs it in between sshd exits, and we retry on a new one.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port := FreePort(t)
		cfg := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfg, []byte(sshdConfig(dir, hostKey, authKeys, u.Username, port, passwords)), 0o600); err != nil {
			t.Fatal(err)
		}
		checkSSHDConfig(t, sshd, cfg)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		if s.stop, s.log, lastErr = startSSHD(t, sshd, cfg, addr); lastErr == nil {
			s.Addr, s.Port = addr, port
			return s
		}
	}
	t.Fatalf("sshd did not start: %v", lastErr)
	return nil
}

func sshdConfig(dir, hostKey, authKeys, login string, port int, passwords bool) string {
	password, rootLogin := "no", "prohibit-password"
	if passwords {
		password, rootLogin = "yes", "yes"
	}
	return fmt.Sprintf(`# poolboy test sshd: loopback only, public keys (and passwords if asked) only, nothing from /etc/ssh.
ListenAddress 127.0.0.1:%d
AddressFamily inet
HostKey %s
PidFile %s
AuthorizedKeysFile %s
AuthorizedKeysCommand none
AuthorizedPrincipalsFile none
AllowUsers %s
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication %s
KbdInteractiveAuthentication no
HostbasedAuthentication no
GSSAPIAuthentication no
PermitRootLogin %s
PermitEmptyPasswords no
PermitUserEnvironment no
AllowAgentForwarding no
AllowTcpForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
PrintLastLog no
UseDNS no
LoginGraceTime 30
# Concurrency tests open many connections at once; the default (10:30:100)
# drops unauthenticated connections beyond 10 at random.
MaxStartups 200
MaxSessions 100
LogLevel VERBOSE
`, port, hostKey, filepath.Join(dir, "sshd.pid"), authKeys, login, password, rootLogin)
}

var privsepMissing = regexp.MustCompile(`Missing privilege separation directory: (\S+)`)

// checkSSHDConfig runs `sshd -t` so a bad config fails with sshd's own
// message, and creates the privilege separation directory when sshd (run
// as root) reports it missing.
func checkSSHDConfig(t testing.TB, sshd, cfg string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, sshd, "-t", "-f", cfg).CombinedOutput()
		cancel()
		if err == nil {
			return
		}
		if m := privsepMissing.FindSubmatch(out); m != nil && attempt == 0 {
			if err := os.MkdirAll(string(m[1]), 0o755); err != nil {
				t.Fatalf("create sshd privilege separation directory %s: %v", m[1], err)
			}
			continue
		}
		t.Fatalf("sshd -t -f %s: %v\n%s", cfg, err, out)
	}
}

// startSSHD starts one sshd and polls until it sends its SSH banner. On
// success sshd is stopped at cleanup (or by stop); on failure it is already
// gone. log collects what sshd and its connections print.
func startSSHD(t testing.TB, sshd, cfg, addr string) (stop func(graceful bool), log *lockedBuffer, err error) {
	t.Helper()
	// -D: stay in the foreground, -e: log to stderr. sshd re-executes
	// itself for every connection, so it needs its absolute path.
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	// Each connection's sshd calls setsid, so it has left our process group: kill
	// them by pid. Killing a connection's sshd closes its socket; the session it
	// started (git-upload-pack, ...) then ends.
	killSessions := func(pid int) {
		for _, c := range childPIDs(pid) {
			if p, err := os.FindProcess(c); err == nil {
				_ = p.Kill()
			}
		}
	}
	stop, err = serve(t, "sshd", cmd, stderr, 15*time.Second, func() error { return sshBanner(addr) }, killSessions)
	return stop, stderr, err
}

// Stop stops sshd and every connection it serves, and returns all they
// logged (LogLevel VERBOSE: each authentication attempt, "Failed publickey",
// "Failed password", ...). Once they have exited nothing more can be written,
// so the log is complete: no waiting for a line that may still come.
func (s *SSHServer) Stop() string {
	s.stop(false)
	return s.log.String()
}

// sshBanner connects to addr and reads the server's identification line,
// so a readiness probe cannot be fooled by another program on the port.
func sshBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("not an SSH server: %q", strings.TrimSpace(line))
	}
	return nil
}

// childPIDs lists the processes whose parent is ppid, from /proc (Linux);
// elsewhere it returns nothing and only the process group is killed.
func childPIDs(ppid int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid ...": comm may contain spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func runKeygen(t testing.TB, keygen string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, keygen, args...).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// AddKey generates an ed25519 key pair without a passphrase, authorizes its
// public key and returns the private key (OpenSSH PEM format, as
// `private_key` in a pool resource source holds it).
func (s *SSHServer) AddKey(t testing.TB) []byte {
	t.Helper()
	return s.AddKeyWithPassphrase(t, "")
}

// AddKeyWithPassphrase is AddKey with the private key encrypted with
// passphrase ("" for none).
func (s *SSHServer) AddKeyWithPassphrase(t testing.TB, passphrase string) []byte {
	t.Helper()
	return s.addKey(t, passphrase, "")
}

// AddKeyWithCommand is AddKey for a key whose sessions run command instead
// of what the client asks (authorized_keys' command= option, ForceCommand
// for this key alone): a live server whose git never answers, say.
func (s *SSHServer) AddKeyWithCommand(t testing.TB, command string) []byte {
	t.Helper()
	return s.addKey(t, "", `command="`+strings.ReplaceAll(command, `"`, `\"`)+`" `)
}

// addKey generates and authorizes a key; options go before it in authorized_keys.
func (s *SSHServer) addKey(t testing.TB, passphrase, options string) []byte {
	t.Helper()
	priv, pub := s.newKey(t, passphrase)
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(filepath.Join(s.dir, "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(append(append([]byte(options), bytes.TrimSpace(pub)...), '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("authorize key: %v", err)
	}
	return priv
}

// UnauthorizedKey is AddKeyWithPassphrase without the authorizing: a key
// this server refuses.
func (s *SSHServer) UnauthorizedKey(t testing.TB, passphrase string) []byte {
	t.Helper()
	priv, _ := s.newKey(t, passphrase)
	return priv
}

// newKey generates an ed25519 key pair, the private key encrypted with
// passphrase ("" for none).
func (s *SSHServer) newKey(t testing.TB, passphrase string) (priv, pub []byte) {
	t.Helper()
	s.mu.Lock()
	s.nKeys++
	n := s.nKeys
	s.mu.Unlock()
	p := filepath.Join(t.TempDir(), "id_ed25519")
	runKeygen(t, s.keygen, "-q", "-t", "ed25519", "-N", passphrase, "-C", fmt.Sprintf("poolboy-test-key-%d", n), "-f", p)
	priv, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if pub, err = os.ReadFile(p + ".pub"); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// URL returns the ssh:// URL of the repository at repoPath: an absolute
// path, or one relative to the root given to SSHD.
func (s *SSHServer) URL(repoPath string) string {
	if !filepath.IsAbs(repoPath) {
		repoPath = filepath.Join(s.root, repoPath)
	}
	return fmt.Sprintf("ssh://%s@%s%s", s.User, s.Addr, filepath.ToSlash(repoPath))
}

// KnownHostsLine returns the known_hosts line for this server's host key:
// "[127.0.0.1]:PORT ssh-ed25519 AAAA...".
func (s *SSHServer) KnownHostsLine() string {
	return fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, s.hostKey)
}

// KnownHostsFile writes a known_hosts file holding KnownHostsLine and
// returns its path.
func (s *SSHServer) KnownHostsFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(s.KnownHostsLine()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// GitSSHCommand writes privateKey to a 0600 file and returns a
// GIT_SSH_COMMAND value that uses only that key and verifies this server's
// host key strictly (StrictHostKeyChecking=yes against KnownHostsFile).
// It ignores every ssh config file (-F none), the user's keys and any
// agent. It does not set BatchMode, so an encrypted key can be unlocked
// through SSH_ASKPASS (with SSH_ASKPASS_REQUIRE=force).
func (s *SSHServer) GitSSHCommand(t testing.TB, privateKey []byte) string {
	t.Helper()
	ssh := RequireCommand(t, "ssh")
	key := filepath.Join(t.TempDir(), "id")
	if err := os.WriteFile(key, privateKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return strings.Join([]string{
		shellQuote(ssh),
		"-F", "none",
		"-i", shellQuote(key),
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + shellQuote(s.KnownHostsFile(t)),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
		"-o", "ConnectTimeout=10",
	}, " ")
}

// shellQuote quotes s for sh, as GIT_SSH_COMMAND is run by a shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
