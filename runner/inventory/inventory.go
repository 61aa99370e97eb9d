// Package inventory says which hosts firstlook may reach, how (address,
// port, user) and through which bastion. Nothing outside the inventory is
// ever dialled: an incident only names hosts, the inventory decides.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/playbooks/yamlfile"
)

// ErrUnknownHost is returned when a hint matches no inventory host.
var ErrUnknownHost = errors.New("not in the inventory")

// Host is a host firstlook may reach.
type Host struct {
	Name    string
	Address string
	Port    int
	User    string
	Labels  map[string]string
	Groups  []string
	Aliases []string
	// Bastion is the jump host to go through; nil means dial directly.
	Bastion *Bastion
	// Sudo says the host opted in to privilege: steps may run commands
	// through `sudo -n`. Off by default, and nothing probes sudo on a
	// host that did not opt in (a failed sudo writes a security-log
	// entry, mailed to root on many systems).
	Sudo bool
}

// Addr is the host's dial address, host:port.
func (h Host) Addr() string { return net.JoinHostPort(h.Address, strconv.Itoa(h.Port)) }

// Bastion is an SSH jump host.
type Bastion struct {
	Name    string
	Address string
	Port    int
	User    string
}

// Addr is the bastion's dial address, host:port.
func (b Bastion) Addr() string { return net.JoinHostPort(b.Address, strconv.Itoa(b.Port)) }

// Config is the inventory section of firstlook's configuration: a file,
// or defaults, bastions and hosts inline (not both).
type Config struct {
	// File is a YAML file with the inline form's keys.
	File     string          `yaml:"file"`
	Defaults Defaults        `yaml:"defaults"`
	Bastions []BastionConfig `yaml:"bastions"`
	Hosts    []HostConfig    `yaml:"hosts"`
	// SudoGroups opts the hosts of these groups in to sudo (see
	// Host.Sudo), unless a host says sudo: false.
	SudoGroups []string `yaml:"sudo_groups"`
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	inline := len(c.Hosts) > 0 || len(c.Bastions) > 0
	switch {
	case c.File != "" && inline:
		return errors.New("file and inline hosts/bastions: use one or the other")
	case c.File == "" && !inline:
		return errors.New("no hosts: set file or list hosts (firstlook reaches only inventory hosts)")
	}
	return nil
}

// New loads the inventory the configuration describes.
func New(c Config) (*Inventory, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if c.File != "" {
		return Load(c.File)
	}
	return build("(inline)", document{Defaults: c.Defaults, Bastions: c.Bastions, Hosts: c.Hosts, SudoGroups: c.SudoGroups}, nil)
}

// Defaults apply to hosts that leave a field out.
type Defaults struct {
	Port    int    `yaml:"port"`
	User    string `yaml:"user"`
	Bastion string `yaml:"bastion"`
	// Sudo opts every host in to sudo (see Host.Sudo); default false.
	Sudo bool `yaml:"sudo"`
}

// document is the YAML shape of an inventory file.
type document struct {
	Defaults   Defaults        `yaml:"defaults"`
	Bastions   []BastionConfig `yaml:"bastions"`
	Hosts      []HostConfig    `yaml:"hosts"`
	SudoGroups []string        `yaml:"sudo_groups"`
}

// BastionConfig is one bastion as written in the inventory.
type BastionConfig struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	Port    int    `yaml:"port"`
	User    string `yaml:"user"`
}

// HostConfig is one host as written in the inventory.
type HostConfig struct {
	Name    string            `yaml:"name"`
	Address string            `yaml:"address"`
	Port    int               `yaml:"port"`
	User    string            `yaml:"user"`
	Bastion string            `yaml:"bastion"`
	Labels  map[string]string `yaml:"labels"`
	Groups  []string          `yaml:"groups"`
	Aliases []string          `yaml:"aliases"`
	// Sudo, when set, opts the host in to sudo or out of it, whatever
	// defaults.sudo and sudo_groups say.
	Sudo *bool `yaml:"sudo"`
}

// Inventory is a loaded, validated static inventory.
type Inventory struct {
	hosts    []Host
	index    map[string]int // lower-cased name, alias or address → host
	bastions map[string]*Bastion
}

// Load reads an inventory file.
func Load(path string) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return Parse(path, b)
}

// Parse parses inventory YAML; name is used in error messages. Its error
// is a yamlfile.List: every problem at its line and column.
func Parse(name string, b []byte) (*Inventory, error) {
	d := &yamlfile.Decoder{File: name}
	root := d.Parse(b)
	var doc document
	d.Decode(root, "", &doc)
	if len(d.Errs) == 0 {
		return build(name, doc, root)
	}
	if root != nil {
		// Report what else is wrong too, so that one run shows it all.
		if _, err := build(name, doc, root); err != nil {
			var list yamlfile.List
			if errors.As(err, &list) {
				d.Errs = append(d.Errs, list...)
			}
		}
	}
	d.Errs.Sort()
	return nil, d.Errs
}

// itemNode is the node of the i-th item of a top-level list key, or nil.
func itemNode(root *yaml.Node, key string, i int) *yaml.Node {
	n, found := yamlfile.Node(root, fmt.Sprintf("%s[%d]", key, i))
	if found == "" {
		return nil
	}
	return n
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func build(name string, doc document, root *yaml.Node) (*Inventory, error) {
	d := &yamlfile.Decoder{File: name}
	fail := func(key string, i int, format string, args ...any) {
		d.Fail(itemNode(root, key, i), fmt.Sprintf("%s[%d]", key, i), format, args...)
	}
	bastions := map[string]*Bastion{}
	for i, b := range doc.Bastions {
		switch {
		case !validName.MatchString(b.Name):
			fail("bastions", i, "name %q: use letters, digits, '.', '_' and '-'", b.Name)
			continue
		case bastions[b.Name] != nil:
			fail("bastions", i, "duplicate bastion %q; rename or remove one", b.Name)
			continue
		case b.Address == "":
			fail("bastions", i, "bastion %s has no address; add address: (a name or an IP)", b.Name)
		}
		port, user := b.Port, b.User
		if port == 0 {
			port = 22
		}
		if user == "" {
			user = doc.Defaults.User
		}
		if port < 1 || port > 65535 {
			fail("bastions", i, "port %d is out of range; use 1 to 65535", port)
		}
		if user == "" {
			fail("bastions", i, "bastion %s has no user; set user: here, or defaults.user", b.Name)
		}
		bastions[b.Name] = &Bastion{Name: b.Name, Address: b.Address, Port: port, User: user}
	}
	if doc.Defaults.Bastion != "" && bastions[doc.Defaults.Bastion] == nil {
		d.Fail(yamlfile.KeyNode(root, "defaults.bastion"), "defaults.bastion", "%q is not among the bastions; add it under bastions, or fix the name", doc.Defaults.Bastion)
	}
	inv := &Inventory{index: map[string]int{}, bastions: bastions}
	for i, h := range doc.Hosts {
		if !validName.MatchString(h.Name) {
			fail("hosts", i, "name %q: use letters, digits, '.', '_' and '-'", h.Name)
			continue
		}
		if h.Address == "" {
			fail("hosts", i, "host %s has no address; add address: (a name or an IP)", h.Name)
			continue
		}
		host := Host{Name: h.Name, Address: h.Address, Port: h.Port, User: h.User, Labels: h.Labels, Groups: h.Groups, Aliases: h.Aliases}
		if host.Port == 0 {
			host.Port = doc.Defaults.Port
		}
		if host.Port == 0 {
			host.Port = 22
		}
		if host.Port < 1 || host.Port > 65535 {
			fail("hosts", i, "port %d is out of range; use 1 to 65535", host.Port)
		}
		if host.User == "" {
			host.User = doc.Defaults.User
		}
		if host.User == "" {
			fail("hosts", i, "host %s has no user; set user: here, or defaults.user", h.Name)
		}
		host.Sudo = doc.Defaults.Sudo || slices.ContainsFunc(h.Groups, func(g string) bool { return slices.Contains(doc.SudoGroups, g) })
		if h.Sudo != nil {
			host.Sudo = *h.Sudo
		}
		bn := h.Bastion
		if bn == "" {
			bn = doc.Defaults.Bastion
		}
		if bn != "" && bn != "none" {
			if bastions[bn] == nil {
				fail("hosts", i, "host %s: bastion %q is not among the bastions; add it under bastions, or fix the name", h.Name, bn)
			}
			host.Bastion = bastions[bn]
		}
		for _, key := range append([]string{h.Name, h.Address}, h.Aliases...) {
			k := strings.ToLower(key)
			if j, ok := inv.index[k]; ok && j != len(inv.hosts) {
				fail("hosts", i, "%q already names host %s; a name, alias or address must name one host", key, inv.hosts[j].Name)
				continue
			}
			inv.index[k] = len(inv.hosts)
		}
		inv.hosts = append(inv.hosts, host)
	}
	if len(d.Errs) > 0 {
		d.Errs.Sort()
		return nil, d.Errs
	}
	return inv, nil
}

// Hosts returns every host.
func (inv *Inventory) Hosts() []Host { return slices.Clone(inv.hosts) }

// Bastions returns the bastions by name, including those no static host
// uses: other inventory sources (EC2) refer to them by name.
func (inv *Inventory) Bastions() map[string]*Bastion { return maps.Clone(inv.bastions) }

// Resolve returns the host a hint names: its name, one of its aliases or
// its address, compared without regard to case. Anything else is
// ErrUnknownHost, whatever the hint looks like.
func (inv *Inventory) Resolve(_ context.Context, hint string) (Host, error) {
	k := strings.ToLower(strings.TrimSpace(hint))
	if a, err := netip.ParseAddr(k); err == nil {
		k = a.Unmap().String()
	}
	if i, ok := inv.index[k]; ok {
		return inv.hosts[i], nil
	}
	return Host{}, fmt.Errorf("host %q: %w", hint, ErrUnknownHost)
}

// Select returns the hosts in group (when not empty) that carry every label
// in labels, in inventory order.
func (inv *Inventory) Select(_ context.Context, group string, labels map[string]string) ([]Host, error) {
	var out []Host
	for _, h := range inv.hosts {
		if group != "" && !slices.Contains(h.Groups, group) {
			continue
		}
		match := true
		for k, v := range labels {
			if h.Labels[k] != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, h)
		}
	}
	return out, nil
}
