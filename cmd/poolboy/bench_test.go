package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// The contention benchmark of issue #4, recorded in docs/BENCHMARKS.md:
//
//	go test -run XXX -bench Contention -benchtime 1x ./cmd/poolboy
//
// builders `out` processes (the built binary, through /opt/resource/out) start at
// the same moment on a pool of 2 locks served by `git daemon`; each acquires a lock,
// holds it for hold (the workload), then does what Concourse does after a put: the
// implicit get (`in` of the version into DIR/<step>) and a put with release: <step>.
// The remote is reached through a counting TCP proxy, so every git request (one
// git:// connection each: ls-remote and fetch are upload-pack, push is receive-pack)
// and its bytes both ways are counted; the acquires go through one proxy and the
// get/release through another, so the acquire's own cost is known exactly.
const (
	builders   = 10
	poolLocks  = 2
	hold       = 5 * time.Second
	retryDelay = "10s"
)

func BenchmarkContention(b *testing.B) {
	testenv.RequireCommand(b, "git")
	testenv.RequireCommand(b, "go")
	res := optResource(b)
	for _, commits := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("history=%d", commits), func(b *testing.B) {
			benchContention(b, res, commits)
		})
	}
}

func benchContention(b *testing.B, res string, commits int) {
	root := b.TempDir()
	bare := filepath.Join(root, "locks.git")
	if err := fixture.Build(context.Background(), bare, lockRepo(commits, time.Now())); err != nil {
		b.Fatal(err)
	}
	testenv.Git(b, bare, "repack", "-adq") // as a server's repository is after gc
	base := testenv.GitDaemon(b, root)
	daemon := strings.TrimSuffix(strings.TrimPrefix(base, "git://"), "/")
	acquireProxy := startCountingProxy(b, daemon)
	cycleProxy := startCountingProxy(b, daemon)
	refProxy := startCountingProxy(b, daemon)

	// What upstream downloads at the least per acquire: its out clones the whole
	// history. One full clone through a proxy, for reference.
	testenv.Git(b, "", "clone", "-q", "--bare", "git://"+refProxy.addr+"/locks.git", filepath.Join(b.TempDir(), "full.git"))
	fullClone := refProxy.snapshot()

	var (
		wall     time.Duration
		handoffs []time.Duration
		acqStats proxyStats
		allStats proxyStats
		races    int
		waits    int
	)
	b.ResetTimer()
	for range b.N {
		acquireProxy.reset()
		cycleProxy.reset()
		start := testenv.Git(b, bare, "rev-parse", "main")
		r := contend(b, res, "git://"+acquireProxy.addr+"/locks.git", "git://"+cycleProxy.addr+"/locks.git")
		b.StopTimer()
		checkHistory(b, bare, start)
		wall += r.wall
		handoffs = append(handoffs, r.handoffs...)
		races += r.races
		waits += r.waits
		a := acquireProxy.snapshot()
		c := cycleProxy.snapshot()
		acqStats.add(a)
		allStats.add(a)
		allStats.add(c)
		b.StartTimer()
	}
	b.StopTimer()

	acquires := float64(b.N * builders)
	slices.Sort(handoffs)
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s")
	b.ReportMetric(percentile(handoffs, 50).Seconds(), "handoff-p50-s")
	b.ReportMetric(handoffs[len(handoffs)-1].Seconds(), "handoff-max-s")
	b.ReportMetric(float64(acqStats.conns["upload-pack"])/acquires, "upload-pack/acquire")
	b.ReportMetric(float64(acqStats.conns["receive-pack"])/acquires, "receive-pack/acquire")
	b.ReportMetric(float64(acqStats.bytes())/acquires, "bytes/acquire")
	b.ReportMetric(float64(allStats.conns["upload-pack"])/acquires, "cycle-upload-pack/acquire")
	b.ReportMetric(float64(allStats.conns["receive-pack"])/acquires, "cycle-receive-pack/acquire")
	b.ReportMetric(float64(allStats.bytes())/acquires, "cycle-bytes/acquire")
	b.ReportMetric(float64(fullClone.bytes()), "full-clone-bytes")
	b.ReportMetric(float64(races)/acquires, "lost-races/acquire")
	b.ReportMetric(float64(waits)/acquires, "waits/acquire")
	b.Logf("history %d commits: hand-offs %v", commits, roundAll(handoffs))
	for _, svc := range []string{"upload-pack", "receive-pack"} {
		b.Logf("%s: acquires %d requests, %d B up, %d B down; whole cycles %d requests, %d B up, %d B down",
			svc, acqStats.conns[svc], acqStats.in[svc], acqStats.out[svc], allStats.conns[svc], allStats.in[svc], allStats.out[svc])
	}
}

// lockRepo is pool P with two free locks, after commits commits of claim/release churn.
func lockRepo(commits int, end time.Time) fixture.Spec {
	locks := []string{"lock-a", "lock-b"}
	at := end.Add(-time.Duration(commits) * time.Minute)
	tick := func() time.Time { at = at.Add(time.Minute); return at }
	spec := fixture.Spec{Branch: "main", Pools: []string{"P"}, Start: tick()}
	for i, l := range locks {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Add, Pool: "P", Lock: l, At: tick(),
			Content: fmt.Sprintf(`{"ip":"10.0.0.%d"}`, i+1)})
	}
	for i := 0; len(spec.Ops)+2 < commits; i++ {
		l := locks[i%len(locks)]
		msg := fmt.Sprintf("main/busy/test build %d ", i+1)
		spec.Ops = append(spec.Ops,
			fixture.Op{Kind: fixture.Claim, Pool: "P", Lock: l, At: tick(), Message: msg + "claiming: " + l},
			fixture.Op{Kind: fixture.Release, Pool: "P", Lock: l, At: tick(), Message: msg + "unclaiming: " + l})
	}
	return spec
}

type contention struct {
	wall         time.Duration
	handoffs     []time.Duration // for every acquire after the first poolLocks
	races, waits int             // lost push races and "no lock available" waits, over all acquires
}

type event struct {
	lock string
	at   time.Time
}

// contend runs one round: builders processes acquire through acquireURI at once,
// hold, then get and release through cycleURI.
func contend(b *testing.B, res, acquireURI, cycleURI string) contention {
	b.Helper()
	source := func(uri string) map[string]any {
		return map[string]any{"uri": uri, "branch": "main", "pool": "P", "retry_delay": retryDelay}
	}
	var (
		mu       sync.Mutex
		acquired []event
		released []event
		r        contention
		wg       sync.WaitGroup
		errs     = make([]error, builders)
	)
	gate := make(chan struct{})
	for i := range builders {
		work := b.TempDir()
		env := []string{
			"BUILD_ID=" + strconv.Itoa(1000+i), "BUILD_NAME=" + strconv.Itoa(i+1), "BUILD_TEAM_NAME=main",
			"BUILD_PIPELINE_NAME=bench", "BUILD_JOB_NAME=" + fmt.Sprintf("job-%d", i), "ATC_EXTERNAL_URL=https://ci.example.com",
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			acq, err := runScript(filepath.Join(res, "out"), map[string]any{"source": source(acquireURI), "params": map[string]any{"acquire": true}}, env, work)
			if err != nil {
				errs[i] = fmt.Errorf("acquire: %v", err)
				return
			}
			gotAt := time.Now()
			var ans struct {
				Version  map[string]string `json:"version"`
				Metadata []struct{ Name, Value string }
			}
			if err := json.Unmarshal([]byte(acq.stdout), &ans); err != nil || ans.Version["ref"] == "" {
				errs[i] = fmt.Errorf("acquire answer %q: %v", acq.stdout, err)
				return
			}
			lock := ""
			for _, m := range ans.Metadata {
				if m.Name == "lock_name" {
					lock = m.Value
				}
			}
			mu.Lock()
			acquired = append(acquired, event{lock, gotAt})
			r.races += strings.Count(acq.stderr, "someone else pushed first")
			r.waits += strings.Count(acq.stderr, "no lock available")
			mu.Unlock()

			time.Sleep(hold) // the job's work while it holds the lock, not synchronisation

			step := filepath.Join(work, "lock")
			if _, err := runScript(filepath.Join(res, "in"), map[string]any{"source": source(cycleURI), "version": ans.Version}, env, step); err != nil {
				errs[i] = fmt.Errorf("in: %v", err)
				return
			}
			if _, err := runScript(filepath.Join(res, "out"), map[string]any{"source": source(cycleURI), "params": map[string]any{"release": "lock"}}, env, work); err != nil {
				errs[i] = fmt.Errorf("release: %v", err)
				return
			}
			mu.Lock()
			released = append(released, event{lock, time.Now()})
			mu.Unlock()
		}()
	}
	began := time.Now()
	close(gate)
	wg.Wait()
	r.wall = time.Since(began)
	for i, err := range errs {
		if err != nil {
			b.Fatalf("builder %d: %v", i, err)
		}
	}
	// The k-th acquire of a lock got it from the (k-1)-th release of that lock.
	byLock := func(evs []event) map[string][]time.Time {
		m := map[string][]time.Time{}
		for _, e := range evs {
			m[e.lock] = append(m[e.lock], e.at)
		}
		for _, ts := range m {
			slices.SortFunc(ts, time.Time.Compare)
		}
		return m
	}
	acqs, rels := byLock(acquired), byLock(released)
	for lock, ts := range acqs {
		for k := 1; k < len(ts); k++ {
			r.handoffs = append(r.handoffs, ts[k].Sub(rels[lock][k-1]))
		}
	}
	if len(r.handoffs) != builders-poolLocks {
		b.Fatalf("%d hand-offs, want %d (acquired %v)", len(r.handoffs), builders-poolLocks, acquired)
	}
	return r
}

type scriptResult struct{ stdout, stderr string }

// runScript runs one resource script as Concourse does: request on stdin, the
// directory as the argument, BUILD_* in the environment.
func runScript(path string, request any, env []string, dir string) (scriptResult, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return scriptResult{}, err
	}
	home, err := os.MkdirTemp("", "poolboy-bench-home-")
	if err != nil {
		return scriptResult{}, err
	}
	defer os.RemoveAll(home)
	cmd := exec.Command(path, dir)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	res := scriptResult{stdout.String(), stderr.String()}
	if err != nil {
		return res, fmt.Errorf("%s: %v\n%s", filepath.Base(path), err, res.stderr)
	}
	return res, nil
}

// checkHistory makes sure the round did what it should: builders claims and as
// many releases, each lock alternating claimed/released, both free at the end.
func checkHistory(b *testing.B, bare, start string) {
	b.Helper()
	log := testenv.Git(b, bare, "log", "--reverse", "--format=%s", start+"..main")
	state := map[string]bool{}
	claims := 0
	for _, s := range strings.Split(log, "\n") {
		_, lock, ok := strings.Cut(s, "claiming: ")
		if !ok {
			b.Fatalf("unexpected commit %q", s)
		}
		claim := !strings.Contains(s, "unclaiming: ")
		if state[lock] == claim {
			b.Fatalf("lock %s claimed twice or released while free:\n%s", lock, log)
		}
		state[lock] = claim
		if claim {
			claims++
		}
	}
	if claims != builders || state["lock-a"] || state["lock-b"] {
		b.Fatalf("%d claims (want %d), end state %v:\n%s", claims, builders, state, log)
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	// Nearest rank.
	i := (p*len(sorted) + 99) / 100
	return sorted[max(i-1, 0)]
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// proxyStats counts git:// requests by service ("upload-pack", "receive-pack")
// and their bytes, both ways.
type proxyStats struct {
	conns map[string]int
	in    map[string]int64 // client -> daemon
	out   map[string]int64 // daemon -> client
}

func (s *proxyStats) add(o proxyStats) {
	if s.conns == nil {
		s.conns, s.in, s.out = map[string]int{}, map[string]int64{}, map[string]int64{}
	}
	for k, v := range o.conns {
		s.conns[k] += v
	}
	for k, v := range o.in {
		s.in[k] += v
	}
	for k, v := range o.out {
		s.out[k] += v
	}
}

func (s proxyStats) bytes() int64 {
	var n int64
	for _, v := range s.in {
		n += v
	}
	for _, v := range s.out {
		n += v
	}
	return n
}

// countingProxy forwards loopback TCP to the git daemon, reading each
// connection's first pkt-line ("git-upload-pack /locks.git\0host=...") to tell
// the service.
type countingProxy struct {
	addr   string
	mu     sync.Mutex
	stats  proxyStats
	active sync.WaitGroup
}

func startCountingProxy(b *testing.B, target string) *countingProxy {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &countingProxy{addr: l.Addr().String()}
	p.reset()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.active.Add(1)
			go p.serve(c, target)
		}
	}()
	b.Cleanup(func() {
		l.Close()
		<-done
		p.active.Wait()
	})
	return p
}

func (p *countingProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = proxyStats{conns: map[string]int{}, in: map[string]int64{}, out: map[string]int64{}}
}

// snapshot waits for the connections in flight (their clients have exited) and
// returns the counts so far.
func (p *countingProxy) snapshot() proxyStats {
	p.active.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	var s proxyStats
	s.add(p.stats)
	return s
}

func (p *countingProxy) serve(client net.Conn, target string) {
	defer p.active.Done()
	defer client.Close()
	br := bufio.NewReader(client)
	service := "unknown"
	if hdr, err := br.Peek(4); err == nil {
		if n, err := strconv.ParseUint(string(hdr), 16, 16); err == nil && n >= 4 {
			if line, err := br.Peek(int(n)); err == nil {
				svc, _, _ := strings.Cut(string(line[4:]), " ")
				service = strings.TrimPrefix(svc, "git-")
			}
		}
	}
	server, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer server.Close()
	var up, down int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(server, br)
		atomic.AddInt64(&up, n)
		server.(*net.TCPConn).CloseWrite()
	}()
	n, _ := io.Copy(client, server)
	atomic.AddInt64(&down, n)
	client.(*net.TCPConn).CloseWrite()
	// The daemon is done; a client that does not hang up must not hold the count.
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	wg.Wait()
	p.mu.Lock()
	p.stats.conns[service]++
	p.stats.in[service] += atomic.LoadInt64(&up)
	p.stats.out[service] += atomic.LoadInt64(&down)
	p.mu.Unlock()
}
