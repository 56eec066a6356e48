package watch

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/queue"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// Issue 13: /metrics has each pool's queue length, and the waits of the tickets
// that left the queue between two cycles: from each one's enqueue time to the
// cycle that no longer saw it.
func TestQueueMetrics(t *testing.T) {
	now := time.Now()
	dir := remote(t,
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-1", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Add, Pool: "aws", Lock: "env-2", At: now.Add(-2 * time.Hour)},
		fixture.Op{Kind: fixture.Claim, Pool: "aws", Lock: "env-1", At: now.Add(-time.Minute)})
	c := testenv.NewClone(t, "file://"+dir, "main")
	write := func(tk queue.Ticket) {
		p := filepath.Join(c.Dir, filepath.FromSlash(queue.Path("aws", tk.ID)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, tk.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	enqueued := now.Add(-10 * time.Minute)
	for i, id := range []string{"first", "second"} {
		write(queue.Ticket{ID: id, Seq: int64(i + 1), Enqueued: enqueued, Expires: now.Add(time.Hour),
			Want: []queue.Want{{Acquire: true}}, Holder: queue.Holder{Team: "main", Pipeline: "p", Job: "j", Build: id}})
	}
	testenv.Git(t, c.Dir, "add", "-A")
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "two puts wait")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/main")

	d := start(t, config(t, dir, time.Hour), Options{})
	if st := d.waitCycles(t, "locks", 1); st.LastError != "" {
		t.Fatalf("first cycle: %s", st.LastError)
	}
	_, m := d.get(t, "/metrics")
	if !strings.Contains(m, `poolboy_queue_length{pool="aws",repo="locks"} 2`) {
		t.Errorf("/metrics lacks the queue's length of 2:\n%s", m)
	}
	if strings.Contains(m, `poolboy_queue_wait_seconds_count{pool="aws"`) {
		t.Errorf("a wait observed before any ticket left:\n%s", m)
	}

	// The first is granted: its claim commit takes env-2 and deletes its ticket.
	testenv.Git(t, c.Dir, "mv", "aws/unclaimed/env-2", "aws/claimed/env-2")
	testenv.Git(t, c.Dir, "rm", "-q", queue.Path("aws", "first"))
	testenv.Git(t, c.Dir, "commit", "-q", "-m", "main/p/j build first claiming: env-2")
	testenv.Git(t, c.Dir, "push", "-q", "origin", "HEAD:refs/heads/main")
	body := []byte(`{"ref":"refs/heads/main","after":"0123"}`)
	if code, answer := d.webhook(t, "locks", body, githubHeaders(body, "hook-secret")); code != http.StatusAccepted {
		t.Fatalf("webhook: %d %s", code, answer)
	}
	if st := d.waitCycles(t, "locks", 2); st.LastError != "" {
		t.Fatalf("second cycle: %s", st.LastError)
	}
	_, m = d.get(t, "/metrics")
	if !strings.Contains(m, `poolboy_queue_length{pool="aws",repo="locks"} 1`) ||
		!strings.Contains(m, `poolboy_queue_wait_seconds_count{pool="aws",repo="locks"} 1`) ||
		!strings.Contains(m, `poolboy_queue_wait_seconds_bucket{pool="aws",repo="locks",le="300"} 0`) ||
		!strings.Contains(m, `poolboy_queue_wait_seconds_bucket{pool="aws",repo="locks",le="1200"} 1`) {
		t.Errorf("/metrics after the first was granted: want a length of 1 and one wait of about 10m:\n%s", m)
	}
	sum := regexp.MustCompile(`poolboy_queue_wait_seconds_sum\{pool="aws",repo="locks"\} (\S+)`).FindStringSubmatch(m)
	if sum == nil {
		t.Fatalf("no wait sum:\n%s", m)
	}
	if v, err := strconv.ParseFloat(sum[1], 64); err != nil || v < (10*time.Minute).Seconds() || v > time.Since(enqueued).Seconds() {
		t.Errorf("waited %s s, want between 600 and %v", sum[1], time.Since(enqueued).Seconds())
	}
}
