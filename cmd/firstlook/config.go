package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
	"github.com/firstlook/firstlook/evidence/webhook"
	"github.com/firstlook/firstlook/hooks/pagerduty"
	"github.com/firstlook/firstlook/hooks/sns"
	"github.com/firstlook/firstlook/playbooks/library"
	"github.com/firstlook/firstlook/playbooks/yamlfile"
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
	// Audit says where the audit log goes (default stderr).
	Audit AuditConfig `yaml:"audit"`

	HTTP      HTTPConfig      `yaml:"http"`
	PagerDuty PagerDutyConfig `yaml:"pagerduty"`
	Queue     queue.Config    `yaml:"queue"`
	Inventory InventoryConfig `yaml:"inventory"`
	SSH       ssh.Config      `yaml:"ssh"`
	Playbooks PlaybooksConfig `yaml:"playbooks"`
	Evidence  EvidenceConfig  `yaml:"evidence"`
	Slack     SlackConfig     `yaml:"slack"`
	Webhook   WebhookConfig   `yaml:"webhook"`
	Runner    runner.Config   `yaml:"runner"`
	// Params are per-service playbook parameter overrides: service name or
	// id → parameter → value.
	Params map[string]map[string]string `yaml:"params"`

	// Alert sources besides PagerDuty; each is on when its section is
	// present (config_sources.go).
	Alertmanager *AlertmanagerConfig `yaml:"alertmanager"`
	Mackerel     *MackerelConfig     `yaml:"mackerel"`
	SNS          *sns.Config         `yaml:"sns"`

	// Warnings are what will not work as configured without stopping
	// anything: an optional secret whose variable is unset.
	Warnings yamlfile.List `yaml:"-" json:"-"`

	// path is the file the config came from; relative paths in it are
	// relative to its directory.
	path string
	// root is its YAML, to place problems found later.
	root *yaml.Node
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
	// DrainDelay is how long /readyz answers 503 before the intake
	// closes at shutdown, so that a load balancer stops sending here
	// first (default 0: close at once).
	DrainDelay time.Duration `yaml:"drain_delay"`
}

// PagerDutyConfig is the pagerduty section: the intake's Config and the
// secrets it needs.
type PagerDutyConfig struct {
	pagerduty.Config `yaml:",inline"`
	// WebhookSecrets are the signing secrets of the webhook
	// subscriptions; list two while rotating.
	WebhookSecrets []Secret `yaml:"webhook_secrets"`
	// WebhookSecretFiles are files holding one secret each (the same as
	// {file: path} items in WebhookSecrets; kept for older configs).
	WebhookSecretFiles []string `yaml:"webhook_secret_files"`
	// APIToken is a REST API key: with it firstlook reads the incident's
	// alerts for host hints (read access) and, when notes.from is set,
	// posts a note per run (write access to incidents).
	APIToken Secret `yaml:"api_token"`
	// APITokenFile is api_token: {file: path}, kept for older configs.
	APITokenFile string `yaml:"api_token_file"`
	// Notes posts each run's summary on the incident; enabled by
	// notes.from.
	Notes pdnotes.Config `yaml:"notes"`
	// RunAgain is the "run diagnostics again" button on incidents
	// (config_sources.go).
	RunAgain RunAgainConfig `yaml:"run_again"`
}

// SlackConfig is the slack section: the publisher's Config and its bot
// token. Slack is on when a token is set.
type SlackConfig struct {
	slackpub.Config `yaml:",inline"`
	// BotToken is the Slack app's bot token (xoxb-…).
	BotToken Secret `yaml:"bot_token"`
	// BotTokenFile is bot_token: {file: path}, kept for older configs.
	BotTokenFile string `yaml:"bot_token_file"`
}

// WebhookConfig is the webhook section: the sink's Config and the secret
// that signs its requests. The sink is on when url is set.
type WebhookConfig struct {
	webhook.Config `yaml:",inline"`
	// Secret signs every request (HMAC-SHA256); the receiver holds the
	// same.
	Secret Secret `yaml:"secret"`
}

// InventoryConfig is the inventory section: the static inventory (a file
// or inline), and optionally EC2, looked up after it.
type InventoryConfig struct {
	inventory.Config `yaml:",inline"`
	// EC2 resolves instance ids, Name tags and private IPs with
	// DescribeInstances; its bastions are the static inventory's.
	EC2 *ec2.Config `yaml:"ec2"`
}

// Inventory sources, in the order they are asked: what the operators wrote
// down wins over what a cloud API reports.
const (
	sourceStatic = "static"
	sourceEC2    = "ec2"
)

// sources are the configured sources, in order. A new source is a key in
// InventoryConfig, an entry here and a case in Config.inventory.
func (c InventoryConfig) sources() []string {
	var out []string
	if c.File != "" || len(c.Hosts) > 0 || len(c.Bastions) > 0 {
		out = append(out, sourceStatic)
	}
	if c.EC2 != nil {
		out = append(out, sourceEC2)
	}
	return out
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

// LoadConfig reads, expands and validates a configuration file. Its error
// is a yamlfile.List: every problem, each at its line and column.
// Warnings (an optional secret whose variable is unset) do not fail it;
// they are in the Config's Warnings.
func LoadConfig(path string) (*Config, error) {
	cfg, errs := loadConfig(path)
	if err := errs.Errors(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// loadConfig is LoadConfig returning what it could decode along with every
// problem, for validate.
func loadConfig(path string) (*Config, yamlfile.List) {
	b, err := os.ReadFile(path)
	if err != nil {
		return &Config{path: path}, yamlfile.List{{File: path, Msg: fmt.Sprintf("read config: %v", unwrapPathError(err))}}
	}
	cfg, errs := parseConfig(path, b, filepath.Dir(path))
	return cfg, errs
}

// ParseConfig parses configuration YAML, expands ${VAR} in values from the
// environment, makes relative paths relative to base, reads secret files,
// applies defaults and validates.
func ParseConfig(b []byte, base string) (*Config, error) {
	cfg, errs := parseConfig("firstlook.yaml", b, base)
	if err := errs.Errors(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseConfig(name string, b []byte, base string) (*Config, yamlfile.List) {
	d := &yamlfile.Decoder{File: name, Env: os.LookupEnv}
	cfg := &Config{path: name}
	root := d.Parse(b)
	if len(d.Errs) > 0 {
		return cfg, d.Errs
	}
	cfg.root = root
	d.Decode(root, "", cfg)
	cfg.applyDefaults(base)
	cfg.fileSecrets(d, root)
	for _, s := range secrets(cfg) {
		s.resolve(d, base)
	}
	for _, err := range cfg.problems() {
		d.At(root, err)
	}
	cfg.Warnings = d.Errs.Warnings()
	d.Errs.Sort()
	return cfg, d.Errs
}

// fileSecrets turns the older *_file keys into file secrets.
func (c *Config) fileSecrets(d *yamlfile.Decoder, root *yaml.Node) {
	pd := &c.PagerDuty
	for i, f := range pd.WebhookSecretFiles {
		where := fmt.Sprintf("pagerduty.webhook_secret_files[%d]", i)
		n, _ := yamlfile.Node(root, where)
		pd.WebhookSecrets = append(pd.WebhookSecrets, newFileSecret(where, f, n))
	}
	if pd.APITokenFile != "" && pd.APIToken.node != nil {
		d.Fail(yamlfile.KeyNode(root, "pagerduty.api_token_file"), "pagerduty", "api_token and api_token_file: set one (api_token: {file: path} is the same as api_token_file)")
	} else if pd.APITokenFile != "" {
		n := yamlfile.KeyNode(root, "pagerduty.api_token_file")
		pd.APIToken = newFileSecret("pagerduty.api_token_file", pd.APITokenFile, n)
	}
	if c.Slack.BotTokenFile != "" && c.Slack.BotToken.node != nil {
		d.Fail(yamlfile.KeyNode(root, "slack.bot_token_file"), "slack", "bot_token and bot_token_file: set one (bot_token: {file: path} is the same as bot_token_file)")
	} else if c.Slack.BotTokenFile != "" {
		n := yamlfile.KeyNode(root, "slack.bot_token_file")
		c.Slack.BotToken = newFileSecret("slack.bot_token_file", c.Slack.BotTokenFile, n)
	}
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
	c.Runner = c.Runner.WithDefaults()
	c.PagerDuty.Notes.APIURL = cmp.Or(c.PagerDuty.Notes.APIURL, c.PagerDuty.APIURL)
}

// Validate checks every section and names the field at fault.
func (c *Config) Validate() error { return errors.Join(c.problems()...) }

// problems is what Validate reports, one error per problem, each starting
// with the key path at fault.
func (c *Config) problems() []error {
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
		if !c.PagerDuty.APIToken.IsSet() {
			check("pagerduty.notes", errors.New("needs pagerduty.api_token with write access to incidents; set it, or remove notes.from"))
		}
	}
	if c.Alertmanager != nil {
		check("alertmanager", c.Alertmanager.Validate())
	}
	if c.Mackerel != nil {
		check("mackerel", c.Mackerel.Validate())
	}
	if c.SNS != nil {
		check("sns", c.SNS.Validate())
	}
	check("queue", c.Queue.Validate())
	check("inventory", c.Inventory.Validate())
	check("ssh", c.SSH.Validate())
	if c.Slack.BotToken.IsSet() {
		check("slack", c.Slack.Validate())
	}
	if c.Webhook.URL != "" {
		check("webhook", c.Webhook.Validate())
		if !c.Webhook.Secret.IsSet() {
			check("webhook.secret", errors.New("required: the receiver verifies every request with it (openssl rand -hex 32)"))
		}
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
	return errs
}

// logWarnings logs what validate would warn about, once at start.
func (c *Config) logWarnings(log *slog.Logger) {
	for _, w := range c.Warnings {
		log.Warn(w.Error())
	}
}

// requireIntake checks what only serve needs: at least one alert source.
func (c *Config) requireIntake() error {
	_, err := c.sources(sourceOptions{log: slog.Default()})
	return err
}

func (c *Config) webhookSecrets() []string {
	var out []string
	for _, s := range c.PagerDuty.WebhookSecrets {
		if s.IsSet() {
			out = append(out, s.Value())
		}
	}
	return out
}
