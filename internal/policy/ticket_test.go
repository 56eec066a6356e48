package policy

import (
	"testing"
	"time"
)

func TestDecideTicket(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	live, expired := now.Add(time.Minute), now.Add(-time.Minute)
	b := func(status string) *Build { return &Build{Name: "main/deploy/test #41", Status: status} }
	with := func(ev *Build, f func(*Build)) *Build { f(ev); return ev }
	cases := []struct {
		name      string
		expires   time.Time
		build     *Build
		wantState State
		wantRule  string
	}{
		{"no Concourse, live", live, nil, Held, "ticket-live"},
		{"no Concourse, expired", expired, nil, Stale, "ticket-expired"},
		{"expires exactly now", now, nil, Held, "ticket-expired-grace"},
		{"expired within the grace", now.Add(-TicketGrace + time.Second), nil, Held, "ticket-expired-grace"},
		{"expired the grace ago", now.Add(-TicketGrace), nil, Stale, "ticket-expired"},
		{"running, live", live, b("started"), Alive, "build-running"},
		{"running, expired: its waiter renews it", expired, b("started"), Alive, "build-running"},
		{"pending, expired", expired, b("pending"), Alive, "build-running"},
		{"aborted, live", live, b("aborted"), Stale, "build-aborted"},
		{"failed, live", live, b("failed"), Stale, "build-failed"},
		{"errored, live", live, b("errored"), Stale, "build-errored"},
		{"succeeded, live: nothing waits in an ended build", live, b("succeeded"), Stale, "build-succeeded"},
		{"Concourse error, live", live, &Build{Name: "x", Err: "503"}, Held, "ticket-live"},
		{"Concourse error, expired", expired, &Build{Name: "x", Err: "503"}, Stale, "ticket-expired"},
		{"404, live", live, &Build{Name: "x", NotFound: true}, Held, "ticket-live"},
		{"another build, live", live, with(b("aborted"), func(b *Build) { b.Foreign = "another id" }), Held, "ticket-live"},
		{"another build said running, expired", expired, with(b("started"), func(b *Build) { b.Foreign = "another id" }), Stale, "ticket-expired"},
		{"maybe another build, live", live, with(b("aborted"), func(b *Build) { b.KeepOnly = "no team" }), Held, "ticket-live"},
		{"maybe another build running, expired", expired, with(b("started"), func(b *Build) { b.KeepOnly = "no team" }), Alive, "build-running"},
		{"error beside a stale status, live", live, with(b("aborted"), func(b *Build) { b.Err = "hand-off lookup failed" }), Held, "ticket-live"},
		{"unknown status, live", live, b("weird"), Held, "ticket-live"},
		{"no status, live", live, b(""), Held, "ticket-live"},
		{"running, a warning", expired, with(b("started"), func(b *Build) { b.Warning = "clock" }), Alive, "build-running"},
		{"aborted, a warning", live, with(b("aborted"), func(b *Build) { b.Warning = "clock" }), Stale, "build-aborted"},
		{"maybe another build, a warning", live, with(b("aborted"), func(b *Build) { b.KeepOnly, b.Warning = "no team", "clock" }), Held, "ticket-live"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := DecideTicket(TicketInput{Now: now, Expires: c.expires, Build: c.build})
			if v.State != c.wantState || v.Rule != c.wantRule || v.Reason == "" {
				t.Errorf("got %s/%s (%q), want %s/%s", v.State, v.Rule, v.Reason, c.wantState, c.wantRule)
			}
			if (c.build != nil && (c.build.Err != "" || c.build.Foreign != "" || c.build.Warning != "")) != (v.Warning != "") {
				t.Errorf("warning %q", v.Warning)
			}
		})
	}
}
