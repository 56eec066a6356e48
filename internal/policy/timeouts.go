package policy

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/pool"
)

// Timeouts maps a pool name to the age after which its claimed locks are stale.
type Timeouts map[string]time.Duration

// ParseTimeouts reads "name:timeout,..." as the original pool boy's POOLS did: a bare
// integer is minutes ("worker_pool:60"); a Go duration also works ("gpu:2h").
// An empty spec means no pool has a timeout.
func ParseTimeouts(spec string) (Timeouts, error) {
	t := Timeouts{}
	if strings.TrimSpace(spec) == "" {
		return t, nil
	}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, ":")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		switch {
		case part == "":
			return nil, fmt.Errorf("pools %q: empty entry (want name:timeout,...)", spec)
		case !ok:
			return nil, fmt.Errorf("pools: %q has no timeout (want name:timeout, e.g. %s:60 or %s:90m)", part, name, name)
		case name == "":
			return nil, fmt.Errorf("pools: %q has no pool name", part)
		case strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, "."):
			return nil, fmt.Errorf("pools: %q is not a pool name", name)
		case val == "":
			return nil, fmt.Errorf("pools: %q has no timeout after ':' (e.g. %s:60 or %s:90m)", part, name, name)
		}
		if _, dup := t[name]; dup {
			return nil, fmt.Errorf("pools: %q is given twice", name)
		}
		d, err := parseTimeout(val)
		if err != nil {
			return nil, fmt.Errorf("pools: %q: %w", name, err)
		}
		t[name] = d
	}
	return t, nil
}

func parseTimeout(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n <= 0: // before the multiplication, which a large negative n overflows
			return 0, fmt.Errorf("timeout %q must be positive", s)
		case n > int64(1<<63-1)/int64(time.Minute):
			return 0, fmt.Errorf("timeout %q is too large", s)
		}
		d = time.Duration(n) * time.Minute
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("timeout %q is neither minutes nor a duration like 90m or 2h", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("timeout %q must be positive", s)
	}
	if d < time.Second {
		// Shown and compared in whole seconds: "0s" would free every lock.
		return 0, fmt.Errorf("timeout %q must be at least a second", s)
	}
	return d, nil
}

// Names lists the pools, sorted naturally (pool-2 before pool-10).
func (t Timeouts) Names() []string {
	return slices.SortedFunc(maps.Keys(t), pool.CompareNames)
}

// CheckReapTo validates quarantines (pool → the pool its reaped locks go to):
// each pool has a timeout, each quarantine is a valid pool name other than its
// pool, and no quarantine sends its own reaps on (a janitor's stale claim on a
// quarantine lock goes back to the quarantine's unclaimed/).
func CheckReapTo(to map[string]string, timeouts Timeouts) error {
	users := map[string]string{} // quarantine -> the first pool sending to it
	for _, from := range slices.Sorted(maps.Keys(to)) {
		dest := to[from]
		// Two pools may each have a lock NAME: reaped together into one quarantine
		// they would be one file, and a lock would be lost.
		if other, ok := users[dest]; ok {
			return fmt.Errorf("pools %q and %q share the quarantine %q: give each pool its own", other, from, dest)
		}
		users[dest] = from
		if err := pool.ValidName(dest); err != nil {
			return fmt.Errorf("%q is not a pool name: %s", dest, strings.Replace(err.Error(), "lock name", "name", 1))
		}
		if _, ok := timeouts[from]; !ok {
			return fmt.Errorf("pool %q has no timeout", from)
		}
		if from == dest {
			return fmt.Errorf("pool %q cannot be its own quarantine", from)
		}
		if _, ok := to[dest]; ok {
			return fmt.Errorf("quarantine %q of pool %q sends its reaps on: a quarantine's reaps stay in it", dest, from)
		}
	}
	return nil
}
