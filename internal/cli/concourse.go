package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/poolboy-ci/poolboy/internal/concourse"
	"github.com/poolboy-ci/poolboy/internal/liveness"
	"github.com/poolboy-ci/poolboy/internal/policy"
	"github.com/poolboy-ci/poolboy/internal/reaper"
)

// checkConcourse rejects contradictory Concourse settings before anything is contacted.
func (o *options) checkConcourse() error {
	switch {
	case o.ccUser != "" && o.ccToken != "":
		return usageError{errors.New("give Concourse either a user (--concourse-username) or a token (--concourse-token), not both")}
	case o.ccPassword != "" && o.ccUser == "":
		return usageError{errors.New("--concourse-password needs --concourse-username")}
	case o.ccUser != "" && o.ccPassword == "":
		return usageError{errors.New("--concourse-username needs --concourse-password (or CONCOURSE_PASSWORD)")}
	case o.ccURL == "" && o.flyTarget == "" && (o.ccUser != "" || o.ccToken != ""):
		return usageError{errors.New("concourse credentials given but no --concourse-url (or CONCOURSE_BASE_URL) or --fly-target")}
	}
	return nil
}

// targets lists the Concourses to ask: one per fly target (--fly-target
// prod,staging), or the one --concourse-url names (which may refine a single fly
// target). --concourse-team, --concourse-insecure and --concourse-ca-cert apply to
// every target; the URL and credentials flags to one only.
func (o *options) targets() ([]concourse.Target, error) {
	var flyTargets []string
	for _, name := range strings.Split(o.flyTarget, ",") {
		if name = strings.TrimSpace(name); name != "" {
			flyTargets = append(flyTargets, name)
		}
	}
	if len(flyTargets) > 1 && (o.ccURL != "" || o.ccUser != "" || o.ccToken != "") {
		return nil, usageError{errors.New("--concourse-url, --concourse-username and --concourse-token refine a single --fly-target; with several, each brings its own")}
	}
	if len(flyTargets) == 0 && o.ccURL == "" {
		return nil, nil
	}
	base := concourse.Target{URL: o.ccURL, Username: o.ccUser, Password: o.ccPassword, Token: o.ccToken,
		Team: o.ccTeam, CACertFile: o.ccCACert}
	base.FlyHome, _ = o.env("FLY_HOME")
	if o.ccInsecureSet {
		base.Insecure = &o.ccInsecure
	}
	if len(flyTargets) <= 1 {
		base.FlyTarget = strings.Join(flyTargets, "")
		return []concourse.Target{base}, nil
	}
	var out []concourse.Target
	for _, name := range flyTargets {
		t := base
		t.FlyTarget = name
		out = append(out, t)
	}
	return out, nil
}

// witness builds the Concourse evidence source, or nil when no Concourse is configured.
func (o *options) witness(log *slog.Logger) (reaper.Witness, error) {
	if err := o.checkConcourse(); err != nil {
		return nil, err
	}
	targets, err := o.targets()
	if err != nil || len(targets) == 0 {
		return nil, err
	}
	w, err := liveness.Connect(targets, liveness.Options{Log: log})
	if err != nil {
		return nil, usageError{err}
	}
	return w, nil
}

// parseReapSucceeded reads --reap-on-success: pool names, each one given a timeout.
func parseReapSucceeded(spec string, timeouts policy.Timeouts) (map[string]bool, error) {
	set := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if _, ok := timeouts[name]; !ok {
			return nil, fmt.Errorf("--reap-on-success: pool %q is not in --pools", name)
		}
		set[name] = true
	}
	return set, nil
}
