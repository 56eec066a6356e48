package redact

import (
	"bytes"
	"net/url"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"nothing to hide", nil, "git fetch: done", "git fetch: done"},
		{"long secret anywhere", []string{"s3cr3t-token"}, "auth xs3cr3t-tokenx failed", "auth x[redacted]x failed"},
		{"short secret as a word", []string{"abc"}, "password abc refused", "password [redacted] refused"},
		{"short secret inside words is kept", []string{"abc"}, "abcde xabc cabcd", "abcde xabc cabcd"},
		{"short secret at the edges", []string{"abc"}, "abc", "[redacted]"},
		{"short secret between punctuation", []string{"pw"}, `"pw" (pw)`, `"[redacted]" ([redacted])`},
		{"short secret next to a word and not", []string{"ab"}, "ab abx ab", "[redacted] abx [redacted]"},
		{"short secret in a UTF-8 word is kept", []string{"lé"}, "éléphant lé", "éléphant [redacted]"},
		{"overlapping short secret", []string{"aa"}, "aaa aa", "aaa [redacted]"},
		{"URL-escaped secret", []string{"p@ss w/rd!x"}, "https://h/?pw=" + url.QueryEscape("p@ss w/rd!x") + " and " + url.PathEscape("p@ss w/rd!x"), "https://h/?pw=[redacted] and [redacted]"},
		{"longest first", []string{"secret-1", "secret-12345"}, "secret-12345", "[redacted]"},
		{"URL password without a known secret", nil, "fatal: unable to access 'https://bot:hunter2@git.example.com/x'", "fatal: unable to access 'https://bot:[redacted]@git.example.com/x'"},
		{"user:password@host without a scheme", nil, "bot:hunter2@git.example.com", "bot:[redacted]@git.example.com"},
		{"ssh address is no password", nil, "git@github.com:acme/locks.git", "git@github.com:acme/locks.git"},
		{"empty secret ignored", []string{""}, "text", "text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := New(tt.secrets...).String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestNilRedactorRemovesURLPasswords(t *testing.T) {
	var r *Redactor
	if got := r.String("https://u:pw@h"); got != "https://u:[redacted]@h" {
		t.Errorf("got %q", got)
	}
}

func TestClipRedactsBeforeTruncating(t *testing.T) {
	secret := "0123456789-canary"
	msg := strings.Repeat("x", 95) + secret + " tail"
	got := New(secret).Clip(msg, 100)
	if strings.Contains(got, "01234") {
		t.Errorf("Clip leaked the start of a secret cut by the limit: %q", got)
	}
	if !strings.HasPrefix(got, strings.Repeat("x", 95)+"[re") || !strings.HasSuffix(got, "…") {
		t.Errorf("Clip = %q", got)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456789…"},
		{"aé", 2, "a…"},  // é is 2 bytes: not split
		{"日本語", 4, "日…"}, // 3-byte characters
		{"日本語", 6, "日本…"},
		{"😀x", 3, "…"},
	}
	for _, tt := range tests {
		got := Truncate(tt.in, tt.max)
		if got != tt.want || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	r := New()
	w := r.Writer(&buf)
	r.Add("late-added-secret") // secrets known after the writer was made count too
	if n, err := w.Write([]byte("using late-added-secret\n")); err != nil || n != len("using late-added-secret\n") {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got := buf.String(); got != "using [redacted]\n" {
		t.Errorf("wrote %q", got)
	}
}

func TestKeyLines(t *testing.T) {
	key := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n  QyNTUxOQAAACD  \nshort\n-----END OPENSSH PRIVATE KEY-----\n"
	got := KeyLines(key)
	if len(got) != 2 || got[0] != "b3BlbnNzaC1rZXktdjEAAAAA" || got[1] != "QyNTUxOQAAACD" {
		t.Errorf("KeyLines = %q", got)
	}
}

func TestHolds(t *testing.T) {
	r := New("long-secret-value", "xy9")
	for s, want := range map[string]bool{
		"Bearer long-secret-value":    true,
		"the xy9 word":                true,
		"abxy9cd":                     false, // a short secret only as a word
		"https://u:other@host":        false, // URL passwords it was not given do not count
		"nothing here":                false,
		"long-secret-valu":            false,
		"a%20b long-secret-value end": true,
	} {
		if got := r.Holds(s); got != want {
			t.Errorf("Holds(%q) = %v, want %v", s, got, want)
		}
	}
	if (*Redactor)(nil).Holds("anything") {
		t.Error("a nil redactor holds something")
	}
}

func TestHoldsLong(t *testing.T) {
	r := New("long-secret-value", "xy9")
	for s, want := range map[string]bool{
		"/home/long-secret-value": true,
		"/usr/xy9/bin":            false, // a short secret, even as a word
		"/usr/bin":                false,
	} {
		if got := r.HoldsLong(s); got != want {
			t.Errorf("HoldsLong(%q) = %v, want %v", s, got, want)
		}
	}
	if (*Redactor)(nil).HoldsLong("anything") {
		t.Error("a nil redactor holds something")
	}
}

// URLPasswords finds passwords url.Parse refuses ('^', '{', '%' without two hex
// digits), an http(s) token given as the user name, and not a short user name.
func TestURLPasswords(t *testing.T) {
	got := URLPasswords("https://u:p%40ss@host/x", "https://u@host", "ssh://git@host/x", "", "not a url", "http://:only-pw@h",
		"http://bot:pa^ssword123@127.0.0.1/locks.git", "https://bot:50%zzoff@h:1/x", "https://b:a{b}@h", "https://ghp_SECRETTOKEN123456@h/x",
		"ssh://ghp_NOTANHTTPUSER12@h/x", "u:scp-pw@h:path")
	want := []string{"p@ss", "p%40ss", "only-pw", "pa^ssword123", "50%zzoff", "a{b}", "ghp_SECRETTOKEN123456", "scp-pw"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// SplitURL finds the user information the way git does, where url.Parse gives up.
func TestSplitURL(t *testing.T) {
	for _, c := range []struct {
		raw, userinfo, user, password string
		hasPassword, local            bool
		without, masked               string
	}{
		{"http://bot:pa^ssword123@127.0.0.1/locks.git", "bot:pa^ssword123", "bot", "pa^ssword123", true, false, "http://127.0.0.1/locks.git", "http://[redacted]@127.0.0.1/locks.git"},
		{"https://bot:50%zz%41@h:18081/x", "bot:50%zz%41", "bot", "50%zzA", true, false, "https://h:18081/x", "https://[redacted]@h:18081/x"},
		{"https://a@b:c@d@h/p@q", "a@b:c@d", "a@b", "c@d", true, false, "https://h/p@q", "https://[redacted]@h/p@q"},
		{"https://ghp_TOKEN12345678@h/x", "ghp_TOKEN12345678", "ghp_TOKEN12345678", "", false, false, "https://h/x", "https://[redacted]@h/x"},
		{"https://h/x", "", "", "", false, false, "https://h/x", "https://h/x"},
		{"ssh://git@h:22/x", "git", "git", "", false, false, "ssh://h:22/x", "ssh://git@h:22/x"},
		{"ssh://bot:pw@h/x", "bot:pw", "bot", "pw", true, false, "ssh://h/x", "ssh://[redacted]@h/x"},
		// git ends an scp-like host at the first ':': the '@' after it is the path's.
		{"git@h:team@x:y.git", "git", "git", "", false, false, "h:team@x:y.git", "git@h:team@x:y.git"},
		{"git@h:acme/x.git", "git", "git", "", false, false, "h:acme/x.git", "git@h:acme/x.git"},
		{"git@h:team@x/l.git", "git", "git", "", false, false, "h:team@x/l.git", "git@h:team@x/l.git"},
		{"bot:pw@h:acme/x.git", "bot:pw", "bot", "pw", true, false, "h:acme/x.git", "[redacted]@h:acme/x.git"},
		{"file:///srv/x", "", "", "", false, false, "file:///srv/x", "file:///srv/x"},
		{"/srv/l@cks:x", "", "", "", false, true, "/srv/l@cks:x", "/srv/l@cks:x"},
		{"locks", "", "", "", false, true, "locks", "locks"},
	} {
		u := SplitURL(c.raw)
		user, pw, hasPW := u.User()
		if u.Userinfo != c.userinfo || user != c.user || pw != c.password || hasPW != c.hasPassword || u.Local != c.local ||
			u.WithoutUserinfo() != c.without || u.Masked() != c.masked || URL(c.raw) != c.masked {
			t.Errorf("%s: userinfo %q user %q password %q (%v) local %v, without %q, masked %q", c.raw, u.Userinfo, user, pw, hasPW, u.Local, u.WithoutUserinfo(), u.Masked())
		}
	}
}
