package slack_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

func TestConfigYAML(t *testing.T) {
	const doc = `
channel_prefix: sev
private: true
invite_users: [U0ALICE00, W0BOB0000]
invite_usergroup: "@sre-oncall"
fallback_channel: C0FALLBAK
api_url: http://127.0.0.1:9/api
max_attempts: 3
max_retry_wait: 30s
timeout: 10s
`
	var cfg slack.Config
	if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := slack.Config{
		ChannelPrefix: "sev", Private: true, InviteUsers: []string{"U0ALICE00", "W0BOB0000"},
		InviteUsergroup: "@sre-oncall", FallbackChannel: "C0FALLBAK", APIURL: "http://127.0.0.1:9/api",
		MaxAttempts: 3, MaxRetryWait: 30 * time.Second, Timeout: 10 * time.Second,
	}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	d := cfg.WithDefaults()
	if d.APIURL != "http://127.0.0.1:9/api/" {
		t.Errorf("api_url %q, want a trailing slash added", d.APIURL)
	}
}

func TestConfigDefaults(t *testing.T) {
	d := slack.Config{}.WithDefaults()
	if d.ChannelPrefix != "inc" || d.APIURL != "https://slack.com/api/" || d.MaxAttempts != 5 ||
		d.MaxRetryWait != time.Minute || d.Timeout != time.Minute {
		t.Errorf("defaults %+v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  slack.Config
		want string // "" for valid
	}{
		{"zero", slack.Config{}, ""},
		{"prefix", slack.Config{ChannelPrefix: "sev_1"}, ""},
		{"prefix upper", slack.Config{ChannelPrefix: "INC"}, "channel_prefix"},
		{"prefix trailing hyphen", slack.Config{ChannelPrefix: "inc-"}, "channel_prefix"},
		{"prefix double hyphen", slack.Config{ChannelPrefix: "a--b"}, "channel_prefix"},
		{"prefix too long", slack.Config{ChannelPrefix: strings.Repeat("a", 21)}, "channel_prefix"},
		{"user name", slack.Config{InviteUsers: []string{"U0ALICE00", "alice"}}, "invite_users[1]"},
		{"group handle", slack.Config{InviteUsergroup: "sre-oncall"}, ""},
		{"group id", slack.Config{InviteUsergroup: "S0123ABCD"}, ""},
		{"group junk", slack.Config{InviteUsergroup: "SRE On Call"}, "invite_usergroup"},
		{"channel name", slack.Config{Channel: "#incidents"}, "channel:"},
		{"channel-less with invites", slack.Config{Channel: "C0INCIDNT", InviteUsers: []string{"U0ALICE00"}}, "invite_users"},
		{"channel-less private", slack.Config{Channel: "C0INCIDNT", Private: true}, "private"},
		{"channel-less fallback", slack.Config{Channel: "C0INCIDNT", FallbackChannel: "C0OTHER00"}, "fallback_channel"},
		{"fallback name", slack.Config{FallbackChannel: "general"}, "fallback_channel"},
		{"api url", slack.Config{APIURL: "slack.com/api"}, "api_url"},
		{"api url credentials", slack.Config{APIURL: "https://user:pw@slack.example/api/"}, "api_url: must not carry credentials"},
		{"attempts", slack.Config{MaxAttempts: 50}, "max_attempts"},
		{"negative wait", slack.Config{MaxRetryWait: -time.Second}, "max_retry_wait"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("got %v, want an error starting %q", err, tc.want)
			}
			if tc.want != "" {
				if _, err := slack.New(tc.cfg, "xoxb-x"); err == nil {
					t.Errorf("New accepted an invalid config")
				}
			}
		})
	}
	if _, err := slack.New(slack.Config{}, ""); err == nil {
		t.Error("New accepted an empty token")
	}
}

// TestTokenNeverShown runs the publisher through failures and checks that
// the token appears in no error, no log line and no printed value.
func TestTokenNeverShown(t *testing.T) {
	const token = "xoxb-1111-2222-SECRETSECRETSECRET"
	srv := newServer(t)
	srv.AddToken(token, "chat:write") // too few scopes: calls fail
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := slack.Config{InviteUsers: []string{"U0NOBODY0"}, FallbackChannel: "C0FALLBAK"}
	p, _ := newPublisher(t, srv, cfg, token, slack.WithLogger(log))
	var out []string
	ctx := context.Background()
	out = append(out, fmt.Sprintf("%v %+v %#v %v %+v %#v", p, p, p, cfg, cfg, cfg))
	if err := p.Publish(ctx, report(1, "db-1", "a"), newState(), false); err == nil {
		t.Fatal("Publish with too few scopes succeeded")
	} else {
		out = append(out, err.Error(), fmt.Sprintf("%+v %#v", err, err))
	}
	if err := p.Check(ctx); err != nil {
		out = append(out, err.Error(), fmt.Sprintf("%#v", err))
	}
	// A server that is gone: transport errors carry URLs.
	gone := slacktest.NewServer()
	gone.Close()
	cfg.APIURL = gone.URL
	p2, err := slack.New(cfg, token, slack.WithLogger(log), slack.WithSleep(func(context.Context, time.Duration) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Publish(ctx, report(1, "db-1", "a"), newState(), false); err == nil {
		t.Fatal("Publish to a closed server succeeded")
	} else {
		out = append(out, err.Error(), fmt.Sprintf("%#v", err))
	}
	// Invites Slack refuses are logged.
	srv.AddToken("xoxb-all", slacktest.AllScopes()...)
	p3, _ := newPublisher(t, srv, slack.Config{InviteUsers: []string{"U0NOBODY0"}}, "xoxb-all", slack.WithLogger(log))
	if err := p3.Publish(ctx, report(2, "db-1", "a"), newState(), false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	out = append(out, logs.String())
	if !strings.Contains(logs.String(), "U0NOBODY0") {
		t.Errorf("the refused invite was not logged: %s", logs.String())
	}
	for _, s := range out {
		if strings.Contains(s, "SECRET") {
			t.Errorf("token shown in %q", s)
		}
	}
}

// TestPublishNoIncident: a run without an incident cannot name a channel.
func TestPublishNoIncident(t *testing.T) {
	srv := newServer(t)
	p, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
	rep := report(1, "db-1", "a")
	rep.Bundle.Manifest.Incident = evidence.Incident{Title: "manual run"}
	if err := p.Publish(context.Background(), rep, newState(), false); !errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("got %v, want a permanent error", err)
	}
	if err := p.Publish(context.Background(), evidence.Report{}, newState(), false); !errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("no bundle: got %v, want a permanent error", err)
	}
	if len(srv.Channels()) != 0 {
		t.Errorf("channels created: %+v", srv.Channels())
	}
	if p.Sink() != "slack" {
		t.Errorf("Sink() = %q", p.Sink())
	}
}
