package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/poolboy-ci/poolboy/internal/demo"
	"github.com/poolboy-ci/poolboy/internal/resource"
	"github.com/poolboy-ci/poolboy/internal/term"
)

// queueSceneTimeout bounds the queue scene: should a put never get the lock (a
// bug), the demo ends with an error instead of waiting for ever.
const queueSceneTimeout = 2 * time.Minute

// queueScene runs the demo's fair-waiting scene: the demo.Waiters put acquire on
// the pool whose one lock is held, each once the one before is in the queue;
// status (showStatus) shows where each stands; then the lock is released and goes
// to them in the queue's order, each releasing it when done.
func queueScene(ctx context.Context, out io.Writer, repo string, showStatus func() error) (err error) {
	ctx, cancel := context.WithTimeout(ctx, queueSceneTimeout)
	defer cancel()
	root, err := os.MkdirTemp("", "poolboy-demo-puts-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	source := map[string]any{"uri": repo, "branch": "main", "pool": demo.QueuePool, "retry_delay": "1s"}

	ended := make(chan *demoPut, len(demo.Waiters))
	var puts []*demoPut
	defer func() {
		// On an error, stop the puts still waiting (they withdraw their tickets).
		cancel()
		for range len(puts) - served(puts) {
			<-ended
		}
	}()
	for _, w := range demo.Waiters {
		p := &demoPut{w: w, dir: filepath.Join(root, fmt.Sprint(w.ID)), log: newNotifyLog()}
		puts = append(puts, p)
		go p.acquire(ctx, source, ended)
		line, err := p.log.await(ctx, "waiting for a lock in pool "+demo.QueuePool+": position ")
		if err != nil {
			return fmt.Errorf("the put of %s did not queue: %w\n%s", w.Owner(), err, p.log)
		}
		fmt.Fprintf(out, "  %s puts acquire (priority %d); its build log says:\n      %s\n", w.Owner(), w.Priority, term.Escape(line))
	}
	fmt.Fprintln(out)
	if err := showStatus(); err != nil {
		return err
	}

	fmt.Fprintf(out, "\n%s is released; it goes to the waiting builds in the queue's order, each releasing it when done:\n", demo.QueueLock)
	person := filepath.Join(root, "by-hand")
	if err := os.MkdirAll(filepath.Join(person, "lock"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(person, "lock", "name"), []byte(demo.QueueLock+"\n"), 0o644); err != nil {
		return err
	}
	var discard bytes.Buffer
	if err := putRelease(ctx, person, source, nil, &discard); err != nil {
		return fmt.Errorf("releasing %s: %w\n%s", demo.QueueLock, err, discard.String())
	}
	for n := 1; n <= len(puts); n++ {
		var p *demoPut
		select {
		case p = <-ended:
		case <-ctx.Done():
			return fmt.Errorf("the lock did not reach the queue's next build: %w", ctx.Err())
		}
		p.done = true
		if p.err != nil {
			return fmt.Errorf("the put of %s: %w\n%s", p.w.Owner(), p.err, p.log)
		}
		fmt.Fprintf(out, "  %d. %s (priority %d) gets %s\n", n, p.w.Owner(), p.w.Priority, demo.QueueLock)
		if err := p.release(ctx, source); err != nil {
			return fmt.Errorf("the release of %s: %w\n%s", p.w.Owner(), err, p.log)
		}
	}
	return nil
}

func served(puts []*demoPut) int {
	n := 0
	for _, p := range puts {
		if p.done {
			n++
		}
	}
	return n
}

// demoPut is one waiting build's put.
type demoPut struct {
	w    demo.Waiter
	dir  string
	log  *notifyLog
	ref  string // the claim, once granted
	err  error
	done bool // taken from ended
}

// acquire runs the build's put acquire and reports on ended when it is over.
func (p *demoPut) acquire(ctx context.Context, source map[string]any, ended chan<- *demoPut) {
	defer func() { ended <- p }()
	var stdout bytes.Buffer
	p.err = resourceRun(ctx, resource.Out, p.dir, map[string]any{"source": source,
		"params": map[string]any{"acquire": true, "priority": p.w.Priority}}, p.w.Env(), &stdout, p.log)
	if p.err == nil {
		var ans struct {
			Version struct{ Ref string } `json:"version"`
		}
		p.err = json.Unmarshal(stdout.Bytes(), &ans)
		p.ref = ans.Version.Ref
	}
}

// release does what Concourse does after the build's put: get it, then put release.
func (p *demoPut) release(ctx context.Context, source map[string]any) error {
	var stdout bytes.Buffer
	err := resourceRun(ctx, resource.In, filepath.Join(p.dir, "lock"),
		map[string]any{"source": source, "version": map[string]string{"ref": p.ref}}, p.w.Env(), &stdout, p.log)
	if err != nil {
		return err
	}
	return putRelease(ctx, p.dir, source, p.w.Env(), p.log)
}

// putRelease is a put release of the lock in dir/lock.
func putRelease(ctx context.Context, dir string, source map[string]any, env map[string]string, log io.Writer) error {
	var stdout bytes.Buffer
	return resourceRun(ctx, resource.Out, dir, map[string]any{"source": source, "params": map[string]any{"release": "lock"}}, env, &stdout, log)
}

// resourceRun runs a script of the resource in this process, as Concourse would
// run it in the build's container.
func resourceRun(ctx context.Context, script func(context.Context, string, io.Reader, io.Writer, io.Writer, resource.Env) error,
	dir string, req map[string]any, env map[string]string, stdout, stderr io.Writer) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	return script(ctx, dir, bytes.NewReader(body), stdout, stderr, func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
}

// notifyLog is a put's log, which the scene can wait on.
type notifyLog struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next write
}

func newNotifyLog() *notifyLog { return &notifyLog{changed: make(chan struct{})} }

func (l *notifyLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.changed)
	l.changed = make(chan struct{})
	return l.buf.Write(p)
}

func (l *notifyLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// await returns the first whole line of the log that starts with prefix, once
// there is one.
func (l *notifyLog) await(ctx context.Context, prefix string) (string, error) {
	for {
		l.mu.Lock()
		text, changed := l.buf.String(), l.changed
		l.mu.Unlock()
		for _, line := range strings.SplitAfter(text, "\n") {
			if strings.HasPrefix(line, prefix) && strings.HasSuffix(line, "\n") {
				return strings.TrimSuffix(line, "\n"), nil
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", errors.New("stopped waiting for its log to say " + prefix + "…")
		}
	}
}
