package backoff

import (
	"testing"
	"time"
)

func TestExp(t *testing.T) {
	for _, tc := range []struct {
		n           int
		base, limit time.Duration
		want        time.Duration // before jitter
	}{
		{1, time.Second, time.Minute, time.Second},
		{2, time.Second, time.Minute, 2 * time.Second},
		{4, time.Second, time.Minute, 8 * time.Second},
		{7, time.Second, time.Minute, time.Minute},
		{1000, time.Second, time.Minute, time.Minute}, // no overflow
		{1, time.Minute, time.Second, time.Second},    // the limit wins over base
		{6, 250 * time.Millisecond, 8 * time.Second, 8 * time.Second},
	} {
		for range 200 {
			got := Exp(tc.n, tc.base, tc.limit)
			if got < tc.want/2 || got >= tc.want*3/2 {
				t.Fatalf("Exp(%d, %v, %v) = %v, want in [%v, %v)", tc.n, tc.base, tc.limit, got, tc.want/2, tc.want*3/2)
			}
		}
	}
}
