package pool

import (
	"testing"
	"time"
)

func TestTimeInRange(t *testing.T) {
	minus1 := time.FixedZone("-23:59", -(23*3600 + 59*60))
	plus1 := time.FixedZone("+01:00", 3600)
	for _, c := range []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), true},
		{time.Time{}, true}, // year 1: whether a time is given at all is the caller's check
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(-1, 12, 31, 23, 59, 59, 0, time.UTC), false},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, minus1), false}, // 10000-01-01 in UTC
		{time.Date(0, 1, 1, 0, 0, 0, 0, plus1), false},          // year -1 in UTC
		{time.Unix(253402400800, 0), false},
	} {
		if got := TimeInRange(c.t); got != c.want {
			t.Errorf("TimeInRange(%s) = %v, want %v", c.t, got, c.want)
		}
	}
}
