// Package slacktest is a fake Slack Web API for tests, in the manner of
// net/http/httptest: NewServer starts it on loopback, Server.URL is what a
// client takes as its API URL (slack-go's OptionAPIURL, the publisher's
// api_url), and inspection helpers say what was posted.
//
// It implements the documented behaviour firstlook's Slack publisher relies
// on, and nothing else: channel creation with Slack's naming rules, channel
// listing with cursor pagination, joins and invites, message history with
// metadata, threads, chat.postMessage with Block Kit limits, the three-step
// external file upload, user groups, per-method OAuth scopes, and scripted
// rate limits and failures. Each handler names the Slack documentation page
// it follows. Slack's own OpenAPI spec is not usable for this (see
// specs/SOURCES.md: it is from 2020 and has no external upload).
//
// Requests are accepted as Slack accepts them: form-encoded, multipart or
// JSON bodies, or a GET query; the token as "Authorization: Bearer" or as
// a "token" argument. Every answer is HTTP 200 with an {"ok": …} envelope,
// except scripted rate limits (HTTP 429 with Retry-After), as documented in
// https://docs.slack.dev/apis/web-api/#responses.
//
// The workspace has one bot user (BotUserID), whose token Token holds every
// scope in AllScopes; AddToken adds tokens of the same bot with fewer.
package slacktest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Identity of the fake workspace and its bot.
const (
	TeamID    = "T0FIRSTLK"
	BotUserID = "U0FLBOT00"
	BotID     = "B0FLBOT00"
	// Token is a bot token holding every scope in AllScopes.
	Token = "xoxb-slacktest-0000-all-scopes"
)

// AllScopes returns the bot scopes the fake knows, each checked by the
// methods whose documentation lists it (a new slice each call).
func AllScopes() []string {
	return []string{
		"channels:history", "channels:join", "channels:manage", "channels:read",
		"channels:write.invites", "chat:write", "chat:write.public", "files:write",
		"groups:history", "groups:read", "groups:write", "groups:write.invites",
		"usergroups:read",
	}
}

// Channel is a conversation as the fake holds it.
type Channel struct {
	ID       string
	Name     string
	Private  bool
	Archived bool
	// Creator is the user who created it: BotUserID for channels made
	// through conversations.create.
	Creator string
	// Members are the user ids in the channel, the bot included when it is
	// a member.
	Members []string
}

// Message is a message or thread reply as posted.
type Message struct {
	Channel string
	TS      string
	// ThreadTS is the parent's ts for a reply, "" for a top-level message.
	ThreadTS string
	User     string
	Text     string
	// Blocks is the blocks argument exactly as sent (a JSON array), or nil.
	Blocks   json.RawMessage
	Metadata *Metadata
	// Files are the files a files.completeUploadExternal shared with this
	// message.
	Files []File
}

// Metadata is message metadata
// (https://docs.slack.dev/messaging/message-metadata).
type Metadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// File is an uploaded file.
type File struct {
	ID    string
	Name  string
	Title string
	// Length is the size announced to files.getUploadURLExternal.
	Length int
	// Content is what was POSTed to the upload URL.
	Content []byte
	// Uploaded is true once bytes reached the upload URL; Completed once
	// files.completeUploadExternal finished the upload.
	Uploaded, Completed bool
	// Channel and ThreadTS say where the file was shared, if anywhere.
	Channel, ThreadTS string
}

// Server is a running fake Slack. Its methods are safe for concurrent use.
type Server struct {
	// URL is the Web API base URL, ending in "/api/".
	URL string
	// PageSize, when positive, caps the items of every page of
	// conversations.list, conversations.history and conversations.replies
	// below the caller's limit. Slack documents that a page may hold fewer
	// items than asked for (https://docs.slack.dev/apis/web-api/pagination),
	// so clients must follow next_cursor; a small PageSize proves they do.
	// Set it before use.
	PageSize int

	srv *httptest.Server

	mu         sync.Mutex
	tokens     map[string]*token
	users      map[string]bool
	groups     []usergroup
	channels   []*Channel
	messages   map[string][]*Message // by channel, in posting order
	files      map[string]*File      // by id
	tickets    map[string]string     // upload ticket → file id
	calls      map[string]int
	rateLimits map[string][]time.Duration
	lose       map[string]int
	failures   map[string][]string
	lastTS     int64 // microseconds
	seq        int
	responses  map[string]*responseURL // by id

	socketOnce sync.Once
	socket     *socketState
}

type token struct {
	scopes  map[string]bool
	revoked bool
}

type usergroup struct {
	id, handle string
	members    []string
}

// NewServer starts a fake Slack on 127.0.0.1. Close it when done.
func NewServer() *Server {
	s := &Server{
		tokens:     map[string]*token{},
		users:      map[string]bool{BotUserID: true},
		messages:   map[string][]*Message{},
		files:      map[string]*File{},
		tickets:    map[string]string{},
		calls:      map[string]int{},
		rateLimits: map[string][]time.Duration{},
		lose:       map[string]int{},
		failures:   map[string][]string{},
	}
	s.AddToken(Token, AllScopes()...)
	s.AddToken(AppToken, "connections:write")
	mux := http.NewServeMux()
	mux.HandleFunc("/api/{method}", s.serveAPI)
	mux.HandleFunc("/upload/v1/{ticket}", s.serveUpload)
	mux.HandleFunc("/commands/{team}/{id}/{secret}", s.serveResponse)
	mux.HandleFunc("/link/", s.serveSocket)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL + "/api/"
	return s
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// AddToken adds a token of the bot holding only scopes.
func (s *Server) AddToken(tok string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &token{scopes: map[string]bool{}}
	for _, sc := range scopes {
		t.scopes[sc] = true
	}
	s.tokens[tok] = t
}

// RevokeToken makes every later call with tok fail with token_revoked, as
// after the app is uninstalled.
func (s *Server) RevokeToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tokens[tok]; t != nil {
		t.revoked = true
	}
}

// AddUser adds workspace members by id (conversations.invite rejects
// unknown ids with user_not_found).
func (s *Server) AddUser(ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		s.users[id] = true
	}
}

// AddUsergroup adds a user group (id "S…", handle without "@") and its
// members, who are added as users too.
func (s *Server) AddUsergroup(id, handle string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range members {
		s.users[m] = true
	}
	s.groups = append(s.groups, usergroup{id: id, handle: handle, members: slices.Clone(members)})
}

// AddChannel adds a channel as a person would have made it, and returns
// its id. ID and Creator are filled in when empty; the bot is a member
// only if Members lists BotUserID. Members are added as users.
func (s *Server) AddChannel(c Channel) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.ID == "" {
		c.ID = s.newID("C") // only when unset: newID counts
	}
	c.Creator = cmp.Or(c.Creator, "U0HUMAN00")
	s.users[c.Creator] = true
	c.Members = slices.Clone(c.Members)
	for _, m := range c.Members {
		s.users[m] = true
	}
	s.channels = append(s.channels, &c)
	return c.ID
}

// Archive archives a channel, as a person closing an incident would.
func (s *Server) Archive(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.channel(id); c != nil {
		c.Archived = true
	}
}

// RateLimit makes the next n calls of method answer HTTP 429 with a
// Retry-After of retryAfter (whole seconds, rounded up), as Slack does
// when a method's rate limit tier is exceeded
// (https://docs.slack.dev/apis/web-api/rate-limits). The calls do nothing
// else.
func (s *Server) RateLimit(method string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.rateLimits[method] = append(s.rateLimits[method], retryAfter)
	}
}

// Fail makes the next n calls of method answer {"ok":false,"error":code}
// without doing anything, e.g. Fail("chat.postMessage", "internal_error", 1).
// Authentication and scopes are checked first, as Slack does.
func (s *Server) Fail(method, code string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures[method] = append(s.failures[method], code)
	}
}

// Lose makes the next n calls of method do their work and then lose the
// answer: HTTP 502, as a proxy in front of Slack answers when the backend
// acted but its answer did not come back. The caller cannot know the call
// took effect; a retried publish must find what landed.
func (s *Server) Lose(method string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lose[method] += n
}

// Calls returns how many requests method received, rate-limited and failed
// ones included. The upload URL counts as "upload".
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Channel returns the channel with id.
func (s *Server) Channel(id string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channel(id)
	if c == nil {
		return Channel{}, false
	}
	return cloneChannel(c), true
}

// ChannelByName returns the channel named name.
func (s *Server) ChannelByName(name string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.channels {
		if c.Name == name {
			return cloneChannel(c), true
		}
	}
	return Channel{}, false
}

// Channels returns every channel, in creation order.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Channel
	for _, c := range s.channels {
		out = append(out, cloneChannel(c))
	}
	return out
}

// Messages returns the top-level messages of a channel, oldest first.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[channel] {
		if m.ThreadTS == "" {
			out = append(out, cloneMessage(m))
		}
	}
	return out
}

// Replies returns the replies in the thread of message ts, oldest first.
func (s *Server) Replies(channel, ts string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.messages[channel] {
		if m.ThreadTS == ts {
			out = append(out, cloneMessage(m))
		}
	}
	return out
}

// Posts returns how many messages chat.postMessage posted, in all
// channels: what an exactly-once test counts.
func (s *Server) Posts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ms := range s.messages {
		for _, m := range ms {
			if len(m.Files) == 0 {
				n++
			}
		}
	}
	return n
}

// Files returns the files whose upload was completed, by id.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, f := range s.files {
		if f.Completed {
			c := *f
			c.Content = slices.Clone(f.Content)
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// channel returns the channel with id; s.mu is held.
func (s *Server) channel(id string) *Channel {
	for _, c := range s.channels {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// newID returns a fresh Slack-looking id with prefix; s.mu is held.
func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08X", prefix, s.seq)
}

// newTS returns a message timestamp: the current time in Slack's
// "seconds.microseconds" form, strictly increasing so that it identifies
// the message within its channel as Slack's does; s.mu is held.
func (s *Server) newTS() string {
	us := max(time.Now().UnixMicro(), s.lastTS+1)
	s.lastTS = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

func cloneChannel(c *Channel) Channel {
	out := *c
	out.Members = slices.Clone(c.Members)
	return out
}

func cloneMessage(m *Message) Message {
	out := *m
	out.Blocks = slices.Clone(m.Blocks)
	out.Files = slices.Clone(m.Files)
	for i := range out.Files {
		out.Files[i].Content = slices.Clone(out.Files[i].Content)
	}
	return out
}

func (c *Channel) member(user string) bool { return slices.Contains(c.Members, user) }

// NameError returns the error conversations.create gives for a channel
// name, or "" when the name is valid. Slack documents that "channel names
// may only contain lowercase letters, numbers, hyphens, and underscores,
// and must be 80 characters or less"
// (https://docs.slack.dev/reference/methods/conversations.create), with
// the errors invalid_name_required, invalid_name_maxlength,
// invalid_name_specials and invalid_name_punctuation. "Letters" is taken
// as a-z: firstlook names channels in ASCII.
func NameError(name string) string {
	switch {
	case name == "":
		return "invalid_name_required"
	case len([]rune(name)) > 80:
		return "invalid_name_maxlength"
	}
	punct := true
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			punct = false
		case r == '-' || r == '_':
		default:
			return "invalid_name_specials"
		}
	}
	if punct {
		return "invalid_name_punctuation"
	}
	return ""
}

// scopeList is the token's scopes as Slack reports them in X-OAuth-Scopes.
func (t *token) scopeList() string {
	var out []string
	for sc := range t.scopes {
		out = append(out, sc)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
