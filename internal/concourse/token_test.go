package concourse

// Token lifetime, re-login and login backoff, driven by an injected clock:
// days pass without waiting for them.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/fakeconcourse"
)

var day0 = time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)

// clocked is a fake Concourse and a client sharing one injected clock.
func clocked(t *testing.T, h *harness, opts ...fakeconcourse.Option) (*fakeconcourse.Server, *Client, *fakeconcourse.Clock, int) {
	t.Helper()
	clock := fakeconcourse.NewClock(day0)
	s := newFake(t, append([]fakeconcourse.Option{fakeconcourse.WithClock(clock.Now)}, opts...)...)
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Pipeline: "locks", Job: "hold", Name: "1", Status: "started"})
	cfg := alice(s)
	cfg.Now = clock.Now
	return s, h.client(cfg), clock, id
}

func tokenRequests(s *fakeconcourse.Server) int {
	reqs := s.Requests()
	return countPath(reqs, "POST", "/sky/issuer/token") + countPath(reqs, "POST", "/sky/token")
}

func answered(s *fakeconcourse.Server, code int) int {
	n := 0
	for _, r := range s.Requests() {
		if strings.HasPrefix(r.Path, "/api/") && r.Status == code {
			n++
		}
	}
	return n
}

// A token is replaced a quarter of its lifetime before it expires (as the
// token answer's expires_in, or a legacy server's expiry, says): an expired
// token is never sent.
func TestTokenRefreshedBeforeItExpires(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []fakeconcourse.Option
	}{
		{"expires_in", nil},
		{"legacy expiry", []fakeconcourse.Option{fakeconcourse.WithLegacyAuth()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			s, c, clock, id := clocked(t, h, tc.opts...)
			lookup := func(when string) {
				t.Helper()
				if _, err := c.Build(context.Background(), id); h.err(err) != nil {
					t.Fatalf("%s: %v", when, err)
				}
			}
			lookup("first")
			clock.Advance(17 * time.Hour)
			lookup("after 17 h")
			if n := s.TokensIssued(); n != 1 {
				t.Fatalf("%d tokens within the first 3/4 of the lifetime, want 1", n)
			}
			clock.Advance(time.Hour + time.Second)
			lookup("after 18 h")
			if n := s.TokensIssued(); n != 2 {
				t.Fatalf("%d tokens after 3/4 of the lifetime, want 2 (refreshed)", n)
			}
			for range 3 * 24 {
				clock.Advance(time.Hour)
				lookup("days later")
			}
			if n := s.TokensIssued(); n < 4 || n > 6 {
				t.Errorf("%d tokens in 3 days of 24 h tokens", n)
			}
			if n := answered(s, http.StatusUnauthorized); n != 0 {
				t.Errorf("%d lookups answered 401: an expired token was sent", n)
			}
		})
	}
}

// A failed login is not kept: once its backoff has passed the next lookup
// logs in again, and works when Concourse does.
func TestNoCachedLoginFailure(t *testing.T) {
	for _, tc := range []struct {
		name   string
		break_ func(s *fakeconcourse.Server)
		fix    func(s *fakeconcourse.Server)
		want   string
	}{
		{"502", func(s *fakeconcourse.Server) { s.SetFault(fakeconcourse.Fault{Path: "/sky/issuer/token", Status: 502}) },
			func(s *fakeconcourse.Server) { s.SetFault(fakeconcourse.Fault{}) }, "login as alice failed: 502"},
		{"password changed, then changed back", func(s *fakeconcourse.Server) { s.AddUser("alice", "rotated-pw", "main") },
			func(s *fakeconcourse.Server) { s.AddUser("alice", canaryPassword, "main") }, "login as alice failed: 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			s, c, clock, id := clocked(t, h)
			tc.break_(s)
			_, err := c.Build(context.Background(), id)
			if h.err(err) == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			tc.fix(s)
			clock.Advance(loginBackoff * 3 / 2) // the longest first backoff
			if b, err := c.Build(context.Background(), id); h.err(err) != nil || b.ID != id {
				t.Fatalf("after the fix: %v (the failure was kept)", err)
			}
			if n := tokenRequests(s); n != 2 {
				t.Errorf("%d token requests, want 2", n)
			}
		})
	}
}

// Failed logins are retried after 1 s, 2 s, 4 s … (jittered, capped at 5
// min) by the client's clock; lookups meanwhile fail at once with the last
// login's error instead of asking the token endpoint again. A success starts
// the schedule afresh.
func TestLoginBackoff(t *testing.T) {
	h := newHarness(t)
	s, c, clock, id := clocked(t, h)
	s.SetFault(fakeconcourse.Fault{Path: "/sky/issuer/token", Status: 502})
	lookup := func() error {
		_, err := c.Build(context.Background(), id)
		return h.err(err)
	}
	tries := 0
	for n := 1; n <= 12; n++ {
		if err := lookup(); err == nil || !strings.Contains(err.Error(), "502") {
			t.Fatalf("failure %d: err = %v", n, err)
		}
		tries++
		if got := tokenRequests(s); got != tries {
			t.Fatalf("failure %d: %d token requests, want %d", n, got, tries)
		}
		wait := min(loginBackoff<<(n-1), maxLoginBackoff)
		clock.Advance(wait/2 - time.Millisecond) // before the shortest jittered wait
		err := lookup()
		if err == nil || !strings.Contains(err.Error(), "next try in") {
			t.Fatalf("failure %d: lookup within the backoff: err = %v", n, err)
		}
		if got := tokenRequests(s); got != tries {
			t.Fatalf("failure %d: the token endpoint was asked again %v after a failure", n, wait/2)
		}
		clock.Advance(wait) // past the longest jittered wait
	}
	s.SetFault(fakeconcourse.Fault{})
	if err := lookup(); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	// Token gone (refused); the next failure waits the first step again.
	s.SetFault(fakeconcourse.Fault{Path: "/sky/issuer/token", Status: 502})
	clock.Advance(25 * time.Hour)
	if err := lookup(); err == nil {
		t.Fatal("a lookup with an expired token and a failing login succeeded")
	}
	clock.Advance(loginBackoff * 3 / 2)
	before := tokenRequests(s)
	_ = lookup()
	if tokenRequests(s) != before+1 {
		t.Error("after a success, the backoff did not start again at its first step")
	}
}

// A 401 for a token the client thought valid (the server's clock is ahead,
// or the token was revoked) leads to one re-login and one retry.
func TestReloginWhenTheServerExpiredTheToken(t *testing.T) {
	h := newHarness(t)
	serverClock := fakeconcourse.NewClock(day0)
	s := newFake(t, fakeconcourse.WithClock(serverClock.Now))
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Status: "started"})
	clientClock := fakeconcourse.NewClock(day0)
	cfg := alice(s)
	cfg.Now = clientClock.Now
	c := h.client(cfg)
	if _, err := c.Build(context.Background(), id); h.err(err) != nil {
		t.Fatal(err)
	}
	serverClock.Advance(25 * time.Hour)
	clientClock.Advance(time.Hour)
	if _, err := c.Build(context.Background(), id); h.err(err) != nil {
		t.Fatalf("after the server expired the token: %v", err)
	}
	if n := answered(s, http.StatusUnauthorized); n != 1 {
		t.Errorf("%d answers 401, want 1", n)
	}
	if n := s.TokensIssued(); n != 2 {
		t.Errorf("%d tokens, want 2", n)
	}
}

// A token that is refused as soon as it was issued is a failed login: the
// next lookup waits for the backoff instead of logging in again at once.
func TestAFreshTokenRefusedBacksOff(t *testing.T) {
	h := newHarness(t)
	clock := fakeconcourse.NewClock(day0)
	s := newFake(t, fakeconcourse.WithClock(clock.Now))
	id := s.AddBuild(fakeconcourse.Build{Team: "main", Status: "started"})
	cfg := alice(s)
	cfg.Now = clock.Now
	cfg.HTTPClient = &http.Client{Transport: &unauthorizedRT{base: http.DefaultTransport, n: 1000}}
	c := h.client(cfg)
	for range 5 {
		_, err := c.Build(context.Background(), id)
		if h.err(err) == nil {
			t.Fatal("no error")
		}
	}
	if n := s.TokensIssued(); n != 2 {
		t.Errorf("%d tokens for 5 lookups within the backoff, want 2 (a login, a re-login)", n)
	}
	clock.Advance(loginBackoff * 3 / 2)
	_, err := c.Build(context.Background(), id)
	var se *StatusError
	if !errors.As(h.err(err), &se) || se.Code != 401 {
		t.Errorf("err = %v, want 401", err)
	}
	if n := s.TokensIssued(); n != 4 {
		t.Errorf("%d tokens after the backoff, want 4 (again a login and a re-login)", n)
	}
}

// Four days of lookups every 10 minutes with Concourse's daily tokens. The
// token endpoint answers 502 from hour 17 to hour 27: the refresh due at hour
// 18 fails, the old token serves until it expires at hour 24, then lookups
// fail until the endpoint is back, and resume within a backoff. A second,
// shorter outage on day 3 falls within the refresh margin and costs nothing.
func TestMultiDayRunWithAFailingRelogin(t *testing.T) {
	h := newHarness(t)
	s, c, clock, id := clocked(t, h)
	outages := []struct{ from, to time.Duration }{{17 * time.Hour, 27 * time.Hour}, {62 * time.Hour, 66 * time.Hour}}
	var failed []time.Duration
	for at := time.Duration(0); at <= 96*time.Hour; at += 10 * time.Minute {
		down := false
		for _, o := range outages {
			down = down || (at >= o.from && at < o.to)
		}
		if down {
			s.SetFault(fakeconcourse.Fault{Path: "/sky/issuer/token", Status: 502})
		} else {
			s.SetFault(fakeconcourse.Fault{})
		}
		clock.Advance(day0.Add(at).Sub(clock.Now()))
		b, err := c.Build(context.Background(), id)
		if h.err(err) != nil {
			failed = append(failed, at)
			if !strings.Contains(err.Error(), "502") {
				t.Errorf("at %v: %v", at, err)
			}
			continue
		}
		if b.ID != id || !b.Running() {
			t.Errorf("at %v: build %+v", at, b)
		}
	}
	// Token 1 (hour 0) expires at 24 h; its refresh is due from hour 18 but
	// fails until 27 h: lookups fail from 24 h until the first one after 27 h.
	var want []time.Duration
	for at := 24 * time.Hour; at < 27*time.Hour; at += 10 * time.Minute {
		want = append(want, at)
	}
	if fmt.Sprint(failed) != fmt.Sprint(want) {
		t.Errorf("lookups failed at %v\nwant exactly %v", failed, want)
	}
	if n := answered(s, http.StatusUnauthorized); n != 0 {
		t.Errorf("%d lookups answered 401: an expired token was sent", n)
	}
	if n := s.TokensIssued(); n < 4 || n > 6 {
		t.Errorf("%d tokens in 4 days", n)
	}
}
