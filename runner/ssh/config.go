package ssh

import (
	"cmp"
	"errors"
	"fmt"
	"time"
)

// Defaults applied by Config.WithDefaults to zero fields.
const (
	DefaultConnectTimeout        = 10 * time.Second
	DefaultKeepaliveInterval     = 30 * time.Second
	DefaultMaxOutput             = 1 << 20 // 1 MiB per stream
	DefaultMaxSessionsPerBastion = 64
)

// Config configures a Dialer. Zero values of the durations and limits mean
// the defaults above; New applies them with WithDefaults.
type Config struct {
	// KnownHosts lists OpenSSH known_hosts files. Every hop, bastion and
	// host, is checked against them; @cert-authority and @revoked lines are
	// honoured. At least one file is required: there is no way to turn host
	// key checking off.
	KnownHosts []string `yaml:"known_hosts"`
	// IdentityFiles lists unencrypted private key files (OpenSSH, PEM or
	// PKCS#8). Passphrase-protected keys belong in the agent.
	IdentityFiles []string `yaml:"identity_files"`
	// Agent uses the ssh-agent at $SSH_AUTH_SOCK (read by New). Agent keys
	// are offered before identity files, as OpenSSH does.
	Agent bool `yaml:"agent"`
	// ConnectTimeout bounds each hop's TCP connect plus SSH handshake, and
	// a keepalive round trip. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// KeepaliveInterval is how often an idle connection sends
	// keepalive@openssh.com; a connection whose keepalive fails is closed
	// (a pooled bastion connection is then dropped and redialled on next
	// use). Default 30s.
	KeepaliveInterval time.Duration `yaml:"keepalive_interval"`
	// MaxOutput is how many bytes of stdout and of stderr, each, a Run
	// keeps; the rest is drained and counted. Default 1 MiB.
	MaxOutput int64 `yaml:"max_output"`
	// MaxSessionsPerBastion caps concurrent work through one bastion, across
	// every host behind it: each host handshake and each running command
	// holds one slot. Default 64.
	MaxSessionsPerBastion int `yaml:"max_sessions_per_bastion"`
}

// WithDefaults returns a copy of c with zero durations and limits set to
// their defaults.
func (c Config) WithDefaults() Config {
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.KeepaliveInterval = cmp.Or(c.KeepaliveInterval, DefaultKeepaliveInterval)
	c.MaxOutput = cmp.Or(c.MaxOutput, DefaultMaxOutput)
	c.MaxSessionsPerBastion = cmp.Or(c.MaxSessionsPerBastion, DefaultMaxSessionsPerBastion)
	return c
}

// Validate reports the first problem with c. It checks values only; New
// reads the files and reports problems with their contents.
func (c Config) Validate() error {
	if len(c.KnownHosts) == 0 {
		return errors.New("known_hosts: at least one known_hosts file is required; host keys are always checked")
	}
	for i, f := range c.KnownHosts {
		if f == "" {
			return fmt.Errorf("known_hosts[%d]: empty path", i)
		}
	}
	for i, f := range c.IdentityFiles {
		if f == "" {
			return fmt.Errorf("identity_files[%d]: empty path", i)
		}
	}
	if len(c.IdentityFiles) == 0 && !c.Agent {
		return errors.New("no auth method: set identity_files or agent: true")
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("connect_timeout: %s is negative", c.ConnectTimeout)
	}
	if c.KeepaliveInterval < 0 {
		return fmt.Errorf("keepalive_interval: %s is negative", c.KeepaliveInterval)
	}
	if c.MaxOutput < 0 {
		return fmt.Errorf("max_output: %d is negative", c.MaxOutput)
	}
	if c.MaxSessionsPerBastion < 0 {
		return fmt.Errorf("max_sessions_per_bastion: %d is negative", c.MaxSessionsPerBastion)
	}
	return nil
}
