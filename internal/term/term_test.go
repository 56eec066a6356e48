package term

import "testing"

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"env-1", "env-1"},
		{`a\b`, `a\b`},
		{"héllo wörld ✓", "héllo wörld ✓"},
		{"\uFFFD", "\uFFFD"}, // a real replacement character is text
		{"a\tb\nc", `a\tb\nc`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;title\x07", `\x1b]0;title\x07`},
		{"del\x7f", `del\x7f`},
		{"nel\u0085csi\u009b", `nel\u0085csi\u009b`},
		{"p\xff", `p\xff`},
		{"p\xe2\x82", `p\xe2\x82`}, // a cut-off UTF-8 sequence
		{"\x00", `\x00`},
	} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"one", "one"},
		{"one\ntwo\n", "one; two"},
		{"bad \x1b[2J\nnext", `bad \x1b[2J; next`},
	} {
		if got := Line(c.in); got != c.want {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
