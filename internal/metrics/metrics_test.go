package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// sample is one line of the text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// parseExposition parses the text format as the Pushgateway writes it
// (no escapes inside the label values used here, no timestamps).
func parseExposition(t *testing.T, text string) []sample {
	t.Helper()
	var out []sample
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			s.name = line[:i]
			for _, kv := range splitLabels(line[i+1 : j]) {
				k, v, _ := strings.Cut(kv, "=")
				uv, err := strconv.Unquote(v)
				if err != nil {
					t.Fatalf("label %q in %q: %v", kv, line, err)
				}
				s.labels[k] = uv
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			t.Fatalf("value in %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits `a="x",b="y,z"` on the commas outside quotes.
func splitLabels(s string) []string {
	var parts []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			inQuote = !inQuote
		case ',':
			if !inQuote {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		parts = append(parts, s[start:])
	}
	return parts
}

// find returns the samples named name whose labels are exactly labels.
func find(samples []sample, name string, labels map[string]string) []sample {
	var out []sample
next:
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels) {
			continue
		}
		for k, v := range labels {
			if s.labels[k] != v {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

func expectValue(t *testing.T, samples []sample, name string, labels map[string]string, want float64) {
	t.Helper()
	got := find(samples, name, labels)
	if len(got) != 1 {
		var same []string
		for _, s := range samples {
			if s.name == name {
				same = append(same, fmt.Sprint(s.labels, " ", s.value))
			}
		}
		t.Errorf("%s%v: found %d samples, want 1; samples of that name: %q", name, labels, len(got), same)
		return
	}
	if got[0].value != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got[0].value, want)
	}
}

func TestPushToPushgateway(t *testing.T) {
	pg := testenv.Pushgateway(t)
	ctx := context.Background()

	// A branch with a slash: grouping values are base64-encoded in the
	// push URL and must come back intact.
	m := Measurement{Pool: "aws", Branch: "feature/locks", Operation: OpAcquire,
		Duration: 1500 * time.Millisecond, Available: 3, Claimed: 2}
	if err := Push(ctx, pg.URL, m); err != nil {
		t.Fatalf("Push: %v", err)
	}
	text := pg.Metrics(t)
	for _, typ := range []string{
		"# TYPE resource_pool_execution_time histogram",
		"# TYPE resource_pool_num_available_locks gauge",
		"# TYPE resource_pool_num_claimed_locks gauge",
	} {
		if !strings.Contains(text, typ+"\n") {
			t.Errorf("/metrics lacks %q", typ)
		}
	}
	samples := parseExposition(t, text)
	exec := func(op string) map[string]string {
		return map[string]string{"job": Job, "instance": "", "pool": "aws", "branch": "feature/locks", "operation": op}
	}
	pool := map[string]string{"job": Job, "instance": "", "pool": "aws", "branch": "feature/locks"}
	expectValue(t, samples, ExecutionTimeName+"_sum", exec(OpAcquire), 1.5)
	expectValue(t, samples, ExecutionTimeName+"_count", exec(OpAcquire), 1)
	inf := exec(OpAcquire)
	inf["le"] = "+Inf"
	expectValue(t, samples, ExecutionTimeName+"_bucket", inf, 1)
	expectValue(t, samples, AvailableLocksName, pool, 3)
	expectValue(t, samples, ClaimedLocksName, pool, 2)

	// A second operation: its own execution time group; the lock counts
	// (grouped by pool and branch only) are replaced. The gateway URL
	// without a scheme means http, as in the fork.
	m = Measurement{Pool: "aws", Branch: "feature/locks", Operation: OpRelease,
		Duration: 250 * time.Millisecond, Available: 4, Claimed: 1}
	if err := Push(ctx, strings.TrimPrefix(pg.URL, "http://"), m); err != nil {
		t.Fatalf("Push without scheme: %v", err)
	}
	samples = parseExposition(t, pg.Metrics(t))
	expectValue(t, samples, ExecutionTimeName+"_sum", exec(OpAcquire), 1.5)
	expectValue(t, samples, ExecutionTimeName+"_sum", exec(OpRelease), 0.25)
	expectValue(t, samples, ExecutionTimeName+"_count", exec(OpRelease), 1)
	expectValue(t, samples, AvailableLocksName, pool, 4)
	expectValue(t, samples, ClaimedLocksName, pool, 1)
	if n := len(find(samples, AvailableLocksName, pool)); n != 1 {
		t.Errorf("%d available-locks series for the pool, want 1", n)
	}
}

// authProxy puts HTTP basic auth (user/pass) in front of the real gateway.
func authProxy(t *testing.T, gateway, user, pass string) string {
	t.Helper()
	target, err := url.Parse(gateway)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="pushgateway"`)
			http.Error(w, "Unauthorized\nplease log in", http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestPushBasicAuthFromURL(t *testing.T) {
	pg := testenv.Pushgateway(t)
	const user, pass = "bot", "s3cr/t p@ss:word"
	base := authProxy(t, pg.URL, user, pass)
	withCreds := func(p string) string {
		u, _ := url.Parse(base)
		u.User = url.UserPassword(user, p)
		return u.String()
	}
	m := Measurement{Pool: "gpu", Branch: "main", Operation: OpClaim, Duration: time.Second, Available: 1, Claimed: 5}

	if err := Push(context.Background(), withCreds(pass), m); err != nil {
		t.Fatalf("Push with credentials: %v", err)
	}
	samples := parseExposition(t, pg.Metrics(t))
	expectValue(t, samples, ClaimedLocksName,
		map[string]string{"job": Job, "instance": "", "pool": "gpu", "branch": "main"}, 5)

	// Without credentials, and with the wrong ones: a one-line error with
	// no password in it.
	for _, gw := range []string{base, withCreds("wrong-" + pass)} {
		err := Push(context.Background(), gw, m)
		if err == nil {
			t.Fatalf("Push to %s succeeded without the right credentials", base)
		}
		msg := err.Error()
		if !strings.Contains(msg, "401") || strings.ContainsAny(msg, "\n\r") {
			t.Errorf("error = %q, want one line naming the 401", msg)
		}
		for _, secret := range []string{pass, url.QueryEscape(pass), url.PathEscape(pass), "wrong-"} {
			if strings.Contains(msg, secret) {
				t.Errorf("error %q contains the secret %q", msg, secret)
			}
		}
		if !strings.Contains(msg, strings.TrimPrefix(base, "http://")) {
			t.Errorf("error %q does not name the gateway %s", msg, base)
		}
		var perr *Error
		if !errors.As(err, &perr) {
			t.Errorf("error %T is not a *metrics.Error", err)
		}
	}
}

func TestPushUnreachableGateway(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	start := time.Now()
	err := Push(context.Background(), fmt.Sprintf("http://bot:hunter2@127.0.0.1:%d", port),
		Measurement{Pool: "aws", Branch: "main", Operation: OpAcquire})
	if err == nil {
		t.Fatal("Push to a closed port succeeded")
	}
	if d := time.Since(start); d > Timeout {
		t.Errorf("Push to a closed port took %v, want < %v", d, Timeout)
	}
	msg := err.Error()
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "bot:") || strings.ContainsAny(msg, "\n\r") {
		t.Errorf("error = %q, want one line without credentials", msg)
	}
	if !strings.Contains(msg, fmt.Sprintf("127.0.0.1:%d", port)) || !strings.Contains(msg, "refused") {
		t.Errorf("error = %q, want the gateway address and the reason", msg)
	}
}

// hangingServer accepts connections and never answers.
func hangingServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + l.Addr().String()
}

func TestPushTimeoutAndCancel(t *testing.T) {
	gw := hangingServer(t)
	m := Measurement{Pool: "aws", Branch: "main", Operation: OpAcquire}

	// The internal timeout bounds a push to a gateway that never answers.
	saved := pushTimeout
	pushTimeout = 300 * time.Millisecond
	start := time.Now()
	err := Push(context.Background(), gw, m)
	pushTimeout = saved
	if err == nil {
		t.Fatal("Push to a gateway that never answers succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Push took %v with a 300ms timeout", d)
	}
	if strings.ContainsAny(err.Error(), "\n\r") {
		t.Errorf("error = %q, want one line", err)
	}

	// The caller's context ends it sooner than Timeout too.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = Push(ctx, gw, m)
	if err == nil {
		t.Fatal("Push with an expiring context succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Push took %v with a 200ms context", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v is not context.DeadlineExceeded", err)
	}
}

func TestPushServerErrorIsOneLine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "pushed metrics are invalid or inconsistent\nwith existing metrics\n\tdetails", http.StatusBadRequest)
	}))
	defer srv.Close()
	err := Push(context.Background(), srv.URL, Measurement{Pool: "aws", Branch: "main", Operation: OpAcquire})
	if err == nil {
		t.Fatal("Push to a gateway answering 400 succeeded")
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r\t") || !strings.Contains(msg, "400") || !strings.Contains(msg, "inconsistent with existing metrics") {
		t.Errorf("error = %q, want one line with the status and the gateway's reason", msg)
	}
}

func TestPushBadURL(t *testing.T) {
	for _, gw := range []string{"", "ftp://host:21", "http://bot:s3cret@%zz:1", "http://"} {
		err := Push(context.Background(), gw, Measurement{Pool: "aws"})
		if err == nil {
			t.Errorf("Push(%q) succeeded", gw)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Push(%q) error %q contains the password", gw, err)
		}
	}
}

func TestParseGateway(t *testing.T) {
	for _, c := range []struct{ in, base, user, pass string }{
		{"http://127.0.0.1:9091", "http://127.0.0.1:9091", "", ""},
		{"127.0.0.1:9091/", "http://127.0.0.1:9091", "", ""},
		{"https://bot:p%40ss@pgw.example.com/prefix/", "https://pgw.example.com/prefix", "bot", "p@ss"},
		{"https://token@pgw.example.com", "https://pgw.example.com", "token", ""},
		{"https://bot:pa^ss{1}@pgw.example.com:9091", "https://pgw.example.com:9091", "bot", "pa^ss{1}"}, // url.Parse refuses the password, git-like splitting does not
		{"http://bot:50%zzoff@127.0.0.1:9091", "http://127.0.0.1:9091", "bot", "50%zzoff"},
	} {
		base, user, pass, err := parseGateway(c.in)
		if err != nil {
			t.Errorf("parseGateway(%q): %v", c.in, err)
			continue
		}
		var u string
		if user != nil {
			u = user.Username()
		}
		if base != c.base || u != c.user || pass != c.pass {
			t.Errorf("parseGateway(%q) = %q, %q, %q; want %q, %q, %q", c.in, base, u, pass, c.base, c.user, c.pass)
		}
	}
}

// An acquire or claim through the queue pushes its wait with its execution time:
// one observation, replaced by the next push of that operation; an operation
// that does not queue pushes none.
func TestPushQueueWait(t *testing.T) {
	pg := testenv.Pushgateway(t)
	ctx := context.Background()
	acquire := map[string]string{"job": Job, "instance": "", "pool": "aws", "branch": "main", "operation": OpAcquire}
	bucket := func(le string) map[string]string {
		l := map[string]string{"le": le}
		for k, v := range acquire {
			l[k] = v
		}
		return l
	}
	m := Measurement{Pool: "aws", Branch: "main", Operation: OpAcquire, Duration: 95 * time.Second, Queued: true, QueueWait: 90 * time.Second}
	if err := Push(ctx, pg.URL, m); err != nil {
		t.Fatal(err)
	}
	text := pg.Metrics(t)
	if !strings.Contains(text, "# TYPE "+QueueWaitName+" histogram\n") {
		t.Errorf("/metrics lacks the %s histogram:\n%s", QueueWaitName, text)
	}
	samples := parseExposition(t, text)
	expectValue(t, samples, QueueWaitName+"_sum", acquire, 90)
	expectValue(t, samples, QueueWaitName+"_count", acquire, 1)
	expectValue(t, samples, QueueWaitName+"_bucket", bucket("60"), 0)
	expectValue(t, samples, QueueWaitName+"_bucket", bucket("120"), 1)

	// A release does not queue: no wait of its own.
	if err := Push(ctx, pg.URL, Measurement{Pool: "aws", Branch: "main", Operation: OpRelease, Duration: time.Second}); err != nil {
		t.Fatal(err)
	}
	// Granted at once: a wait of 0 replaces the last.
	m.QueueWait = 0
	if err := Push(ctx, pg.URL, m); err != nil {
		t.Fatal(err)
	}
	samples = parseExposition(t, pg.Metrics(t))
	expectValue(t, samples, QueueWaitName+"_sum", acquire, 0)
	expectValue(t, samples, QueueWaitName+"_count", acquire, 1)
	expectValue(t, samples, QueueWaitName+"_bucket", bucket("1"), 1)
	for _, s := range samples {
		if strings.HasPrefix(s.name, QueueWaitName) && s.labels["operation"] != OpAcquire {
			t.Errorf("a wait pushed for %v", s.labels)
		}
	}
}
