// Package slack publishes a run's evidence to Slack, where responders read
// it: the incident's own channel ("inc-<number>-<title>"), created on the
// incident's first run and reused after, with configured people invited;
// one Block Kit message per run carrying the run's marker in its metadata;
// and the run's full output as a text file in that message's thread.
//
// Publishing is exactly once in effect (see evidence.Publisher): a publish
// retried with again set looks for the marker in the channel's recent
// history and for the file in the message's thread before posting either.
// Runs of one incident publish concurrently; they agree on one channel
// through the per-incident state (compare-and-set) and Slack's name_taken.
//
// Channel-less mode (Config.Channel) posts to one configured channel and
// never creates one.
//
// The package talks to Slack with github.com/slack-go/slack and is tested
// against slacktest, a fake of the documented Web API behaviour it relies
// on.
package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
)

// Defaults applied by Config.WithDefaults to zero fields.
const (
	DefaultChannelPrefix = "inc"
	// DefaultMaxAttempts bounds the attempts at one call: enough to ride
	// out a burst of 429s on chat.postMessage (about one message per
	// second per channel), few enough that a Slack outage hands the job
	// back to the queue quickly.
	DefaultMaxAttempts = 5
	// DefaultMaxRetryWait is the longest Retry-After waited for within a
	// publish; longer, and the publish fails as transient so the job is
	// redelivered later instead of holding a worker.
	DefaultMaxRetryWait = time.Minute
	// DefaultTimeout bounds one HTTP request, an upload of the full output
	// included.
	DefaultTimeout = time.Minute
)

// EventType is the message metadata event_type of firstlook's messages;
// their event_payload holds "marker" and "run_id".
const EventType = "firstlook_run"

// StateKey is the per-incident state name holding the incident's channel id.
const StateKey = "slack_channel"

// Config configures the Slack publisher. The bot token is not part of it:
// New takes it separately, so that printing a Config never shows it.
type Config struct {
	// ChannelPrefix starts every incident channel's name (default "inc").
	ChannelPrefix string `yaml:"channel_prefix"`
	// Private creates private incident channels (scope groups:write
	// instead of channels:manage).
	Private bool `yaml:"private"`
	// InviteUsers are user ids (U… or W…) invited to each new incident
	// channel.
	InviteUsers []string `yaml:"invite_users"`
	// InviteUsergroup is a user group, by id (S…) or handle ("sre-oncall"
	// or "@sre-oncall"), whose members are invited to each new incident
	// channel.
	InviteUsergroup string `yaml:"invite_usergroup"`
	// Channel, when set, is the id of the one channel every run is posted
	// to (channel-less mode): no channel is created, nobody invited.
	Channel string `yaml:"channel"`
	// FallbackChannel is the id of a channel runs are posted to when the
	// incident's channel is archived: Slack does not let bot tokens
	// unarchive (https://docs.slack.dev/reference/methods/conversations.unarchive,
	// "Bug alert"). Without it, an archived channel is a permanent error.
	FallbackChannel string `yaml:"fallback_channel"`
	// APIURL is the Web API base URL (default https://slack.com/api/);
	// tests point it at slacktest.
	APIURL string `yaml:"api_url"`
	// MaxAttempts bounds the attempts at one API call (DefaultMaxAttempts).
	MaxAttempts int `yaml:"max_attempts"`
	// MaxRetryWait is the longest Retry-After honoured within a publish
	// (DefaultMaxRetryWait).
	MaxRetryWait time.Duration `yaml:"max_retry_wait"`
	// Timeout bounds one HTTP request (DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// RunAgainButton adds a "Run again" button to each single-host run's
	// message; it needs the /firstlook command (hooks/slack) configured to
	// receive the press. firstlook serve sets it when slack.commands is.
	RunAgainButton bool `yaml:"-"`
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.ChannelPrefix = cmp.Or(c.ChannelPrefix, DefaultChannelPrefix)
	c.APIURL = cmp.Or(c.APIURL, goslack.APIURL)
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	c.MaxAttempts = cmp.Or(c.MaxAttempts, DefaultMaxAttempts)
	c.MaxRetryWait = cmp.Or(c.MaxRetryWait, DefaultMaxRetryWait)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	return c
}

var (
	prefixRE    = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9_]|-[a-z0-9_])*$`)
	userRE      = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	groupIDRE   = regexp.MustCompile(`^S[A-Z0-9]{2,}$`)
	handleRE    = regexp.MustCompile(`^@?[a-z0-9][a-z0-9._-]*$`)
	channelIDRE = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
)

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.ChannelPrefix != "" && (len(c.ChannelPrefix) > 20 || !prefixRE.MatchString(c.ChannelPrefix)) {
		return fmt.Errorf("channel_prefix: %q: use up to 20 of a-z, 0-9, - and _, not starting or ending with - and without --", c.ChannelPrefix)
	}
	for i, u := range c.InviteUsers {
		if !userRE.MatchString(u) {
			return fmt.Errorf("invite_users[%d]: %q is not a Slack user id (U… or W…: a profile's ⋮ menu, Copy member ID)", i, u)
		}
	}
	if g := c.InviteUsergroup; g != "" && !groupIDRE.MatchString(g) && !handleRE.MatchString(g) {
		return fmt.Errorf("invite_usergroup: %q is neither a user group id (S…) nor a handle", g)
	}
	for _, ch := range []struct{ key, id string }{{"channel", c.Channel}, {"fallback_channel", c.FallbackChannel}} {
		if ch.id != "" && !channelIDRE.MatchString(ch.id) {
			return fmt.Errorf("%s: %q is not a channel id (C…: the channel's details, at the bottom); names change, ids do not", ch.key, ch.id)
		}
	}
	if c.Channel != "" {
		switch {
		case len(c.InviteUsers) > 0 || c.InviteUsergroup != "":
			return errors.New("invite_users, invite_usergroup: they apply to incident channels, and with channel set none is created")
		case c.Private:
			return errors.New("private: it applies to incident channels, and with channel set none is created")
		case c.FallbackChannel != "":
			return errors.New("fallback_channel: it replaces an archived incident channel, and with channel set none is used")
		}
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		switch {
		case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
			return errors.New("api_url: not an http(s) URL with a host")
		case u.User != nil:
			return errors.New("api_url: must not carry credentials")
		}
	}
	switch {
	case c.MaxAttempts < 0 || c.MaxAttempts > 20:
		return fmt.Errorf("max_attempts: %d is not between 1 and 20", c.MaxAttempts)
	case c.MaxRetryWait < 0:
		return fmt.Errorf("max_retry_wait: %s is negative", c.MaxRetryWait)
	case c.Timeout < 0:
		return fmt.Errorf("timeout: %s is negative", c.Timeout)
	}
	return nil
}

// Scopes returns the bot token scopes the publisher uses with c, derived
// from the methods it calls:
//
//   - chat:write: chat.postMessage;
//   - files:write: files.getUploadURLExternal, files.completeUploadExternal;
//   - channels:history (groups:history for private channels):
//     conversations.history and conversations.replies, when a retried
//     publish looks for what it posted;
//   - incident channels: channels:manage (groups:write if private) for
//     conversations.create and conversations.invite, channels:read
//     (groups:read) for conversations.list when the name is taken, and,
//     for public channels, channels:join for conversations.join when the
//     channel of that name was made by a person;
//   - usergroups:read: usergroups.list and usergroups.users.list, with
//     invite_usergroup.
//
// In channel-less mode a private Channel needs groups:history instead of
// channels:history.
func (c Config) Scopes() []string {
	s := []string{"chat:write", "files:write"}
	switch {
	case c.Channel != "":
		s = append(s, "channels:history")
	case c.Private:
		s = append(s, "groups:history", "groups:write", "groups:read")
	default:
		s = append(s, "channels:history", "channels:manage", "channels:read", "channels:join")
	}
	if c.Channel == "" && c.InviteUsergroup != "" {
		s = append(s, "usergroups:read")
	}
	slices.Sort(s)
	return s
}

// Publisher posts runs to Slack. It is safe for concurrent use.
type Publisher struct {
	cfg     Config
	api     *goslack.Client
	blocks  func(evidence.Report) []goslack.Block
	text    func(evidence.Report) string
	file    func(evidence.Report) []byte
	sleep   func(context.Context, time.Duration) error
	log     *slog.Logger
	onRetry func(attempt int, wait time.Duration, err error)
	hc      *http.Client
	policy  retry.Policy
}

// Option configures a Publisher.
type Option func(*Publisher)

// WithRenderer replaces how a run becomes a message: its blocks and the
// plain text Slack shows in notifications (default Blocks
// and evidence.Text); nil keeps the default. Whatever blocks come back are
// cut to Slack's limits before posting.
func WithRenderer(blocks func(evidence.Report) []goslack.Block, text func(evidence.Report) string) Option {
	return func(p *Publisher) {
		if blocks != nil {
			p.blocks = blocks
		}
		if text != nil {
			p.text = text
		}
	}
}

// WithFileRenderer replaces the content of the file uploaded in the
// message's thread (default evidence.FullOutput: every step's command,
// exit code and kept output).
func WithFileRenderer(file func(evidence.Report) []byte) Option {
	return func(p *Publisher) {
		if file != nil {
			p.file = file
		}
	}
}

// WithHTTPClient sets the HTTP client; its Timeout is replaced by
// Config.Timeout when zero.
func WithHTTPClient(c *http.Client) Option { return func(p *Publisher) { p.hc = c } }

// WithSleep replaces the wait between attempts, for tests.
func WithSleep(sleep func(context.Context, time.Duration) error) Option {
	return func(p *Publisher) { p.sleep = sleep }
}

// WithLogger sets where problems that do not fail a publish are reported
// (an invitee Slack refused); default slog.Default().
func WithLogger(l *slog.Logger) Option { return func(p *Publisher) { p.log = l } }

// WithOnRetry sets a function told of each request retried inside one
// publish (attempt is 1-based, before the wait): serve counts them in
// firstlook_publish_request_retries_total. It must not block.
func WithOnRetry(f func(attempt int, wait time.Duration, err error)) Option {
	return func(p *Publisher) { p.onRetry = f }
}

// New returns a Publisher for cfg that authenticates with the bot token.
func New(cfg Config, token string, opts ...Option) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("slack: no bot token")
	}
	p := &Publisher{
		cfg:    cfg.WithDefaults(),
		blocks: Blocks,
		text:   evidence.Text,
		file:   evidence.FullOutput,
		log:    slog.Default(),
	}
	for _, o := range opts {
		o(p)
	}
	hc := p.hc
	if hc == nil {
		hc = &http.Client{}
	}
	if hc.Timeout == 0 {
		c := *hc
		c.Timeout = p.cfg.Timeout
		hc = &c
	}
	p.hc = hc
	p.policy = retry.Policy{
		Initial: time.Second, Max: 30 * time.Second,
		MaxTries: p.cfg.MaxAttempts, MaxWait: p.cfg.MaxRetryWait, MaxWaitName: "max_retry_wait",
		Log: p.log, OnRetry: p.onRetry, Sleep: p.sleep,
	}
	p.api = goslack.New(token, goslack.OptionAPIURL(p.cfg.APIURL), goslack.OptionHTTPClient(hc))
	return p, nil
}

// Sink names the publisher in the per-incident state.
func (p *Publisher) Sink() string { return "slack" }

// Publish posts rep: to the incident's channel, made if need be, or to
// Config.Channel; the message, then the full output in its thread. With
// again set it first looks for rep.Marker and posts only what did not land.
// Errors are *Error; those retrying cannot fix wrap evidence.ErrPermanent.
func (p *Publisher) Publish(ctx context.Context, rep evidence.Report, st evidence.IncidentState, again bool) error {
	if rep.Bundle == nil {
		return permanentf("publish: report has no bundle")
	}
	ch := p.cfg.Channel
	if ch == "" {
		var err error
		if ch, err = p.incidentChannel(ctx, rep.Bundle.Manifest.Incident, st); err != nil {
			return err
		}
	}
	err := p.deliver(ctx, ch, rep, again)
	if fb := p.cfg.FallbackChannel; fb != "" && ch != fb && isCode(err, "is_archived") {
		p.log.Warn("slack: incident channel is archived; posting to the fallback channel", "channel", ch, "fallback", fb)
		return p.deliver(ctx, fb, rep, again)
	}
	return err
}

// Check verifies the token with auth.test and that it holds the scopes
// Config.Scopes lists, from the X-OAuth-Scopes header Slack returns.
func (p *Publisher) Check(ctx context.Context) error {
	var res *goslack.AuthTestResponse
	err := p.call(ctx, "auth.test", true, func(ctx context.Context) error {
		var err error
		res, err = p.api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		return err
	}
	granted := map[string]bool{}
	for _, s := range strings.Split(res.Header.Get("X-OAuth-Scopes"), ",") {
		granted[strings.TrimSpace(s)] = true
	}
	var missing []string
	for _, s := range p.cfg.Scopes() {
		// A private channel-less channel is read with groups:history.
		if !granted[s] && !(s == "channels:history" && p.cfg.Channel != "" && granted["groups:history"]) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return permanentf("token lacks scopes %s (add them under OAuth & Permissions, then reinstall the app)", strings.Join(missing, ", "))
	}
	return nil
}

// isCode reports whether err is a Slack error with one of codes.
func isCode(err error, codes ...string) bool {
	var e *Error
	return errors.As(err, &e) && slices.Contains(codes, e.Code)
}
