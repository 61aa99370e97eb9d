package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/inventory/ec2"
)

// minimal is the smallest config that validates, given a directory with
// known_hosts and playbooks/.
const minimal = `
pagerduty:
  webhook_secrets: ["${FL_TEST_SECRET}"]
  api_token: ${FL_TEST_TOKEN}
inventory:
  hosts: [{name: web-1, address: 10.0.0.1, user: u}]
ssh:
  known_hosts: [known_hosts]
  agent: true
playbooks:
  paths: [playbooks]
`

func configDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	writeFile(t, filepath.Join(d, "known_hosts"), "")
	if err := os.MkdirAll(filepath.Join(d, "playbooks"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d, "playbooks", "p.yaml"), "name: p\nmatch: {title: 'on (web-1)'}\nsteps:\n  - name: load\n    run: uptime\n")
	return d
}

// TestSecretsNeverShown: printing the config, in any format, or an error
// about it never shows a secret.
func TestSecretsNeverShown(t *testing.T) {
	const secret, token, bot = "s3cr3t-webhook-value", "tok3n-api-value", "xoxb-b0t-token-value"
	t.Setenv("FL_TEST_SECRET", secret)
	t.Setenv("FL_TEST_TOKEN", token)
	t.Setenv("FL_TEST_BOT", bot)
	d := configDir(t)
	cfg, err := ParseConfig([]byte(minimal+"slack:\n  bot_token: ${FL_TEST_BOT}\n"), d)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.webhookSecrets(); len(got) != 1 || got[0] != secret || cfg.PagerDuty.APIToken.Value() != token || cfg.Slack.BotToken.Value() != bot {
		t.Fatalf("secrets not read: got %v", got)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg, "token", cfg.PagerDuty.APIToken)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg, "token", cfg.PagerDuty.APIToken)
	y, _ := yaml.Marshal(cfg)
	j, _ := json.Marshal(cfg)
	for name, s := range map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", cfg.PagerDuty.WebhookSecrets), "yaml": string(y), "json": string(j),
		"slog": logged.String(), "%q": fmt.Sprintf("%q %x", cfg.PagerDuty.APIToken, cfg.Slack.BotToken),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, token) || strings.Contains(s, bot) {
			t.Errorf("%s shows a secret: %s", name, s)
		}
	}
	// A config error next to a secret names the field, not the value.
	bad := strings.Replace(minimal, "agent: true", "agent: true\n  connect_timeout: -1s", 1)
	_, err = ParseConfig([]byte(bad), d)
	if err == nil || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), token) {
		t.Errorf("got error %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	t.Setenv("FL_TEST_SECRET", "x")
	t.Setenv("FL_TEST_TOKEN", "y")
	d := configDir(t)
	cfg, err := ParseConfig([]byte(minimal), d)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.DataDir != filepath.Join(d, "firstlook-data") || cfg.Evidence.Dir.Path != filepath.Join(d, "firstlook-data", "evidence") {
		t.Errorf("defaults: got listen %q data %q evidence %q", cfg.Listen, cfg.DataDir, cfg.Evidence.Dir.Path)
	}
	if cfg.SSH.KnownHosts[0] != filepath.Join(d, "known_hosts") || cfg.Playbooks.Paths[0] != filepath.Join(d, "playbooks") {
		t.Errorf("relative paths: got %v %v", cfg.SSH.KnownHosts, cfg.Playbooks.Paths)
	}
	if cfg.Runner.Workers != 4 || cfg.HTTP.ReadHeaderTimeout == 0 {
		t.Errorf("runner/http defaults: got %+v %+v", cfg.Runner, cfg.HTTP)
	}

	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", minimal + "listn: :80\n", `firstlook.yaml:12:1: top level: unknown key "listn"; did you mean "listen"? valid keys: alertmanager, audit, data_dir, evidence, http,`},
		{"unknown nested key", minimal + "runner:\n  hints:\n    titel: []\n", `firstlook.yaml:14:5: runner.hints: unknown key "titel"; did you mean "title"? valid keys: title`},
		{"unknown key in a list", strings.Replace(minimal, "user: u}", "usr: u}", 1), `inventory.hosts[0]: unknown key "usr"`},
		{"unset variable", minimal + "listen: ${FL_TEST_UNSET_VAR}\n", "firstlook.yaml:12:9: listen: environment variable FL_TEST_UNSET_VAR is not set; export it"},
		{"notes without a token", strings.Replace(minimal, "${FL_TEST_TOKEN}", "${FL_TEST_UNSET_VAR}\n  notes: {from: a@example.com}", 1), "pagerduty.notes: needs pagerduty.api_token"},
		{"bad title pattern", minimal + "runner:\n  hints:\n    title: [{pattern: 'web-\\d+'}]\n", "runner: hints.title[0].pattern"},
		{"no playbooks", strings.Replace(minimal, "paths: [playbooks]", "paths: []", 1), "playbooks: no playbooks"},
		{"bad log level", minimal + "log_level: loud\n", `log_level: "loud"`},
		{"wrong type", minimal + "runner: {workers: many}\n", `firstlook.yaml:12:19: runner.workers: want an integer, got "many"`},
		{"token twice", strings.Replace(minimal, "api_token:", "api_token_file: tok\n  api_token:", 1), "firstlook.yaml:4:3: pagerduty: api_token and api_token_file: set one"},
		{"unknown library playbook", strings.Replace(minimal, "paths: [playbooks]", "paths: [playbooks]\n  library: [linux-baseline, disk-ful]", 1), `playbooks.library[1]: no playbook "disk-ful" in the library`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestUnsetOptionalSecretWarns: a secret whose variable is unset is a
// warning, not an error, and the secret is off.
func TestUnsetOptionalSecretWarns(t *testing.T) {
	t.Setenv("FL_TEST_SECRET", "x")
	cfg, errs := parseConfig("c.yaml", []byte(strings.Replace(minimal, "FL_TEST_TOKEN", "FL_TEST_UNSET_VAR", 1)), configDir(t))
	if errs.Errors() != nil || len(cfg.Warnings) != 1 || cfg.PagerDuty.APIToken.IsSet() {
		t.Fatalf("got errors %v, warnings %v, token set %v", errs.Errors(), cfg.Warnings, cfg.PagerDuty.APIToken.IsSet())
	}
	if got, want := cfg.Warnings[0].Error(), "c.yaml:4:14: warning: pagerduty.api_token: environment variable FL_TEST_UNSET_VAR is not set"; !strings.HasPrefix(got, want) {
		t.Errorf("got %q, want %q…", got, want)
	}
}

// TestSecretForms: a secret comes inline, from ${VAR}, {env: VAR}, {file:
// path} or the older *_file key, and a file's trailing newline is dropped.
// ${VAR} in a {file: path} is expanded ($CREDENTIALS_DIRECTORY under
// systemd); an unset one is an error naming it.
func TestSecretForms(t *testing.T) {
	t.Setenv("FL_TEST_SECRET", "from-env")
	d := configDir(t)
	t.Setenv("FL_TEST_CREDS_DIR", d)
	writeFile(t, filepath.Join(d, "tok"), "from-file\n")
	for _, tc := range []struct{ yaml, want string }{
		{`api_token: inline-value`, "inline-value"},
		{`api_token: "${FL_TEST_SECRET}"`, "from-env"},
		{`api_token: {env: FL_TEST_SECRET}`, "from-env"},
		{`api_token: {file: tok}`, "from-file"},
		{`api_token: {file: "${FL_TEST_CREDS_DIR}/tok"}`, "from-file"},
		{`api_token_file: tok`, "from-file"},
	} {
		y := strings.Replace(minimal, "api_token: ${FL_TEST_TOKEN}", tc.yaml, 1)
		cfg, err := ParseConfig([]byte(y), d)
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := cfg.PagerDuty.APIToken.Value(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.yaml, got, tc.want)
		}
	}
	_, err := ParseConfig([]byte(strings.Replace(minimal, "api_token: ${FL_TEST_TOKEN}", "api_token: {file: missing}", 1)), d)
	if err == nil || !strings.Contains(err.Error(), "firstlook.yaml:4:14: pagerduty.api_token: read secret: "+filepath.Join(d, "missing")+": no such file") {
		t.Errorf("missing file: got %v", err)
	}
	_, err = ParseConfig([]byte(strings.Replace(minimal, "api_token: ${FL_TEST_TOKEN}", `api_token: {file: "${FL_TEST_UNSET_DIR}/tok"}`, 1)), d)
	if err == nil || !strings.Contains(err.Error(), "firstlook.yaml:4:21: pagerduty.api_token: environment variable FL_TEST_UNSET_DIR in the secret's file path is not set") {
		t.Errorf("unset variable in the path: got %v", err)
	}
}

// TestEnvCannotInjectStructure: a variable's value is a value, even when
// it looks like YAML.
func TestEnvCannotInjectStructure(t *testing.T) {
	t.Setenv("FL_TEST_SECRET", "x\"]\nlisten: 0.0.0.0:1\nfoo: [\"")
	t.Setenv("FL_TEST_TOKEN", "{a: b}")
	cfg, err := ParseConfig([]byte(minimal), configDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || !strings.Contains(cfg.webhookSecrets()[0], "listen: 0.0.0.0:1") || cfg.PagerDuty.APIToken.Value() != "{a: b}" {
		t.Fatalf("got listen %q, secret %q, token %q", cfg.Listen, cfg.webhookSecrets()[0], cfg.PagerDuty.APIToken.Value())
	}
}

func TestReplay(t *testing.T) {
	t.Setenv("FL_TEST_SECRET", "x")
	t.Setenv("FL_TEST_TOKEN", "y")
	d := configDir(t)
	cfgYAML := strings.Replace(minimal, "api_token: ${FL_TEST_TOKEN}", "", 1) + "runner:\n  hints:\n    title: [{pattern: 'on (?P<host>[a-z0-9-]+)'}]\n"
	writeFile(t, filepath.Join(d, "firstlook.yaml"), cfgYAML)
	var doc map[string]any
	_ = json.Unmarshal(hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json"), &doc)
	doc["event"].(map[string]any)["data"].(map[string]any)["title"] = "load on web-1; rm -rf / and on web-9"
	body, _ := json.Marshal(doc)
	writeFile(t, filepath.Join(d, "payload.json"), string(body))

	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"replay", "-config", filepath.Join(d, "firstlook.yaml"), filepath.Join(d, "payload.json")}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{
		"hints:    web-1, web-9",
		"p on web-1 (u@10.0.0.1:22 directly):",
		"1. load: uptime",
		"p on web-9: would not start: host \"web-9\": not in the inventory",
		"nothing was run",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("replay output lacks %q:\n%s", want, out.String())
		}
	}

	// Not a configured event type: nothing would run.
	out.Reset()
	writeFile(t, filepath.Join(d, "ack.json"), string(hookstest.Fixture(t, "pagerduty-v3", "incident.acknowledged.json")))
	run(context.Background(), []string{"replay", "-config", filepath.Join(d, "firstlook.yaml"), filepath.Join(d, "ack.json")}, &out, &errOut)
	if !strings.Contains(out.String(), "ignored:  event type incident.acknowledged") {
		t.Errorf("got %s", out.String())
	}
}

// TestInventorySources: the static inventory is asked first, then EC2;
// each only when configured.
func TestInventorySources(t *testing.T) {
	for _, tc := range []struct {
		c    InventoryConfig
		want string
	}{
		{InventoryConfig{Config: inventory.Config{File: "x"}}, "static"},
		{InventoryConfig{EC2: &ec2.Config{}}, "ec2"},
		{InventoryConfig{Config: inventory.Config{Bastions: []inventory.BastionConfig{{Name: "b"}}}, EC2: &ec2.Config{}}, "static,ec2"},
	} {
		if got := strings.Join(tc.c.sources(), ","); got != tc.want {
			t.Errorf("got %s, want %s", got, tc.want)
		}
	}
}
