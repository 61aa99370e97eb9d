package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/slack/slacktest"
	slackcmd "github.com/firstlook/firstlook/hooks/slack"
)

// TestServeSlackCommand: serve with slack.commands over HTTP. A signed
// /firstlook run from #ops runs the playbook on the inventory host over
// real SSH and posts the summary in #ops with a Run again button; the
// button, pressed by a user group member, runs it again; pressed by
// someone else, it is refused; every decision is in the audit log.
func TestServeSlackCommand(t *testing.T) {
	e := newEnv(t, "host-1")
	slk := slacktest.NewServer()
	t.Cleanup(slk.Close)
	slk.AddUsergroup("S0SRE0001", "sre-oncall", "U0SRE0001")
	ops := slk.AddChannel(slacktest.Channel{Name: "ops", Members: []string{slacktest.BotUserID, "U0SRE0001", "U0VIS0001"}})
	const signing = "8f742231b10e8888abcd99yyyzzz85a5"
	e.write("slack.txt", slacktest.Token+"\n")
	e.write("signing.txt", signing+"\n")
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("firstlook.yaml", string(cfg)+`slack:
  bot_token_file: slack.txt
  api_url: `+slk.URL+`
  commands:
    team_id: `+slacktest.TeamID+`
    api_url: `+slk.URL+`
    signing_secrets: [{file: signing.txt}]
    grants:
      - commands: ["*"]
        usergroups: [sre-oncall]
        channels: [incident, "#ops"]
`)
	c, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := &lineLog{next: &testLog{t: t}}
	log := newLogger(&Config{LogLevel: "debug", LogFormat: "json"}, lines)
	url, stop := startServe(t, ServeOptions{Config: c, Log: log})
	t.Cleanup(func() { _ = stop() })

	post := func(path string, form map[string][]string) (int, string) {
		t.Helper()
		resp, err := http.DefaultClient.Do(slacktest.SignedRequest(url+path, form, signing, time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitMessages := func(n int) []slacktest.Message {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			ms := slk.Messages(ops)
			if len(ms) >= n {
				return ms
			}
			if time.Now().After(deadline) {
				t.Fatalf("got %d messages in #ops, want %d", len(ms), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The run's message is throttled once: the publisher retries it
	// within the publish, and the metrics count that retry.
	slk.RateLimit("chat.postMessage", 1, time.Second)
	status, body := post("/hooks/slack/commands", slk.CommandForm(slacktest.SlashCommand{
		UserID: "U0SRE0001", UserName: "sam", ChannelID: ops, ChannelName: "ops", Command: "/firstlook", Text: "run whoami on host-1"}))
	if status != 200 || !strings.Contains(body, "queued `whoami` on host-1") {
		t.Fatalf("got %d %s", status, body)
	}
	ms := waitMessages(1)
	if !strings.Contains(string(ms[0].Blocks), "whoami") || !strings.Contains(string(ms[0].Blocks), `"action_id":"firstlook_run"`) {
		t.Fatalf("got message %s", ms[0].Blocks)
	}

	press := func(user string) string {
		form := slk.ActionForm(slacktest.BlockAction{UserID: user, ChannelID: ops, ChannelName: "ops", MessageTS: ms[0].TS, ActionID: slackcmd.ActionRun, Value: "run whoami on host-1"})
		if status, body := post("/hooks/slack/interactions", form); status != 200 {
			t.Fatalf("button: got %d %s", status, body)
		}
		var p struct {
			ResponseURL string `json:"response_url"`
		}
		_ = json.Unmarshal([]byte(form.Get("payload")), &p)
		return p.ResponseURL
	}
	refusedURL := press("U0VIS0001")
	press("U0SRE0001")
	waitMessages(2)
	deadline := time.Now().Add(30 * time.Second)
	for len(slk.Responses(refusedURL)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if r := slk.Responses(refusedURL); len(r) != 1 || !strings.Contains(r[0].Text, "not allowed") {
		t.Errorf("the visitor's press: got %+v, want a refusal", r)
	}
	if len(slk.Channels()) != 1 {
		t.Errorf("got %d channels, want #ops only", len(slk.Channels()))
	}
	for _, want := range [][]string{
		{`"decision":"allow"`, `"user":"U0SRE0001"`, `"rule":"grants[0]"`, `"button":false`},
		{`"decision":"allow"`, `"user":"U0SRE0001"`, `"button":true`},
		{`"decision":"deny"`, `"user":"U0VIS0001"`, `"rule":"default"`, `"button":true`},
	} {
		if !lines.has(append([]string{`"msg":"slack command decision"`, `"component":"audit"`}, want...)...) {
			t.Errorf("no audit line with %v", want)
		}
	}
	// The same three decisions, counted: exactly, and nothing else.
	fams := scrape(t, url)
	for _, want := range []struct {
		decision string
		n        float64
	}{{"allowed", 2}, {"denied", 1}} {
		if v, _ := value(fams, "firstlook_slack_commands_total", "command", "run", "decision", want.decision); v != want.n {
			t.Errorf("firstlook_slack_commands_total{command=run,decision=%s} = %v, want %v", want.decision, v, want.n)
		}
	}
	total := 0.0
	for _, m := range fams["firstlook_slack_commands_total"].GetMetric() {
		total += m.GetCounter().GetValue()
	}
	if total != 3 {
		t.Errorf("firstlook_slack_commands_total sums to %v, want 3", total)
	}
	if v, _ := value(fams, "firstlook_publish_request_retries_total", "sink", "slack"); v != 1 {
		t.Errorf("firstlook_publish_request_retries_total{sink=slack} = %v, want 1 (one 429)", v)
	}
}

// TestServeSlackSocketMode: the same command over Socket Mode: serve opens
// the websocket with the app-level token, the command's answer rides on
// its ack, and the run lands in the channel.
func TestServeSlackSocketMode(t *testing.T) {
	e := newEnv(t, "host-1")
	slk := slacktest.NewServer()
	t.Cleanup(slk.Close)
	slk.AddUsergroup("S0SRE0001", "sre-oncall", "U0SRE0001")
	ops := slk.AddChannel(slacktest.Channel{Name: "ops", Members: []string{slacktest.BotUserID, "U0SRE0001"}})
	e.write("slack.txt", slacktest.Token+"\n")
	e.write("app.txt", slacktest.AppToken+"\n")
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("firstlook.yaml", string(cfg)+`slack:
  bot_token_file: slack.txt
  api_url: `+slk.URL+`
  commands:
    team_id: `+slacktest.TeamID+`
    transport: socket
    app_token: {file: app.txt}
    api_url: `+slk.URL+`
    grants:
      - commands: ["*"]
        usergroups: [sre-oncall]
        channels: ["#ops"]
`)
	c, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&testLog{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url, stop := startServe(t, ServeOptions{Config: c, Log: log})
	t.Cleanup(func() { _ = stop() })
	// No HTTP endpoint in Socket Mode.
	if resp, err := http.Post(url+"/hooks/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("text=help")); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("HTTP command endpoint in socket mode: got %v %v, want 404", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := slk.WaitSocket(ctx); err != nil {
		t.Fatal(err)
	}
	ack, err := slk.SendEnvelope(ctx, "slash_commands", slk.CommandPayload(slacktest.SlashCommand{
		UserID: "U0SRE0001", UserName: "sam", ChannelID: ops, ChannelName: "ops", Command: "/firstlook", Text: "run whoami on host-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ack.Payload), "queued `whoami` on host-1") {
		t.Fatalf("got ack %s", ack.Payload)
	}
	for len(slk.Messages(ops)) == 0 {
		if ctx.Err() != nil {
			t.Fatal("no summary in #ops")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
