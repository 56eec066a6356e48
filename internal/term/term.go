// Package term makes text from untrusted sources (lock repositories, commit
// messages, servers' answers) safe to print: a terminal interprets control
// characters (an escape sequence can rewrite the screen or the window title), so
// every text output passes what it did not write itself through Escape.
package term

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape writes each control character (C0, DEL, C1: newline and tab too) as a Go
// escape (\x1b, \n, \u0085) and each byte that is not UTF-8 as \xNN. Other text,
// backslashes included, is unchanged, so ordinary names read as they are.
func Escape(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Line is Escape for a message printed as one line: line breaks become "; ".
func Line(s string) string {
	return Escape(strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "; "))
}

func needsEscape(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return true
		}
	}
	return false
}
