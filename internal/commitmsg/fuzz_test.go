package commitmsg

import (
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.msg)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		m := Parse(msg)
		s := m.Owner.String()
		if s == "" {
			t.Fatalf("Parse(%q).Owner.String() is empty", msg)
		}
		if !m.Owner.Known() && s != "unknown" {
			t.Fatalf("unknown owner of %q renders as %q", msg, s)
		}
		if m.Op == OpUnknown && m.Lock != "" {
			t.Fatalf("Parse(%q): lock %q without an op", msg, m.Lock)
		}
		if first, _, _ := strings.Cut(msg, "\n"); !strings.Contains(first, m.Lock) {
			t.Fatalf("Parse(%q): lock %q is not from the first line", msg, m.Lock)
		}
	})
}
