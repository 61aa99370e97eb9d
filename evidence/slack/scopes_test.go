package slack_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// tour publishes through every path a configuration can take: a new
// channel with invites, a channel of the same name made by someone else,
// and a retried publish that looks for what landed.
type tour struct {
	name  string
	cfg   func(srv *slacktest.Server) slack.Config
	scope []string // what Scopes must return
}

var tours = []tour{
	{"public with user group", func(srv *slacktest.Server) slack.Config {
		srv.AddUsergroup("S0SRE0000", "sre", "U0ALICE00")
		// Incident 2's channel was made by a person, without the bot.
		srv.AddChannel(slacktest.Channel{Name: "inc-2-disk-full-on-db-1", Members: []string{"U0HUMAN00"}})
		return slack.Config{InviteUsergroup: "sre"}
	}, []string{"channels:history", "channels:join", "channels:manage", "channels:read", "chat:write", "files:write", "usergroups:read"}},
	{"private", func(srv *slacktest.Server) slack.Config {
		srv.AddUser("U0ALICE00")
		// Incident 2's channel exists already (an earlier firstlook).
		srv.AddChannel(slacktest.Channel{Name: "inc-2-disk-full-on-db-1", Private: true, Members: []string{slacktest.BotUserID}})
		return slack.Config{Private: true, InviteUsers: []string{"U0ALICE00"}}
	}, []string{"chat:write", "files:write", "groups:history", "groups:read", "groups:write"}},
	{"channel-less", func(srv *slacktest.Server) slack.Config {
		return slack.Config{Channel: srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})}
	}, []string{"channels:history", "chat:write", "files:write"}},
}

func (tr tour) run(t *testing.T, scopes []string) error {
	t.Helper()
	srv := newServer(t)
	cfg := tr.cfg(srv)
	srv.AddToken("xoxb-tour", scopes...)
	p, _ := newPublisher(t, srv, cfg, "xoxb-tour")
	ctx := context.Background()
	st1, st2 := newState(), newState()
	steps := []struct {
		name  string
		n     int
		st    *memState
		again bool
	}{{"new channel", 1, st1, false}, {"taken name", 2, st2, false}, {"again", 1, st1, true}}
	for _, s := range steps {
		if err := p.Publish(ctx, report(s.n, "db-1", fmt.Sprint(s.n)), s.st, s.again); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if got := srv.Posts(); got != 2 {
		return fmt.Errorf("%d messages posted, want 2", got)
	}
	return nil
}

// TestScopes proves Config.Scopes is both enough and needed: the tour
// passes with exactly those scopes, and fails with missing_scope naming
// each one that is taken away.
func TestScopes(t *testing.T) {
	for _, tr := range tours {
		t.Run(tr.name, func(t *testing.T) {
			srv := newServer(t)
			scopes := tr.cfg(srv).Scopes()
			if !slices.Equal(scopes, tr.scope) {
				t.Errorf("Scopes() = %v, want %v", scopes, tr.scope)
			}
			if err := tr.run(t, scopes); err != nil {
				t.Fatalf("with exactly %v: %v", scopes, err)
			}
			for _, drop := range scopes {
				t.Run("without "+drop, func(t *testing.T) {
					err := tr.run(t, slices.DeleteFunc(slices.Clone(scopes), func(s string) bool { return s == drop }))
					var e *slack.Error
					if !errors.As(err, &e) || e.Code != "missing_scope" || !strings.Contains(e.Needed, drop) {
						t.Fatalf("got %v, want missing_scope needing %s", err, drop)
					}
					if !e.Permanent() {
						t.Errorf("missing_scope is not permanent")
					}
				})
			}
		})
	}
}

func TestCheck(t *testing.T) {
	srv := newServer(t)
	cfg := slack.Config{InviteUsergroup: "sre"}
	cases := []struct {
		name    string
		cfg     slack.Config
		scopes  []string
		missing string
	}{
		{"all", cfg, cfg.Scopes(), ""},
		{"more than needed", cfg, slacktest.AllScopes(), ""},
		{"two missing", cfg, []string{"chat:write", "files:write", "channels:manage", "channels:read", "channels:history"}, "channels:join, usergroups:read"},
		{"private channel-less", slack.Config{Channel: "C0INCIDNT"}, []string{"chat:write", "files:write", "groups:history"}, ""},
		{"channel-less without history", slack.Config{Channel: "C0INCIDNT"}, []string{"chat:write", "files:write"}, "channels:history"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := fmt.Sprintf("xoxb-check-%d", i)
			srv.AddToken(tok, tc.scopes...)
			p, _ := newPublisher(t, srv, tc.cfg, tok)
			err := p.Check(context.Background())
			switch {
			case tc.missing == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tc.missing != "" && (err == nil || !strings.Contains(err.Error(), "lacks scopes "+tc.missing)):
				t.Errorf("Check: %v, want it to name %s", err, tc.missing)
			}
		})
	}
	p, _ := newPublisher(t, srv, cfg, "xoxb-wrong")
	if err := p.Check(context.Background()); !errors.Is(err, evidence.ErrPermanent) || !strings.Contains(err.Error(), "invalid_auth") {
		t.Errorf("Check with a bad token: %v, want invalid_auth", err)
	}
}
