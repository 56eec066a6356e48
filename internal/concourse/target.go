package concourse

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Target is one Concourse to ask, as every front end describes it (the command
// line's flags or fly targets, the watch config, the resource's source): they
// all fill a Target and call Resolve, so they all accept the same options.
type Target struct {
	URL                string // API address; overrides the fly target's api
	Username, Password string // a local user (password grant)
	Token              string // a bearer token instead of a user
	// FlyTarget reuses a `fly login`: its api, team, token, insecure and ca_cert
	// from FlyHome/.flyrc (FlyHome "": ~/.flyrc); the fields above override it.
	FlyTarget, FlyHome string
	Team               string // team of claims written before team names were recorded; default: the fly target's, else main
	Insecure           *bool  // nil: the fly target's, else verify TLS
	CACertFile         string // PEM file of a CA to trust on top of the system's
	CACertPEM          []byte // the same, given inline
	// Now is the client's clock (token expiry, login backoff); nil: time.Now. Tests
	// and the watch daemon set it.
	Now func() time.Time
}

// Resolve checks the target without the network and returns the client's
// Config and the default team. Errors never hold a secret.
func (t Target) Resolve(log *slog.Logger) (Config, string, error) {
	switch {
	case t.Username != "" && t.Token != "":
		return Config{}, "", errors.New("give Concourse either a user or a token, not both")
	case (t.Username == "") != (t.Password == ""):
		return Config{}, "", errors.New("a Concourse username and password go together")
	case t.URL == "" && t.FlyTarget == "":
		return Config{}, "", errors.New("a Concourse target needs a URL or a fly target")
	}
	cfg, team := Config{}, t.Team
	if t.FlyTarget != "" {
		fly, flyTeam, err := LoadFlyrc(t.FlyHome, t.FlyTarget)
		if err != nil {
			return Config{}, "", err
		}
		cfg = fly
		if team == "" {
			team = flyTeam
		}
	}
	if t.URL != "" {
		cfg.URL = t.URL
	}
	if t.Username != "" {
		cfg.Username, cfg.Password, cfg.Token = t.Username, t.Password, ""
	}
	if t.Token != "" {
		cfg.Token = t.Token
	}
	if t.Insecure != nil {
		cfg.Insecure = *t.Insecure
	}
	if t.CACertFile != "" {
		pem, err := os.ReadFile(t.CACertFile)
		if err != nil {
			return Config{}, "", fmt.Errorf("concourse CA cert: %w", err)
		}
		cfg.CACertPEM = append(cfg.CACertPEM, pem...)
	}
	cfg.CACertPEM = append(cfg.CACertPEM, t.CACertPEM...)
	cfg.Logger = log
	cfg.Now = t.Now
	if team == "" {
		team = "main"
	}
	if _, err := New(cfg); err != nil {
		return Config{}, "", err
	}
	return cfg, team, nil
}
