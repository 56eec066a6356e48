// Package metrics pushes the pool resource's metrics to a Prometheus
// Pushgateway under the names, types, job and grouping labels of the Pix4D
// fork of the pool resource (github.com/Pix4D/pool-resource, cmd/out), so
// dashboards built for the fork keep working:
//
//   - resource_pool_execution_time: a histogram (default buckets) with one
//     observation, the seconds the operation took, pushed to the group
//     job="concourse_resource_pool", pool, branch, operation;
//   - resource_pool_num_available_locks and resource_pool_num_claimed_locks:
//     gauges, the unclaimed and claimed locks in the pool after the
//     operation, pushed to the group job="concourse_resource_pool", pool,
//     branch (no operation label: the counts are the pool's, whichever
//     operation last reported them).
//
// poolboy adds one family of its own, pushed with the execution time for an
// acquire or claim that went through the queue:
//
//   - poolboy_queue_wait_seconds: a histogram (QueueWaitBuckets) with one
//     observation, the seconds from the put's first ticket to its claim (0 for a
//     put granted at once, which writes no ticket).
//
// All are pushed with PUT, as the fork does: each push replaces what its
// group held before.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"

	"github.com/poolboy-ci/poolboy/internal/redact"
)

// Names the fork uses.
const (
	// Job is the Pushgateway job name.
	Job = "concourse_resource_pool"

	ExecutionTimeName  = "resource_pool_execution_time"
	AvailableLocksName = "resource_pool_num_available_locks"
	ClaimedLocksName   = "resource_pool_num_claimed_locks"

	// QueueWaitName is poolboy's: the resource pushes it (job Job) and the watch
	// daemon serves it (on /metrics), each with its own labels.
	QueueWaitName = "poolboy_queue_wait_seconds"
)

// QueueWaitBuckets are the wait histograms' buckets, in seconds: waits for a lock
// last from nothing to hours.
var QueueWaitBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400}

// Operation label values: the first seven are the fork's, one per out
// param; the fork has no check/check_unclaimed, whose names follow its
// pattern.
const (
	OpAcquire        = "acquire_lock"
	OpClaim          = "claim_lock"
	OpRelease        = "release_lock"
	OpAdd            = "add_unclaimed_lock"
	OpAddClaimed     = "add_claimed_lock"
	OpRemove         = "remove_lock"
	OpUpdate         = "update_lock"
	OpCheck          = "check_lock"
	OpCheckUnclaimed = "check_unclaimed_lock"
	OpReap           = "reap_locks" // poolboy's reap: true
)

// Timeout bounds a whole Push (both requests), so a dead or slow gateway
// delays a put by at most this long.
const Timeout = 5 * time.Second

// pushTimeout is Timeout; tests shorten it.
var pushTimeout = Timeout

// Measurement is what one pool operation reports.
type Measurement struct {
	// Pool, Branch and Operation become the grouping labels pool, branch
	// and operation (Operation only for the execution time).
	Pool, Branch, Operation string
	// Duration is how long the operation took.
	Duration time.Duration
	// Available and Claimed are the pool's unclaimed and claimed locks
	// after the operation.
	Available, Claimed int
	// Queued says the operation went through the queue (an acquire or claim);
	// QueueWait is then how long it waited there.
	Queued    bool
	QueueWait time.Duration
}

// Push sends m to the Pushgateway at gatewayURL (the pool resource's
// prometheus_push_gateway: "http(s)://host:port[/prefix]", or "host:port",
// which means http). User information in the URL
// ("https://user:password@host") is sent as HTTP basic auth and never
// appears in an error. Push uses a fresh registry (never the default one)
// and gives up after Timeout or when ctx ends. Errors are one line.
func Push(ctx context.Context, gatewayURL string, m Measurement) error {
	base, user, pass, err := parseGateway(gatewayURL)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, pushTimeout)
	defer cancel()
	client := &http.Client{Timeout: pushTimeout}

	pusher := func(reg *prometheus.Registry) *push.Pusher {
		p := push.New(base, Job).Gatherer(reg).Client(client).
			Grouping("pool", m.Pool).
			Grouping("branch", m.Branch) // lets dashboards filter out test branches
		if user != nil {
			p = p.BasicAuth(user.Username(), pass)
		}
		return p
	}

	execTime := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: ExecutionTimeName,
		Help: "Execution time of the current operation",
	})
	execTime.Observe(m.Duration.Seconds())
	reg := prometheus.NewRegistry()
	reg.MustRegister(execTime)
	if m.Queued {
		wait := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    QueueWaitName,
			Help:    "How long the put waited in the pool's queue, from its first ticket to its claim",
			Buckets: QueueWaitBuckets,
		})
		wait.Observe(m.QueueWait.Seconds())
		reg.MustRegister(wait)
	}
	if err := pusher(reg).Grouping("operation", m.Operation).PushContext(ctx); err != nil {
		return newError(base, pass, err)
	}

	available := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: AvailableLocksName,
		Help: "The number of unclaimed locks in the current pool",
	})
	available.Set(float64(m.Available))
	claimed := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: ClaimedLocksName,
		Help: "The number of claimed locks in the current pool",
	})
	claimed.Set(float64(m.Claimed))
	reg = prometheus.NewRegistry()
	reg.MustRegister(available, claimed)
	if err := pusher(reg).PushContext(ctx); err != nil {
		return newError(base, pass, err)
	}
	return nil
}

// CheckGateway says what is wrong with a push gateway URL, without contacting it,
// so a bad one is bad usage before any work is done.
func CheckGateway(raw string) error {
	_, _, _, err := parseGateway(raw)
	return err
}

// parseGateway splits the user information off the gateway URL, the way git
// splits a repository URL (redact.SplitURL), so a password url.Parse would refuse
// still works and never reaches url's errors.
func parseGateway(raw string) (base string, user *url.Userinfo, pass string, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil, "", errors.New("metrics: no push gateway URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw // as push.New does
	}
	split := redact.SplitURL(raw)
	u, err := url.Parse(split.WithoutUserinfo())
	if err != nil {
		return "", nil, "", fmt.Errorf("metrics: invalid push gateway URL %s", split.Masked())
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", nil, "", fmt.Errorf("metrics: push gateway URL scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", nil, "", errors.New("metrics: push gateway URL has no host")
	}
	if split.HasUserinfo {
		var name string
		name, pass, _ = split.User()
		user = url.UserPassword(name, pass)
	}
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimSuffix(u.String(), "/"), user, pass, nil
}

// Error is a failed push. Its message is one line, names the gateway
// without credentials and never contains the password.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }

// Unwrap gives the underlying error (e.g. context.DeadlineExceeded).
func (e *Error) Unwrap() error { return e.err }

func newError(base, pass string, err error) error {
	// A gateway's body may span lines: one line, secrets out, then short.
	msg := redact.Truncate(strings.Join(strings.Fields(redact.New(pass).String(err.Error())), " "), 300)
	return &Error{msg: fmt.Sprintf("metrics: push to %s: %s", base, msg), err: err}
}
