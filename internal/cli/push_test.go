package cli_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poolboy-ci/poolboy/internal/testenv"
)

// gatewayValue is the value of the one sample named name in a Pushgateway's
// /metrics text whose labels include labels (job and repo come from the push).
func gatewayValue(t *testing.T, text, name string, labels ...string) (float64, bool) {
	t.Helper()
	var found []string
next:
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		ls, _, _ := strings.Cut(line, "}")
		for i := 0; i < len(labels); i += 2 {
			kv := labels[i] + "=" + strconv.Quote(labels[i+1])
			if !strings.Contains(ls, "{"+kv) && !strings.Contains(ls, ","+kv) {
				continue next
			}
		}
		found = append(found, line)
	}
	switch len(found) {
	case 0:
		return 0, false
	case 1:
		f := strings.Fields(found[0])
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("%q: %v", found[0], err)
		}
		return v, true
	}
	t.Fatalf("%s%v: %d samples:\n%s", name, labels, len(found), strings.Join(found, "\n"))
	return 0, false
}

func wantGateway(t *testing.T, text string, want float64, name string, labels ...string) {
	t.Helper()
	got, ok := gatewayValue(t, text, name, labels...)
	if !ok {
		t.Errorf("no %s%v on the gateway:\n%s", name, labels, grepLines(text, "poolboy_"))
	} else if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func grepLines(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// status and clean push the daemon's metric families to a real Pushgateway, job
// poolboy, grouped by the repo URL; a failed run pushes its outcome and leaves the
// pools as the last successful run saw them.
func TestPushgatewayURL(t *testing.T) {
	t.Parallel()
	gw := testenv.Pushgateway(t)
	r := newLockRepo(t, "main")
	repo := "file://" + r.dir
	env := map[string]string{"POOL_REPO": repo}
	job := []string{"job", "poolboy", "repo", repo}
	lbl := func(kv ...string) []string { return append(append([]string{}, job...), kv...) }

	start := float64(time.Now().Unix())
	res := mustRun(t, env, "status", "--pools", "aws:1h", "--pushgateway-url", gw.URL)
	if res.stderr != "" {
		t.Errorf("stderr: %s", res.stderr)
	}
	m := gw.Metrics(t)
	wantGateway(t, m, 2, "poolboy_locks", lbl("pool", "aws", "state", "claimed")...)
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "aws", "state", "unclaimed")...)
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "gpu", "state", "claimed")...)
	wantGateway(t, m, 1, "poolboy_stale_locks", lbl("pool", "aws")...)
	wantGateway(t, m, 3600, "poolboy_pool_timeout_seconds", lbl("pool", "aws")...)
	wantGateway(t, m, 1, "poolboy_cycles_total", lbl("outcome", "success")...)
	wantGateway(t, m, 1, "poolboy_cycle_duration_seconds_count", lbl()...)
	if age, ok := gatewayValue(t, m, "poolboy_lock_claim_age_seconds", lbl("pool", "aws", "lock", "env-1")...); !ok || age < 5*3600-60 || age > 5*3600+600 {
		t.Errorf("claim age of aws/env-1: %v %v, want about 5h", age, ok)
	}
	if ts, ok := gatewayValue(t, m, "poolboy_last_successful_cycle_timestamp_seconds", lbl()...); !ok || ts < start-1 {
		t.Errorf("last success %v %v, want after %v", ts, ok, start)
	}

	mustRun(t, env, "clean", "--pools", "aws:1h", "--pushgateway-url", gw.URL)
	m = gw.Metrics(t)
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "aws", "state", "claimed")...)
	wantGateway(t, m, 2, "poolboy_locks", lbl("pool", "aws", "state", "unclaimed")...)
	wantGateway(t, m, 0, "poolboy_stale_locks", lbl("pool", "aws")...)
	wantGateway(t, m, 1, "poolboy_reaps_total", lbl("pool", "aws", "rule", "timeout")...)
	if _, ok := gatewayValue(t, m, "poolboy_lock_claim_age_seconds", lbl("lock", "env-1")...); ok {
		t.Errorf("freed aws/env-1 still has a claim age:\n%s", grepLines(m, "claim_age"))
	}
	wantGateway(t, m, 1, "poolboy_cycles_total", lbl("outcome", "success")...)

	// A failed run: its outcome replaces the last, the pools stay as last seen.
	res = run(t, env, "clean", "--pools", "aws:1h", "--branch", "nope", "--pushgateway-url", gw.URL)
	wantCode(t, res, 1, "nope")
	m = gw.Metrics(t)
	wantGateway(t, m, 1, "poolboy_cycles_total", lbl("outcome", "error")...)
	if _, ok := gatewayValue(t, m, "poolboy_cycles_total", lbl("outcome", "success")...); ok {
		t.Error("the success outcome of the run before is still there")
	}
	wantGateway(t, m, 1, "poolboy_locks", lbl("pool", "aws", "state", "claimed")...)
	if _, ok := gatewayValue(t, m, "poolboy_last_successful_cycle_timestamp_seconds", lbl()...); !ok {
		t.Error("a failed run removed the last success time")
	}
}

// Credentials in the repo URL never reach the repo label.
func TestPushgatewayRepoLabelWithoutCredentials(t *testing.T) {
	t.Parallel()
	gw := testenv.Pushgateway(t)
	r := newLockRepo(t, "main")
	ts := serve(t, r, "http")
	u := strings.Replace(ts[0].url, "://", "://"+httpUser+":"+httpPass+"@", 1)
	mustRun(t, nil, "status", "--repo", u, "--pushgateway-url", gw.URL)
	m := gw.Metrics(t)
	if strings.Contains(m, httpPass) {
		t.Errorf("the password is on the gateway:\n%s", grepLines(m, httpPass))
	}
	wantGateway(t, m, 2, "poolboy_locks", "job", "poolboy", "repo", ts[0].url, "pool", "aws", "state", "claimed")
}

// A gateway that does not answer is a one-line warning: the run's output and exit
// status are those without --pushgateway-url, and the gateway's password is not shown.
func TestPushgatewayDead(t *testing.T) {
	t.Parallel()
	r := newLockRepo(t, "main")
	dead := fmt.Sprintf("http://pushuser:push-s3cret@127.0.0.1:%d", testenv.FreePort(t))
	for _, args := range [][]string{{"status"}, {"clean", "--pools", "aws:1h"}} {
		res := run(t, map[string]string{"POOL_REPO": "file://" + r.dir, "POOLBOY_PUSHGATEWAY_URL": dead}, args...)
		wantCode(t, res, 0)
		var warnings []string
		for _, l := range strings.Split(res.stderr, "\n") {
			if !strings.HasPrefix(l, "time=") && l != "" { // clean logs the locks it frees
				warnings = append(warnings, l)
			}
		}
		if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "poolboy: warning: metrics not pushed: ") {
			t.Errorf("%s: want one warning line on stderr: %s", args[0], res)
		}
		if strings.Contains(res.stderr+res.stdout, "push-s3cret") {
			t.Errorf("%s: the gateway password is shown: %s", args[0], res)
		}
		if !strings.Contains(res.stdout, "\npool aws (") {
			t.Errorf("%s: no report: %s", args[0], res)
		}
	}
}
