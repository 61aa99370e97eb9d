// Package slack is the /firstlook slash command: responders ask firstlook
// from Slack to run a playbook, show the last evidence, list playbooks,
// page a PagerDuty service and post the handover digest.
//
// Requests reach it two ways (Config.Transport): over HTTP, where Slack
// POSTs slash commands to /hooks/slack/commands and button presses to
// /hooks/slack/interactions and every request is verified with Slack's
// signing secret (several, for rotation; five-minute replay window); or
// over Socket Mode, a websocket firstlook opens with an app-level token.
// Both hand the same Request to Service.Handle.
//
// Slack wants an answer within three seconds. Handle always answers within
// Config.AckBudget: with the result when the work is done by then (a
// refusal, "queued", a short answer), else with "working on it", and the
// result follows through the request's response_url (valid 30 minutes, 5
// uses) or, past that, in the channel.
//
// Authorization is deny by default: Config.Grants give commands to users,
// user groups and channels. A request from another workspace is refused.
// Every decision, allowed or denied, is one line of the audit log.
//
// Names in a command (playbooks, hosts, services) are only syntax-checked
// here; the Runs and Pager implementations match them against the
// inventory, the loaded playbooks and PagerDuty, and none reaches a shell.
package slack

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	goslack "github.com/slack-go/slack"
)

// Source is the hooks.Trigger.Source of runs asked for from Slack outside
// an incident's channel.
const Source = "slack"

// ActionRun is the action_id of "Run again" buttons, and the prefix of
// "Run <playbook>" follow-up buttons' ("firstlook_run:<playbook>"); the
// button's value is the command text ("run disk-usage on web-1").
const ActionRun = "firstlook_run"

// Request is one command or button press, whichever transport brought it.
type Request struct {
	// Text is the command text after the slash command; for a button,
	// its value.
	Text string
	// Button is set for a button press.
	Button      bool
	Team        string
	User        string
	UserName    string
	Channel     string
	ChannelName string
	// ThreadTS is the thread of the message a button was on, if any.
	ThreadTS string
	// ResponseURL answers the request later (30 minutes, 5 uses).
	ResponseURL string
	// ID identifies the request: Slack's trigger_id.
	ID string
	// Received is when firstlook received it; response_url's validity
	// counts from here.
	Received time.Time
}

// Reply is what the caller is shown.
type Reply struct {
	Text   string
	Blocks []goslack.Block
	// InChannel shows the reply to the whole channel; otherwise only the
	// caller sees it (ephemeral).
	InChannel bool
}

// IncidentRef is the incident a channel was created for.
type IncidentRef struct {
	Source string
	ID     string
	Title  string
	URL    string
}

// Incidents finds the incident firstlook created a channel for.
type Incidents interface {
	// ChannelIncident returns the incident of channel; ok is false for a
	// channel firstlook did not create.
	ChannelIncident(ctx context.Context, channel string) (inc IncidentRef, ok bool, err error)
}

// RunRequest asks for one playbook on one host or group.
type RunRequest struct {
	// ID identifies the request (its trigger_id): a retry of the same
	// request queues nothing new.
	ID               string
	Playbook, Target string
	// Incident is the incident of the channel asked from; nil for a
	// manual run, whose summary goes to Channel.
	Incident *IncidentRef
	// Who asked, and from where.
	User, UserName, Channel, ChannelName string
}

// Runs queues runs and reports on them.
type Runs interface {
	// Run checks the playbook and target against the loaded playbooks
	// and the inventory and queues the run.
	Run(ctx context.Context, r RunRequest) (Reply, error)
	// Last is the latest evidence for host, or for inc when host is "".
	Last(ctx context.Context, host string, inc *IncidentRef) (Reply, error)
	// Playbooks lists what can run, on host when it is not "".
	Playbooks(ctx context.Context, host string) (Reply, error)
}

// PageRequest asks to page a PagerDuty service.
type PageRequest struct {
	// ID identifies the request: a retry pages once.
	ID               string
	Service, Summary string
	// Who rang, and from where: recorded on the incident.
	User, UserName, Channel, ChannelName, Team string
}

// Pager pages PagerDuty services.
type Pager interface {
	Page(ctx context.Context, r PageRequest) (Reply, error)
}

// Digester posts the handover digest.
type Digester interface {
	// Digest posts the digest of the last hours (0: the configured
	// window) to channel.
	Digest(ctx context.Context, hours int, channel string) (Reply, error)
}

// Options are a Service's parts. Runs, Pager and Digester may be nil: their
// commands then say they are not configured.
type Options struct {
	Config Config
	// BotToken is the bot token (xoxb-…) for user group lookups and for
	// answers that outlive their response_url.
	BotToken  string
	Incidents Incidents
	Runs      Runs
	Pager     Pager
	Digester  Digester
	// Log is the operational log; Audit gets one line per decision
	// (default: Log).
	Log, Audit *slog.Logger
	// HTTPClient posts to response_url (default: one with a 10s timeout).
	HTTPClient *http.Client
	// OnDecision, when set, is told of every decision, HTTP and Socket
	// Mode alike, as the audit line is written: command is one of
	// Commands or "other", decision "allowed", "denied" or "error" (the
	// permissions could not be checked). The metrics count them.
	OnDecision func(command, decision string)
}

// Service decides and executes commands.
type Service struct {
	cfg       Config
	api       *goslack.Client
	incidents Incidents
	runs      Runs
	pager     Pager
	digester  Digester
	log       *slog.Logger
	audit     *slog.Logger
	onDecide  func(command, decision string)
	http      *http.Client
	groups    *groupCache
	responses *responseURLs
	now       func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service. Close it to wait for work still under way.
func New(opts Options) (*Service, error) {
	cfg := opts.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.BotToken == "" {
		return nil, errors.New("no bot token: the command needs one to look up user groups and to answer")
	}
	log := cmp.Or(opts.Log, slog.Default())
	audit := cmp.Or(opts.Audit, log)
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	apiOpts := []goslack.Option{goslack.OptionHTTPClient(hc)}
	if cfg.APIURL != "" {
		u := cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		apiOpts = append(apiOpts, goslack.OptionAPIURL(u))
	}
	api := goslack.New(opts.BotToken, apiOpts...)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, api: api, incidents: opts.Incidents, runs: opts.Runs, pager: opts.Pager,
		digester: opts.Digester, log: log, audit: audit, onDecide: opts.OnDecision, http: hc,
		groups:    &groupCache{api: api, ttl: cfg.GroupCacheTTL, members: map[string]cachedGroup{}},
		responses: &responseURLs{uses: map[string]int{}},
		now:       time.Now,
		ctx:       ctx, cancel: cancel,
	}
	return s, nil
}

// Config returns the service's configuration, defaults applied.
func (s *Service) Config() Config { return s.cfg }

// Close cancels work still under way and waits for it.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Wait waits for work still under way (tests).
func (s *Service) Wait() { s.wg.Wait() }

// Handle decides and executes req and returns the acknowledgement, within
// Config.AckBudget: the result if the work is done by then, else "working
// on it", with the result sent later through the response_url.
func (s *Service) Handle(req Request) Reply {
	if req.Received.IsZero() {
		req.Received = s.now()
	}
	var (
		mu   sync.Mutex
		late bool
	)
	done := make(chan Reply, 1)
	s.wg.Go(func() {
		rep := s.serve(s.ctx, req)
		mu.Lock()
		defer mu.Unlock()
		if !late {
			done <- rep
			return
		}
		s.respondLater(req, rep)
	})
	t := time.NewTimer(s.cfg.AckBudget)
	defer t.Stop()
	select {
	case rep := <-done:
		return rep
	case <-t.C:
	}
	mu.Lock()
	defer mu.Unlock()
	select {
	case rep := <-done:
		return rep
	default:
	}
	late = true
	return Reply{Text: fmt.Sprintf(":hourglass_flowing_sand: working on `%s`; the answer follows here.", clipText(req.Text, 200))}
}

// workTimeout bounds one request's work: the answer must still be
// deliverable (a response_url lives 30 minutes), and no command should
// take longer than a digest of a busy week.
const workTimeout = 5 * time.Minute

// serve parses, authorizes and executes one request.
func (s *Service) serve(ctx context.Context, req Request) Reply {
	ctx, cancel := context.WithTimeout(ctx, workTimeout)
	defer cancel()
	cmd, perr := ParseCommand(req.Text)
	name := cmd.Name
	if perr != nil {
		name = "help" // a malformed command is answered with help's rights
	}
	caller := Caller{Team: req.Team, User: req.User, UserName: req.UserName, Channel: req.Channel, ChannelName: req.ChannelName}
	var inc *IncidentRef
	if s.incidents != nil && req.Channel != "" && req.Team == s.cfg.TeamID {
		ref, ok, err := s.incidents.ChannelIncident(ctx, req.Channel)
		if err != nil {
			s.log.Warn("slack: look up the channel's incident", "channel", req.Channel, "err", err)
		}
		if ok {
			inc, caller.IncidentChannel = &ref, true
		}
	}
	dec, err := s.authorize(ctx, &caller, name)
	s.auditDecision(req, name, dec, err)
	if err != nil {
		return Reply{Text: ":warning: could not check your permissions: " + err.Error() + "; try again in a minute."}
	}
	if !dec.Allowed {
		return Reply{Text: ":no_entry: not allowed: " + dec.Reason}
	}
	if perr != nil {
		return Reply{Text: ":grey_question: " + strings.TrimPrefix(perr.Error(), "usage: ") + "\n" + s.helpText(ctx, caller)}
	}
	rep, err := s.execute(ctx, req, cmd, caller, inc)
	if err != nil {
		s.log.Info("slack command failed", "command", cmd.Name, "user", req.User, "err", err)
		return Reply{Text: fmt.Sprintf(":x: `%s` failed: %v", clipText(cmd.String(), 200), err)}
	}
	return rep
}

// authorize fills in the caller's user groups that matter for command and
// decides.
func (s *Service) authorize(ctx context.Context, c *Caller, command string) (Decision, error) {
	if c.Team == s.cfg.TeamID {
		// Only when the user groups could change the outcome: a
		// decision without them never waits on Slack.
		if d := Authorize(s.cfg, *c, command); !d.Allowed {
			for _, g := range groupsNamed(s.cfg, command) {
				in, err := s.groups.member(ctx, g, c.User)
				if err != nil {
					return Decision{Rule: "usergroups"}, fmt.Errorf("user group %s: %w", g, err)
				}
				if in {
					c.Groups = append(c.Groups, g)
				}
			}
		}
	}
	return Authorize(s.cfg, *c, command), nil
}

func (s *Service) auditDecision(req Request, command string, d Decision, err error) {
	decision := "deny"
	if d.Allowed {
		decision = "allow"
	}
	if err != nil {
		decision = "error"
	}
	attrs := []any{
		"decision", decision, "rule", d.Rule,
		"user", req.User, "user_name", req.UserName,
		"team", req.Team, "channel", req.Channel, "channel_name", req.ChannelName,
		"command", command, "text", clipText(req.Text, 300), "button", req.Button,
	}
	if d.Reason != "" {
		attrs = append(attrs, "reason", d.Reason)
	}
	if err != nil {
		attrs = append(attrs, "err", err.Error())
	}
	s.audit.Info("slack command decision", attrs...)
	if s.onDecide != nil {
		label := "denied"
		switch {
		case err != nil:
			label = "error"
		case d.Allowed:
			label = "allowed"
		}
		if !slices.Contains(Commands, command) {
			command = "other"
		}
		s.onDecide(command, label)
	}
}

func (s *Service) execute(ctx context.Context, req Request, cmd Command, caller Caller, inc *IncidentRef) (Reply, error) {
	switch cmd.Name {
	case "help":
		return Reply{Text: s.helpText(ctx, caller)}, nil
	case "run":
		if s.runs == nil {
			return Reply{}, errNotConfigured("run")
		}
		return s.runs.Run(ctx, RunRequest{
			ID: req.ID, Playbook: cmd.Playbook, Target: cmd.Target, Incident: inc,
			User: req.User, UserName: req.UserName, Channel: req.Channel, ChannelName: req.ChannelName,
		})
	case "last":
		if s.runs == nil {
			return Reply{}, errNotConfigured("last")
		}
		if cmd.Host == "" && inc == nil {
			return Reply{}, errors.New("this channel is not an incident's: name a host (last HOST)")
		}
		return s.runs.Last(ctx, cmd.Host, inc)
	case "playbooks":
		if s.runs == nil {
			return Reply{}, errNotConfigured("playbooks")
		}
		return s.runs.Playbooks(ctx, cmd.Host)
	case "page":
		if s.pager == nil {
			return Reply{}, errNotConfigured("page")
		}
		return s.pager.Page(ctx, PageRequest{
			ID: req.ID, Service: cmd.Service, Summary: cmd.Summary,
			User: req.User, UserName: req.UserName, Channel: req.Channel, ChannelName: req.ChannelName, Team: req.Team,
		})
	case "digest":
		if s.digester == nil {
			return Reply{}, errNotConfigured("digest")
		}
		return s.digester.Digest(ctx, cmd.Hours, req.Channel)
	}
	return Reply{}, fmt.Errorf("unknown command %q", cmd.Name)
}

func errNotConfigured(cmd string) error {
	return fmt.Errorf("%s is not configured on this firstlook", cmd)
}

// helpText lists the commands with the caller's own permissions here.
// The user group lookups are cached, so help answers at once.
func (s *Service) helpText(ctx context.Context, c Caller) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s* — what you may run here:\n", s.cfg.Command)
	for _, name := range Commands {
		cc := c
		cc.Groups = nil
		for _, g := range groupsNamed(s.cfg, name) {
			if in, err := s.groups.member(ctx, g, c.User); err == nil && in {
				cc.Groups = append(cc.Groups, g)
			}
		}
		d := Authorize(s.cfg, cc, name)
		mark := ":white_check_mark:"
		note := "(" + d.Rule + ")"
		if !d.Allowed {
			mark, note = ":no_entry:", "— "+d.Reason
		}
		fmt.Fprintf(&b, "%s `%s` %s\n", mark, Usage[name], note)
	}
	return b.String()
}

// respondLater sends a reply that missed the acknowledgement.
func (s *Service) respondLater(req Request, rep Reply) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 30*time.Second)
	defer cancel()
	if err := s.Respond(ctx, req, rep); err != nil {
		s.log.Warn("slack: answer a command", "command", clipText(req.Text, 100), "user", req.User, "err", err)
	}
}

// ResponseURLLife and ResponseURLUses are Slack's limits on a
// response_url: https://docs.slack.dev/interactivity/handling-user-interaction#message_responses
const (
	ResponseURLLife = 30 * time.Minute
	ResponseURLUses = 5
)

// ErrResponseURLSpent is Respond's error when the response_url has expired
// or been used up and the reply is only for the caller.
var ErrResponseURLSpent = errors.New("response_url expired or used up")

// Respond sends rep for req through its response_url while that is valid,
// else posts it in the channel when it is meant for the channel.
func (s *Service) Respond(ctx context.Context, req Request, rep Reply) error {
	if req.ResponseURL != "" && s.now().Sub(req.Received) < ResponseURLLife && s.responses.take(req.ResponseURL) {
		msg := &goslack.WebhookMessage{Text: rep.Text, ResponseType: goslack.ResponseTypeEphemeral}
		if rep.InChannel {
			msg.ResponseType = goslack.ResponseTypeInChannel
		}
		if len(rep.Blocks) > 0 {
			msg.Blocks = &goslack.Blocks{BlockSet: rep.Blocks}
		}
		if err := goslack.PostWebhookCustomHTTPContext(ctx, req.ResponseURL, s.http, msg); err != nil {
			return fmt.Errorf("post to response_url: %w", redactURL(err, req.ResponseURL))
		}
		return nil
	}
	if !rep.InChannel || req.Channel == "" {
		return ErrResponseURLSpent
	}
	opts := []goslack.MsgOption{goslack.MsgOptionText(rep.Text, false)}
	if len(rep.Blocks) > 0 {
		opts = append(opts, goslack.MsgOptionBlocks(rep.Blocks...))
	}
	if req.ThreadTS != "" {
		opts = append(opts, goslack.MsgOptionTS(req.ThreadTS))
	}
	if _, _, err := s.api.PostMessageContext(ctx, req.Channel, opts...); err != nil {
		return fmt.Errorf("chat.postMessage: %w", err)
	}
	return nil
}

// redactURL keeps a response_url, which is a bearer credential for 30
// minutes, out of an error.
func redactURL(err error, u string) error {
	if u == "" || !strings.Contains(err.Error(), u) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), u, "<response_url>"))
}

// responseURLs counts the uses of each response_url.
type responseURLs struct {
	mu   sync.Mutex
	uses map[string]int
}

func (r *responseURLs) take(u string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.uses[u] >= ResponseURLUses {
		return false
	}
	r.uses[u]++
	if len(r.uses) > 10000 {
		// Crude bound: forget the oldest half's worth of counts; a
		// forgotten URL is past its 30 minutes long before this.
		for k := range r.uses {
			if k != u {
				delete(r.uses, k)
			}
			if len(r.uses) <= 5000 {
				break
			}
		}
	}
	return true
}

// groupCache caches user group members.
type groupCache struct {
	api *goslack.Client
	ttl time.Duration

	mu      sync.Mutex
	members map[string]cachedGroup // by group as named in the config
	handles map[string]string      // handle → id
	at      time.Time              // when handles was listed
}

type cachedGroup struct {
	users []string
	at    time.Time
}

func (g *groupCache) member(ctx context.Context, group, user string) (bool, error) {
	g.mu.Lock()
	c, ok := g.members[group]
	g.mu.Unlock()
	if ok && time.Since(c.at) < g.ttl {
		return slices.Contains(c.users, user), nil
	}
	id, err := g.id(ctx, group)
	if err != nil {
		return false, err
	}
	users, err := g.api.GetUserGroupMembersContext(ctx, id)
	if err != nil {
		return false, fmt.Errorf("usergroups.users.list: %w", err)
	}
	g.mu.Lock()
	g.members[group] = cachedGroup{users: users, at: time.Now()}
	g.mu.Unlock()
	return slices.Contains(users, user), nil
}

// id resolves a handle to the group's id.
func (g *groupCache) id(ctx context.Context, group string) (string, error) {
	if groupIDRE.MatchString(group) {
		return group, nil
	}
	g.mu.Lock()
	id, ok := g.handles[group]
	fresh := time.Since(g.at) < g.ttl
	g.mu.Unlock()
	if ok && fresh {
		return id, nil
	}
	list, err := g.api.GetUserGroupsContext(ctx)
	if err != nil {
		return "", fmt.Errorf("usergroups.list: %w", err)
	}
	handles := map[string]string{}
	for _, ug := range list {
		handles[ug.Handle] = ug.ID
	}
	g.mu.Lock()
	g.handles, g.at = handles, time.Now()
	g.mu.Unlock()
	if id, ok := handles[group]; ok {
		return id, nil
	}
	return "", fmt.Errorf("no user group with handle %q", group)
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
