// Package redact is the one redactor of the program: every secret poolboy knows
// (passwords, tokens, key passphrases, the lines of a private key) is replaced by
// Mask in whatever it prints, logs or returns as an error, and so is the password
// of any "user:password@host" in a text.
package redact

import (
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Mask replaces a secret.
const Mask = "[redacted]"

// MinLen is the length under which a secret is replaced only where it stands as a
// word of its own: a short password ("abc") must not eat every "abc" inside
// ordinary words of a message, which would make it unreadable and give the
// password away by where it is missing.
const MinLen = 8

// userinfo matches the password of "user:password@host", with or without a
// scheme before it: git prints "scheme://user:password@host" in some errors and
// "user:password@host" in others. ("git@host:path" has no colon before its "@".)
var userinfo = regexp.MustCompile(`([^\s/@:'"]*):[^\s/@]+@`)

// Redactor removes a set of secrets from text. The zero value and nil remove
// only URL passwords. It is safe for concurrent use.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first, so a secret containing another goes whole
}

// New returns a redactor of secrets (empty ones are ignored).
func New(secrets ...string) *Redactor {
	r := &Redactor{}
	r.Add(secrets...)
	return r
}

// Add adds secrets, each also in its URL-escaped forms (a password in a URL is
// printed escaped).
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s)} {
			if !slices.Contains(r.secrets, v) {
				r.secrets = append(r.secrets, v)
			}
		}
	}
	slices.SortStableFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

// String returns s with every secret and URL password replaced by Mask.
func (r *Redactor) String(s string) string {
	if r != nil {
		r.mu.RLock()
		for _, secret := range r.secrets {
			if len(secret) >= MinLen {
				s = strings.ReplaceAll(s, secret, Mask)
			} else {
				s = replaceWord(s, secret)
			}
		}
		r.mu.RUnlock()
	}
	return userinfo.ReplaceAllString(s, "${1}:"+Mask+"@")
}

// Holds says whether s contains one of the secrets, by String's rules: a short
// secret only as a word of its own. (URL passwords it was not given do not count.)
func (r *Redactor) Holds(s string) bool { return r.holds(s, false) }

// HoldsLong says whether s contains one of the secrets of MinLen or more: the
// matches that cannot be a coincidence of a short word.
func (r *Redactor) HoldsLong(s string) bool { return r.holds(s, true) }

func (r *Redactor) holds(s string, longOnly bool) bool {
	if r == nil {
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, secret := range r.secrets {
		if len(secret) >= MinLen && strings.Contains(s, secret) || !longOnly && len(secret) < MinLen && replaceWord(s, secret) != s {
			return true
		}
	}
	return false
}

// Clip is String, then Truncate: a secret cut in two by the limit would no longer
// be recognised.
func (r *Redactor) Clip(s string, max int) string {
	return Truncate(r.String(s), max)
}

// Writer writes to w with every secret replaced. Each write is redacted on its
// own: write whole lines (as log handlers do), so no secret is split across writes.
func (r *Redactor) Writer(w io.Writer) io.Writer { return writer{r, w} }

type writer struct {
	r *Redactor
	w io.Writer
}

func (w writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.r.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Truncate shortens s to at most max bytes and marks the cut with "…", never
// splitting a UTF-8 character.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// KeyLines lists the lines of a PEM private key that are secret: every line but
// the armour, and only lines long enough to be key material.
func KeyLines(key string) []string {
	var lines []string
	for _, l := range strings.Split(key, "\n") {
		if l = strings.TrimSpace(l); len(l) >= MinLen && !strings.HasPrefix(l, "-----") {
			lines = append(lines, l)
		}
	}
	return lines
}

// replaceWord replaces secret where it is not part of a longer word.
func replaceWord(s, secret string) string {
	var b strings.Builder
	start := 0 // s[:start] is written to b
	for from := 0; ; {
		i := strings.Index(s[from:], secret)
		if i < 0 {
			break
		}
		i += from
		end := i + len(secret)
		if !wordBefore(s[:i]) && !wordAfter(s[end:]) {
			b.WriteString(s[start:i])
			b.WriteString(Mask)
			start = end
		}
		from = i + 1
		if end > from && start == end {
			from = end
		}
	}
	if start == 0 {
		return s
	}
	b.WriteString(s[start:])
	return b.String()
}

func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

func wordBefore(s string) bool {
	r, n := utf8.DecodeLastRuneInString(s)
	return n > 0 && isWord(r)
}

func wordAfter(s string) bool {
	r, n := utf8.DecodeRuneInString(s)
	return n > 0 && isWord(r)
}
