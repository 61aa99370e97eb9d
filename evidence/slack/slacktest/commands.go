package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file is the inbound half of Slack: what Slack sends an app when a
// person types a slash command or presses a button, signed as Slack signs
// it, and the response_url the app answers through.
//
// Slash command payloads follow
// https://docs.slack.dev/interactivity/implementing-slash-commands (a
// form-encoded POST); button presses follow
// https://docs.slack.dev/interactivity/handling-user-interaction and
// https://docs.slack.dev/reference/interaction-payloads/block_actions-payload
// (a form-encoded POST whose payload field is the JSON); signatures follow
// https://docs.slack.dev/authentication/verifying-requests-from-slack/.

// SlashCommand is one use of a slash command.
type SlashCommand struct {
	TeamID      string
	ChannelID   string
	ChannelName string
	UserID      string
	UserName    string
	// Command is the slash command ("/firstlook").
	Command string
	Text    string
}

// BlockAction is one press of a button in a message.
type BlockAction struct {
	TeamID      string
	ChannelID   string
	ChannelName string
	UserID      string
	UserName    string
	// MessageTS is the message the button is on.
	MessageTS string
	ActionID  string
	Value     string
}

// CommandForm returns the body Slack POSTs for c, with a fresh
// response_url on s and a fresh trigger_id.
func (s *Server) CommandForm(c SlashCommand) url.Values {
	s.mu.Lock()
	trigger := s.newID("")
	s.mu.Unlock()
	team := c.TeamID
	if team == "" {
		team = TeamID
	}
	return url.Values{
		"token":        {"verification-token-deprecated"},
		"team_id":      {team},
		"team_domain":  {"firstlook-test"},
		"channel_id":   {c.ChannelID},
		"channel_name": {c.ChannelName},
		"user_id":      {c.UserID},
		"user_name":    {c.UserName},
		"command":      {c.Command},
		"text":         {c.Text},
		"api_app_id":   {AppID},
		"response_url": {s.NewResponseURL(team)},
		"trigger_id":   {trigger + ".0000000000.deadbeef"},
	}
}

// CommandPayload is c as a Socket Mode slash_commands payload: the same
// fields as the form, as a JSON object.
func (s *Server) CommandPayload(c SlashCommand) map[string]any {
	out := map[string]any{}
	for k, v := range s.CommandForm(c) {
		out[k] = v[0]
	}
	return out
}

// ActionPayload returns the block_actions payload Slack sends for a, with
// a fresh response_url and trigger_id.
func (s *Server) ActionPayload(a BlockAction) map[string]any {
	s.mu.Lock()
	trigger := s.newID("")
	s.mu.Unlock()
	team := a.TeamID
	if team == "" {
		team = TeamID
	}
	now := fmt.Sprintf("%d.000100", time.Now().Unix())
	return map[string]any{
		"type":       "block_actions",
		"team":       map[string]any{"id": team, "domain": "firstlook-test"},
		"user":       map[string]any{"id": a.UserID, "username": a.UserName, "name": a.UserName, "team_id": team},
		"api_app_id": AppID,
		"token":      "verification-token-deprecated",
		"container": map[string]any{
			"type": "message", "message_ts": a.MessageTS, "channel_id": a.ChannelID, "is_ephemeral": false,
		},
		"trigger_id":   trigger + ".0000000000.deadbeef",
		"channel":      map[string]any{"id": a.ChannelID, "name": a.ChannelName},
		"message":      map[string]any{"type": "message", "ts": a.MessageTS, "user": BotUserID, "bot_id": BotID},
		"response_url": s.NewResponseURL(team),
		"actions": []map[string]any{{
			"type": "button", "action_id": a.ActionID, "block_id": "firstlook",
			"text":  map[string]any{"type": "plain_text", "text": "Run again"},
			"value": a.Value, "action_ts": now,
		}},
	}
}

// ActionForm is a's payload as the form Slack POSTs.
func (s *Server) ActionForm(a BlockAction) url.Values {
	b, _ := json.Marshal(s.ActionPayload(a))
	return url.Values{"payload": {string(b)}}
}

// AppID is the fake app's id.
const AppID = "A0FIRSTLK"

// Sign returns the X-Slack-Signature Slack sends for body at ts under
// secret: v0= and the hex HMAC-SHA256 of "v0:<ts>:<body>".
func Sign(secret string, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(m, "v0:%d:", ts.Unix())
	m.Write(body)
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// SignedRequest returns a POST of form to target, signed under secret at
// ts as Slack signs it.
func SignedRequest(target string, form url.Values, secret string, ts time.Time) *http.Request {
	body := form.Encode()
	req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set("X-Slack-Signature", Sign(secret, ts, []byte(body)))
	req.Header.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	return req
}

// Response is a message posted to a response_url.
type Response struct {
	Text            string          `json:"text"`
	Blocks          json.RawMessage `json:"blocks,omitempty"`
	ResponseType    string          `json:"response_type,omitempty"`
	ReplaceOriginal bool            `json:"replace_original"`
	DeleteOriginal  bool            `json:"delete_original"`
	ThreadTS        string          `json:"thread_ts,omitempty"`
}

type responseURL struct {
	created time.Time
	posts   []Response
}

// NewResponseURL returns a fresh response_url, valid for 30 minutes and 5
// posts, as Slack's are
// (https://docs.slack.dev/interactivity/handling-user-interaction#message_responses).
func (s *Server) NewResponseURL(team string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID("R")
	if s.responses == nil {
		s.responses = map[string]*responseURL{}
	}
	s.responses[id] = &responseURL{created: time.Now()}
	return s.srv.URL + "/commands/" + team + "/" + id + "/" + strings.ToLower(id) + "secret"
}

// AgeResponseURL makes u older by d, to test expiry without waiting.
func (s *Server) AgeResponseURL(u string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.responses[responseID(u)]; r != nil {
		r.created = r.created.Add(-d)
	}
}

// Responses returns what was posted to the response_url u.
func (s *Server) Responses(u string) []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.responses[responseID(u)]; r != nil {
		return append([]Response(nil), r.posts...)
	}
	return nil
}

// AllResponses returns everything posted to any response_url, in order of
// the URLs' creation.
func (s *Server) AllResponses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Response
	for i := 0; i <= s.seq; i++ {
		if r := s.responses[fmt.Sprintf("R%08X", i)]; r != nil {
			out = append(out, r.posts...)
		}
	}
	return out
}

func responseID(u string) string {
	parts := strings.Split(strings.TrimSuffix(u, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}

// serveResponse answers a post to a response_url: JSON message in, "ok"
// out; 404 expired_url past 30 minutes, used_url after 5 posts.
func (s *Server) serveResponse(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method_not_allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ru := s.responses[r.PathValue("id")]
	switch {
	case ru == nil || time.Since(ru.created) > 30*time.Minute:
		http.Error(w, "expired_url", http.StatusNotFound)
		return
	case len(ru.posts) >= 5:
		http.Error(w, "used_url", http.StatusNotFound)
		return
	}
	var msg Response
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if len(msg.Blocks) > 0 && string(msg.Blocks) != "null" {
		var blocks []map[string]any
		if err := json.Unmarshal(msg.Blocks, &blocks); err != nil {
			http.Error(w, "invalid_blocks", http.StatusBadRequest)
			return
		}
		if errs := validateBlocks(blocks); len(errs) > 0 {
			http.Error(w, "invalid_blocks: "+strings.Join(errs, "; "), http.StatusBadRequest)
			return
		}
	}
	if msg.Text == "" && len(msg.Blocks) == 0 {
		http.Error(w, "no_text", http.StatusBadRequest)
		return
	}
	ru.posts = append(ru.posts, msg)
	_, _ = io.WriteString(w, "ok")
}
