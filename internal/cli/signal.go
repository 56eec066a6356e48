package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/poolboy-ci/poolboy/internal/gitx"
)

// Signals returns a context that the first SIGINT or SIGTERM cancels: the
// graceful stop (Concourse's abort, a step timeout, Ctrl-C). A second one
// exits at once with 128 + the signal's number (130, 143), after killing the
// git commands still running and removing poolboy's temporary files. The
// handler stays until os.Exit: a signal that arrives once the work is done must
// not kill the process and hide the exit status it has earned.
func Signals() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel(signalError{sig})
		sig = <-sigs
		gitx.Abandon()
		fmt.Fprintf(os.Stderr, "poolboy: %s signal received again: exiting at once\n", sig)
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
	return ctx
}

// signalError is the cause of the context Signals cancels; errors.Is matches it
// against context.Canceled, as signal.NotifyContext's cause is.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string        { return e.sig.String() + " signal received" }
func (e signalError) Is(target error) bool { return target == context.Canceled }
