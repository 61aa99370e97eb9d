package slack

import (
	"fmt"
	"slices"
	"strings"
)

// Caller is who sends a command, and from where.
type Caller struct {
	Team        string
	User        string
	UserName    string
	Channel     string
	ChannelName string
	// Groups are the user groups, as the grants name them (id or handle),
	// that the user is a member of. Only groups some grant names matter.
	Groups []string
	// IncidentChannel is set when firstlook created Channel for an
	// incident.
	IncidentChannel bool
}

// Decision is the outcome of Authorize.
type Decision struct {
	Allowed bool
	// Rule names what decided: "grants[2]", "team_id", or "default"
	// (deny by default: no grant allows it).
	Rule string
	// Reason says, for a refusal, which rule is missing, in words the
	// caller can take to whoever keeps the configuration.
	Reason string
}

// Authorize decides whether c may run command under cfg. It is pure: the
// caller's user groups are looked up beforehand (Caller.Groups). Deny by
// default: a command is allowed only by a grant that names it, the caller
// and the channel.
func Authorize(cfg Config, c Caller, command string) Decision {
	if c.Team != cfg.TeamID {
		return Decision{Rule: "team_id", Reason: fmt.Sprintf("this firstlook serves workspace %s only; the request came from %s", cfg.TeamID, orNone(c.Team))}
	}
	var forCommand, forCaller []int
	for i, g := range cfg.Grants {
		if !slices.Contains(g.Commands, command) && !slices.Contains(g.Commands, "*") {
			continue
		}
		forCommand = append(forCommand, i)
		if !g.names(c) {
			continue
		}
		forCaller = append(forCaller, i)
		if g.inChannel(c) {
			return Decision{Allowed: true, Rule: fmt.Sprintf("grants[%d]", i)}
		}
	}
	d := Decision{Rule: "default"}
	switch {
	case len(forCommand) == 0:
		d.Reason = fmt.Sprintf("no grant gives `%s` to anyone: add a grant with commands: [%s]", command, command)
	case len(forCaller) == 0:
		var who []string
		for _, i := range forCommand {
			who = append(who, fmt.Sprintf("grants[%d] (%s)", i, cfg.Grants[i].whom()))
		}
		d.Reason = fmt.Sprintf("no grant gives `%s` to you (%s) or a user group of yours; it is granted by %s", command, c.User, strings.Join(who, "; "))
	default:
		var where []string
		for _, i := range forCaller {
			where = append(where, fmt.Sprintf("grants[%d] (channels %s)", i, strings.Join(cfg.Grants[i].Channels, ", ")))
		}
		d.Reason = fmt.Sprintf("`%s` is granted to you only in other channels, not in %s: %s", command, channelLabel(c), strings.Join(where, "; "))
	}
	return d
}

// names reports whether g covers the caller.
func (g Grant) names(c Caller) bool {
	if len(g.Users) == 0 && len(g.Usergroups) == 0 {
		return true
	}
	if slices.Contains(g.Users, c.User) {
		return true
	}
	for _, ug := range g.Usergroups {
		if slices.Contains(c.Groups, strings.TrimPrefix(ug, "@")) {
			return true
		}
	}
	return false
}

// inChannel reports whether g covers the caller's channel.
func (g Grant) inChannel(c Caller) bool {
	if len(g.Channels) == 0 {
		return true
	}
	for _, ch := range g.Channels {
		switch {
		case ch == IncidentChannels:
			if c.IncidentChannel {
				return true
			}
		case ch == c.Channel:
			return true
		case c.ChannelName != "" && strings.TrimPrefix(ch, "#") == c.ChannelName:
			return true
		}
	}
	return false
}

func (g Grant) whom() string {
	var parts []string
	if len(g.Users) > 0 {
		parts = append(parts, "users "+strings.Join(g.Users, ", "))
	}
	if len(g.Usergroups) > 0 {
		parts = append(parts, "user groups "+strings.Join(g.Usergroups, ", "))
	}
	if len(parts) == 0 {
		return "everyone"
	}
	return strings.Join(parts, "; ")
}

// groupsNamed returns the user groups the grants for command name, without
// a leading "@".
func groupsNamed(cfg Config, command string) []string {
	var out []string
	for _, g := range cfg.Grants {
		if !slices.Contains(g.Commands, command) && !slices.Contains(g.Commands, "*") {
			continue
		}
		for _, ug := range g.Usergroups {
			ug = strings.TrimPrefix(ug, "@")
			if !slices.Contains(out, ug) {
				out = append(out, ug)
			}
		}
	}
	return out
}

func channelLabel(c Caller) string {
	if c.ChannelName != "" {
		return "#" + c.ChannelName + " (" + c.Channel + ")"
	}
	return orNone(c.Channel)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
