package commitmsg

import (
	"strings"
	"testing"
)

// A first line of 1 MiB made only of keywords: each one used to be tried against
// everything before it, so the work grew with the square of the line's length.
func TestParseLongFirstLine(t *testing.T) {
	const mib = 1 << 20
	lockName := strings.Repeat("x", mib)
	tests := []struct {
		name  string
		msg   string
		op    Op
		lock  string
		owner string
	}{
		{name: "keywords only", msg: "a " + strings.Repeat("claiming: a ", mib/12), op: OpClaim,
			lock: strings.TrimSuffix(strings.Repeat("a claiming: ", mib/12), " claiming: "), owner: "unknown"},
		{name: "keywords after build words", msg: strings.Repeat("x/y build claiming: ", mib/20) + "\n", op: OpClaim,
			lock: strings.TrimSuffix(strings.Repeat("x/y build claiming: ", mib/20)[len("x/y build claiming: "):], " "), owner: "unknown"},
		{name: "owner then a 1 MiB lock name", msg: "main/deploy/test build 3 claiming: " + lockName, op: OpClaim,
			lock: lockName, owner: "main/deploy/test #3"},
		{name: "owner after 1 MiB of text is not read", msg: strings.Repeat("a", mib) + " main/deploy/test build 3 claiming: env-1", op: OpClaim,
			lock: "env-1", owner: "unknown"},
		{name: "no keyword", msg: strings.Repeat("claiming ", mib/9), op: OpUnknown, owner: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Parse(tt.msg)
			if m.Op != tt.op || m.Lock != tt.lock {
				t.Errorf("op %q, lock of %d bytes; want %q, %d bytes", m.Op, len(m.Lock), tt.op, len(tt.lock))
			}
			if got := m.Owner.String(); got != tt.owner {
				t.Errorf("owner %.80q, want %q", got, tt.owner)
			}
		})
	}
}
