package testenv

import (
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPushgatewayPushAndMetrics(t *testing.T) {
	pg := Pushgateway(t)
	if !strings.HasPrefix(pg.URL, "http://127.0.0.1:") || strings.HasSuffix(pg.URL, "/") {
		t.Fatalf("URL = %q", pg.URL)
	}
	// Its own metrics are there before anything is pushed.
	if m := pg.Metrics(t); !strings.Contains(m, "pushgateway_build_info") {
		t.Fatalf("/metrics has no pushgateway_build_info:\n%s", m)
	}

	// Push in the text format, as curl would, and read it back.
	body := "# TYPE poolboy_testenv_probe gauge\npoolboy_testenv_probe 42\n"
	resp, err := http.Post(pg.URL+"/metrics/job/testenv/pool/aws", "text/plain; version=0.0.4", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push: %s", resp.Status)
	}
	want := `poolboy_testenv_probe{instance="",job="testenv",pool="aws"} 42`
	if m := pg.Metrics(t); !strings.Contains(m, want) {
		t.Fatalf("/metrics lacks %q:\n%s", want, m)
	}

	// Gateways are independent: nothing is persisted or shared.
	if m := Pushgateway(t).Metrics(t); strings.Contains(m, "poolboy_testenv_probe") {
		t.Errorf("a second gateway sees the first one's metrics")
	}
}

func TestPushgatewayStoppedAtCleanup(t *testing.T) {
	var addr string
	t.Run("serve", func(t *testing.T) {
		addr = strings.TrimPrefix(Pushgateway(t).URL, "http://")
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("pushgateway still accepting on %s after cleanup", addr)
	}
}

func TestPushgatewayMissing(t *testing.T) {
	t.Setenv("PATH", filepath.Join(t.TempDir(), "empty"))
	t.Setenv("CI", "true")
	f := runFake(t, func(tb testing.TB) { Pushgateway(tb) })
	if f.fatal == "" || f.skip != "" {
		t.Errorf("CI=true: fatal=%q skip=%q, want a fatal", f.fatal, f.skip)
	}
	t.Setenv("CI", "")
	f = runFake(t, func(tb testing.TB) { Pushgateway(tb) })
	if f.skip == "" || f.fatal != "" {
		t.Errorf("CI unset: fatal=%q skip=%q, want a skip", f.fatal, f.skip)
	}
}
