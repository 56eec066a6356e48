package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
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

// witness builds the Concourse evidence source, or nil when no Concourse is configured.
func (o *options) witness(log *slog.Logger) (reaper.Witness, error) {
	if err := o.checkConcourse(); err != nil {
		return nil, err
	}
	if o.ccURL == "" && o.flyTarget == "" {
		return nil, nil
	}
	cfg := concourse.Config{Logger: log}
	team := o.ccTeam
	if o.flyTarget != "" {
		flyHome, _ := o.env("FLY_HOME")
		fly, flyTeam, err := concourse.LoadFlyrc(flyHome, o.flyTarget)
		if err != nil {
			return nil, usageError{err}
		}
		cfg = fly
		cfg.Logger = log
		if team == "" {
			team = flyTeam
		}
	}
	if o.ccURL != "" {
		cfg.URL = o.ccURL
	}
	if o.ccUser != "" {
		cfg.Username, cfg.Password, cfg.Token = o.ccUser, o.ccPassword, ""
	}
	if o.ccToken != "" {
		cfg.Token = o.ccToken
	}
	if o.ccInsecureSet {
		cfg.Insecure = o.ccInsecure
	}
	if o.ccCACert != "" {
		pem, err := os.ReadFile(o.ccCACert)
		if err != nil {
			return nil, usageError{fmt.Errorf("concourse CA cert: %w", err)}
		}
		cfg.CACertPEM = append(cfg.CACertPEM, pem...)
	}
	w, err := liveness.Connect(cfg, liveness.Options{Team: team, Log: log})
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
