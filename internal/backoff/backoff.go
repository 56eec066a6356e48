// Package backoff is poolboy's one retry schedule: exponential, capped and
// jittered. The reaper's lost push races, the watch daemon's failed cycles and
// the Concourse client's failed logins all wait by it.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Exp is the wait after the n-th failure in a row (n ≥ 1): base, 2×base,
// 4×base, … capped at limit, then scaled by a random factor in [0.5, 1.5) so
// that processes failing together do not retry in lock-step.
func Exp(n int, base, limit time.Duration) time.Duration {
	d := min(base, limit)
	for i := 1; i < n && d < limit; i++ {
		d = min(2*d, limit)
	}
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
}
