package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// StallServer is a TCP server on loopback that accepts every connection, reads
// whatever the client sends and never answers: a git server that hangs. Over
// HTTP, git waits for a response; over SSH, ssh waits for the banner.
type StallServer struct {
	// Addr is "127.0.0.1:PORT".
	Addr string

	mu    sync.Mutex
	conns int
	seen  chan struct{} // closed at the first connection
}

// Stall starts a StallServer, closed (with its connections) at cleanup.
func Stall(t testing.TB) *StallServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &StallServer{Addr: ln.Addr().String(), seen: make(chan struct{})}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			s.mu.Lock()
			if s.conns == 0 {
				close(s.seen)
			}
			s.conns++
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// Connected is closed once a client has connected.
func (s *StallServer) Connected() <-chan struct{} { return s.seen }

// Marker returns an environment entry unique to this test, for Leftovers:
// every process started with it in its environment passes it on to its
// children, and git passes it to its helpers.
func Marker(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "POOLBOY_TEST_MARKER=" + hex.EncodeToString(b)
}

// Leftovers returns the command lines of the running processes whose
// environment holds marker (see Marker). It needs Linux's /proc.
func Leftovers(t testing.TB, marker string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/environ")
	if err != nil || len(procs) == 0 {
		missing(t, "no /proc to look for processes in: %v", err)
		return nil
	}
	var left []string
	for _, p := range procs {
		env, err := os.ReadFile(p)
		if err != nil {
			continue // gone meanwhile, or not ours
		}
		if !slices.Contains(strings.Split(string(env), "\x00"), marker) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "stat"))
		if fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:])); len(fields) > 0 && fields[0] == "Z" {
			continue // a zombie holds nothing but its exit status
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		left = append(left, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(bytes.TrimRight(cmdline, "\x00")), "\x00", " "))
	}
	return left
}
