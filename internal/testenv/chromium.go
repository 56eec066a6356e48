package testenv

import (
	"os"
	"testing"
)

// chromiumPath is where Debian's chromium package installs its launcher.
const chromiumPath = "/usr/bin/chromium"

// Chromium returns the path of the Chromium browser (Debian package chromium),
// for tests that load a page headless. When it is missing the test fails under
// CI=true and is skipped otherwise, as with RequireCommand.
func Chromium(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return chromiumPath
	}
	return RequireCommand(t, "chromium")
}
