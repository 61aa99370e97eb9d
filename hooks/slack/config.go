package slack

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Transports of Config.Transport.
const (
	TransportHTTP   = "http"
	TransportSocket = "socket"
)

// IncidentChannels is the Grant.Channels entry that stands for every
// channel firstlook created for an incident.
const IncidentChannels = "incident"

// Config is the /firstlook command's configuration. The signing secrets and
// the app-level token are not part of it: they are handed to New, so that
// printing a Config never shows one.
type Config struct {
	// TeamID is the Slack workspace (T…) whose requests are accepted;
	// requests from any other team are refused.
	TeamID string `yaml:"team_id"`
	// Transport is "http" (Slack POSTs to /hooks/slack/commands and
	// /hooks/slack/interactions; default) or "socket" (Socket Mode over a
	// websocket firstlook opens with an app-level token).
	Transport string `yaml:"transport"`
	// Command is the slash command's name as configured in the Slack app
	// (default "/firstlook").
	Command string `yaml:"command"`
	// Grants say who may run which command from where. Nothing is allowed
	// that no grant allows.
	Grants []Grant `yaml:"grants"`
	// AckBudget is how long a request's work may take before it is
	// acknowledged with "working on it" and answered later (default 2s;
	// Slack wants the acknowledgement within 3s).
	AckBudget time.Duration `yaml:"ack_budget"`
	// GroupCacheTTL is how long user group members are cached (default
	// 5m).
	GroupCacheTTL time.Duration `yaml:"group_cache_ttl"`
	// APIURL is the Web API base URL (default https://slack.com/api/);
	// tests point it at slacktest.
	APIURL string `yaml:"api_url"`
}

// Grant allows Commands to the callers it names, from the channels it
// names. A caller matches when Users or Usergroups names them (or when both
// are empty); a channel matches when Channels names it (or when it is
// empty). A grant names at least one of the three.
type Grant struct {
	// Commands are command names (run, last, playbooks, page, digest,
	// help) or "*" for every command.
	Commands []string `yaml:"commands"`
	// Users are Slack user ids (U… or W…).
	Users []string `yaml:"users"`
	// Usergroups are user groups by id (S…) or handle ("sre-oncall").
	Usergroups []string `yaml:"usergroups"`
	// Channels are channel ids (C…, G…), names ("#ops" or "ops"), or
	// "incident" for the channels firstlook created for incidents.
	Channels []string `yaml:"channels"`
}

// Commands are the command names a grant can name.
var Commands = []string{"help", "run", "last", "playbooks", "page", "digest"}

var (
	teamRE      = regexp.MustCompile(`^[TE][A-Z0-9]{2,}$`)
	userRE      = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupIDRE   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	handleRE    = regexp.MustCompile(`^@?[a-z0-9][a-z0-9._-]*$`)
	channelIDRE = regexp.MustCompile(`^[CGD][A-Z0-9]{2,}$`)
	chanNameRE  = regexp.MustCompile(`^#?[a-z0-9][a-z0-9_-]{0,79}$`)
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Transport = cmp.Or(c.Transport, TransportHTTP)
	c.Command = cmp.Or(c.Command, "/firstlook")
	c.AckBudget = cmp.Or(c.AckBudget, 2*time.Second)
	c.GroupCacheTTL = cmp.Or(c.GroupCacheTTL, 5*time.Minute)
	return c
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if !teamRE.MatchString(c.TeamID) {
		return fmt.Errorf("team_id: %q is not a Slack team id (T…: in the workspace's about page, or the team_id of any request)", c.TeamID)
	}
	switch c.Transport {
	case "", TransportHTTP, TransportSocket:
	default:
		return fmt.Errorf("transport: %q is neither http nor socket", c.Transport)
	}
	if c.Command != "" && !strings.HasPrefix(c.Command, "/") {
		return fmt.Errorf("command: %q does not start with /", c.Command)
	}
	if c.AckBudget < 0 || c.AckBudget > 2500*time.Millisecond {
		return fmt.Errorf("ack_budget: %s is not between 0 and 2.5s (Slack wants an answer within 3s)", c.AckBudget)
	}
	if c.GroupCacheTTL < 0 {
		return fmt.Errorf("group_cache_ttl: %s is negative", c.GroupCacheTTL)
	}
	if len(c.Grants) == 0 {
		return errors.New("grants: none, so every command would be refused; grant at least help")
	}
	for i, g := range c.Grants {
		if err := g.validate(); err != nil {
			return fmt.Errorf("grants[%d].%w", i, err)
		}
	}
	return nil
}

func (g Grant) validate() error {
	if len(g.Commands) == 0 {
		return errors.New("commands: empty; name commands or \"*\"")
	}
	for i, c := range g.Commands {
		if c != "*" && !slices.Contains(Commands, c) {
			return fmt.Errorf("commands[%d]: %q is not one of %s or *", i, c, strings.Join(Commands, ", "))
		}
	}
	if len(g.Users) == 0 && len(g.Usergroups) == 0 && len(g.Channels) == 0 {
		return errors.New("users, usergroups, channels: all empty; a grant must say whom or where")
	}
	for i, u := range g.Users {
		if !userRE.MatchString(u) {
			return fmt.Errorf("users[%d]: %q is not a Slack user id (U… or W…: a profile's ⋮ menu, Copy member ID)", i, u)
		}
	}
	for i, u := range g.Usergroups {
		if !groupIDRE.MatchString(u) && !handleRE.MatchString(u) {
			return fmt.Errorf("usergroups[%d]: %q is neither a user group id (S…) nor a handle", i, u)
		}
	}
	for i, ch := range g.Channels {
		if ch != IncidentChannels && !channelIDRE.MatchString(ch) && !chanNameRE.MatchString(ch) {
			return fmt.Errorf("channels[%d]: %q is neither a channel id (C…), a channel name, nor %q", i, ch, IncidentChannels)
		}
	}
	return nil
}
