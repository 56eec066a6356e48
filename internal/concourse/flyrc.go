package concourse

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

type flyrcFile struct {
	Targets map[string]yaml.Node `yaml:"targets"`
}

type flyTarget struct {
	API      string `yaml:"api"`
	Team     string `yaml:"team"`
	Insecure bool   `yaml:"insecure"`
	CACert   string `yaml:"ca_cert"`
	Token    *struct {
		Type  string `yaml:"type"`
		Value string `yaml:"value"`
	} `yaml:"token"`
}

// yamlQuoted matches the `…` excerpts yaml puts in type errors; they could
// hold a token.
var yamlQuoted = regexp.MustCompile("`[^`]*`")

// LoadFlyrc reads target from $FLY_HOME/.flyrc (flyHome != "") or ~/.flyrc
// and returns a Config with URL, Token, Insecure and CACertPEM set, and the
// target's team ("main" when the file names none). The token is never part
// of an error.
func LoadFlyrc(flyHome, target string) (cfg Config, team string, err error) {
	dir := flyHome
	if dir == "" {
		dir, err = os.UserHomeDir()
		if err != nil {
			return Config{}, "", fmt.Errorf("concourse: locating .flyrc: %w", err)
		}
	}
	path := filepath.Join(dir, ".flyrc")
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, "", fmt.Errorf("concourse: reading fly targets: %w", err)
	}
	var rc flyrcFile
	if err := yaml.Unmarshal(data, &rc); err != nil {
		return Config{}, "", fmt.Errorf("concourse: parsing %s: %s", path, yamlErr(err))
	}
	node, ok := rc.Targets[target]
	if !ok {
		known := make([]string, 0, len(rc.Targets))
		for name := range rc.Targets {
			known = append(known, name)
		}
		sort.Strings(known)
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		return Config{}, "", fmt.Errorf("concourse: no fly target %q in %s (known targets: %s)", target, path, list)
	}
	var t flyTarget
	if err := node.Decode(&t); err != nil {
		return Config{}, "", fmt.Errorf("concourse: fly target %q in %s: %s", target, path, yamlErr(err))
	}
	if strings.TrimSpace(t.API) == "" {
		return Config{}, "", fmt.Errorf("concourse: fly target %q in %s has no api", target, path)
	}
	if t.Token == nil || t.Token.Value == "" {
		return Config{}, "", fmt.Errorf("concourse: fly target %q in %s has no token (run fly -t %s login)", target, path, target)
	}
	if typ := t.Token.Type; typ != "" && !strings.EqualFold(typ, "bearer") {
		return Config{}, "", fmt.Errorf("concourse: fly target %q in %s: unsupported token type %q", target, path, oneLine(typ))
	}
	team = t.Team
	if team == "" {
		team = "main"
	}
	cfg = Config{
		URL:      strings.TrimSpace(t.API),
		Token:    strings.TrimSpace(t.Token.Value),
		Insecure: t.Insecure,
	}
	if strings.TrimSpace(t.CACert) != "" {
		cfg.CACertPEM = []byte(t.CACert)
	}
	return cfg, team, nil
}

// yamlErr renders a yaml error on one line without quoted file content.
func yamlErr(err error) string {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) {
		msg = strings.Join(te.Errors, "; ")
	}
	return oneLine(yamlQuoted.ReplaceAllString(msg, "`…`"))
}
