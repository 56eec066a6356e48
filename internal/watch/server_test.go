package watch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/policy"
)

// countingListener counts the bytes read from its connections.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, &l.read}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// serve runs the daemon's real server (d.Server on LimitListener) on loopback.
func serve(t *testing.T, d *Daemon) (addr string, ll *limitListener, counted *countingListener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counted = &countingListener{Listener: ln}
	ll = LimitListener(counted, MaxConns).(*limitListener)
	srv := d.Server()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ll) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), ll, counted
}

// Clients that send a request to /api/pools and never read the answer: the
// server takes MaxConns of them and no more, and serves again once they go.
func TestSlowReadersAreBounded(t *testing.T) {
	dir := remote(t, staleLocks(30)...)
	cfg := config(t, dir, time.Hour)
	cfg.Repos[0].Timeouts = policy.Timeouts{"aws": 100 * time.Hour} // held: all reported
	r := start(t, cfg, Options{})
	r.waitCycles(t, "locks", 1)
	addr, ll, _ := serve(t, r.Daemon)

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range MaxConns + 40 {
		c, err := net.Dial("tcp", addr) // the kernel completes it: the backlog
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /api/pools HTTP/1.1\r\nHost: poolboy\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, fmt.Sprintf("%d connections accepted", MaxConns), func() bool { return ll.open() >= MaxConns })
	if n := ll.open(); n != MaxConns {
		t.Errorf("%d connections served at once, want at most %d", n, MaxConns)
	}
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz after the slow clients left: %s", resp.Status)
	}
}

// A webhook flood with wrong signatures and huge bodies: each request is read to
// maxWebhookBody at most, never buffered whole.
func TestWebhookBodiesAreCappedBeforeBuffering(t *testing.T) {
	r := start(t, config(t, remote(t), time.Hour), Options{})
	addr, _, counted := serve(t, r.Daemon)
	const size = 10 << 20
	for range 3 {
		req, err := http.NewRequest("POST", "http://"+addr+"/webhook/locks", io.LimitReader(zeros{}, size))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("X-Hub-Signature-256", "sha256=00")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a 10 MiB webhook got %s", resp.Status)
			}
		}
	}
	// The server reads the body up to the cap, then at most what net/http drains
	// (256 KiB) before closing the connection.
	if got, limit := counted.read.Load(), int64(3*(maxWebhookBody+512<<10)); got > limit {
		t.Errorf("the server read %d bytes of three 10 MiB webhooks, want at most %d", got, limit)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestReadToken(t *testing.T) {
	cfg := config(t, remote(t), time.Hour)
	cfg.ReadToken = []byte("read-token-1234")
	r := start(t, cfg, Options{})
	get := func(path string, h http.Header) int {
		req, _ := http.NewRequest("GET", r.srv.URL+path, nil)
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if bytes.Contains(body, cfg.ReadToken) {
			t.Errorf("%s shows the token", path)
		}
		return resp.StatusCode
	}
	bearer := http.Header{"Authorization": {"Bearer read-token-1234"}}
	wrong := http.Header{"Authorization": {"Bearer read-token-12345"}}
	for _, c := range []struct {
		path string
		h    http.Header
		want int
	}{
		{"/api/pools", nil, http.StatusUnauthorized},
		{"/api/pools", wrong, http.StatusUnauthorized},
		{"/api/pools", bearer, http.StatusOK},
		{"/metrics", nil, http.StatusUnauthorized},
		{"/metrics", bearer, http.StatusOK},
		{"/", nil, http.StatusUnauthorized},
		{"/?token=read-token-1234", nil, http.StatusOK},
		{"/?token=nope", nil, http.StatusUnauthorized},
		{"/healthz", nil, http.StatusOK},
	} {
		if got := get(c.path, c.h); got != c.want {
			t.Errorf("GET %s (%v): %d, want %d", c.path, c.h, got, c.want)
		}
	}
	// Webhooks keep their own authentication.
	if code, body := r.webhook(t, "locks", []byte(`{"ref":"refs/heads/main"}`), githubHeaders([]byte(`{"ref":"refs/heads/main"}`), "hook-secret")); code != http.StatusAccepted {
		t.Errorf("webhook with a read token configured: %d %s", code, strings.TrimSpace(body))
	}
}
