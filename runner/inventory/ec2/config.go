package ec2

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is the EC2 section of the inventory (inventory.ec2 in
// firstlook's configuration). Credentials are not in it: they come from
// the AWS SDK's default chain (environment, shared files, SSO, the
// instance or task role), so nothing secret is ever in the YAML.
type Config struct {
	// Region is the AWS region to look in, e.g. eu-west-1 (required).
	Region string `yaml:"region"`
	// Endpoint overrides the EC2 endpoint (a VPC interface endpoint, or a
	// test server). It must be https, or http on a loopback address.
	Endpoint string `yaml:"endpoint"`
	// Filters are DescribeInstances filters every instance must match,
	// e.g. {"tag:env": [prod], "vpc-id": [vpc-0abc]}. Only running
	// instances are ever hosts: instance-state-name is firstlook's own.
	Filters map[string][]string `yaml:"filters"`
	// Bastions names the static inventory's bastion for each subnet or
	// VPC; a subnet's wins over its VPC's, and Default applies to the rest.
	Bastions BastionsConfig `yaml:"bastions"`
	// User is the login user (required).
	User string `yaml:"user"`
	// UserTag is a tag whose value, when an instance has it, is that
	// instance's login user instead (e.g. ssh_user).
	UserTag string `yaml:"user_tag"`
	// Port is the SSH port (default 22).
	Port int `yaml:"port"`
	// NameTag is the tag that names an instance (default Name).
	NameTag string `yaml:"name_tag"`
	// LabelsFromTags lists the tags that become host labels, keyed by the
	// tag key, for playbook selectors and templates.
	LabelsFromTags []string `yaml:"labels_from_tags"`
	// GroupTag is a tag whose value, split on commas, gives the host's
	// groups (e.g. role: "web,api" → groups web and api).
	GroupTag string `yaml:"group_tag"`
	// CacheTTL is how long one DescribeInstances listing is used before
	// the next (default 60s).
	CacheTTL time.Duration `yaml:"cache_ttl"`
	// MaxStale is how old the last good listing may grow while refreshes
	// fail before lookups fail too (default 15m).
	MaxStale time.Duration `yaml:"max_stale"`
	// Timeout bounds one listing or lookup, retries included (default 20s).
	Timeout time.Duration `yaml:"timeout"`
}

// BastionsConfig maps subnets and VPCs to bastions of the static
// inventory, by name; "none" means dial directly.
type BastionsConfig struct {
	// VPC maps a VPC id to a bastion name.
	VPC map[string]string `yaml:"vpc"`
	// Subnet maps a subnet id to a bastion name; it wins over VPC.
	Subnet map[string]string `yaml:"subnet"`
	// Default is the bastion of instances in no mapped subnet or VPC;
	// empty dials them directly (firstlook runs inside the VPC).
	Default string `yaml:"default"`
}

// Defaults.
const (
	DefaultPort     = 22
	DefaultNameTag  = "Name"
	DefaultCacheTTL = 60 * time.Second
	DefaultMaxStale = 15 * time.Minute
	DefaultTimeout  = 20 * time.Second
)

// WithDefaults returns c with zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	c.Port = cmp.Or(c.Port, DefaultPort)
	c.NameTag = cmp.Or(c.NameTag, DefaultNameTag)
	c.CacheTTL = cmp.Or(c.CacheTTL, DefaultCacheTTL)
	c.MaxStale = cmp.Or(c.MaxStale, max(DefaultMaxStale, c.CacheTTL))
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	return c
}

var (
	regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	vpcID      = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	subnetID   = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
)

// ownFilters are the filters firstlook sets itself.
var ownFilters = []string{"instance-state-name", "instance-state-code"}

// Validate reports a configuration that cannot work; errors name the key.
// Zero values that have defaults are valid.
func (c Config) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.Region == "":
		fail("region: required (e.g. eu-west-1)")
	case !regionName.MatchString(c.Region):
		fail("region: %q is not an AWS region name (e.g. eu-west-1)", c.Region)
	}
	if c.Endpoint != "" {
		if err := checkEndpoint(c.Endpoint); err != nil {
			fail("endpoint: %v", err)
		}
	}
	for _, name := range sortedKeys(c.Filters) {
		switch {
		case strings.TrimSpace(name) == "":
			fail("filters: an empty filter name")
		case slices.Contains(ownFilters, name):
			fail("filters.%s: firstlook only uses running instances and sets this filter itself", name)
		case len(c.Filters[name]) == 0:
			fail("filters.%s: no values", name)
		case slices.Contains(c.Filters[name], ""):
			fail("filters.%s: an empty value", name)
		}
	}
	for _, id := range sortedKeys(c.Bastions.VPC) {
		if !vpcID.MatchString(id) {
			fail("bastions.vpc: %q is not a VPC id (vpc-…)", id)
		}
	}
	for _, id := range sortedKeys(c.Bastions.Subnet) {
		if !subnetID.MatchString(id) {
			fail("bastions.subnet: %q is not a subnet id (subnet-…)", id)
		}
	}
	if c.User == "" {
		fail("user: required (the login user on the instances, e.g. ec2-user)")
	}
	if c.Port < 0 || c.Port > 65535 {
		fail("port: %d out of range", c.Port)
	}
	seen := map[string]bool{}
	for i, k := range c.LabelsFromTags {
		switch {
		case k == "":
			fail("labels_from_tags[%d]: empty tag key", i)
		case seen[k]:
			fail("labels_from_tags[%d]: %q is listed twice", i, k)
		}
		seen[k] = true
	}
	switch {
	case c.CacheTTL < 0:
		fail("cache_ttl: %s is negative", c.CacheTTL)
	case c.MaxStale < 0:
		fail("max_stale: %s is negative", c.MaxStale)
	}
	if ttl := c.WithDefaults().CacheTTL; c.MaxStale > 0 && c.MaxStale < ttl {
		fail("max_stale: %s is shorter than cache_ttl %s: stale data could never be served", c.MaxStale, ttl)
	}
	if c.Timeout < 0 {
		fail("timeout: %s is negative", c.Timeout)
	}
	return errors.Join(errs...)
}

// checkEndpoint refuses plain http beyond loopback: the listing decides
// which addresses firstlook connects to, so it must not be spoofable.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%q has no host", s)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%q: use https (plain http only to a loopback address)", s)
	}
	return fmt.Errorf("%q: the scheme must be https", s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
