package ssh_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	xssh "golang.org/x/crypto/ssh"

	"github.com/firstlook/firstlook/runner/ssh"
)

// writeKey writes a fresh Ed25519 private key, encrypted when passphrase
// is not empty, and returns its path.
func writeKey(t *testing.T, passphrase string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = xssh.MarshalPrivateKey(priv, "test")
	} else {
		block, err = xssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigValidate(t *testing.T) {
	valid := ssh.Config{KnownHosts: []string{"kh"}, IdentityFiles: []string{"id"}}
	tests := []struct {
		name    string
		mutate  func(*ssh.Config)
		wantErr string // "" for valid
	}{
		{"valid", func(*ssh.Config) {}, ""},
		{"agent only", func(c *ssh.Config) { c.IdentityFiles, c.Agent = nil, true }, ""},
		{"no known_hosts", func(c *ssh.Config) { c.KnownHosts = nil }, "known_hosts: at least one"},
		{"empty known_hosts path", func(c *ssh.Config) { c.KnownHosts = []string{""} }, "known_hosts[0]: empty path"},
		{"no auth", func(c *ssh.Config) { c.IdentityFiles = nil }, "no auth method"},
		{"empty identity path", func(c *ssh.Config) { c.IdentityFiles = []string{"a", ""} }, "identity_files[1]: empty path"},
		{"negative timeout", func(c *ssh.Config) { c.ConnectTimeout = -time.Second }, "connect_timeout"},
		{"negative keepalive", func(c *ssh.Config) { c.KeepaliveInterval = -time.Second }, "keepalive_interval"},
		{"negative max_output", func(c *ssh.Config) { c.MaxOutput = -1 }, "max_output"},
		{"negative sessions", func(c *ssh.Config) { c.MaxSessionsPerBastion = -1 }, "max_sessions_per_bastion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate: got %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigYAMLAndDefaults(t *testing.T) {
	src := `
known_hosts: [/etc/firstlook/known_hosts]
identity_files: [/etc/firstlook/id_ed25519]
agent: true
connect_timeout: 5s
max_output: 2048
`
	var c ssh.Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	got := c.WithDefaults()
	want := ssh.Config{
		KnownHosts:            []string{"/etc/firstlook/known_hosts"},
		IdentityFiles:         []string{"/etc/firstlook/id_ed25519"},
		Agent:                 true,
		ConnectTimeout:        5 * time.Second,
		KeepaliveInterval:     ssh.DefaultKeepaliveInterval,
		MaxOutput:             2048,
		MaxSessionsPerBastion: ssh.DefaultMaxSessionsPerBastion,
	}
	if got.ConnectTimeout != want.ConnectTimeout || got.KeepaliveInterval != want.KeepaliveInterval ||
		got.MaxOutput != want.MaxOutput || got.MaxSessionsPerBastion != want.MaxSessionsPerBastion ||
		!got.Agent || got.KnownHosts[0] != want.KnownHosts[0] || got.IdentityFiles[0] != want.IdentityFiles[0] {
		t.Errorf("WithDefaults: got %+v, want %+v", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	kh := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	badKH := filepath.Join(dir, "bad_known_hosts")
	if err := os.WriteFile(badKH, []byte("host ssh-ed25519 not-base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	protected := writeKey(t, "secret")
	tests := []struct {
		name    string
		cfg     ssh.Config
		env     string // SSH_AUTH_SOCK
		wantErr []string
	}{
		{"passphrase-protected key", ssh.Config{KnownHosts: []string{kh}, IdentityFiles: []string{protected}}, "",
			[]string{"passphrase-protected", "ssh-add " + protected, "agent: true"}},
		{"missing key file", ssh.Config{KnownHosts: []string{kh}, IdentityFiles: []string{filepath.Join(dir, "nope")}}, "",
			[]string{"load identity file", "no such file"}},
		{"missing known_hosts", ssh.Config{KnownHosts: []string{filepath.Join(dir, "nope")}, IdentityFiles: []string{writeKey(t, "")}}, "",
			[]string{"load known_hosts", "no such file"}},
		{"bad known_hosts", ssh.Config{KnownHosts: []string{badKH}, IdentityFiles: []string{writeKey(t, "")}}, "",
			[]string{"load known_hosts", "bad_known_hosts:1"}},
		{"agent without socket", ssh.Config{KnownHosts: []string{kh}, Agent: true}, "",
			[]string{"SSH_AUTH_SOCK is not set"}},
		{"invalid", ssh.Config{IdentityFiles: []string{"x"}}, "", []string{"ssh config: known_hosts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SSH_AUTH_SOCK", tt.env)
			d, err := ssh.New(tt.cfg)
			if err == nil {
				d.Close()
				t.Fatalf("New: got nil error, want one containing %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New: got %q, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("New: got %q, which shows the passphrase", err)
			}
		})
	}
}

func TestDialRejects(t *testing.T) {
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := ssh.New(ssh.Config{KnownHosts: []string{kh}, IdentityFiles: []string{writeKey(t, "")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		target  ssh.Target
		wantErr string
	}{
		{"no address", ssh.Target{Name: "web-1", User: "root"}, "host web-1: empty address"},
		{"no user", ssh.Target{Name: "web-1", Addr: "10.0.0.1"}, "host web-1: empty user"},
		{"no bastion user", ssh.Target{Name: "web-1", Addr: "10.0.0.1", User: "root", Bastion: &ssh.Hop{Name: "b", Addr: "10.0.0.2"}}, "bastion b: empty user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := d.Dial(t.Context(), tt.target)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Dial: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	d.Close()
	if _, err := d.Dial(t.Context(), ssh.Target{Addr: "10.0.0.1", User: "root"}); !errors.Is(err, ssh.ErrClosed) {
		t.Errorf("Dial after Close: got %v, want ErrClosed", err)
	}
}
