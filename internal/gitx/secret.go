package gitx

import (
	"os"
	"path/filepath"
)

// diskSecret writes data to a 0600 file in the private directory dir gives,
// which every exit path but SIGKILL removes, and the watchdog after one.
func diskSecret(dir func() (string, error), name string, data []byte) (path string, close func(), err error) {
	d, err := dir()
	if err != nil {
		return "", nil, err
	}
	path = filepath.Join(d, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", nil, err
	}
	return path, func() { os.Remove(path) }, nil
}
