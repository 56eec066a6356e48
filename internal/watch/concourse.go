package watch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/poolboy-ci/poolboy/internal/concourse"
)

// ccHealth is what the daemon knows of Concourse from its lookups: whether
// the last one got a good answer, when one last did, and since when none has.
// While Concourse does not answer, the timeouts decide alone: that must show.
type ccHealth struct {
	url string
	*ccGauges

	mu        sync.Mutex
	looked    bool      // a lookup was made
	ok        bool      // the last one got a good answer
	lastGood  time.Time // zero: never
	downSince time.Time // the first bad answer after the last good one
	lastErr   string
}

// ccGauges are the health metrics, one series per Concourse.
type ccGauges struct {
	up     *prometheus.GaugeVec // poolboy_concourse_up{concourse}: a series from the first lookup on
	lastOK *prometheus.GaugeVec // poolboy_concourse_last_success_timestamp_seconds{concourse}: from the first success on
}

func newCCGauges(reg prometheus.Registerer) *ccGauges {
	g := &ccGauges{
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poolboy_concourse_up",
			Help: "1 when the last Concourse lookup got an answer (a build, or a 404), 0 when it failed (unreachable, 5xx, login failed, 401, malformed): then the timeouts decide alone. Absent before the first lookup.",
		}, []string{"concourse"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "poolboy_concourse_last_success_timestamp_seconds",
			Help: "Unix time of the last Concourse lookup that got an answer. Absent before the first.",
		}, []string{"concourse"}),
	}
	reg.MustRegister(g.up, g.lastOK)
	return g
}

// answered says whether err (from a lookup) is an answer from a working
// Concourse: nothing, or a 404, 400 or 403 about the thing asked for.
func answered(err error) bool {
	var se *concourse.StatusError
	switch {
	case err == nil, errors.Is(err, concourse.ErrNotFound):
		return true
	case errors.As(err, &se):
		return se.Code == http.StatusBadRequest || se.Code == http.StatusForbidden
	}
	return false
}

// record notes the outcome of one lookup made at now.
func (h *ccHealth) record(now time.Time, err error) {
	if errors.Is(err, context.Canceled) {
		return // the daemon is stopping: no verdict on Concourse
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.looked = true
	if answered(err) {
		h.ok, h.lastGood, h.downSince, h.lastErr = true, now, time.Time{}, ""
		h.up.WithLabelValues(h.url).Set(1)
		h.lastOK.WithLabelValues(h.url).Set(float64(now.UnixNano()) / 1e9)
		return
	}
	if h.ok || h.downSince.IsZero() {
		h.downSince = now
	}
	h.ok, h.lastErr = false, err.Error()
	h.up.WithLabelValues(h.url).Set(0)
}

// ConcourseDoc is the Concourse part of /api/pools.
type ConcourseDoc struct {
	URL         string     `json:"url"`
	Up          *bool      `json:"up"`           // null before the first lookup
	LastSuccess *time.Time `json:"last_success"` // the last lookup that got an answer
	DownSince   *time.Time `json:"down_since"`   // the first failed lookup since then; null while up
	LastError   string     `json:"last_error,omitempty"`
}

func (h *ccHealth) doc() *ConcourseDoc {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := &ConcourseDoc{URL: h.url, LastSuccess: timePtr(h.lastGood), DownSince: timePtr(h.downSince), LastError: h.lastErr}
	if h.looked {
		up := h.ok
		d.Up = &up
	}
	return d
}

// warning says, when the last lookup failed, since when Concourse has not
// answered and what that means; "" otherwise.
func (d ConcourseDoc) warning(now time.Time) string {
	if d.Up == nil || *d.Up {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Concourse %s has not answered since %s (%s)", d.URL, stamp(*d.DownSince), ago(now, *d.DownSince))
	if d.LastSuccess != nil {
		fmt.Fprintf(&b, "; last good answer %s", ago(now, *d.LastSuccess))
	} else {
		b.WriteString("; no good answer since the daemon started")
	}
	fmt.Fprintf(&b, ": %s. Until it answers, the timeouts decide alone: a running build's lock held past its pool's timeout is freed.", d.LastError)
	return b.String()
}

// ccWarnings are the warnings about the Concourses now, one per Concourse not answering.
func (d *Daemon) ccWarnings() []string {
	var warns []string
	for _, h := range d.health {
		if w := h.doc().warning(d.now()); w != "" {
			warns = append(warns, w)
		}
	}
	return warns
}

// ccDocs is the health of every Concourse, for /api/pools.
func (d *Daemon) ccDocs() []*ConcourseDoc {
	docs := []*ConcourseDoc{}
	for _, h := range d.health {
		docs = append(docs, h.doc())
	}
	return docs
}
