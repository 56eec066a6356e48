package watch

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bounds of the HTTP server: whatever clients do (connect and never read, send
// slowly, flood the webhooks with payloads signed wrong), the daemon's memory is
// bounded by MaxConns connections, each holding at most one request of
// maxWebhookBody or one answer, for at most WriteTimeout.
const (
	// MaxConns is how many connections are served at once; more wait in the
	// kernel's backlog until one ends.
	MaxConns          = 64
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Server is the daemon's HTTP server with the bounds above; serve it on
// LimitListener(ln, MaxConns).
func (d *Daemon) Server() *http.Server { return server(d.Handler()) }

// WebhookServer is Server for WebhookHandler (webhook_listen), with the same bounds.
func (d *Daemon) WebhookServer() *http.Server { return server(d.WebhookHandler()) }

func server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// LimitListener accepts at most n connections at once: Accept waits while n are
// open.
func LimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open is how many accepted connections are open now.
func (l *limitListener) open() int { return len(l.sem) }

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// readable wraps h so that, with a read token configured, only a request with it
// (Authorization: Bearer TOKEN, or ?token=TOKEN for a browser) is served.
func (d *Daemon) readable(h http.Handler) http.Handler {
	token := d.cfg.ReadToken
	if token == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			got = r.URL.Query().Get("token")
		}
		if subtle.ConstantTimeCompare([]byte(got), token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="poolboy"`)
			http.Error(w, "a read token is required: Authorization: Bearer TOKEN, or ?token=TOKEN", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
