package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const slackCommands = `
slack:
  bot_token: ${FL_TEST_BOT}
  commands:
    team_id: T0FIRSTLK
    signing_secrets: ["${FL_TEST_SIGNING}", {file: signing_old}]
    grants:
      - commands: ["*"]
        usergroups: [sre-oncall]
        channels: [incident, "#ops"]
    digest:
      channel: C0HANDOVR
      times: ["09:00", "21:00"]
      time_zone: Europe/Berlin
`

func TestSlackCommandsConfig(t *testing.T) {
	const bot, signing, old, app = "xoxb-b0t-token-value", "s1gn1ng-secret-value", "0ld-s1gn1ng-secret", "xapp-1-app-token-value"
	t.Setenv("FL_TEST_SECRET", "x")
	t.Setenv("FL_TEST_TOKEN", "y")
	t.Setenv("FL_TEST_BOT", bot)
	t.Setenv("FL_TEST_SIGNING", signing)
	t.Setenv("FL_TEST_APP", app)
	d := configDir(t)
	writeFile(t, filepath.Join(d, "signing_old"), old+"\n")
	cfg, err := ParseConfig([]byte(minimal+slackCommands), d)
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Slack.Commands
	if got := sc.signingSecrets(); len(got) != 2 || got[0] != signing || got[1] != old {
		t.Fatalf("got signing secrets %d, want the inline one and the file's", len(got))
	}
	if sc.Digest == nil || sc.Digest.TimeZone != "Europe/Berlin" || len(sc.Grants) != 1 || sc.Grants[0].Usergroups[0] != "sre-oncall" {
		t.Errorf("got %+v", sc)
	}
	y, _ := yaml.Marshal(cfg)
	j, _ := json.Marshal(cfg)
	for name, s := range map[string]string{"%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", sc), "yaml": string(y), "json": string(j)} {
		for _, secret := range []string{bot, signing, old} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows a secret: %s", name, s)
			}
		}
	}
	socket := strings.Replace(slackCommands, `signing_secrets: ["${FL_TEST_SIGNING}", {file: signing_old}]`, "transport: socket\n    app_token: {env: FL_TEST_APP}", 1)
	if cfg, err := ParseConfig([]byte(minimal+socket), d); err != nil || cfg.Slack.Commands.AppToken.Value() != app {
		t.Errorf("socket mode: got %v", err)
	}
	tests := []struct{ name, yaml, want string }{
		{"no signing secret", strings.Replace(slackCommands, `signing_secrets: ["${FL_TEST_SIGNING}", {file: signing_old}]`, "", 1), "slack.commands: signing_secrets: required"},
		{"socket without app token", strings.Replace(slackCommands, "team_id: T0FIRSTLK", "team_id: T0FIRSTLK\n    transport: socket", 1), "slack.commands: app_token: required"},
		{"no grants", strings.Replace(slackCommands, "grants:", "grant_nothing:", 1), `unknown key "grant_nothing"`},
		{"bad grant", strings.Replace(slackCommands, `commands: ["*"]`, "commands: [reboot]", 1), `slack.commands: grants[0].commands[0]: "reboot"`},
		{"bad digest time", strings.Replace(slackCommands, `"21:00"`, `"9pm"`, 1), `slack.commands: digest.times[1]: "9pm"`},
		{"no bot token", strings.Replace(slackCommands, "bot_token: ${FL_TEST_BOT}", "channel_prefix: inc", 1), "slack.commands: needs slack.bot_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(minimal+tc.yaml), d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			for _, secret := range []string{bot, signing, old} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
		})
	}
}
