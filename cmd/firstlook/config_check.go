package main

import (
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/firstlook/firstlook/playbooks/yamlfile"
	"github.com/firstlook/firstlook/runner/inventory"
)

// checkFiles checks what serve and run will open, without connecting to
// anything: the files the config names exist and are readable, known_hosts
// parses, and the inventory loads. Secret files were read when the config
// was. Problems are placed at the key that names the file.
func (c *Config) checkFiles() yamlfile.List {
	d := &yamlfile.Decoder{File: c.path}
	at := func(where string) *yaml.Node { return yamlfile.KeyNode(c.root, where) }
	readable := func(where, path, what string) bool {
		f, err := os.Open(path)
		if err != nil {
			d.Fail(at(where), where, "%s: %v; %s", what, unwrapPathError(err), fixFile(err))
			return false
		}
		f.Close()
		return true
	}
	for i, p := range c.SSH.KnownHosts {
		where := fmt.Sprintf("ssh.known_hosts[%d]", i)
		if !readable(where, p, "known_hosts") {
			continue
		}
		if _, err := knownhosts.New(p); err != nil {
			d.Fail(at(where), where, "%v; fix or remove that line (ssh-keyscan HOST writes good ones)", err)
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Size() == 0 {
			d.Warn(at(where), where, "%s has no host keys, so no host can be reached; add them (ssh-keyscan -H HOST >> %s)", p, p)
		}
	}
	for i, p := range c.SSH.IdentityFiles {
		where := fmt.Sprintf("ssh.identity_files[%d]", i)
		readable(where, p, "identity file")
	}
	if c.SSH.Agent && os.Getenv("SSH_AUTH_SOCK") == "" {
		d.Warn(at("ssh.agent"), "ssh.agent", "SSH_AUTH_SOCK is not set here, so there is no agent to ask for keys; start serve and run where an agent runs")
	}
	q := c.Queue
	for where, p := range map[string]string{
		"queue.creds_file": q.CredsFile, "queue.password_file": q.PasswordFile,
		"queue.tls.ca_file": q.TLS.CAFile, "queue.tls.cert_file": q.TLS.CertFile, "queue.tls.key_file": q.TLS.KeyFile,
	} {
		if p != "" {
			readable(where, p, "file")
		}
	}
	if c.Inventory.File == "" && c.Inventory.EC2 == nil && c.Inventory.Config.Validate() == nil {
		// Inline: place the inventory's errors in the config.
		if _, err := inventory.New(c.Inventory.Config); err != nil {
			var list yamlfile.List
			if errors.As(err, &list) {
				for _, e := range list {
					d.At(c.root, errors.New("inventory."+e.Msg))
				}
			} else {
				d.At(c.root, fmt.Errorf("inventory: %w", err))
			}
		}
	}
	if f := c.Inventory.File; f != "" {
		if readable("inventory.file", f, "inventory") {
			if _, err := inventory.Load(f); err != nil {
				var list yamlfile.List
				if errors.As(err, &list) {
					d.Errs = append(d.Errs, list...)
				} else {
					d.Fail(at("inventory.file"), "inventory.file", "%v", err)
				}
			}
		}
	}
	return d.Errs
}

func fixFile(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "create it, or fix the path (relative paths are relative to the config file)"
	case errors.Is(err, os.ErrPermission):
		return "let the user firstlook runs as read it"
	}
	return "fix the path"
}
