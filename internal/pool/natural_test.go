package pool

import (
	"slices"
	"strings"
	"testing"
)

func TestCompareNamesIsNatural(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"env-1 env-10 env-2", "env-1 env-2 env-10"},
		{"a10b2 a10b10 a9b99 a10b1", "a9b99 a10b1 a10b2 a10b10"},
		{"env-01 env-1 env-001 env-2", "env-001 env-01 env-1 env-2"},
		{"b a 10 9 _x", "9 10 _x a b"},
		{"gpu-100 gpu-99 gpu", "gpu gpu-99 gpu-100"},
		{"x18446744073709551616 x18446744073709551615", "x18446744073709551615 x18446744073709551616"},
	} {
		names := strings.Fields(c.in)
		slices.SortFunc(names, CompareNames)
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("sorted %q = %q, want %q", c.in, got, c.want)
		}
	}
	for _, p := range [][2]string{{"env-1", "env-1"}, {"", ""}} {
		if CompareNames(p[0], p[1]) != 0 {
			t.Errorf("CompareNames(%q, %q) != 0", p[0], p[1])
		}
	}
}
