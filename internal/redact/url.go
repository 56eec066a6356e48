package redact

import "strings"

// GitURL is a repository URL (or any URL) with its user information split off the
// way git splits it, not the way url.Parse does: url.Parse refuses characters git
// accepts in a password (an unescaped '^', '{', '|', a '%' not followed by two hex
// digits), and a check that gives up on an error lets the password through.
type GitURL struct {
	Scheme string // before "://"; "" for a scp-like "user@host:path" and a local path
	// Local is a path on this machine, the way git tells one: no "://", and no ':'
	// before the first '/'. It has no user information.
	Local bool
	// Userinfo is what precedes the '@' of the user information, as written
	// (still percent-escaped); HasUserinfo says whether there is one.
	Userinfo    string
	HasUserinfo bool
	before      string // the text before the user information ("https://")
	after       string // the text after it: host, port, path
}

// SplitURL splits raw the way git does. With "://", the authority runs from after
// "://" to the first '/', and the user information is everything before the last
// '@' of it. A scp-like "user@host:path" has it before the last '@' ahead of the
// first ':', where git ends the host ("git@host:team@x:y.git" is user git), or,
// written with a password ("user:pw@host:path"), ahead of the last ':'. A local
// path has none.
func SplitURL(raw string) GitURL {
	if scheme, rest, ok := strings.Cut(raw, "://"); ok {
		authority, _, _ := strings.Cut(rest, "/")
		u := GitURL{Scheme: scheme, before: scheme + "://", after: rest}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			u.Userinfo, u.HasUserinfo, u.after = rest[:at], true, rest[at+1:]
		}
		return u
	}
	colon := strings.Index(raw, ":")
	if colon < 0 || strings.Contains(raw[:colon], "/") {
		return GitURL{Local: true, after: raw}
	}
	u := GitURL{after: raw}
	end := colon // git ends the host at the first ':'
	if at := strings.Index(raw, "@"); at > 0 && strings.Contains(raw[:at], ":") {
		end = strings.LastIndex(raw, ":") // "user:password@host:path"
	}
	if at := strings.LastIndex(raw[:end], "@"); at >= 0 {
		u.Userinfo, u.HasUserinfo, u.after = raw[:at], true, raw[at+1:]
	}
	return u
}

// HTTP says whether the URL is http(s): the only one whose credentials git can
// take from askpass instead of the URL.
func (u GitURL) HTTP() bool {
	s := strings.ToLower(u.Scheme)
	return s == "http" || s == "https"
}

// User is the user name and the password of the user information, percent-decoded
// as git decodes them (a '%' not followed by two hex digits stays as it is).
// hasPassword says whether there is a ':' after the user name.
func (u GitURL) User() (user, password string, hasPassword bool) {
	user, password, hasPassword = strings.Cut(u.Userinfo, ":")
	return decode(user), decode(password), hasPassword
}

// WithoutUserinfo is the URL as written, without its user information and '@'.
func (u GitURL) WithoutUserinfo() string { return u.before + u.after }

// Masked is the URL for display, its user information replaced by Mask where it
// may be secret: an http(s) URL's (its user name may be a token) and any with a
// password. An ssh user name ("git@host:path") is no secret and stays.
func (u GitURL) Masked() string {
	_, _, pw := u.User()
	switch {
	case !u.HasUserinfo:
		return u.before + u.after
	case pw || u.HTTP():
		return u.before + Mask + "@" + u.after
	}
	return u.before + u.Userinfo + "@" + u.after
}

// URL is raw for display: SplitURL(raw).Masked().
func URL(raw string) string { return SplitURL(raw).Masked() }

// URLPasswords lists the secrets written into URLs: every password of a
// "user:password@", and an http(s) URL's user name of MinLen or more (a token
// given as the user name; a short one such as "git" is not a secret). Each is
// listed decoded and, where that differs, as written.
func URLPasswords(urls ...string) []string {
	var list []string
	add := func(decoded, written string) {
		if decoded != "" {
			list = append(list, decoded)
		}
		if written != decoded && written != "" {
			list = append(list, written)
		}
	}
	for _, raw := range urls {
		u := SplitURL(raw)
		if !u.HasUserinfo {
			continue
		}
		user, pw, _ := u.User()
		writtenUser, writtenPW, _ := strings.Cut(u.Userinfo, ":")
		add(pw, writtenPW)
		if u.HTTP() && len(user) >= MinLen {
			add(user, writtenUser)
		}
	}
	return list
}

// decode undoes percent-escapes the way git's url_decode does: "%" and two hex
// digits is a byte, any other '%' is itself.
func decode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
