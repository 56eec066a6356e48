package resource

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// guard is how long a script may take to notice an abort before the test calls
// it hung: a failure guard, not a speed budget.
const guard = 30 * time.Second

// runScript runs check, in or out on stdin in the background.
func runScript(ctx context.Context, t *testing.T, script string, stdin io.Reader) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		var stdout bytes.Buffer
		var err error
		switch script {
		case "check":
			err = Check(ctx, stdin, &stdout, &logBuffer{}, envOf(nil))
		case "in":
			err = In(ctx, t.TempDir(), stdin, &stdout, &logBuffer{}, envOf(nil))
		case "out":
			err = Out(ctx, t.TempDir(), stdin, &stdout, &logBuffer{}, envOf(nil))
		}
		if err == nil && stdout.Len() == 0 {
			err = errors.New("no answer and no error")
		}
		done <- err
	}()
	return done
}

func wait(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(guard):
		t.Fatalf("the script did not stop within %s of the abort", guard)
		return nil
	}
}

// Concourse aborts a step whose stdin it never closes: the script stops at once
// and says why, instead of waiting for the end of a request that never comes.
func TestAbortWhileStdinIsOpenSaysInterrupted(t *testing.T) {
	for _, script := range []string{"check", "in", "out"} {
		t.Run(script, func(t *testing.T) {
			r, w := io.Pipe()
			defer w.Close()
			ctx, cancel := context.WithCancelCause(context.Background())
			sigterm := errors.New("terminated signal received")
			done := runScript(ctx, t, script, r)
			go func() { _, _ = io.WriteString(w, `{"source":`) }() // part of a request, then nothing
			cancel(sigterm)
			err := wait(t, done)
			if err == nil || err.Error() != "aborted while reading the request (terminated signal received)" || !errors.Is(err, sigterm) {
				t.Errorf("error %v, want the interruption while reading, wrapping its cause", err)
			}
		})
	}
}

// An abort that closes stdin is an abort, not a malformed request.
func TestStdinClosedByTheAbortIsNotMalformedJSON(t *testing.T) {
	r, w := io.Pipe()
	ctx, cancel := context.WithCancelCause(context.Background())
	done := runScript(ctx, t, "out", r)
	cancel(errors.New("terminated signal received"))
	w.Close()
	err := wait(t, done)
	if err == nil || !strings.HasPrefix(err.Error(), "aborted while reading the request") {
		t.Errorf("error %v, want the interruption while reading", err)
	}
}

// A request over the limit is called too large, not malformed.
func TestRequestOver16MiBIsTooLarge(t *testing.T) {
	big := `{"source":{"uri":"` + strings.Repeat("a", maxRequest) + `","branch":"main","pool":"aws"}}`
	err := wait(t, runScript(context.Background(), t, "check", strings.NewReader(big)))
	if err == nil || err.Error() != "invalid payload: the request is larger than 16 MiB" {
		t.Errorf("error %v, want the request called too large", err)
	}
	// One that fits is read whole.
	fits := `{"source":{"uri":"` + strings.Repeat("a", maxRequest-100) + `"}}`
	err = wait(t, runScript(context.Background(), t, "check", strings.NewReader(fits)))
	if err == nil || !strings.Contains(err.Error(), "missing branch") && !strings.Contains(err.Error(), "missing pool") {
		t.Errorf("a request under the limit: error %v, want the source's own complaint", err)
	}
}
