package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
)

// maxChannelName is Slack's limit: "Channel names may only contain
// lowercase letters, numbers, hyphens, and underscores, and must be 80
// characters or less"
// (https://docs.slack.dev/reference/methods/conversations.create).
const maxChannelName = 80

// minTitle is the shortest piece of title worth putting in a name.
const minTitle = 8

// ChannelName returns the name of an incident's channel:
// "<prefix>-<number>-<title>", or "<prefix>-<id>-<title>" when the
// incident has no number (a long or unusual id is shortened and given a
// hash of itself, see idPart). The title is reduced to a-z, 0-9 and single
// hyphens (accented Latin letters lose their accents), and cut at a word
// boundary so the name stays within Slack's 80 characters. A title with
// nothing left (a title in another script, only emoji) gives way to the
// service's name, or to nothing: "inc-4242".
func ChannelName(prefix string, inc evidence.Incident) string {
	if prefix == "" {
		prefix = DefaultChannelPrefix
	}
	head := prefix
	switch {
	case inc.Number > 0:
		head += "-" + strconv.Itoa(inc.Number)
	case inc.ID != "":
		head += "-" + idPart(inc.ID)
	}
	title := slugify(inc.Title)
	if title == "" {
		title = slugify(inc.Service)
	}
	room := maxChannelName - len(head) - 1
	if title == "" || room < minTitle {
		return head
	}
	return head + "-" + cutSlug(title, room)
}

// idPart is an incident id as it goes into a channel name: as it is when
// it is short and slugifies without loss (PagerDuty's "Q0RIAJJL8PXYZ"),
// else its slug's start and a hash of the whole, so that two ids that
// slugify alike (Alertmanager group keys) still name two channels.
func idPart(id string) string {
	s := slugify(id)
	if s == strings.ToLower(id) && len(s) <= maxIDPart {
		return s
	}
	sum := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(sum[:3])
	if s = cutSlug(s, maxIDPart-len(h)-1); s == "" {
		return h
	}
	return s + "-" + h
}

// maxIDPart bounds the id in a channel name, leaving the title room.
const maxIDPart = 24

// slugify lowercases s and keeps its ASCII letters and digits, folding
// accented Latin letters to theirs; every other run of characters becomes
// one hyphen, and none starts or ends the result.
func slugify(s string) string {
	var sb strings.Builder
	sep := false
	for _, r := range strings.ToLower(s) {
		var keep string
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			keep = string(r)
		default:
			keep = fold[r]
		}
		if keep == "" {
			sep = sb.Len() > 0
			continue
		}
		if sep {
			sb.WriteByte('-')
			sep = false
		}
		sb.WriteString(keep)
	}
	return sb.String()
}

// cutSlug cuts a slug to at most n bytes (it is ASCII), at a hyphen when
// that keeps at least half of it, and never ends on a hyphen or
// underscore.
func cutSlug(s string, n int) string {
	if len(s) > n {
		cut := s[:n]
		if s[n] != '-' {
			if i := strings.LastIndexByte(cut, '-'); i >= n/2 {
				cut = cut[:i]
			}
		}
		s = cut
	}
	return strings.TrimRight(s, "-_")
}

// fold maps the lowercase letters of Latin-1 Supplement and Latin
// Extended-A to ASCII, so that "Café" names "cafe", not "caf".
var fold = func() map[rune]string {
	m := map[rune]string{}
	for _, g := range []struct{ from, to string }{
		{"àáâãäåāăą", "a"}, {"çćĉċč", "c"}, {"ďđð", "d"}, {"èéêëēĕėęě", "e"},
		{"ĝğġģ", "g"}, {"ĥħ", "h"}, {"ìíîïĩīĭįı", "i"}, {"ĵ", "j"}, {"ķĸ", "k"},
		{"ĺļľŀł", "l"}, {"ñńņňŉŋ", "n"}, {"òóôõöøōŏő", "o"}, {"ŕŗř", "r"},
		{"śŝşš", "s"}, {"ţťŧ", "t"}, {"ùúûüũūŭůűų", "u"}, {"ŵ", "w"}, {"ýÿŷ", "y"},
		{"źżž", "z"}, {"þ", "th"},
	} {
		for _, r := range g.from {
			m[r] = g.to
		}
	}
	m['ß'], m['æ'], m['œ'], m['ĳ'], m['ſ'] = "ss", "ae", "oe", "ij", "s"
	return m
}()

// incidentChannel returns the incident's channel id: the one its state
// records, or else a channel made (or found, when the name is taken) and
// recorded. Concurrent runs of one incident may all get here; the first to
// record its channel in the state wins, and the others use that one.
func (p *Publisher) incidentChannel(ctx context.Context, inc evidence.Incident, st evidence.IncidentState) (string, error) {
	if inc.ID == "" && inc.Number == 0 {
		return "", permanentf("incident has neither id nor number: its channel cannot be named (set channel for channel-less mode)")
	}
	if st == nil {
		return "", permanentf("no incident state to keep the channel in")
	}
	if id, err := st.Get(ctx, StateKey); err != nil {
		return "", &Error{Err: fmt.Errorf("read incident state: %w", err)}
	} else if id != "" {
		return id, nil
	}
	id, archived, err := p.createOrFind(ctx, ChannelName(p.cfg.ChannelPrefix, inc))
	if err != nil {
		return "", err
	}
	// Invite before recording the channel: a run that fails here leaves
	// the state empty, so the next attempt invites again (invites are
	// idempotent: already_in_channel is not an error).
	if !archived {
		if err := p.invite(ctx, id); err != nil {
			return "", err
		}
	}
	if err := st.Create(ctx, StateKey, id); err != nil {
		// Another run of the incident recorded a channel first
		// (evidence.ErrStateExists): the incident's channel is theirs. It is
		// this one unless the title changed between the two runs, which
		// leaves this run's channel unused.
		if won, gerr := st.Get(ctx, StateKey); gerr == nil && won != "" {
			return won, nil
		}
		return "", &Error{Err: fmt.Errorf("record incident channel: %w", err)}
	}
	return id, nil
}

// createOrFind creates the channel name, or finds it when Slack says the
// name is taken: by another run of the incident, an earlier firstlook, or
// a person. The bot joins a public channel it is not in; it cannot join a
// private one it cannot see. archived reports an archived channel, which
// nobody can be invited to or post in.
func (p *Publisher) createOrFind(ctx context.Context, name string) (id string, archived bool, err error) {
	var ch *goslack.Channel
	err = p.call(ctx, "conversations.create", true, func(ctx context.Context) error {
		var err error
		ch, err = p.api.CreateConversationContext(ctx, goslack.CreateConversationParams{ChannelName: name, IsPrivate: p.cfg.Private})
		return err
	})
	if err == nil {
		return ch.ID, false, nil
	}
	if !isCode(err, "name_taken") {
		return "", false, err
	}
	found, err := p.findChannel(ctx, name)
	switch {
	case err != nil:
		return "", false, err
	case found == nil:
		// Transient: a channel just created may take a moment to be
		// listed; a private channel the bot is not in never will be, and
		// the job's delivery cap ends the retries.
		return "", false, &Error{Method: "conversations.list", Err: fmt.Errorf("channel name %q is taken, but by no channel the bot can see (a private channel it is not in?)", name)}
	case found.IsArchived:
		return found.ID, true, nil
	case !found.IsMember && !found.IsPrivate:
		err := p.call(ctx, "conversations.join", true, func(ctx context.Context) error {
			_, _, _, err := p.api.JoinConversationContext(ctx, found.ID)
			return err
		})
		if err != nil {
			return "", false, err
		}
	}
	return found.ID, false, nil
}

// maxListPages bounds the channel search: 200 pages of 200 channels.
const maxListPages = 200

// findChannel looks for the channel called name among those the bot can
// see, archived ones included (a name stays taken after archival).
func (p *Publisher) findChannel(ctx context.Context, name string) (*goslack.Channel, error) {
	types := []string{"public_channel"}
	if p.cfg.Private {
		types = []string{"private_channel"}
	}
	cursor := ""
	for range maxListPages {
		var chans []goslack.Channel
		var next string
		err := p.call(ctx, "conversations.list", true, func(ctx context.Context) error {
			var err error
			// Slack advises at most 200 per page
			// (https://docs.slack.dev/apis/web-api/pagination).
			chans, next, err = p.api.GetConversationsContext(ctx, &goslack.GetConversationsParameters{Cursor: cursor, Limit: 200, Types: types})
			return err
		})
		if err != nil {
			return nil, err
		}
		for i := range chans {
			if chans[i].Name == name {
				return &chans[i], nil
			}
		}
		if next == "" {
			return nil, nil
		}
		cursor = next
	}
	return nil, nil
}

// maxInvitees is the most users one conversations.invite takes
// ("Up to 100 users may be listed").
const maxInvitees = 100

// invite invites the configured users and user group to channel.
func (p *Publisher) invite(ctx context.Context, channel string) error {
	users := slices.Clone(p.cfg.InviteUsers)
	if g := p.cfg.InviteUsergroup; g != "" {
		members, err := p.usergroupMembers(ctx, g)
		if err != nil {
			return err
		}
		users = append(users, members...)
	}
	slices.Sort(users)
	users = slices.Compact(users)
	for batch := range slices.Chunk(users, maxInvitees) {
		if err := p.inviteBatch(ctx, channel, batch); err != nil {
			return err
		}
	}
	return nil
}

// userCodes are conversations.invite's errors about one user rather than
// the call. Slack invites nobody when any invitee fails ("Partially failed
// calls", https://docs.slack.dev/reference/methods/conversations.invite),
// so the failed users are dropped and the rest invited again.
var userCodes = map[string]bool{
	"already_in_channel": true, "cant_invite_self": true, "user_not_found": true,
	"cant_invite": true, "user_is_restricted": true, "ura_max_channels": true,
	"no_permission": true, "no_external_invite_permission": true,
	"invitee_cant_see_channel": true, "org_user_not_in_team": true,
}

// inviteBatch invites users, dropping those Slack will not invite: users
// already in the channel and the bot itself silently, users it refuses
// (unknown, deactivated, guests) with a warning, since evidence matters
// more than one invite.
func (p *Publisher) inviteBatch(ctx context.Context, channel string, users []string) error {
	for len(users) > 0 {
		err := p.call(ctx, "conversations.invite", true, func(ctx context.Context) error {
			_, err := p.api.InviteUsersToConversationContext(ctx, channel, users...)
			return err
		})
		se, ok := errors.AsType[goslack.SlackErrorResponse](err)
		if err == nil || !ok {
			return err
		}
		failed := map[string]string{}
		for _, e := range se.Errors {
			if ie := e.ConversationsInviteResponseError; ie != nil && ie.User != "" {
				failed[ie.User] = ie.Error
			}
		}
		if len(failed) == 0 && len(users) == 1 && userCodes[se.Err] {
			failed[users[0]] = se.Err
		}
		var rest []string
		for _, u := range users {
			code, bad := failed[u]
			switch {
			case !bad:
				rest = append(rest, u)
			case code != "already_in_channel" && code != "cant_invite_self":
				p.log.Warn("slack: user not invited to the incident channel", "user", u, "channel", channel, "error", code)
			}
		}
		if len(rest) == len(users) {
			return err
		}
		users = rest
	}
	return nil
}

// usergroupMembers returns the members of a user group given by id or
// handle.
func (p *Publisher) usergroupMembers(ctx context.Context, group string) ([]string, error) {
	id := group
	if !groupIDRE.MatchString(group) {
		handle := strings.TrimPrefix(group, "@")
		var groups []goslack.UserGroup
		err := p.call(ctx, "usergroups.list", true, func(ctx context.Context) error {
			var err error
			groups, err = p.api.GetUserGroupsContext(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		id = ""
		for _, g := range groups {
			if g.Handle == handle {
				id = g.ID
			}
		}
		if id == "" {
			return nil, &Error{Method: "usergroups.list", Err: fmt.Errorf("invite_usergroup: no user group with handle %q", handle), permanent: true}
		}
	}
	var members []string
	err := p.call(ctx, "usergroups.users.list", true, func(ctx context.Context) error {
		var err error
		members, err = p.api.GetUserGroupMembersContext(ctx, id)
		return err
	})
	return members, err
}
