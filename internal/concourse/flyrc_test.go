package concourse

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const flyCanary = "canary-flyrc-token-7f3a9c"

// selfSignedPEM returns a throwaway CA certificate in PEM form.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

func TestLoadFlyrc(t *testing.T) {
	caPEM := selfSignedPEM(t)
	valid := `targets:
  ci:
    api: https://ci.example.com/
    team: platform
    token:
      type: bearer
      value: ` + flyCanary + `
  other:
    api: http://localhost:8080
    team: main
    token: {type: bearer, value: x}
`
	tests := []struct {
		name     string
		content  *string // nil: no file
		mode     os.FileMode
		target   string
		wantErr  []string // substrings of the error
		wantIs   error
		wantCfg  Config
		wantTeam string
	}{
		{
			name: "valid", content: &valid, mode: 0o600, target: "ci",
			wantCfg:  Config{URL: "https://ci.example.com/", Token: flyCanary},
			wantTeam: "platform",
		},
		{
			name: "group readable still works", content: &valid, mode: 0o644, target: "ci",
			wantCfg:  Config{URL: "https://ci.example.com/", Token: flyCanary},
			wantTeam: "platform",
		},
		{
			name: "unknown target lists known", content: &valid, mode: 0o600, target: "prod",
			wantErr: []string{`"prod"`, "known targets: ci, other"},
		},
		{
			name: "missing file", mode: 0o600, target: "ci",
			wantIs: fs.ErrNotExist,
		},
		{
			name: "malformed yaml", content: ptr("targets:\n  ci: [unclosed\n    api: x\n"), mode: 0o600, target: "ci",
			wantErr: []string{"parsing"},
		},
		{
			name: "wrong shape does not echo content", content: ptr("targets: " + flyCanary + "\n"), mode: 0o600, target: "ci",
			wantErr: []string{"parsing", "cannot unmarshal"},
		},
		{
			name: "token of wrong shape does not echo it", content: ptr("targets:\n  ci:\n    api: https://x\n    token: [" + flyCanary + "]\n"), mode: 0o600, target: "ci",
			wantErr: []string{`fly target "ci"`},
		},
		{
			name: "no targets", content: ptr("{}\n"), mode: 0o600, target: "ci",
			wantErr: []string{"known targets: none"},
		},
		{
			name: "no token", content: ptr("targets:\n  ci:\n    api: https://x\n    team: main\n"), mode: 0o600, target: "ci",
			wantErr: []string{"no token", "login"},
		},
		{
			name: "no api", content: ptr("targets:\n  ci:\n    token: {type: bearer, value: " + flyCanary + "}\n"), mode: 0o600, target: "ci",
			wantErr: []string{"no api"},
		},
		{
			name: "insecure and ca_cert, default team",
			content: ptr("targets:\n  tls:\n    api: https://ci.internal:8443\n    insecure: true\n    ca_cert: |\n" +
				indent(caPEM, "      ") + "\n    token:\n      type: Bearer\n      value: " + flyCanary + "\n"),
			mode: 0o600, target: "tls",
			wantCfg:  Config{URL: "https://ci.internal:8443", Token: flyCanary, Insecure: true, CACertPEM: []byte(caPEM)},
			wantTeam: "main",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != nil {
				p := filepath.Join(dir, ".flyrc")
				if err := os.WriteFile(p, []byte(*tc.content), tc.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, tc.mode); err != nil {
					t.Fatal(err)
				}
			}
			cfg, team, err := LoadFlyrc(dir, tc.target)
			if tc.wantErr != nil || tc.wantIs != nil {
				if err == nil {
					t.Fatalf("LoadFlyrc: want error, got cfg %+v", cfg)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("error %q is not %v", err, tc.wantIs)
				}
				if strings.Contains(err.Error(), flyCanary) {
					t.Errorf("error leaks the token: %q", err)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadFlyrc: %v", err)
			}
			if team != tc.wantTeam {
				t.Errorf("team = %q, want %q", team, tc.wantTeam)
			}
			if cfg.URL != tc.wantCfg.URL || cfg.Token != tc.wantCfg.Token || cfg.Insecure != tc.wantCfg.Insecure ||
				string(cfg.CACertPEM) != string(tc.wantCfg.CACertPEM) {
				t.Errorf("cfg = %+v, want %+v", cfg, tc.wantCfg)
			}
			// The result must be usable as is.
			if _, err := New(cfg); err != nil {
				t.Errorf("New(cfg from flyrc): %v", err)
			}
		})
	}
}

func TestLoadFlyrcHomeDefault(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	content := "targets:\n  ci:\n    api: https://ci.example.com\n    team: main\n    token: {type: bearer, value: " + flyCanary + "}\n"
	if err := os.WriteFile(filepath.Join(home, ".flyrc"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, team, err := LoadFlyrc("", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.URL != "https://ci.example.com" || cfg.Token != flyCanary || team != "main" {
		t.Errorf("got %+v team %q", cfg, team)
	}
}

func ptr(s string) *string { return &s }
