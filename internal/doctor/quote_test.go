package doctor

import (
	"os/exec"
	"testing"

	"github.com/poolboy-ci/poolboy/internal/term"
)

// A path doctor prints in a command is one shell word that names the file
// again, control characters and bytes that are not UTF-8 included, and what it
// prints has nothing a terminal would act on.
func TestQuoteNamesTheFileInAShell(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"env-1", "my lock", "it's", `back\slash`, "p\x1b[31mool/claimed/bad\x1b]0;pwned\x07", "tab\there", "env-\xff", "é \u0085 next", "$HOME `x`"} {
		q := quote(name)
		if term.Escape(q) != q {
			t.Errorf("%q quoted as %q, which a terminal would act on", name, q)
		}
		out, err := exec.Command(bash, "-c", "printf %s "+q).Output()
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if string(out) != name {
			t.Errorf("%q quoted as %s names %q", name, q, out)
		}
	}
}
