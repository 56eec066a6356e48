package policy

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTimeoutsValid(t *testing.T) {
	tests := []struct {
		spec string
		want Timeouts
	}{
		{"worker_pool:60,tester_pool:30", Timeouts{"worker_pool": 60 * time.Minute, "tester_pool": 30 * time.Minute}},
		{"aws:90m,gpu:2h", Timeouts{"aws": 90 * time.Minute, "gpu": 2 * time.Hour}},
		{" aws : 90m , gpu:2h ", Timeouts{"aws": 90 * time.Minute, "gpu": 2 * time.Hour}},
		{"aws:1h30m", Timeouts{"aws": 90 * time.Minute}},
		{"aws:1", Timeouts{"aws": time.Minute}},
		{"aws:45s", Timeouts{"aws": 45 * time.Second}},
		{"my pool:5", Timeouts{"my pool": 5 * time.Minute}},
		{"", Timeouts{}},
		{"   ", Timeouts{}},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseTimeouts(tt.spec)
			if err != nil {
				t.Fatalf("ParseTimeouts(%q): %v", tt.spec, err)
			}
			if got == nil {
				t.Fatalf("ParseTimeouts(%q) = nil map", tt.spec)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("ParseTimeouts(%q) = %v, want %v", tt.spec, got, tt.want)
			}
			if names, want := got.Names(), slices.Sorted(maps.Keys(tt.want)); !slices.Equal(names, want) {
				t.Errorf("Names() = %q, want %q", names, want)
			}
		})
	}
}

func TestParseTimeoutsInvalid(t *testing.T) {
	tests := []struct {
		spec    string
		mention string // the offending part, as the error must show it
	}{
		{"aws", "aws"},
		{"aws:", "aws:"},
		{"aws:-5", "-5"},
		{"aws:abc", "abc"},
		{"aws:0", `"0"`},
		{"aws:0s", "0s"},
		{"aws:1,aws:2", `"aws"`},
		{" aws :1,aws:2", `"aws"`},
		{":5", ":5"},
		{"a,b", `"a"`},
		{"aws:5,", "aws:5,"},
		{",aws:5", ",aws:5"},
		{"aws:5,,gpu:1", "aws:5,,gpu:1"},
		{"../x:5", "../x"},
		{".hidden:5", ".hidden"},
		{`a\b:5`, `a\\b`},
		{"aws:99999999999999999999", "99999999999999999999"},
		{"aws:153722868", "153722868"},                     // fits int64, overflows as minutes
		{"aws:9223372036854775807", "9223372036854775807"}, // math.MaxInt64 minutes
		{"aws:9999999999h", "9999999999h"},
		{"aws:-1h", "-1h"},
		{"aws:1:2", "1:2"},
		{"gpu:2h,aws:nope", "nope"},
		// A name with a line break must not split the error over lines.
		{"a\nb:abc", `a\nb`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseTimeouts(tt.spec)
			if err == nil {
				t.Fatalf("ParseTimeouts(%q) = %v, want an error", tt.spec, got)
			}
			if got != nil {
				t.Errorf("ParseTimeouts(%q) returned %v with the error", tt.spec, got)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not a single line: %q", msg)
			}
			if !strings.Contains(msg, tt.mention) {
				t.Errorf("error %q does not mention %q", msg, tt.mention)
			}
		})
	}
}

// The largest minute count that fits in a Duration is accepted, one more is refused.
func TestParseTimeoutsMinuteBoundary(t *testing.T) {
	const maxMinutes = int64(1<<63-1) / int64(time.Minute)
	if maxMinutes != 153722867 {
		t.Fatalf("maxMinutes = %d", maxMinutes)
	}
	got, err := ParseTimeouts("aws:" + strconv.FormatInt(maxMinutes, 10))
	if err != nil {
		t.Fatalf("max minutes: %v", err)
	}
	if got["aws"] != time.Duration(maxMinutes)*time.Minute || got["aws"] <= 0 {
		t.Errorf("max minutes = %v", got["aws"])
	}
	if _, err := ParseTimeouts("aws:" + strconv.FormatInt(maxMinutes+1, 10)); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Errorf("max+1 minutes: err = %v, want too large", err)
	}
}
