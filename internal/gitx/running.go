package gitx

import (
	"os"
	"strconv"
	"sync"
)

// running is what Abandon cleans up: the process group of every git command
// still running, and every temporary directory not yet removed.
var running = struct {
	sync.Mutex
	groups map[int]bool
	dirs   map[string]bool
}{groups: map[int]bool{}, dirs: map[string]bool{}}

// Abandon kills every git command this process started that is still running,
// with everything git started, and removes every temporary directory (clones,
// askpass scripts) and stops the watchdog. It is for a process about to exit at once (a second SIGTERM)
// without waiting for the usual cleanup; Repos in use are unusable afterwards.
func Abandon() {
	running.Lock()
	for pid := range running.groups {
		killGroup(pid)
	}
	for dir := range running.dirs {
		os.RemoveAll(dir)
	}
	running.Unlock()
	StopWatchdog()
}

// tempDir makes a private temporary directory that Abandon knows of; remove
// removes it.
func tempDir(pattern string) (dir string, remove func(), err error) {
	running.Lock()
	guard()
	running.Unlock()
	dir, err = os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	running.Lock()
	running.dirs[dir] = true
	tell("dir", dir)
	running.Unlock()
	return dir, func() {
		os.RemoveAll(dir)
		running.Lock()
		delete(running.dirs, dir)
		tell("undir", dir)
		running.Unlock()
	}, nil
}

// starting is called before a git command starts.
func starting() {
	running.Lock()
	guard()
	running.Unlock()
}

func groupStarted(pid int) {
	running.Lock()
	running.groups[pid] = true
	tell("group", strconv.Itoa(pid))
	running.Unlock()
}

func groupDone(pid int) {
	running.Lock()
	delete(running.groups, pid)
	tell("ungroup", strconv.Itoa(pid))
	running.Unlock()
}
