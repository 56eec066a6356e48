package pool

import "time"

// TimeInRange says whether t, in UTC, falls in the years 0 to 9999: the times RFC
// 3339, and so JSON, can write. A time read from the repository outside them
// (a commit dated year 10000, a ticket's "9999-12-31T23:59:59-23:59") is no time
// anybody meant, and would make every JSON document holding it fail to encode.
func TimeInRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}
