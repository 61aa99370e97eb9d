package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/hooks/hookstest"
)

// allSources is a config with every alert source, each credential from a
// different form of secret.
const allSources = `
alertmanager:
  bearer_tokens: [{env: FL_TEST_AM_TOKEN}]
  basic_auth: [{username: am, password: {file: am-password}}]
  host_labels: [instance, node]
mackerel:
  tokens: ["${FL_TEST_MACKEREL}"]
sns:
  topic_arns: [arn:aws:sns:us-east-1:123456789012:alarms]
`

func TestSourcesConfig(t *testing.T) {
	const runAgain, amToken, amPass, mkToken = "run-again-value-0123456789", "am-token-value", "am-password-value", "mackerel-token-0123456789"
	t.Setenv("FL_TEST_SECRET", "pd-webhook-secret")
	t.Setenv("FL_TEST_TOKEN", "pd-token")
	t.Setenv("FL_TEST_RUN_AGAIN", runAgain)
	t.Setenv("FL_TEST_AM_TOKEN", amToken)
	t.Setenv("FL_TEST_MACKEREL", mkToken)
	d := configDir(t)
	writeFile(t, filepath.Join(d, "am-password"), amPass+"\n")
	cfg, err := ParseConfig([]byte(withRunAgain(minimal)+allSources), d)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := cfg.sources(sourceOptions{log: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range srcs {
		names = append(names, s.Name())
	}
	if want := []string{"pagerduty", "pagerduty-run-again", "alertmanager", "mackerel", "sns"}; !slices.Equal(names, want) {
		t.Errorf("got sources %v, want %v", names, want)
	}
	y, _ := yaml.Marshal(cfg)
	j, _ := json.Marshal(cfg)
	for name, s := range map[string]string{"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg), "yaml": string(y), "json": string(j)} {
		for _, secret := range []string{runAgain, amToken, amPass, mkToken} {
			if strings.Contains(s, secret) {
				t.Errorf("%s shows a secret: %s", name, s)
			}
		}
	}

	// A source without credentials does not start.
	noCreds := strings.Replace(withRunAgain(minimal)+allSources, "  bearer_tokens: [{env: FL_TEST_AM_TOKEN}]\n  basic_auth: [{username: am, password: {file: am-password}}]\n", "", 1)
	cfg, err = ParseConfig([]byte(noCreds), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.requireIntake(); err == nil || !strings.Contains(err.Error(), "alertmanager: no credentials") {
		t.Errorf("got %v, want alertmanager refusing to start without credentials", err)
	}
	// Nothing configured: serve says what to set.
	cfg, err = ParseConfig([]byte(strings.Replace(minimal, `  webhook_secrets: ["${FL_TEST_SECRET}"]`+"\n", "", 1)), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.requireIntake(); err == nil || !strings.Contains(err.Error(), "no alert source configured") {
		t.Errorf("got %v, want no alert source", err)
	}
	// Only Alertmanager: serve starts without PagerDuty.
	cfg, err = ParseConfig([]byte(strings.Replace(minimal, `  webhook_secrets: ["${FL_TEST_SECRET}"]`+"\n", "", 1)+"alertmanager:\n  bearer_tokens: [x]\n"), d)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.requireIntake(); err != nil {
		t.Errorf("alertmanager alone: %v", err)
	}
}

// withRunAgain adds pagerduty.run_again to a config.
func withRunAgain(cfg string) string {
	return strings.Replace(cfg, "pagerduty:\n", "pagerduty:\n  run_again:\n    header: X-Run-Again\n    secrets: [\"${FL_TEST_RUN_AGAIN}\"]\n", 1)
}

// TestReplaySources: a saved payload of each source is recognised (or
// named with -source) and planned; what only resolves or is ignored says
// so.
func TestReplaySources(t *testing.T) {
	t.Setenv("FL_TEST_SECRET", "x")
	t.Setenv("FL_TEST_TOKEN", "y")
	d := configDir(t)
	writeFile(t, filepath.Join(d, "firstlook.yaml"), strings.Replace(minimal, "api_token: ${FL_TEST_TOKEN}", "", 1))
	writeFile(t, filepath.Join(d, "playbooks", "any.yaml"), "name: any\nsteps:\n  - name: up\n    run: uptime\n")
	tests := []struct {
		name, source string
		body         []byte
		want         []string
	}{
		{"alertmanager firing", "", hookstest.Fixture(t, "alertmanager", "v4-firing.json"), []string{"source:   alertmanager", "hints:    web-01.example.com", "any on web-01.example.com: would not start"}},
		{"alertmanager resolved", "", hookstest.Fixture(t, "alertmanager", "v4-resolved.json"), []string{"resolves: ee4205d5c7c91149-1795419000"}},
		{"mackerel", "", hookstest.Fixture(t, "mackerel", "alert-host-critical.docs.json"), []string{"source:   mackerel", "hints:    app01"}},
		{"sns", "", hookstest.Fixture(t, "cloudwatch-sns", "notification-alarm.json"), []string{"source:   sns", "incident: arn:aws:cloudwatch"}},
		{"sns confirmation", "", hookstest.Fixture(t, "cloudwatch-sns", "subscription-confirmation.json"), []string{"sns: answered 200 confirmed, nothing runs"}},
		{"pagerduty", "pagerduty", hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json"), []string{"source:   pagerduty", "Q2CKYRLH85UNN4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, filepath.Join(d, "payload.json"), string(tc.body))
			args := []string{"replay", "-config", filepath.Join(d, "firstlook.yaml")}
			if tc.source != "" {
				args = append(args, "-source", tc.source)
			}
			var out, errOut bytes.Buffer
			if code := run(context.Background(), append(args, filepath.Join(d, "payload.json")), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s%s", code, out.String(), errOut.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	writeFile(t, filepath.Join(d, "payload.json"), `{"hello":"world"}`)
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"replay", "-config", filepath.Join(d, "firstlook.yaml"), filepath.Join(d, "payload.json")}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "no source recognises the payload") {
		t.Errorf("unknown payload: exit %d, %s", code, errOut.String())
	}
}
