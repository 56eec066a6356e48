package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// PushgatewayServer is a Prometheus Pushgateway started by Pushgateway.
type PushgatewayServer struct {
	// URL is "http://127.0.0.1:PORT", without a trailing slash: the value a
	// pool resource's prometheus_push_gateway takes.
	URL string
}

// Pushgateway starts the Prometheus Pushgateway (Debian package
// prometheus-pushgateway) on 127.0.0.1 and a free port, metrics kept in
// memory only (no persistence file), waits until /-/ready answers 200 and
// stops it at cleanup.
func Pushgateway(t testing.TB) *PushgatewayServer {
	t.Helper()
	bin := RequireCommand(t, "prometheus-pushgateway")
	// FreePort releases the port before the gateway binds it; if someone
	// else grabs it in between the gateway exits, and we retry.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
		if lastErr = startPushgateway(t, bin, addr); lastErr == nil {
			return &PushgatewayServer{URL: "http://" + addr}
		}
	}
	t.Fatalf("pushgateway did not start: %v", lastErr)
	return nil
}

func startPushgateway(t testing.TB, bin, addr string) error {
	t.Helper()
	cmd := exec.Command(bin,
		"--web.listen-address="+addr,
		// Debian's default persists to /var/lib/prometheus; keep every
		// test's gateway in memory and independent.
		"--persistence.file=",
		"--log.level=warn",
	)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	cmd.Stdout = stderr
	client := &http.Client{Timeout: time.Second}
	ready := "http://" + addr + "/-/ready"
	_, err := serve(t, "pushgateway", cmd, stderr, 15*time.Second, func() error { return probe(client, ready) }, nil)
	return err
}

func probe(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// Metrics returns the gateway's GET /metrics text (exposition format): the
// metrics pushed to it, with their job and grouping labels, plus its own.
func (p *PushgatewayServer) Metrics(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Plain text, not protobuf.
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", p.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s/metrics: %v", p.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %s\n%s", p.URL, resp.Status, b)
	}
	return string(b)
}
