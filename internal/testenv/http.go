package testenv

import (
	"crypto/subtle"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// GitHTTPServer is a smart-HTTP git server started by GitHTTP.
type GitHTTPServer struct {
	// URL is the base URL, ending in "/"; root/locks.git is URL+"locks.git".
	URL string

	mu       sync.Mutex
	requests map[string]int
}

// Requests returns how many requests reached git http-backend so far, by
// service: "upload-pack", "receive-pack" or "other". Both the info/refs
// advertisement and the POST count under their service. Requests rejected
// with 401 are not counted. Safe for concurrent use.
func (s *GitHTTPServer) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]int{"upload-pack": 0, "receive-pack": 0, "other": 0}
	for k, v := range s.requests {
		m[k] = v
	}
	return m
}

func (s *GitHTTPServer) count(r *http.Request) {
	svc := "other"
	switch {
	case r.URL.Query().Get("service") == "git-upload-pack",
		strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
		svc = "upload-pack"
	case r.URL.Query().Get("service") == "git-receive-pack",
		strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
		svc = "receive-pack"
	}
	s.mu.Lock()
	s.requests[svc]++
	s.mu.Unlock()
}

// GitHTTP serves every bare repository under root through `git
// http-backend` run as CGI inside an httptest server on 127.0.0.1, closed
// at cleanup. When user != "" every request needs HTTP basic auth with
// user/pass, else it gets 401 with `WWW-Authenticate: Basic realm="git"`.
// Pushes are enabled.
func GitHTTP(t testing.TB, root, user, pass string) *GitHTTPServer {
	t.Helper()
	backend := filepath.Join(gitExecPath(t, "git-http-backend"), "git-http-backend")
	root, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("abs %q: %v", root, err)
	}
	remoteUser := user
	if remoteUser == "" {
		// http-backend only enables receive-pack for an authenticated
		// user; without auth we still want pushes to work.
		remoteUser = "anonymous"
	}
	h := &cgi.Handler{
		Path: backend,
		Root: "/", // PATH_INFO is the whole URL path: /locks.git/info/refs
		// cgi.Handler passes only this environment, so http-backend does
		// not see the developer's git config either.
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=" + remoteUser,
			"HOME=" + home(t),
			"GIT_CONFIG_NOSYSTEM=1",
			"LC_ALL=C",
			"PATH=" + os.Getenv("PATH"),
		},
		Logger: log.New(tLogWriter{t}, "git-http-backend: ", 0),
		Stderr: tLogWriter{t},
	}
	s := &GitHTTPServer{requests: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			// Evaluate both compares (no short-circuit) so timing does
			// not reveal which half was wrong.
			okUser := subtle.ConstantTimeCompare([]byte(u), []byte(user))
			okPass := subtle.ConstantTimeCompare([]byte(p), []byte(pass))
			if !ok || okUser&okPass != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		s.count(r)
		h.ServeHTTP(w, r)
	}))
	// Close blocks until in-flight requests (and their CGI processes) end.
	t.Cleanup(srv.Close)
	s.URL = srv.URL + "/"
	return s
}

// tLogWriter routes CGI diagnostics to the test log instead of stderr.
type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
