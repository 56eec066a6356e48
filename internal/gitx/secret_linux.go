package gitx

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// secretFile holds data in memory (a memfd, mode 0600) and returns the path its
// children open it by, /proc/PID/fd/N of this process: the secret never reaches
// a disk, and is gone the moment poolboy ends, however it ends (SIGKILL too).
// The path works in every descendant (ssh closes inherited descriptors, so
// /dev/fd/N would not). Without memfds or /proc it is a file, as elsewhere.
// close is the caller's to call.
func secretFile(dir func() (string, error), name string, data []byte) (path string, close func(), err error) {
	fd, err := unix.MemfdCreate("poolboy-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return diskSecret(dir, name, data)
	}
	f := os.NewFile(uintptr(fd), name)
	path = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), fd)
	// ssh refuses a key that others could read; a memfd starts at 0777.
	if err := unix.Fchmod(fd, 0o600); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("memfd for the %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return "", nil, fmt.Errorf("memfd for the %s: %w", name, err)
	}
	if _, err := os.Stat(path); err != nil {
		f.Close()
		return diskSecret(dir, name, data)
	}
	return path, func() { f.Close() }, nil
}
