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
	"syscall"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fixture"
	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// The contention benchmarks, recorded in docs/BENCHMARKS.md:
//
//	go test -run XXX -bench Contention -benchtime 1x ./cmd/poolboy   # issue #4, queue: false
//	go test -run XXX -bench Queue -benchtime 1x ./cmd/poolboy        # issue #13, the queue
//
// builders `out` processes (the built binary, through /opt/resource/out) start at
// the same moment (or stagger apart) on a pool of locks served by `git daemon`; each
// acquires a lock, holds it for hold (the workload), then does what Concourse does
// after a put: the implicit get (`in` of the version into DIR/<step>) and a put with
// release: <step>. The remote is reached through a counting TCP proxy, so every git
// request (one git:// connection each: ls-remote and fetch are upload-pack, push is
// receive-pack) and its bytes both ways are counted; the acquires go through one
// proxy and the get/release through another, so the acquire's own cost (enqueue and
// renewals included) is known exactly.
type rig struct {
	builders   int
	locks      int
	hold       time.Duration
	retryDelay string
	queue      bool
	stagger    time.Duration // between arrivals, in builder order; 0: all at once
}

func (c rig) source(uri string) map[string]any {
	return map[string]any{"uri": uri, "branch": "main", "pool": "P", "retry_delay": c.retryDelay, "queue": c.queue}
}

func (c rig) lockNames() []string {
	var names []string
	for i := range c.locks {
		names = append(names, fmt.Sprintf("lock-%c", 'a'+i))
	}
	return names
}

func BenchmarkContention(b *testing.B) {
	testenv.RequireCommand(b, "git")
	testenv.RequireCommand(b, "go")
	res := optResource(b)
	c := rig{builders: 10, locks: 2, hold: 5 * time.Second, retryDelay: "10s"}
	for _, commits := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("history=%d", commits), func(b *testing.B) {
			benchContention(b, res, c, commits)
		})
	}
}

// BenchmarkQueue is issue #13's: the same rig with the queue (and, for comparison,
// without it: "lottery").
func BenchmarkQueue(b *testing.B) {
	testenv.RequireCommand(b, "git")
	testenv.RequireCommand(b, "go")
	res := optResource(b)
	for _, tc := range []struct {
		name string
		rig  rig
	}{
		{"10x2/queue", rig{builders: 10, locks: 2, hold: 5 * time.Second, retryDelay: "10s", queue: true}},
		{"10x2/lottery", rig{builders: 10, locks: 2, hold: 5 * time.Second, retryDelay: "10s"}},
		{"20x3/queue", rig{builders: 20, locks: 3, hold: 3 * time.Second, retryDelay: "10s", queue: true}},
		{"20x3/lottery", rig{builders: 20, locks: 3, hold: 3 * time.Second, retryDelay: "10s"}},
		{"10x2-staggered/queue", rig{builders: 10, locks: 2, hold: 5 * time.Second, retryDelay: "10s", queue: true, stagger: 300 * time.Millisecond}},
		{"10x2-staggered/lottery", rig{builders: 10, locks: 2, hold: 5 * time.Second, retryDelay: "10s", stagger: 300 * time.Millisecond}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchContention(b, res, tc.rig, 100) })
	}
}

func benchContention(b *testing.B, res string, c rig, commits int) {
	root := b.TempDir()
	bare := filepath.Join(root, "locks.git")
	if err := fixture.Build(context.Background(), bare, lockRepo(c.lockNames(), commits, 0, time.Now())); err != nil {
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
		wall       time.Duration
		handoffs   []time.Duration
		getRelease []time.Duration
		acqStats   proxyStats
		allStats   proxyStats
		races      int
		waits      int
		queueOps   int
		inversions int
		fifo       int
	)
	b.ResetTimer()
	for range b.N {
		acquireProxy.reset()
		cycleProxy.reset()
		start := testenv.Git(b, bare, "rev-parse", "main")
		r := contend(b, res, c, "git://"+acquireProxy.addr+"/locks.git", "git://"+cycleProxy.addr+"/locks.git")
		b.StopTimer()
		h := checkHistory(b, bare, start, c)
		wall += r.wall
		handoffs = append(handoffs, r.handoffs...)
		getRelease = append(getRelease, r.getRelease...)
		races += r.races
		waits += r.waits
		queueOps += h.queueCommits
		inversions += h.arrivalInversions
		fifo += h.ticketInversions
		b.Logf("claims in the order they landed (builders by arrival): %v", h.granted)
		a := acquireProxy.snapshot()
		cy := cycleProxy.snapshot()
		acqStats.add(a)
		allStats.add(a)
		allStats.add(cy)
		b.StartTimer()
	}
	b.StopTimer()

	acquires := float64(b.N * c.builders)
	slices.Sort(handoffs)
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s")
	b.ReportMetric(percentile(handoffs, 50).Seconds(), "handoff-p50-s")
	b.ReportMetric(percentile(handoffs, 95).Seconds(), "handoff-p95-s")
	b.ReportMetric(handoffs[len(handoffs)-1].Seconds(), "handoff-max-s")
	slices.Sort(getRelease)
	b.ReportMetric(percentile(getRelease, 50).Seconds(), "get-release-p50-s")
	b.ReportMetric(float64(acqStats.conns["upload-pack"])/acquires, "upload-pack/acquire")
	b.ReportMetric(float64(acqStats.conns["receive-pack"])/acquires, "receive-pack/acquire")
	b.ReportMetric(float64(acqStats.conns["upload-pack"]+acqStats.conns["receive-pack"])/acquires, "requests/acquire")
	b.ReportMetric(float64(acqStats.bytes())/acquires, "bytes/acquire")
	b.ReportMetric(float64(allStats.conns["upload-pack"])/acquires, "cycle-upload-pack/acquire")
	b.ReportMetric(float64(allStats.conns["receive-pack"])/acquires, "cycle-receive-pack/acquire")
	b.ReportMetric(float64(allStats.bytes())/acquires, "cycle-bytes/acquire")
	b.ReportMetric(float64(fullClone.bytes()), "full-clone-bytes")
	b.ReportMetric(float64(races)/acquires, "lost-races/acquire")
	b.ReportMetric(float64(waits)/acquires, "waits/acquire")
	b.ReportMetric(float64(queueOps)/acquires, "queue-commits/acquire")
	if c.stagger > 0 {
		b.ReportMetric(float64(inversions)/float64(b.N), "inversions")
		b.ReportMetric(float64(fifo)/float64(b.N), "ticket-inversions")
	}
	b.Logf("%d builders, %d locks, hold %s, history %d commits: hand-offs %v", c.builders, c.locks, c.hold, commits, roundAll(handoffs))
	for _, svc := range []string{"upload-pack", "receive-pack"} {
		b.Logf("%s: acquires %d requests, %d B up, %d B down; whole cycles %d requests, %d B up, %d B down",
			svc, acqStats.conns[svc], acqStats.in[svc], acqStats.out[svc], allStats.conns[svc], allStats.in[svc], allStats.out[svc])
	}
}

// lockRepo is pool P with the given locks, after commits commits of claim/release
// churn; the first claimed of them are left claimed (by builds that never end).
func lockRepo(locks []string, commits, claimed int, end time.Time) fixture.Spec {
	at := end.Add(-time.Duration(commits) * time.Minute)
	tick := func() time.Time { at = at.Add(time.Minute); return at }
	spec := fixture.Spec{Branch: "main", Pools: []string{"P"}, Start: tick()}
	for i, l := range locks {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Add, Pool: "P", Lock: l, At: tick(),
			Content: fmt.Sprintf(`{"ip":"10.0.0.%d"}`, i+1)})
	}
	for i := 0; len(spec.Ops)+len(locks) < commits; i++ {
		l := locks[i%len(locks)]
		msg := fmt.Sprintf("main/busy/test build %d ", i+1)
		spec.Ops = append(spec.Ops,
			fixture.Op{Kind: fixture.Claim, Pool: "P", Lock: l, At: tick(), Message: msg + "claiming: " + l},
			fixture.Op{Kind: fixture.Release, Pool: "P", Lock: l, At: tick(), Message: msg + "unclaiming: " + l})
	}
	for _, l := range locks[:claimed] {
		spec.Ops = append(spec.Ops, fixture.Op{Kind: fixture.Claim, Pool: "P", Lock: l, At: tick(),
			Message: "main/forever/test build 1 claiming: " + l})
	}
	return spec
}

type contention struct {
	wall         time.Duration
	handoffs     []time.Duration // for every acquire after the first c.locks
	races, waits int             // lost push races and "no lock available" waits, over all acquires
	getRelease   []time.Duration // for every builder, its get and release after the hold
}

type event struct {
	lock string
	at   time.Time
}

// builderEnv is builder i's BUILD_* environment; its BUILD_ID is 1000+i.
func builderEnv(i int) []string {
	return []string{
		"BUILD_ID=" + strconv.Itoa(1000+i), "BUILD_NAME=" + strconv.Itoa(i+1), "BUILD_TEAM_NAME=main",
		"BUILD_PIPELINE_NAME=bench", "BUILD_JOB_NAME=" + fmt.Sprintf("job-%d", i), "ATC_EXTERNAL_URL=https://ci.example.com",
	}
}

// contend runs one round: c.builders processes acquire through acquireURI (at once,
// or c.stagger apart), hold, then get and release through cycleURI.
func contend(b *testing.B, res string, c rig, acquireURI, cycleURI string) contention {
	b.Helper()
	var (
		mu       sync.Mutex
		acquired []event
		released []event
		r        contention
		wg       sync.WaitGroup
		errs     = make([]error, c.builders)
	)
	gate := make(chan struct{})
	for i := range c.builders {
		work := b.TempDir()
		env := builderEnv(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			time.Sleep(time.Duration(i) * c.stagger) // the arrival schedule, not synchronisation
			acq, err := runScript(filepath.Join(res, "out"), map[string]any{"source": c.source(acquireURI), "params": map[string]any{"acquire": true}}, env, work)
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

			time.Sleep(c.hold) // the job's work while it holds the lock, not synchronisation

			stepAt := time.Now()
			step := filepath.Join(work, "lock")
			if _, err := runScript(filepath.Join(res, "in"), map[string]any{"source": c.source(cycleURI), "version": ans.Version}, env, step); err != nil {
				errs[i] = fmt.Errorf("in: %v", err)
				return
			}
			if _, err := runScript(filepath.Join(res, "out"), map[string]any{"source": c.source(cycleURI), "params": map[string]any{"release": "lock"}}, env, work); err != nil {
				errs[i] = fmt.Errorf("release: %v", err)
				return
			}
			mu.Lock()
			released = append(released, event{lock, time.Now()})
			r.getRelease = append(r.getRelease, time.Since(stepAt))
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
	if len(r.handoffs) != c.builders-c.locks {
		b.Fatalf("%d hand-offs, want %d (acquired %v)", len(r.handoffs), c.builders-c.locks, acquired)
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

// round is what one round's history shows.
type round struct {
	granted []int // builders (by arrival) in the order their claims landed
	// Claims that went to a builder while as many builders as there were free
	// locks waited ahead of it: by arrival, and by the order their tickets landed.
	// Two claims landing out of order on two free locks are no inversion: each
	// builder got the lock the queue gave it.
	arrivalInversions, ticketInversions int
	queueCommits                        int // commits that only add, renew or delete tickets
}

// checkHistory replays the round's commits and fails the benchmark unless the
// invariants hold: every commit is a claim or a release of one lock of P or only
// changes tickets; no lock is claimed while claimed (held twice) or released while
// free; c.builders claims; every lock free and every ticket gone at the end.
func checkHistory(b *testing.B, bare, start string, c rig) round {
	b.Helper()
	log := testenv.Git(b, bare, "log", "--reverse", "--no-renames", "--name-status", "--format=%x1e%H%x1f%B%x1f", start+"..main")
	claimed := map[string]bool{}
	free := c.locks
	granted := map[int]bool{}
	tickets := map[string]int{} // path -> place in the order tickets landed
	ticketOf := map[int]string{}
	landed := 0
	var r round
	for _, rec := range strings.Split(log, "\x1e")[1:] {
		f := strings.Split(rec, "\x1f")
		if len(f) != 3 {
			b.Fatalf("log record %q", rec)
		}
		subject, _, _ := strings.Cut(f[1], "\n")
		builder := -1
		for _, line := range strings.Split(f[1], "\n") {
			if v, ok := strings.CutPrefix(line, "Poolboy-Build-Id: "); ok {
				if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
					builder = id - 1000
				}
			}
		}
		var moves, gone []string // "A claimed/lock-a"; ticket paths deleted
		onlyTickets := true
		for _, line := range strings.Split(strings.TrimSpace(f[2]), "\n") {
			st, path, ok := strings.Cut(line, "\t")
			switch {
			case !ok:
			case strings.HasPrefix(path, ".poolboy-queue/P/"):
				switch {
				case st == "D":
					gone = append(gone, path)
				case st == "A":
					tickets[path] = landed
					ticketOf[builder] = path
					landed++
				}
			case strings.HasPrefix(path, "P/"):
				onlyTickets = false
				moves = append(moves, st+" "+strings.TrimPrefix(path, "P/"))
			default:
				b.Fatalf("commit %s (%q) changes %s", f[0], subject, path)
			}
		}
		if onlyTickets {
			r.queueCommits++
		} else {
			slices.Sort(moves)
			if len(moves) != 2 {
				b.Fatalf("commit %s (%q) is not one lock's claim or release: %v", f[0], subject, moves)
			}
			_, lock, _ := strings.Cut(moves[0], "/")
			switch {
			case moves[0] == "A claimed/"+lock && moves[1] == "D unclaimed/"+lock:
				if claimed[lock] {
					b.Fatalf("commit %s claims %s, held already: a lock held twice", f[0], lock)
				}
				aheadByArrival, aheadByTicket := 0, 0
				for y := range builder {
					if !granted[y] {
						aheadByArrival++
					}
				}
				mine, queued := tickets[ticketOf[builder]]
				for path, place := range tickets {
					if path != ticketOf[builder] && (!queued || place < mine) {
						aheadByTicket++
					}
				}
				if aheadByArrival >= free {
					r.arrivalInversions++
				}
				if aheadByTicket >= free {
					r.ticketInversions++
				}
				claimed[lock] = true
				free--
				granted[builder] = true
				r.granted = append(r.granted, builder)
			case moves[0] == "A unclaimed/"+lock && moves[1] == "D claimed/"+lock:
				if !claimed[lock] {
					b.Fatalf("commit %s releases %s, which was free", f[0], lock)
				}
				claimed[lock] = false
				free++
			default:
				b.Fatalf("commit %s (%q) is not one lock's claim or release: %v", f[0], subject, moves)
			}
		}
		for _, path := range gone {
			delete(tickets, path)
		}
	}
	if len(r.granted) != c.builders {
		b.Fatalf("%d claims, want %d", len(r.granted), c.builders)
	}
	for lock, held := range claimed {
		if held {
			b.Fatalf("lock %s still claimed at the end", lock)
		}
	}
	if left := testenv.Git(b, bare, "ls-tree", "-r", "--name-only", "main", "--", ".poolboy-queue"); left != "" {
		b.Fatalf("tickets left at the end:\n%s", left)
	}
	return r
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

// count is the number of requests that ended since the last reset, without
// waiting for those in flight.
func (p *countingProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, v := range p.stats.conns {
		n += v
	}
	return n
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

// BenchmarkQueueWaiters is the load on the git server while waiters wait on a
// pool whose locks are all held: the requests per second once every waiter waits
// (after the enqueue), with the queue and without ("lottery"). The waiters are
// then aborted at once (SIGTERM, as Concourse aborts steps): a ticket may be left
// only by a waiter that said it could not withdraw it (counted).
func BenchmarkQueueWaiters(b *testing.B) {
	testenv.RequireCommand(b, "git")
	testenv.RequireCommand(b, "go")
	res := optResource(b)
	for _, queued := range []bool{true, false} {
		name := map[bool]string{true: "queue", false: "lottery"}[queued]
		b.Run(fmt.Sprintf("50/%s", name), func(b *testing.B) {
			benchWaiters(b, res, rig{builders: 50, locks: 2, retryDelay: "10s", queue: queued}, 30*time.Second)
		})
	}
}

// enqueueBound is how long BenchmarkQueueWaiters waits for every waiter to wait.
const enqueueBound = 5 * time.Minute

func benchWaiters(b *testing.B, res string, c rig, window time.Duration) {
	root := b.TempDir()
	bare := filepath.Join(root, "locks.git")
	if err := fixture.Build(context.Background(), bare, lockRepo(c.lockNames(), 100, c.locks, time.Now())); err != nil {
		b.Fatal(err)
	}
	testenv.Git(b, bare, "repack", "-adq")
	base := testenv.GitDaemon(b, root)
	proxy := startCountingProxy(b, strings.TrimSuffix(strings.TrimPrefix(base, "git://"), "/"))
	uri := "git://" + proxy.addr + "/locks.git"
	waitLine := "no lock available in pool P"
	if c.queue {
		waitLine = "waiting for a lock in pool P"
	}
	var enqueue, perSecond, enqueueReqs, withdrawFailed float64
	b.ResetTimer()
	for range b.N {
		proxy.reset()
		start := testenv.Git(b, bare, "rev-parse", "main")
		began := time.Now()
		var ws []*waiter
		for i := range c.builders {
			w, err := startWaiter(filepath.Join(res, "out"), map[string]any{"source": c.source(uri), "params": map[string]any{"acquire": true}}, builderEnv(i), b.TempDir(), waitLine)
			if err != nil {
				b.Fatal(err)
			}
			ws = append(ws, w)
		}
		// A bound, not synchronisation: when the branch cannot take the tickets'
		// pushes (a saturated server), waiters never all wait.
		bound := time.After(enqueueBound)
		for i, w := range ws {
			select {
			case <-w.waiting:
			case <-w.done:
				b.Fatalf("waiter %d ended before it waited: %v\n%s", i, w.err, w.stderr.String())
			case <-bound:
				n := 0
				for _, w := range ws {
					select {
					case <-w.waiting:
						n++
					default:
					}
				}
				for _, w := range ws {
					w.cmd.Process.Signal(syscall.SIGTERM)
				}
				for _, w := range ws {
					<-w.done
				}
				b.Fatalf("after %s only %d of %d waiters wait (%d requests so far)", enqueueBound, n, c.builders, proxy.count())
			}
		}
		enqueue += time.Since(began).Seconds()
		enqueueReqs += float64(proxy.count())
		proxy.reset()
		time.Sleep(window) // the measurement window, not synchronisation
		rate := float64(proxy.count()) / window.Seconds()
		perSecond += rate
		b.Logf("%d waiters waiting after %s: %.1f requests/s", c.builders, time.Since(began).Round(time.Second), rate)
		for _, w := range ws {
			w.cmd.Process.Signal(syscall.SIGTERM)
		}
		// A waiter that could not withdraw its ticket in time says so, and the
		// ticket expires (README, Fair waiting): it may be left, and is counted;
		// any other ticket left fails the benchmark.
		mayStay := map[string]bool{}
		logs := map[string]string{}
		for i, w := range ws {
			<-w.done
			log := w.stderr.String()
			logs[strconv.Itoa(1000+i)] = log
			if !strings.Contains(log, "aborted: ") {
				b.Fatalf("waiter %d did not say it was aborted: %v\n%s", i, w.err, log)
			}
			if strings.Contains(log, "could not withdraw its ticket") {
				mayStay[strconv.Itoa(1000+i)] = true
			}
		}
		withdrawFailed += float64(len(mayStay))
		for _, path := range strings.Fields(testenv.Git(b, bare, "ls-tree", "-r", "--name-only", "main", "--", ".poolboy-queue")) {
			var tk struct {
				Holder struct {
					BuildID string `json:"build_id"`
				} `json:"holder"`
			}
			if err := json.Unmarshal([]byte(testenv.Git(b, bare, "cat-file", "blob", "main:"+path)), &tk); err != nil || !mayStay[tk.Holder.BuildID] {
				b.Fatalf("ticket %s (build %q) left after the aborts, its waiter did not say it could not withdraw it (%v):\n%s", path, tk.Holder.BuildID, err, logs[tk.Holder.BuildID])
			}
		}
		if moved := testenv.Git(b, bare, "diff", "--name-only", start, "main", "--", "P"); moved != "" {
			b.Fatalf("the waiters changed the pool:\n%s", moved)
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(perSecond/n, "requests/s")
	b.ReportMetric(enqueue/n, "all-waiting-s")
	b.ReportMetric(enqueueReqs/n/float64(c.builders), "enqueue-requests/waiter")
	b.ReportMetric(withdrawFailed/n, "withdrawals-failed")
}

// waiter is a resource process that runs until it is signalled.
type waiter struct {
	cmd     *exec.Cmd
	stderr  *lineWatch
	waiting chan struct{} // closed once its stderr said it waits
	done    chan struct{} // closed once it exited
	err     error
}

func startWaiter(path string, request any, env []string, dir, waitLine string) (*waiter, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "poolboy-bench-home-")
	if err != nil {
		return nil, err
	}
	w := &waiter{waiting: make(chan struct{}), done: make(chan struct{})}
	w.stderr = &lineWatch{want: waitLine, seen: w.waiting}
	w.cmd = exec.Command(path, dir)
	w.cmd.Stdin = bytes.NewReader(body)
	w.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1"}, env...)
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	go func() {
		w.err = w.cmd.Wait()
		os.RemoveAll(home)
		close(w.done)
	}()
	return w, nil
}

// lineWatch keeps what is written and closes seen once want was written.
type lineWatch struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (l *lineWatch) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if bytes.Contains(l.buf.Bytes(), []byte(l.want)) {
		l.once.Do(func() { close(l.seen) })
	}
	return len(p), nil
}

func (l *lineWatch) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
