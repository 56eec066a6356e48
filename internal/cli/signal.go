package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/poolboy-ci/poolboy/internal/gitx"
)

// Signals returns a context that the first SIGINT, SIGTERM or SIGHUP cancels:
// the graceful stop (Concourse's abort, a step timeout, Ctrl-C, a closed
// terminal). A second one exits at once with 128 + the signal's number (130,
// 143, 129), after killing the git commands still running and removing
// poolboy's temporary files; so does SIGQUIT (131), which also prints every
// goroutine's stack, as Go does. A write to a closed stdout (poolboy status |
// head -1) fails with EPIPE instead of killing poolboy by SIGPIPE before it
// cleans up. The handler stays until os.Exit: a signal that arrives once the
// work is done must not kill the process and hide the exit status it has earned.
func Signals() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		sig := <-sigs
		if sig != syscall.SIGQUIT {
			cancel(signalError{sig})
			sig = <-sigs
		}
		// Killing git lets the command waiting for it return: Exit must not let
		// its status (1) win over this one.
		exiting.Lock()
		if sig == syscall.SIGQUIT {
			fmt.Fprintf(os.Stderr, "poolboy: %s signal received: exiting at once; its goroutines were:\n", sig)
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		} else {
			fmt.Fprintf(os.Stderr, "poolboy: %s signal received again: exiting at once\n", sig)
		}
		gitx.Abandon()
		code := 1
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
	return ctx
}

// exiting is held by whichever path ends the process first.
var exiting sync.Mutex

// Exit ends the process with code, once the watchdog has heard that poolboy
// cleaned up (see gitx.UseWatchdog); a signal's exit at once, if under way,
// goes first.
func Exit(code int) {
	exiting.Lock()
	gitx.StopWatchdog()
	os.Exit(code)
}

// signalError is the cause of the context Signals cancels; errors.Is matches it
// against context.Canceled, as signal.NotifyContext's cause is.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string        { return e.sig.String() + " signal received" }
func (e signalError) Is(target error) bool { return target == context.Canceled }
