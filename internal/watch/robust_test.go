package watch

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/report"
)

// lockedLog is a log the test reads while the daemon writes it.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Security review: a panic during one repository's cycle killed the daemon, and
// with it every repository. It is now that cycle's error: logged with its stack,
// counted as a failed cycle, shown on /readyz and the page; the others go on.
func TestAPanicFailsOnlyItsRepositorysCycle(t *testing.T) {
	dir := remote(t, staleLocks(1)...)
	cfg := config(t, dir, time.Hour)
	cfg.Repos = append(cfg.Repos, Repo{Name: "panics", URI: "file://" + filepath.Join(t.TempDir(), "other.git"),
		Timeouts: policy.Timeouts{"aws": time.Hour}})
	var log lockedLog
	d := start(t, cfg, Options{MaxBackoff: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		beforeCycle: func(repo string) {
			if repo == "panics" {
				panic("injected")
			}
		}})
	if st := d.waitCycles(t, "panics", 2); !strings.Contains(st.LastError, "the cycle panicked: injected") {
		t.Errorf("the panicking repo's error: %q", st.LastError)
	}
	if st := d.waitCycles(t, "locks", 1); st.LastError != "" || st.LastSuccess.IsZero() {
		t.Errorf("the other repo: error %q, last success %v", st.LastError, st.LastSuccess)
	}
	if !exists(t, dir, "aws/unclaimed/env-1") {
		t.Error("the other repo was not cleaned")
	}
	code, body := d.get(t, "/readyz")
	if code != 503 || !strings.Contains(body, "repo panics: no successful cycle yet: the cycle panicked: injected") || strings.Contains(body, "repo locks") {
		t.Errorf("/readyz %d %q", code, body)
	}
	if _, page := d.get(t, "/"); !strings.Contains(page, "the cycle panicked: injected") {
		t.Errorf("the page does not show the panic: %s", page)
	}
	if _, m := d.get(t, "/metrics"); !strings.Contains(m, `poolboy_cycles_total{outcome="error",repo="panics"}`) {
		t.Errorf("/metrics does not count the panicked cycles as failed:\n%s", m)
	}
	l := log.String()
	for _, want := range []string{`level=ERROR msg="cycle panicked" repo=panics panic=injected stack=`, "safeReap"} {
		if !strings.Contains(l, want) {
			t.Errorf("the log lacks %q:\n%s", want, l)
		}
	}
}

// Security review: /api/pools wrote its 200 before encoding, and dropped the
// encoding's error: a document that cannot be encoded answered an empty body,
// nothing logged. It is now a 500 naming the error, logged.
func TestAPoolsDocumentThatCannotBeEncodedIsA500(t *testing.T) {
	var log lockedLog
	d, err := New(config(t, t.TempDir(), time.Hour), Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// No content read from a repository makes such a time any more (see the
	// hostile tests): set one, as a bug would.
	d.workers[0].doc = &report.Doc{Schema: report.Schema, GeneratedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/pools", nil))
	body := rec.Body.String()
	if rec.Code != 500 || !strings.Contains(body, "year outside of range") || strings.Count(body, "\n") != 1 {
		t.Errorf("/api/pools: %d %q", rec.Code, body)
	}
	if l := log.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "year outside of range") {
		t.Errorf("the error is not logged: %q", l)
	}
}
