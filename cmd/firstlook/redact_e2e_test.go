package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/redacttest"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// TestServeRedactsPlantedSecrets: a host prints secrets of every kind
// redacttest makes (on stdout and stderr), one is in the alert's title;
// serve runs the playbook over SSH, stores the bundle, posts the
// PagerDuty note and the Slack message with its file. None of the secrets
// is in any of them, and the manifest counts the redactions.
func TestServeRedactsPlantedSecrets(t *testing.T) {
	e := newEnv(t, "host-1")
	slk := slacktest.NewServer()
	t.Cleanup(slk.Close)

	secrets := redacttest.Plant(20261204)
	half := len(secrets) / 2
	e.write("planted-stdout.txt", redacttest.Output(secrets[:half]))
	e.write("planted-stderr.txt", redacttest.Output(secrets[half:]))
	title := secrets[0] // a cloud key in the alert's title
	pb := filepath.Join(e.dir, "pb")
	if err := os.MkdirAll(pb, 0o700); err != nil {
		t.Fatal(err)
	}
	e.write("pb/planted.yaml", fmt.Sprintf(`name: planted
match:
  title: '^planted secrets on '
steps:
  - name: config
    run: cat %s
  - name: env
    run: cat %s >&2
`, filepath.Join(e.dir, "planted-stdout.txt"), filepath.Join(e.dir, "planted-stderr.txt")))
	e.write("slack.txt", slacktest.Token+"\n")
	cfg, _ := os.ReadFile(e.cfgPath)
	pbDir, _ := filepath.Abs("testdata/playbooks")
	conf := strings.Replace(string(cfg), "paths: ["+pbDir+"]", "paths: ["+pbDir+", "+pb+"]", 1)
	e.write("firstlook.yaml", conf+"slack:\n  bot_token_file: slack.txt\n  api_url: "+slk.URL+"\n")
	e.serve()

	e.send("INCSECRET", "planted secrets on host-1: "+title.Text)
	b := e.wait("INCSECRET", 1)[0]
	m := b.Manifest
	if m.Status != evidence.StatusOK || len(m.Steps) != 2 {
		t.Fatalf("got status %s (%s) with %d steps", m.Status, m.Error, len(m.Steps))
	}
	deadline := time.Now().Add(30 * time.Second)
	for (len(e.notesFor("INCSECRET")) == 0 || slk.Posts() == 0 || len(slk.Files()) == 0) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}

	// Everything that left the runner, as text.
	manifest, _ := json.Marshal(m)
	where := map[string]string{"stored manifest": string(manifest)}
	for name, f := range b.Files {
		where["stored "+name] = string(f)
	}
	notes := e.notesFor("INCSECRET")
	if len(notes) != 1 {
		t.Fatalf("got %d PagerDuty notes, want 1", len(notes))
	}
	where["PagerDuty note"] = notes[0].Content
	var slackText []string
	for _, c := range slk.Channels() {
		slackText = append(slackText, c.Name)
		for _, msg := range slk.Messages(c.ID) {
			slackText = append(slackText, msg.Text)
			slackText = append(slackText, jsonStrings(t, msg.Blocks)...)
			for _, r := range slk.Replies(c.ID, msg.TS) {
				slackText = append(slackText, r.Text)
				slackText = append(slackText, jsonStrings(t, r.Blocks)...)
			}
		}
	}
	where["Slack message"] = slackUnescape(strings.Join(slackText, "\n"))
	var files []string
	for _, f := range slk.Files() {
		files = append(files, f.Name, f.Title, string(f.Content))
	}
	if len(files) == 0 {
		t.Fatal("no file in the Slack thread")
	}
	where["Slack file"] = strings.Join(files, "\n")

	for place, text := range where {
		if leaks := redacttest.Leaks(text, secrets); len(leaks) > 0 {
			t.Errorf("%s: %d of %d secrets leaked:\n%s", place, len(leaks), len(secrets), strings.Join(leaks, "\n"))
		}
	}
	for _, s := range []string{"stored manifest", "PagerDuty note", "Slack message", "Slack file"} {
		if !strings.Contains(where[s], "REDACTED") {
			t.Errorf("%s: no redaction marker in %q", s, where[s])
		}
	}
	if n := m.Steps[0].Redactions + m.Steps[1].Redactions; n < len(secrets) {
		t.Errorf("the manifest counts %d redactions in the steps, want at least %d", n, len(secrets))
	}
}

// jsonStrings is every string in a JSON document.
func jsonStrings(t *testing.T, raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, x := range v {
				walk(x)
			}
		case map[string]any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	return out
}

// slackUnescape undoes Slack's escaping of &, < and > in message text.
func slackUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">").Replace(s)
}
