package watch

import (
	_ "embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/report"
)

// The status page: server-rendered HTML, the template and its CSS embedded in the
// binary. It shows the /api/pools document for people and reloads itself.

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{
	"plural": func(n int, word string) string {
		if n == 1 {
			return word
		}
		return word + "s"
	},
}).Parse(pageHTML))

// The page reloads every interval, but at least every pageMaxRefresh (a
// webhook-triggered cycle shows up soon) and at most every pageMinRefresh.
const (
	pageMinRefresh = 5 * time.Second
	pageMaxRefresh = time.Minute
)

type pageView struct {
	Now       string
	Concourse string // a warning when Concourse has not answered; "" otherwise
	Refresh   int    // seconds
	Interval  string
	Repos     []repoView
	Claimed   int
	Stale     int
	Problems  int
}

type repoView struct {
	Name, Branch, URL, Commit string
	Running                   bool
	Cycles                    int
	LastSuccess               string // "12s ago"; "" when none
	LastError                 string
	HasStatus                 bool
	Pools                     []poolView
	Reaps                     []reapView
}

type poolView struct {
	Name                      string
	Timeout                   string // "" when none
	Claimed, Unclaimed, Stale int
	OnHold                    int    // locks kept by a hold that has not expired
	ReapTo                    string // the quarantine its reaps go to, "" for none
	Locks                     []lockView
	Queue                     []ticketView
	Waiting                   int // live tickets
	Problems                  []string
}

type ticketView struct {
	Position, ID, Holder, HolderURL, Wants string
	Since, Waited, Priority                string
	Expired                                bool
}

type lockView struct {
	Name, Owner, OwnerURL string
	ClaimedAt             string // "" when unknown
	Age                   string
	Of                    string // "of 1h timeout"; "" when no bar
	Bar                   int    // bar width in percent of the timeout, capped at 100; -1: no bar
	Over                  string // "3.0× timeout" when past it
	Verdict, Reason       string
	Build                 *buildView
	Warning               string
}

type buildView struct {
	Name, Status, URL, HandedOffTo, Error string
	NotFound                              bool
}

type reapView struct {
	At, Ago, Pool, Lock, Owner, Commit, Rule, Reason string
}

func (d *Daemon) servePage(w http.ResponseWriter, _ *http.Request) {
	v := buildPage(d.Pools(), d.cfg.Interval)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTmpl.Execute(w, v); err != nil {
		d.log.Warn("status page", "error", err)
	}
}

func buildPage(doc PoolsDoc, interval time.Duration) pageView {
	now := doc.GeneratedAt
	refresh := min(max(interval, pageMinRefresh), pageMaxRefresh)
	v := pageView{Now: stamp(now), Refresh: int(refresh / time.Second), Interval: policy.Human(interval)}
	for _, c := range doc.Concourse {
		v.Concourse = strings.TrimSpace(v.Concourse + " " + c.warning(now))
	}
	for _, r := range doc.Repos {
		rv := repoView{Name: r.Name, Branch: r.Branch, Running: r.Running, Cycles: r.Cycles, LastError: r.LastError}
		if r.LastSuccess != nil {
			rv.LastSuccess = ago(now, *r.LastSuccess)
		}
		if s := r.Status; s != nil {
			rv.HasStatus, rv.URL, rv.Commit = true, s.Repo, shortSHA(s.Commit)
			if s.Branch != "" {
				rv.Branch = s.Branch
			}
			for _, p := range s.Pools {
				pv := poolPage(now, p)
				v.Claimed += p.Claimed
				v.Stale += p.Stale
				v.Problems += len(p.Problems)
				rv.Pools = append(rv.Pools, pv)
			}
		}
		for _, x := range r.RecentReaps {
			rv.Reaps = append(rv.Reaps, reapView{At: stamp(x.At), Ago: ago(now, x.At), Pool: x.Pool, Lock: x.Lock,
				Owner: x.Owner, Commit: shortSHA(x.Commit), Rule: x.Rule, Reason: x.Reason})
		}
		v.Repos = append(v.Repos, rv)
	}
	return v
}

func poolPage(now time.Time, p report.Pool) poolView {
	pv := poolView{Name: p.Name, Claimed: p.Claimed, Unclaimed: p.Unclaimed, Stale: p.Stale, OnHold: p.OnHold, ReapTo: p.ReapTo}
	var timeout time.Duration
	if p.TimeoutSeconds != nil {
		timeout = time.Duration(*p.TimeoutSeconds) * time.Second
		pv.Timeout = policy.Human(timeout)
	}
	for _, pr := range p.Problems {
		pv.Problems = append(pv.Problems, pr.String())
	}
	for _, l := range p.Locks {
		lv := lockView{Name: l.Name, Owner: "unknown", Verdict: l.Verdict, Reason: l.Reason, Warning: l.Warning, Bar: -1, Age: "unknown"}
		if l.Owner != nil {
			lv.Owner, lv.OwnerURL = l.Owner.Display, l.Owner.URL
		}
		if l.ClaimedAt != nil {
			lv.ClaimedAt = stamp(*l.ClaimedAt)
			// The age now, not at the cycle: the page may be read between cycles.
			age := max(now.Sub(*l.ClaimedAt), time.Duration(l.AgeSeconds)*time.Second)
			lv.Age = policy.Human(age)
			if timeout > 0 {
				ratio := float64(age) / float64(timeout)
				lv.Bar = int(math.Round(100 * min(ratio, 1)))
				lv.Of = "of " + pv.Timeout
				if ratio > 1 {
					lv.Over = fmt.Sprintf("%.1f× timeout", ratio)
				}
			}
		}
		if b := l.Build; b != nil {
			lv.Build = &buildView{Name: b.Name, Status: b.Status, URL: b.URL, HandedOffTo: b.HandedOffTo, Error: b.Error, NotFound: b.NotFound}
		}
		pv.Locks = append(pv.Locks, lv)
	}
	for _, t := range p.Queue {
		tv := ticketView{Position: "expired", ID: t.ID, Holder: t.Holder.Display, HolderURL: t.Holder.URL, Wants: t.Wants,
			Since: stamp(t.Enqueued), Priority: fmt.Sprint(t.Priority), Expired: t.Expired,
			// The wait now, not at the cycle, as the locks' ages.
			Waited: policy.Human(max(now.Sub(t.Enqueued), time.Duration(t.WaitedSeconds)*time.Second))}
		if t.Position != nil {
			tv.Position = fmt.Sprint(*t.Position)
			pv.Waiting++
		}
		if t.EffectivePriority != t.Priority {
			tv.Priority += fmt.Sprintf(" (now %d)", t.EffectivePriority)
		}
		pv.Queue = append(pv.Queue, tv)
	}
	return pv
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func ago(now, t time.Time) string {
	if d := now.Sub(t); d >= time.Second {
		return policy.Human(d) + " ago"
	}
	return "just now"
}

func shortSHA(sha string) string {
	sha = strings.TrimSpace(sha)
	if len(sha) > 10 {
		return sha[:10]
	}
	return sha
}
