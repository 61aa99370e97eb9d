package slack_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// TestRateLimited: Slack answers 429 with Retry-After; the publisher waits
// that long (through the injected sleep) and tries again, for every method
// it calls, posts and uploads included.
func TestRateLimited(t *testing.T) {
	cases := []struct {
		method     string
		n          int
		retryAfter time.Duration
	}{
		{"conversations.create", 1, 20 * time.Second},
		{"conversations.invite", 2, 1 * time.Second},
		{"chat.postMessage", 3, 3 * time.Second},
		{"files.getUploadURLExternal", 1, 2 * time.Second},
		{"files.completeUploadExternal", 2, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			srv := newServer(t)
			srv.AddUser("U0ALICE00")
			srv.RateLimit(tc.method, tc.n, tc.retryAfter)
			p, sl := newPublisher(t, srv, slack.Config{InviteUsers: []string{"U0ALICE00"}}, slacktest.Token)
			st := newState()
			if err := p.Publish(context.Background(), report(1, "db-1", "a"), st, false); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			want := slices.Repeat([]time.Duration{tc.retryAfter}, tc.n)
			if got := sl.got(); !slices.Equal(got, want) {
				t.Errorf("waits %v, want %v", got, want)
			}
			if got := srv.Calls(tc.method); got != tc.n+1 {
				t.Errorf("%s called %d times, want %d", tc.method, got, tc.n+1)
			}
			if got := srv.Posts(); got != 1 {
				t.Errorf("%d messages posted, want 1", got)
			}
			if got := len(srv.Files()); got != 1 {
				t.Errorf("%d files, want 1", got)
			}
		})
	}
}

func TestRateLimitedGivesUp(t *testing.T) {
	t.Run("attempts", func(t *testing.T) {
		srv := newServer(t)
		srv.RateLimit("chat.postMessage", 10, time.Second)
		p, sl := newPublisher(t, srv, slack.Config{MaxAttempts: 3}, slacktest.Token)
		err := p.Publish(context.Background(), report(1, "db-1", "a"), newState(), false)
		if err == nil || errors.Is(err, evidence.ErrPermanent) {
			t.Fatalf("got %v, want a transient error", err)
		}
		if got := srv.Calls("chat.postMessage"); got != 3 {
			t.Errorf("chat.postMessage called %d times, want 3", got)
		}
		if got := len(sl.got()); got != 2 {
			t.Errorf("waited %d times, want 2", got)
		}
	})
	t.Run("retry-after too long", func(t *testing.T) {
		srv := newServer(t)
		srv.RateLimit("chat.postMessage", 1, 5*time.Minute)
		p, sl := newPublisher(t, srv, slack.Config{}, slacktest.Token)
		err := p.Publish(context.Background(), report(1, "db-1", "a"), newState(), false)
		if err == nil || errors.Is(err, evidence.ErrPermanent) {
			t.Fatalf("got %v, want a transient error", err)
		}
		if got := sl.got(); len(got) != 0 {
			t.Errorf("waited %v; a Retry-After over max_retry_wait is left to the runner", got)
		}
	})
	t.Run("context", func(t *testing.T) {
		srv := newServer(t)
		srv.RateLimit("chat.postMessage", 10, time.Second)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		p, _ := newPublisher(t, srv, slack.Config{Channel: srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})}, slacktest.Token)
		if err := p.Publish(ctx, report(1, "db-1", "a"), nil, false); err == nil {
			t.Fatal("Publish with a cancelled context succeeded")
		}
	})
}

// TestTransientFailures: a call that may have taken effect is retried in
// the publish only when doing it twice is harmless.
func TestTransientFailures(t *testing.T) {
	cases := []struct {
		method string
		// calls the method gets: 2 when retried here, 1 when the failure
		// is left to the runner's redelivery (with again set).
		calls   int
		wantErr bool
	}{
		{"conversations.create", 2, false},
		{"conversations.invite", 2, false},
		{"chat.postMessage", 1, true},
		{"files.completeUploadExternal", 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			srv := newServer(t)
			srv.AddUser("U0ALICE00")
			srv.Fail(tc.method, "internal_error", 1)
			p, sl := newPublisher(t, srv, slack.Config{InviteUsers: []string{"U0ALICE00"}}, slacktest.Token)
			err := p.Publish(context.Background(), report(1, "db-1", "a"), newState(), false)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got %v, want error %v", err, tc.wantErr)
			}
			if err != nil && (errors.Is(err, evidence.ErrPermanent) || !strings.Contains(err.Error(), tc.method+": internal_error")) {
				t.Errorf("got %v, want a transient internal_error from %s", err, tc.method)
			}
			if got := srv.Calls(tc.method); got != tc.calls {
				t.Errorf("%s called %d times, want %d", tc.method, got, tc.calls)
			}
			if tc.calls == 2 && len(sl.got()) != 1 {
				t.Errorf("waits %v, want one backoff", sl.got())
			}
		})
	}
}

func TestPermanentErrors(t *testing.T) {
	type setup func(srv *slacktest.Server) (slack.Config, string)
	public := func(srv *slacktest.Server) string {
		return srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})
	}
	cases := []struct {
		name   string
		setup  setup
		code   string
		needed string
	}{
		{"invalid_auth", func(*slacktest.Server) (slack.Config, string) { return slack.Config{}, "xoxb-not-a-token" }, "invalid_auth", ""},
		{"token_revoked", func(srv *slacktest.Server) (slack.Config, string) {
			srv.AddToken("xoxb-revoked", slacktest.AllScopes()...)
			srv.RevokeToken("xoxb-revoked")
			return slack.Config{}, "xoxb-revoked"
		}, "token_revoked", ""},
		{"account_inactive", func(srv *slacktest.Server) (slack.Config, string) {
			srv.Fail("chat.postMessage", "account_inactive", 1)
			return slack.Config{Channel: public(srv)}, slacktest.Token
		}, "account_inactive", ""},
		{"channel_not_found", func(*slacktest.Server) (slack.Config, string) {
			return slack.Config{Channel: "C0GONE000"}, slacktest.Token
		}, "channel_not_found", ""},
		{"not_in_channel", func(srv *slacktest.Server) (slack.Config, string) {
			cfg := slack.Config{Channel: srv.AddChannel(slacktest.Channel{Name: "elsewhere"})}
			srv.AddToken("xoxb-channel-less", cfg.Scopes()...)
			return cfg, "xoxb-channel-less"
		}, "not_in_channel", ""},
		{"missing_scope", func(srv *slacktest.Server) (slack.Config, string) {
			srv.AddToken("xoxb-no-create", "chat:write", "files:write", "channels:read", "channels:history")
			return slack.Config{}, "xoxb-no-create"
		}, "missing_scope", "channels:manage"},
		{"restricted_action", func(srv *slacktest.Server) (slack.Config, string) {
			srv.Fail("conversations.create", "restricted_action", 1)
			return slack.Config{}, slacktest.Token
		}, "restricted_action", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			cfg, token := tc.setup(srv)
			p, sl := newPublisher(t, srv, cfg, token)
			err := p.Publish(context.Background(), report(1, "db-1", "a"), newState(), false)
			var e *slack.Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v (%T), want a *slack.Error", err, err)
			}
			if !e.Permanent() || !errors.Is(err, evidence.ErrPermanent) {
				t.Errorf("%v: not permanent", err)
			}
			if e.Code != tc.code || e.Needed != tc.needed {
				t.Errorf("code %q needed %q, want %q %q", e.Code, e.Needed, tc.code, tc.needed)
			}
			if len(sl.got()) != 0 {
				t.Errorf("waited %v before a permanent error", sl.got())
			}
			if srv.Posts() != 0 {
				t.Errorf("%d messages posted", srv.Posts())
			}
		})
	}
}
