package gitx

import (
	"os"
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
// key files). It is for a process about to exit at once (a second SIGTERM)
// without waiting for the usual cleanup; Repos in use are unusable afterwards.
func Abandon() {
	running.Lock()
	defer running.Unlock()
	for pid := range running.groups {
		killGroup(pid)
	}
	for dir := range running.dirs {
		os.RemoveAll(dir)
	}
}

// tempDir makes a private temporary directory that Abandon knows of; remove
// removes it.
func tempDir(pattern string) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err
	}
	running.Lock()
	running.dirs[dir] = true
	running.Unlock()
	return dir, func() {
		os.RemoveAll(dir)
		running.Lock()
		delete(running.dirs, dir)
		running.Unlock()
	}, nil
}

func groupStarted(pid int) {
	running.Lock()
	running.groups[pid] = true
	running.Unlock()
}

func groupDone(pid int) {
	running.Lock()
	delete(running.groups, pid)
	running.Unlock()
}
