package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/evidence"
	pdnotes "github.com/firstlook/firstlook/evidence/pagerduty"
	slackpub "github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/evidence/store/s3"
	"github.com/firstlook/firstlook/evidence/store/spool"
	"github.com/firstlook/firstlook/hooks/pagerduty"
	"github.com/firstlook/firstlook/playbooks/library"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/inventory/ec2"
	"github.com/firstlook/firstlook/runner/queue"
	"github.com/firstlook/firstlook/runner/ssh"
)

// Config is firstlook.yaml: each section is the Config of the package that
// owns it, plus the secrets, which only this file knows how to read.
type Config struct {
	// Listen is the intake's address (default 127.0.0.1:8080).
	Listen string `yaml:"listen"`
	// DataDir holds the embedded queue and, by default, the evidence
	// (default ./firstlook-data).
	DataDir string `yaml:"data_dir"`
	// LogLevel is debug, info, warn or error (default info).
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json (default text).
	LogFormat string `yaml:"log_format"`

	HTTP      HTTPConfig      `yaml:"http"`
	PagerDuty PagerDutyConfig `yaml:"pagerduty"`
	Queue     queue.Config    `yaml:"queue"`
	Inventory InventoryConfig `yaml:"inventory"`
	SSH       ssh.Config      `yaml:"ssh"`
	Playbooks PlaybooksConfig `yaml:"playbooks"`
	Evidence  EvidenceConfig  `yaml:"evidence"`
	Slack     SlackConfig     `yaml:"slack"`
	Runner    runner.Config   `yaml:"runner"`
	// Params are per-service playbook parameter overrides: service name or
	// id → parameter → value.
	Params map[string]map[string]string `yaml:"params"`

	// path is the file the config came from; relative paths in it are
	// relative to its directory.
	path string
}

// HTTPConfig bounds the intake's HTTP server. The defaults suit webhooks:
// small bodies, answered at once.
type HTTPConfig struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// ShutdownTimeout is how long in-flight requests may take once
	// shutdown starts.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// PagerDutyConfig is the pagerduty section: the intake's Config and the
// secrets it needs.
type PagerDutyConfig struct {
	pagerduty.Config `yaml:",inline"`
	// WebhookSecrets are the signing secrets of the webhook
	// subscriptions; list two while rotating.
	WebhookSecrets []secret `yaml:"webhook_secrets"`
	// WebhookSecretFiles are files holding one secret each.
	WebhookSecretFiles []string `yaml:"webhook_secret_files"`
	// APIToken is a REST API key: with it firstlook reads the incident's
	// alerts for host hints (read access) and, when notes.from is set,
	// posts a note per run (write access to incidents).
	APIToken     secret `yaml:"api_token"`
	APITokenFile string `yaml:"api_token_file"`
	// Notes posts each run's summary on the incident; enabled by
	// notes.from.
	Notes pdnotes.Config `yaml:"notes"`
}

// SlackConfig is the slack section: the publisher's Config and its bot
// token. Slack is on when a token is set.
type SlackConfig struct {
	slackpub.Config `yaml:",inline"`
	// BotToken is the Slack app's bot token (xoxb-…).
	BotToken     secret `yaml:"bot_token"`
	BotTokenFile string `yaml:"bot_token_file"`
}

// InventoryConfig is the inventory section: the static inventory (a file
// or inline), and optionally EC2, looked up after it.
type InventoryConfig struct {
	inventory.Config `yaml:",inline"`
	// EC2 resolves instance ids, Name tags and private IPs with
	// DescribeInstances; its bastions are the static inventory's.
	EC2 *ec2.Config `yaml:"ec2"`
}

// Validate checks both parts; with EC2 the static part may hold only
// bastions.
func (c InventoryConfig) Validate() error {
	if c.EC2 == nil {
		return c.Config.Validate()
	}
	if err := c.EC2.Validate(); err != nil {
		return fmt.Errorf("ec2: %w", err)
	}
	if c.File != "" && (len(c.Hosts) > 0 || len(c.Bastions) > 0) {
		return c.Config.Validate()
	}
	return nil
}

// PlaybooksConfig says where playbooks are.
type PlaybooksConfig struct {
	// Paths are playbook files or directories (searched recursively).
	Paths []string `yaml:"paths"`
	// Library names the playbooks shipped in firstlook to match incidents
	// with, beside those under Paths. Every library playbook can be run by
	// name with firstlook run, listed here or not.
	Library []string `yaml:"library"`
}

// EvidenceConfig says where bundles go.
type EvidenceConfig struct {
	// Dir is the local directory store (default <data_dir>/evidence),
	// used unless S3 is set.
	Dir dir.Config `yaml:"dir"`
	// S3 keeps bundles in S3 (or an S3-compatible store) instead.
	S3 *s3.Config `yaml:"s3"`
	// Spool holds what S3 could not take yet (default dir
	// <data_dir>/spool); serve uploads it when S3 is back.
	Spool spool.Config `yaml:"spool"`
	// Redact adds patterns to the built-in secret redaction.
	Redact evidence.RedactConfig `yaml:"redact"`
}

// secret is a configuration value that must never be shown: it prints as
// "<secret>" in every format, YAML included.
type secret string

func (s secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

func (s secret) GoString() string             { return s.String() }
func (s secret) MarshalYAML() (any, error)    { return s.String(), nil }
func (s secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s secret) value() string                { return string(s) }

// LoadConfig reads, expands and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.path = path
	return cfg, nil
}

// ParseConfig parses configuration YAML, expands ${VAR} in values from the
// environment, makes relative paths relative to base, applies defaults and
// validates.
func ParseConfig(b []byte, base string) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	cfg := &Config{}
	if len(root.Content) > 0 {
		if err := checkKeys(root.Content[0], reflect.TypeFor[Config](), ""); err != nil {
			return nil, err
		}
		if err := expandEnv(&root, nil); err != nil {
			return nil, err
		}
		if err := root.Decode(cfg); err != nil {
			return nil, errors.New(strings.ReplaceAll(err.Error(), "yaml: unmarshal errors:\n  ", ""))
		}
	}
	cfg.applyDefaults(base)
	if err := cfg.readSecretFiles(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in scalar values (never in keys, and never by
// re-parsing YAML, so a variable cannot inject structure). An unset
// variable is an error naming the field.
func expandEnv(n *yaml.Node, path []string) error {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for i, c := range n.Content {
			p := path
			if n.Kind == yaml.SequenceNode {
				p = appendIndex(path, i)
			}
			if err := expandEnv(c, p); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := expandEnv(n.Content[i+1], append(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		var missing string
		out := envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			name := envRef.FindStringSubmatch(ref)[1]
			v, ok := os.LookupEnv(name)
			if !ok && missing == "" {
				missing = name
			}
			return v
		})
		if missing != "" {
			return fmt.Errorf("%s: environment variable %s is not set", strings.Join(path, "."), missing)
		}
		if out != n.Value {
			n.Value = out
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
				// Unquoted: let the value resolve as if written in
				// place, so port: ${PORT} decodes as a number.
				n.Tag = ""
			}
		}
	}
	return nil
}

// checkKeys rejects keys that no field of t takes, anywhere in n, with the
// line and the valid keys: a misspelt key must not silently fall back to a
// default. (The yaml decoder's KnownFields works on bytes; the config is
// decoded from the expanded node tree.)
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.AliasNode:
		return checkKeys(n.Alias, t, path)
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, c := range n.Content {
			if err := checkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				names := slices.Sorted(maps.Keys(fields))
				return fmt.Errorf("line %d: %s: unknown key %q; valid keys: %s", k.Line, orTop(path), k.Value, strings.Join(names, ", "))
			}
			if err := checkKeys(n.Content[i+1], ft, join(path, k.Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlFields maps the yaml keys of struct t (with ,inline fields merged)
// to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
			continue
		case strings.Contains(opts, "inline"):
			maps.Copy(out, yamlFields(f.Type))
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func appendIndex(path []string, i int) []string {
	p := append([]string(nil), path...)
	if len(p) == 0 {
		return []string{fmt.Sprintf("[%d]", i)}
	}
	p[len(p)-1] = fmt.Sprintf("%s[%d]", p[len(p)-1], i)
	return p
}

func (c *Config) applyDefaults(base string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(base, p)
	}
	c.Listen = cmp.Or(c.Listen, "127.0.0.1:8080")
	c.DataDir = cmp.Or(c.DataDir, "firstlook-data")
	c.DataDir = abs(c.DataDir)
	c.LogLevel = cmp.Or(c.LogLevel, "info")
	c.LogFormat = cmp.Or(c.LogFormat, "text")
	h := &c.HTTP
	h.ReadHeaderTimeout = cmp.Or(h.ReadHeaderTimeout, 5*time.Second)
	h.ReadTimeout = cmp.Or(h.ReadTimeout, 10*time.Second)
	h.WriteTimeout = cmp.Or(h.WriteTimeout, 10*time.Second)
	h.IdleTimeout = cmp.Or(h.IdleTimeout, 2*time.Minute)
	h.ShutdownTimeout = cmp.Or(h.ShutdownTimeout, 10*time.Second)
	for i := range c.PagerDuty.WebhookSecretFiles {
		c.PagerDuty.WebhookSecretFiles[i] = abs(c.PagerDuty.WebhookSecretFiles[i])
	}
	c.PagerDuty.APITokenFile = abs(c.PagerDuty.APITokenFile)
	c.Slack.BotTokenFile = abs(c.Slack.BotTokenFile)
	c.Inventory.File = abs(c.Inventory.File)
	for i := range c.SSH.KnownHosts {
		c.SSH.KnownHosts[i] = abs(c.SSH.KnownHosts[i])
	}
	for i := range c.SSH.IdentityFiles {
		c.SSH.IdentityFiles[i] = abs(c.SSH.IdentityFiles[i])
	}
	for i := range c.Playbooks.Paths {
		c.Playbooks.Paths[i] = abs(c.Playbooks.Paths[i])
	}
	c.Evidence.Dir.Path = cmp.Or(c.Evidence.Dir.Path, filepath.Join(c.DataDir, "evidence"))
	c.Evidence.Dir.Path = abs(c.Evidence.Dir.Path)
	c.Evidence.Spool.Dir = cmp.Or(c.Evidence.Spool.Dir, filepath.Join(c.DataDir, "spool"))
	c.Evidence.Spool.Dir = abs(c.Evidence.Spool.Dir)
	c.Queue.DataDir = c.DataDir
	c.Queue.Embedded.Dir = abs(c.Queue.Embedded.Dir)
	c.Queue.CredsFile = abs(c.Queue.CredsFile)
	c.Queue.PasswordFile = abs(c.Queue.PasswordFile)
	c.Queue.Embedded.KeyFile = abs(c.Queue.Embedded.KeyFile)
	c.Queue.Embedded.PreviousKeyFile = abs(c.Queue.Embedded.PreviousKeyFile)
	c.Runner = c.Runner.WithDefaults()
	c.PagerDuty.Notes.APIURL = cmp.Or(c.PagerDuty.Notes.APIURL, c.PagerDuty.APIURL)
}

// readSecretFiles reads the *_file secrets; a file's trailing newline is
// not part of the secret.
func (c *Config) readSecretFiles() error {
	read := func(field, path string) (secret, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("%s: %s is empty", field, path)
		}
		return secret(s), nil
	}
	for i, f := range c.PagerDuty.WebhookSecretFiles {
		s, err := read(fmt.Sprintf("pagerduty.webhook_secret_files[%d]", i), f)
		if err != nil {
			return err
		}
		c.PagerDuty.WebhookSecrets = append(c.PagerDuty.WebhookSecrets, s)
	}
	if f := c.Slack.BotTokenFile; f != "" {
		if c.Slack.BotToken != "" {
			return errors.New("slack: bot_token and bot_token_file: set one")
		}
		s, err := read("slack.bot_token_file", f)
		if err != nil {
			return err
		}
		c.Slack.BotToken = s
	}
	if f := c.PagerDuty.APITokenFile; f != "" {
		if c.PagerDuty.APIToken != "" {
			return errors.New("pagerduty: api_token and api_token_file: set one")
		}
		s, err := read("pagerduty.api_token_file", f)
		if err != nil {
			return err
		}
		c.PagerDuty.APIToken = s
	}
	return nil
}

// Validate checks every section and names the field at fault.
func (c *Config) Validate() error {
	var errs []error
	check := func(section string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", section, err))
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		check("log_level", fmt.Errorf("%q: use debug, info, warn or error", c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		check("log_format", fmt.Errorf("%q: use text or json", c.LogFormat))
	}
	check("pagerduty", c.PagerDuty.Validate())
	if c.PagerDuty.Notes.From != "" {
		check("pagerduty.notes", c.PagerDuty.Notes.Validate())
		if c.PagerDuty.APIToken == "" {
			check("pagerduty.notes", errors.New("needs pagerduty.api_token (or api_token_file) with write access to incidents"))
		}
	}
	check("queue", c.Queue.Validate())
	check("inventory", c.Inventory.Validate())
	check("ssh", c.SSH.Validate())
	if c.Slack.BotToken != "" {
		check("slack", c.Slack.Validate())
	}
	if c.Evidence.S3 != nil {
		check("evidence.s3", c.Evidence.S3.Validate())
	} else {
		check("evidence.dir", c.Evidence.Dir.Validate())
	}
	check("evidence.redact", c.Evidence.Redact.Validate())
	check("runner", c.Runner.Validate())
	if len(c.Playbooks.Paths) == 0 && len(c.Playbooks.Library) == 0 {
		check("playbooks", errors.New("no playbooks: list files or directories under paths, or library playbooks under library"))
	}
	for i, name := range c.Playbooks.Library {
		if !slices.Contains(library.Names(), name) {
			check(fmt.Sprintf("playbooks.library[%d]", i), fmt.Errorf("no playbook %q in the library; it has %s", name, strings.Join(library.Names(), ", ")))
		}
	}
	return errors.Join(errs...)
}

// requireIntake checks what only serve needs.
func (c *Config) requireIntake() error {
	if len(c.PagerDuty.WebhookSecrets) == 0 {
		return errors.New("pagerduty.webhook_secrets: required to verify webhooks (set it from the environment: [\"${PAGERDUTY_WEBHOOK_SECRET}\"])")
	}
	return nil
}

func (c *Config) webhookSecrets() []string {
	out := make([]string, len(c.PagerDuty.WebhookSecrets))
	for i, s := range c.PagerDuty.WebhookSecrets {
		out[i] = s.value()
	}
	return out
}
