//go:build poolboy_panic_hook

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// Only a binary built with -tags poolboy_panic_hook (by the tests, never a
// release) has this: SIGUSR1 makes a goroutine other than main's panic, which
// no deferred cleanup of main's survives. It shows the watchdog at work.
func init() {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		<-usr1
		panic("poolboy_panic_hook: SIGUSR1")
	}()
}
