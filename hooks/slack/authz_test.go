package slack_test

import (
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks/slack"
)

const team = "T0FIRSTLK"

func policy() slack.Config {
	return slack.Config{
		TeamID: team,
		Grants: []slack.Grant{
			{Commands: []string{"help", "playbooks", "last"}, Channels: []string{"incident", "#ops", "C0OPS0001"}},
			{Commands: []string{"run", "last"}, Usergroups: []string{"sre-oncall"}, Channels: []string{"incident", "#ops"}},
			{Commands: []string{"*"}, Users: []string{"U0LEAD001"}},
			{Commands: []string{"page"}, Users: []string{"U0PAGER01"}, Channels: []string{"#ops"}},
		},
	}
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name    string
		caller  slack.Caller
		command string
		allowed bool
		rule    string
		reason  string
	}{
		{"anyone in an incident channel gets help", slack.Caller{Team: team, User: "U0ANY0001", Channel: "C0INC0001", IncidentChannel: true}, "help", true, "grants[0]", ""},
		{"channel by id", slack.Caller{Team: team, User: "U0ANY0001", Channel: "C0OPS0001"}, "playbooks", true, "grants[0]", ""},
		{"channel by name", slack.Caller{Team: team, User: "U0ANY0001", Channel: "C0XYZ", ChannelName: "ops"}, "last", true, "grants[0]", ""},
		{"denied channel", slack.Caller{Team: team, User: "U0ANY0001", Channel: "C0GEN0001", ChannelName: "general"}, "help", false, "default", "only in other channels, not in #general"},
		{"denied user", slack.Caller{Team: team, User: "U0ANY0001", Channel: "C0INC0001", IncidentChannel: true}, "run", false, "default", "no grant gives `run` to you (U0ANY0001)"},
		{"user through a user group", slack.Caller{Team: team, User: "U0SRE0001", Groups: []string{"sre-oncall"}, Channel: "C0INC0001", IncidentChannel: true}, "run", true, "grants[1]", ""},
		{"group member in the wrong channel", slack.Caller{Team: team, User: "U0SRE0001", Groups: []string{"sre-oncall"}, Channel: "C0GEN0001", ChannelName: "general"}, "run", false, "default", "grants[1] (channels incident, #ops)"},
		{"star", slack.Caller{Team: team, User: "U0LEAD001", Channel: "C0GEN0001"}, "digest", true, "grants[2]", ""},
		{"command granted to nobody here", slack.Caller{Team: team, User: "U0ANY0001", Channel: "C0OPS0001"}, "digest", false, "default", "grants[2] (users U0LEAD001)"},
		{"workspace mismatch", slack.Caller{Team: "T0OTHER01", User: "U0LEAD001", Channel: "C0OPS0001"}, "help", false, "team_id", "the request came from T0OTHER01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := slack.Authorize(policy(), tt.caller, tt.command)
			if d.Allowed != tt.allowed || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.reason) {
				t.Errorf("got %+v, want allowed %v by %s, reason containing %q", d, tt.allowed, tt.rule, tt.reason)
			}
		})
	}
	// A grant for nothing at all is refused by name.
	cfg := slack.Config{TeamID: team, Grants: []slack.Grant{{Commands: []string{"help"}, Users: []string{"U0ANY0001"}}}}
	if d := slack.Authorize(cfg, slack.Caller{Team: team, User: "U0ANY0001"}, "page"); d.Allowed || !strings.Contains(d.Reason, "no grant gives `page` to anyone") {
		t.Errorf("got %+v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	good := policy()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		edit func(*slack.Config)
		want string
	}{
		{func(c *slack.Config) { c.TeamID = "" }, "team_id"},
		{func(c *slack.Config) { c.Grants = nil }, "grants: none"},
		{func(c *slack.Config) { c.Grants[0].Commands = []string{"reboot"} }, `grants[0].commands[0]: "reboot"`},
		{func(c *slack.Config) { c.Grants[1].Users = []string{"alice"} }, "grants[1].users[0]"},
		{func(c *slack.Config) { c.Grants[1].Channels = []string{"Not A Channel"} }, "grants[1].channels[0]"},
		{func(c *slack.Config) { c.Grants[3] = slack.Grant{Commands: []string{"page"}} }, "grants[3].users, usergroups, channels: all empty"},
		{func(c *slack.Config) { c.Transport = "carrier-pigeon" }, "transport"},
		{func(c *slack.Config) { c.AckBudget = 5e9 }, "ack_budget"},
	}
	for _, tt := range tests {
		c := policy()
		tt.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("got %v, want %q", err, tt.want)
		}
	}
}
