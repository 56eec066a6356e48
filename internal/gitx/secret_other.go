//go:build !linux

package gitx

// secretFile is diskSecret: without memfds there is nothing better.
func secretFile(dir func() (string, error), name string, data []byte) (path string, close func(), err error) {
	return diskSecret(dir, name, data)
}
