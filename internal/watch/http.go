package watch

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/poolboy-ci/poolboy/internal/report"
)

// APISchema names the /api/pools document's version.
const APISchema = "poolboy.watch/v1"

// maxWebhookBody bounds a webhook payload (push payloads are far smaller).
const maxWebhookBody = 1 << 20

// Handler serves /healthz, /readyz, /metrics, /api/pools and, unless the config
// gives them an address of their own (WebhookHandler), /webhook/NAME. With a
// read token, the page, /api/pools and /metrics need it; the probes and the
// webhooks (signed by their own secret) do not.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		// A Concourse outage is named but does not fail readiness: cycles go on,
		// the timeouts deciding alone, and restarting or unlisting the daemon
		// would not bring Concourse back.
		note := ""
		for _, warn := range d.ccWarnings() {
			note += "\nwarning: " + warn
		}
		if err := d.ready(); err != nil {
			http.Error(w, "not ready: "+strings.ReplaceAll(err.Error(), "\n", "; ")+note, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready"+note)
	})
	mux.Handle("GET /metrics", d.readable(promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{Registry: d.metrics.reg})))
	mux.Handle("GET /api/pools", d.readable(http.HandlerFunc(d.servePools)))
	mux.Handle("GET /{$}", d.readable(http.HandlerFunc(d.servePage)))
	if d.cfg.WebhookListen == "" {
		mux.HandleFunc("POST /webhook/{repo}", d.serveWebhook)
	}
	return mux
}

// WebhookHandler serves /webhook/NAME and /healthz alone, for webhook_listen.
func (d *Daemon) WebhookHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /webhook/{repo}", d.serveWebhook)
	return mux
}

// PoolsDoc is the /api/pools document.
type PoolsDoc struct {
	Schema      string    `json:"schema"`
	GeneratedAt time.Time `json:"generated_at"`
	Interval    float64   `json:"interval_seconds"`
	// Concourse is what the lookups found of each Concourse; [] without one.
	Concourse []*ConcourseDoc `json:"concourse"`
	Repos     []RepoDoc       `json:"repos"`
}

// RepoDoc is one repo in /api/pools.
type RepoDoc struct {
	Name         string      `json:"name"`
	Branch       string      `json:"branch,omitempty"`
	Running      bool        `json:"running"`
	Cycles       int         `json:"cycles"`
	LastCycleEnd *time.Time  `json:"last_cycle_end"`
	LastSuccess  *time.Time  `json:"last_success"`
	LastError    string      `json:"last_error,omitempty"`
	Status       *report.Doc `json:"status"` // the last successful cycle's report (schema poolboy.status/v2); null before one
	RecentReaps  []Reap      `json:"recent_reaps"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Pools is the /api/pools document now.
func (d *Daemon) Pools() PoolsDoc {
	doc := PoolsDoc{Schema: APISchema, GeneratedAt: d.now().UTC(), Interval: d.cfg.Interval.Seconds(), Repos: []RepoDoc{}}
	doc.Concourse = d.ccDocs()
	for _, w := range d.workers {
		st := w.snapshot()
		rd := RepoDoc{Name: st.Name, Branch: st.Branch, Running: st.Running, Cycles: st.Cycles,
			LastCycleEnd: timePtr(st.LastEnd), LastSuccess: timePtr(st.LastSuccess), LastError: st.LastError,
			Status: st.Report, RecentReaps: []Reap{}}
		// Newest first, as people read them.
		for i := len(st.Reaps) - 1; i >= 0; i-- {
			rd.RecentReaps = append(rd.RecentReaps, st.Reaps[i])
		}
		doc.Repos = append(doc.Repos, rd)
	}
	return doc
}

func (d *Daemon) servePools(w http.ResponseWriter, _ *http.Request) {
	// Encoded whole before the status is sent: a document that cannot be encoded is
	// a 500 and a logged error, never a 200 with an empty body.
	body, err := json.MarshalIndent(d.Pools(), "", "  ")
	if err != nil {
		d.log.Error("/api/pools: encoding the document", "error", err)
		http.Error(w, "encoding /api/pools: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// serveWebhook authenticates a forge's push notification and triggers a cycle of
// the repo at once when the push is to its branch.
func (d *Daemon) serveWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("repo")
	wk := d.byName[name]
	if wk == nil {
		http.Error(w, fmt.Sprintf("no repo %q", name), http.StatusNotFound)
		return
	}
	if wk.cfg.WebhookSecret == nil {
		http.Error(w, fmt.Sprintf("repo %q has no webhook (give it webhook_secret_env or webhook_secret_file)", name), http.StatusNotFound)
		return
	}
	// Refuse an unsigned request before reading its body.
	if r.Header.Get("X-Gitlab-Token") == "" && r.Header.Get("X-Gitea-Signature") == "" && r.Header.Get("X-Hub-Signature-256") == "" {
		_, err := verify(r.Header, nil, wk.cfg.WebhookSecret)
		d.log.Warn("webhook refused", "repo", name, "remote", r.RemoteAddr, "reason", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		http.Error(w, "reading the payload: "+err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	forge, err := verify(r.Header, body, wk.cfg.WebhookSecret)
	if err != nil {
		d.log.Warn("webhook refused", "repo", name, "remote", r.RemoteAddr, "reason", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if ev := eventOf(forge, r.Header); ev != "" && !isPush(forge, ev) {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "ignored: %s event %q is not a push\n", forge, ev)
		return
	}
	var payload struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal(body, &payload); err != nil || payload.Ref == "" {
		http.Error(w, "not a push payload: no ref", http.StatusBadRequest)
		return
	}
	branch := wk.snapshot().Branch
	if branch != "" && payload.Ref != "refs/heads/"+branch {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "ignored: push to %s, not to branch %s\n", payload.Ref, branch)
		return
	}
	d.Trigger(name)
	d.log.Info("webhook: cycle triggered", "repo", name, "forge", forge, "ref", payload.Ref)
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, "cycle of %s triggered\n", name)
}

// verify checks a payload's authentication by the scheme of the forge that sent
// it, and names the forge: GitHub signs with X-Hub-Signature-256
// (sha256=HEX of HMAC-SHA256), Gitea with X-Gitea-Signature (HEX), GitLab sends
// the secret itself in X-Gitlab-Token.
func verify(h http.Header, body, secret []byte) (forge string, err error) {
	switch {
	case h.Get("X-Gitlab-Token") != "":
		if subtle.ConstantTimeCompare([]byte(h.Get("X-Gitlab-Token")), secret) != 1 {
			return "gitlab", errors.New("wrong X-Gitlab-Token")
		}
		return "gitlab", nil
	case h.Get("X-Gitea-Signature") != "":
		return "gitea", checkMAC(h.Get("X-Gitea-Signature"), body, secret, "X-Gitea-Signature")
	case h.Get("X-Hub-Signature-256") != "":
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok {
			return "github", errors.New("X-Hub-Signature-256 does not start with sha256=")
		}
		return "github", checkMAC(sig, body, secret, "X-Hub-Signature-256")
	}
	return "", errors.New("no signature: want X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea) or X-Gitlab-Token (GitLab)")
}

func checkMAC(sigHex string, body, secret []byte, header string) error {
	sig, err := hex.DecodeString(strings.TrimSpace(sigHex))
	if err != nil {
		return fmt.Errorf("%s is not hex", header)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return fmt.Errorf("wrong %s", header)
	}
	return nil
}

func eventOf(forge string, h http.Header) string {
	switch forge {
	case "github":
		return h.Get("X-GitHub-Event")
	case "gitea":
		return h.Get("X-Gitea-Event")
	case "gitlab":
		return h.Get("X-Gitlab-Event")
	}
	return ""
}

func isPush(forge, event string) bool {
	if forge == "gitlab" {
		return event == "Push Hook"
	}
	return event == "push"
}
