package gitx

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// WatchdogName is the program name (argv[0]) poolboy's binary runs as the
// watchdog under.
const WatchdogName = "poolboy-watchdog"

// watchdog is the process that cleans up after this one should it die without
// doing so itself (a panic in any goroutine, a fatal runtime error, SIGKILL):
// it hears of every temporary directory and git process group as they come and
// go, and when its stdin ends (this process is gone, however it went) it
// removes and kills what is still listed. After a clean exit nothing is.
var watchdog struct {
	exe     string // poolboy's binary; "" for no watchdog
	started bool
	w       *os.File
	cmd     *exec.Cmd
	done    chan struct{}
}

// UseWatchdog makes gitx start exe (poolboy's own binary) as the watchdog
// before the first temporary directory or git command. It starts then, not
// now, so that the secrets the program reads are concealed from its
// environment, which is git's (childEnv).
func UseWatchdog(exe string) {
	running.Lock()
	watchdog.exe = exe
	running.Unlock()
}

// guard starts the watchdog if it is wanted and not started yet; running must
// be held. It runs in a process group of its own, so that a Ctrl-C meant for
// poolboy does not end it first. Without it poolboy works on, unguarded.
func guard() {
	if watchdog.exe == "" || watchdog.started {
		return
	}
	watchdog.started = true
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	defer r.Close()
	cmd := exec.Command(watchdog.exe)
	cmd.Args = []string{WatchdogName}
	cmd.Env = childEnv()
	cmd.Stdin = r
	newGroup(cmd)
	if err := cmd.Start(); err != nil {
		w.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	watchdog.w, watchdog.cmd, watchdog.done = w, cmd, done
}

// StopWatchdog tells the watchdog that this process is exiting, having cleaned
// up (or about to be, by Abandon), and waits for it to end, at most killDelay.
func StopWatchdog() {
	running.Lock()
	w, cmd, done := watchdog.w, watchdog.cmd, watchdog.done
	watchdog.w = nil
	running.Unlock()
	if w == nil {
		return
	}
	w.Close()
	select {
	case <-done:
	case <-time.After(killDelay):
		_ = cmd.Process.Kill()
		<-done
	}
}

// tell sends the watchdog one event; running must be held. A watchdog that is
// gone or stuck costs the protection, not the run.
func tell(event, arg string) {
	if watchdog.w != nil {
		// A watchdog that stopped reading must not stop poolboy.
		_ = watchdog.w.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = fmt.Fprintf(watchdog.w, "%s %s\n", event, strconv.Quote(arg))
	}
}

// Watchdog is the watchdog's work: it reads the events on in until it ends,
// then kills every process group and removes every directory still listed.
func Watchdog(in io.Reader) {
	dirs, groups := map[string]bool{}, map[int]bool{}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		event, quoted, _ := strings.Cut(sc.Text(), " ")
		arg, err := strconv.Unquote(quoted)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(arg)
		switch event {
		case "dir":
			dirs[arg] = true
		case "undir":
			delete(dirs, arg)
		case "group":
			groups[pid] = pid > 0
		case "ungroup":
			delete(groups, pid)
		}
	}
	for pid, ok := range groups {
		if ok {
			killGroup(pid)
		}
	}
	for dir := range dirs {
		os.RemoveAll(dir)
	}
}
