package slacktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// call is one Web API request being answered; s.mu is held while a method
// runs.
type call struct {
	method string
	args   url.Values
	tok    *token
	// r is the response body; ok is added by reply.
	r map[string]any
}

// apiError ends a method with {"ok": false, "error": code} plus extra
// fields.
type apiError struct {
	code  string
	extra map[string]any
}

func fail(code string) *apiError { return &apiError{code: code} }

// handler answers one method; it returns a non-nil *apiError to fail.
type handler func(s *Server, c *call) *apiError

var methods = map[string]handler{
	"auth.test":                    (*Server).authTest,
	"apps.connections.open":        (*Server).appsConnectionsOpen,
	"conversations.create":         (*Server).conversationsCreate,
	"conversations.list":           (*Server).conversationsList,
	"conversations.info":           (*Server).conversationsInfo,
	"conversations.join":           (*Server).conversationsJoin,
	"conversations.invite":         (*Server).conversationsInvite,
	"conversations.history":        (*Server).conversationsHistory,
	"conversations.replies":        (*Server).conversationsReplies,
	"chat.postMessage":             (*Server).chatPostMessage,
	"files.getUploadURLExternal":   (*Server).filesGetUploadURLExternal,
	"files.completeUploadExternal": (*Server).filesCompleteUploadExternal,
	"usergroups.list":              (*Server).usergroupsList,
	"usergroups.users.list":        (*Server).usergroupsUsersList,
}

// serveAPI answers https://slack.com/api/{method}.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	args, bearer, err := parseArgs(r)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++

	// Rate limits come before anything else: a limited call does nothing.
	if q := s.rateLimits[method]; len(q) > 0 {
		s.rateLimits[method] = q[1:]
		secs := int(math.Ceil(q[0].Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_form_data",
			"response_metadata": map[string]any{"messages": []string{"[ERROR] " + err.Error()}}})
		return
	}
	// Methods firstlook does not call are not implemented.
	h, known := methods[method]
	if !known {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "unknown_method"})
		return
	}

	// Authentication (https://docs.slack.dev/authentication/tokens): the
	// Authorization header wins over a token argument.
	tokStr := bearer
	if tokStr == "" {
		tokStr = args.Get("token")
	}
	if tokStr == "" {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "not_authed"})
		return
	}
	tok := s.tokens[tokStr]
	switch {
	case tok == nil:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
		return
	case tok.revoked:
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "token_revoked"})
		return
	}
	// Slack reports the token's scopes on every response.
	w.Header().Set("X-OAuth-Scopes", tok.scopeList())

	c := &call{method: method, args: args, tok: tok, r: map[string]any{}}
	if e := h(s, c); e != nil {
		body := map[string]any{"ok": false, "error": e.code}
		for k, v := range e.extra {
			body[k] = v
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	if s.lose[method] > 0 {
		s.lose[method]--
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return
	}
	c.r["ok"] = true
	writeJSON(w, http.StatusOK, c.r)
}

// scripted answers a scripted failure (Server.Fail) after authentication
// and the scope check, as a real failure would come.
func (s *Server) scripted(c *call) *apiError {
	q := s.failures[c.method]
	if len(q) == 0 {
		return nil
	}
	s.failures[c.method] = q[1:]
	return fail(q[0])
}

// need checks that the token holds one of scopes, the scopes a method's
// documentation lists for the conversation type at hand. Slack answers
// missing_scope with the scopes that would do in "needed" and the token's
// in "provided" (https://docs.slack.dev/reference/scopes).
func (s *Server) need(c *call, scopes ...string) *apiError {
	for _, sc := range scopes {
		if c.tok.scopes[sc] {
			return s.scripted(c)
		}
	}
	return &apiError{code: "missing_scope", extra: map[string]any{
		"needed": strings.Join(scopes, ","), "provided": c.tok.scopeList(),
	}}
}

// parseArgs reads a method's arguments wherever Slack accepts them: the
// query, a form-encoded or multipart body, or a JSON body
// (https://docs.slack.dev/apis/web-api/#posting_json). JSON values that
// are not strings are kept as their JSON text, as Slack reads "blocks" or
// "metadata" either way. It also returns a bearer token, if sent.
func parseArgs(r *http.Request) (url.Values, string, error) {
	bearer := ""
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		bearer = strings.TrimPrefix(h, "Bearer ")
	}
	args := r.URL.Query()
	if r.Method != http.MethodPost {
		return args, bearer, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var body map[string]any
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil && err != io.EOF {
			return nil, bearer, fmt.Errorf("invalid JSON body: %v", err)
		}
		for k, v := range body {
			switch v := v.(type) {
			case string:
				args.Set(k, v)
			case json.Number:
				args.Set(k, v.String())
			case bool:
				args.Set(k, strconv.FormatBool(v))
			case nil:
			default:
				raw, _ := json.Marshal(v)
				args.Set(k, string(raw))
			}
		}
		// Slack ignores a token inside a JSON body: it must come in the
		// Authorization header.
		args.Del("token")
	case "multipart/form-data":
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			return nil, bearer, err
		}
		for k, vs := range r.MultipartForm.Value {
			args[k] = vs
		}
	default:
		if err := r.ParseForm(); err != nil {
			return nil, bearer, err
		}
		for k, vs := range r.PostForm {
			args[k] = vs
		}
	}
	return args, bearer, nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// truthy reads a boolean argument as Slack does: "true" or "1".
func truthy(v string) bool { return v == "true" || v == "1" }

// page cuts items to one page of cursor pagination
// (https://docs.slack.dev/apis/web-api/pagination): limit items from the
// cursor (default def, at most max, further capped by PageSize), and the
// next cursor, "" on the last page.
func (s *Server) page(c *call, n, def, maxLimit int) (from, to int, next string, e *apiError) {
	limit := def
	if l := c.args.Get("limit"); l != "" {
		v, err := strconv.Atoi(l)
		if err != nil || v < 0 {
			return 0, 0, "", fail("invalid_limit")
		}
		if v > 0 {
			limit = min(v, maxLimit)
		}
	}
	if s.PageSize > 0 {
		limit = min(limit, s.PageSize)
	}
	if cur := c.args.Get("cursor"); cur != "" {
		raw, err := base64.StdEncoding.DecodeString(cur)
		if err != nil || !strings.HasPrefix(string(raw), "next:") {
			return 0, 0, "", fail("invalid_cursor")
		}
		from, err = strconv.Atoi(strings.TrimPrefix(string(raw), "next:"))
		if err != nil || from < 0 || from > n {
			return 0, 0, "", fail("invalid_cursor")
		}
	}
	to = min(from+limit, n)
	if to < n {
		next = base64.StdEncoding.EncodeToString([]byte("next:" + strconv.Itoa(to)))
	}
	return from, to, next, nil
}

// channelJSON is a conversation object
// (https://docs.slack.dev/reference/objects/conversation-object) as seen
// by the bot.
func channelJSON(c *Channel) map[string]any {
	return map[string]any{
		"id": c.ID, "name": c.Name, "name_normalized": c.Name,
		"is_channel": !c.Private, "is_group": false, "is_im": false, "is_mpim": false,
		"is_private": c.Private, "is_archived": c.Archived, "is_general": false,
		"is_member": c.member(BotUserID), "creator": c.Creator, "created": 1700000000,
		"num_members": len(c.Members),
	}
}

// visible returns a channel the bot can see by id: public channels, and
// private ones it is in. Slack answers channel_not_found for the rest.
func (s *Server) visible(id string) (*Channel, *apiError) {
	ch := s.channel(id)
	if id == "" {
		return nil, fail("channel_not_found")
	}
	if ch == nil || (ch.Private && !ch.member(BotUserID)) {
		return nil, fail("channel_not_found")
	}
	return ch, nil
}

// readScopes, writeScopes, historyScopes and inviteScopes are the bot
// scopes the conversations.* pages list per conversation type.
func readScopes(ch *Channel) []string {
	if ch != nil && ch.Private {
		return []string{"groups:read"}
	}
	return []string{"channels:read"}
}

func historyScopes(ch *Channel) []string {
	if ch != nil && ch.Private {
		return []string{"groups:history"}
	}
	return []string{"channels:history"}
}

func writeScopes(private bool) []string {
	if private {
		return []string{"groups:write"}
	}
	return []string{"channels:manage"}
}

func inviteScopes(ch *Channel) []string {
	if ch != nil && ch.Private {
		return []string{"groups:write", "groups:write.invites"}
	}
	return []string{"channels:manage", "channels:write.invites"}
}

// authTest follows https://docs.slack.dev/reference/methods/auth.test: no
// scope needed.
func (s *Server) authTest(c *call) *apiError {
	if e := s.scripted(c); e != nil {
		return e
	}
	c.r["url"] = "https://firstlook-test.slack.com/"
	c.r["team"] = "firstlook test"
	c.r["user"] = "firstlook"
	c.r["team_id"] = TeamID
	c.r["user_id"] = BotUserID
	c.r["bot_id"] = BotID
	return nil
}

// conversationsCreate follows
// https://docs.slack.dev/reference/methods/conversations.create: names are
// validated (NameError), a name used by any channel, archived or private
// ones included, is name_taken; the creator is the only member.
func (s *Server) conversationsCreate(c *call) *apiError {
	private := truthy(c.args.Get("is_private"))
	if e := s.need(c, writeScopes(private)...); e != nil {
		return e
	}
	name := c.args.Get("name")
	if code := NameError(name); code != "" {
		return fail(code)
	}
	for _, ch := range s.channels {
		if ch.Name == name {
			return fail("name_taken")
		}
	}
	ch := &Channel{ID: s.newID("C"), Name: name, Private: private, Creator: BotUserID, Members: []string{BotUserID}}
	s.channels = append(s.channels, ch)
	c.r["channel"] = channelJSON(ch)
	return nil
}

// conversationsList follows
// https://docs.slack.dev/reference/methods/conversations.list: types
// defaults to public_channel, each requested type needs its read scope,
// private channels are listed only to members, archived ones unless
// exclude_archived; limit defaults to 100 and stays under 1000.
func (s *Server) conversationsList(c *call) *apiError {
	types := []string{"public_channel"}
	if t := c.args.Get("types"); t != "" {
		types = strings.Split(t, ",")
	}
	for _, t := range types {
		var sc string
		switch t {
		case "public_channel":
			sc = "channels:read"
		case "private_channel":
			sc = "groups:read"
		case "im":
			sc = "im:read"
		case "mpim":
			sc = "mpim:read"
		default:
			return fail("invalid_types")
		}
		if !c.tok.scopes[sc] {
			return &apiError{code: "missing_scope", extra: map[string]any{"needed": sc, "provided": c.tok.scopeList()}}
		}
	}
	if e := s.scripted(c); e != nil {
		return e
	}
	exclude := truthy(c.args.Get("exclude_archived"))
	var list []*Channel
	for _, ch := range s.channels {
		switch {
		case exclude && ch.Archived:
		case ch.Private && slices.Contains(types, "private_channel") && ch.member(BotUserID):
			list = append(list, ch)
		case !ch.Private && slices.Contains(types, "public_channel"):
			list = append(list, ch)
		}
	}
	from, to, next, e := s.page(c, len(list), 100, 999)
	if e != nil {
		return e
	}
	out := []map[string]any{}
	for _, ch := range list[from:to] {
		out = append(out, channelJSON(ch))
	}
	c.r["channels"] = out
	c.r["response_metadata"] = map[string]any{"next_cursor": next}
	return nil
}

// conversationsInfo follows
// https://docs.slack.dev/reference/methods/conversations.info.
func (s *Server) conversationsInfo(c *call) *apiError {
	ch, e := s.visible(c.args.Get("channel"))
	if e != nil {
		return e
	}
	if e := s.need(c, readScopes(ch)...); e != nil {
		return e
	}
	c.r["channel"] = channelJSON(ch)
	return nil
}

// conversationsJoin follows
// https://docs.slack.dev/reference/methods/conversations.join: public
// channels only; joining one the bot is in already succeeds with a warning.
func (s *Server) conversationsJoin(c *call) *apiError {
	if e := s.need(c, "channels:join"); e != nil {
		return e
	}
	ch, e := s.visible(c.args.Get("channel"))
	if e != nil {
		return e
	}
	switch {
	case ch.Private:
		return fail("method_not_supported_for_channel_type")
	case ch.Archived:
		return fail("is_archived")
	case ch.member(BotUserID):
		c.r["warning"] = "already_in_channel"
	default:
		ch.Members = append(ch.Members, BotUserID)
	}
	c.r["channel"] = channelJSON(ch)
	return nil
}

// conversationsInvite follows
// https://docs.slack.dev/reference/methods/conversations.invite: the
// inviter must be a member; each user is checked, and if any invite fails
// nobody is invited ("Partially failed calls") and the answer carries the
// first error plus one entry per failed user in "errors".
func (s *Server) conversationsInvite(c *call) *apiError {
	ch, e := s.visible(c.args.Get("channel"))
	if e != nil {
		return e
	}
	if e := s.need(c, inviteScopes(ch)...); e != nil {
		return e
	}
	switch {
	case ch.Archived:
		return fail("is_archived")
	case !ch.member(BotUserID):
		return fail("not_in_channel")
	case c.args.Get("users") == "":
		return fail("no_user")
	}
	users := strings.Split(c.args.Get("users"), ",")
	var errs []map[string]any
	for _, u := range users {
		code := ""
		switch {
		case u == BotUserID:
			code = "cant_invite_self"
		case !s.users[u]:
			code = "user_not_found"
		case ch.member(u):
			code = "already_in_channel"
		}
		if code != "" {
			errs = append(errs, map[string]any{"user": u, "ok": false, "error": code})
		}
	}
	if len(errs) > 0 && !truthy(c.args.Get("force")) {
		return &apiError{code: errs[0]["error"].(string), extra: map[string]any{"errors": errs}}
	}
	for _, u := range users {
		if u != BotUserID && s.users[u] && !ch.member(u) {
			ch.Members = append(ch.Members, u)
		}
	}
	c.r["channel"] = channelJSON(ch)
	if len(errs) > 0 {
		c.r["errors"] = errs
	}
	return nil
}

// messageJSON is a message object
// (https://docs.slack.dev/reference/objects/message) as history returns it.
func messageJSON(m *Message, replies int, withMetadata bool) map[string]any {
	out := map[string]any{"type": "message", "ts": m.TS, "user": m.User, "text": m.Text}
	if m.User == BotUserID {
		out["bot_id"] = BotID
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	} else if replies > 0 {
		out["thread_ts"] = m.TS
		out["reply_count"] = replies
	}
	if withMetadata && m.Metadata != nil {
		out["metadata"] = m.Metadata
	}
	if len(m.Files) > 0 {
		out["subtype"] = "file_share"
		var fs []map[string]any
		for _, f := range m.Files {
			fs = append(fs, map[string]any{"id": f.ID, "name": f.Name, "title": f.Title, "size": len(f.Content)})
		}
		out["files"] = fs
	}
	return out
}

// readable checks what conversations.history and .replies check: the
// channel is visible, the scope held, and the bot a member.
func (s *Server) readable(c *call) (*Channel, *apiError) {
	ch, e := s.visible(c.args.Get("channel"))
	if e != nil {
		return nil, e
	}
	if e := s.need(c, historyScopes(ch)...); e != nil {
		return nil, e
	}
	if !ch.member(BotUserID) {
		return nil, fail("not_in_channel")
	}
	return ch, nil
}

// inRange applies oldest, latest and inclusive
// (https://docs.slack.dev/reference/methods/conversations.history).
func inRange(c *call, ts string) bool {
	t, _ := strconv.ParseFloat(ts, 64)
	incl := truthy(c.args.Get("inclusive"))
	if o := c.args.Get("oldest"); o != "" {
		ov, _ := strconv.ParseFloat(o, 64)
		if t < ov || (t == ov && !incl) {
			return false
		}
	}
	if l := c.args.Get("latest"); l != "" {
		lv, _ := strconv.ParseFloat(l, 64)
		if t > lv || (t == lv && !incl) {
			return false
		}
	}
	return true
}

// conversationsHistory follows
// https://docs.slack.dev/reference/methods/conversations.history:
// top-level messages newest first, limit 100 by default and at most 999,
// has_more and next_cursor, metadata only with include_all_metadata.
func (s *Server) conversationsHistory(c *call) *apiError {
	ch, e := s.readable(c)
	if e != nil {
		return e
	}
	msgs := s.messages[ch.ID]
	var list []*Message
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].ThreadTS == "" && inRange(c, msgs[i].TS) {
			list = append(list, msgs[i])
		}
	}
	from, to, next, e := s.page(c, len(list), 100, 999)
	if e != nil {
		return e
	}
	meta := truthy(c.args.Get("include_all_metadata"))
	out := []map[string]any{}
	for _, m := range list[from:to] {
		out = append(out, messageJSON(m, s.replyCount(ch.ID, m.TS), meta))
	}
	c.r["messages"] = out
	c.r["has_more"] = next != ""
	c.r["response_metadata"] = map[string]any{"next_cursor": next}
	return nil
}

func (s *Server) replyCount(channel, ts string) int {
	n := 0
	for _, m := range s.messages[channel] {
		if m.ThreadTS == ts {
			n++
		}
	}
	return n
}

// conversationsReplies follows
// https://docs.slack.dev/reference/methods/conversations.replies: the
// parent first, then its replies oldest first; thread_not_found when ts is
// not a message of the channel.
func (s *Server) conversationsReplies(c *call) *apiError {
	ch, e := s.readable(c)
	if e != nil {
		return e
	}
	ts := c.args.Get("ts")
	var parent *Message
	var list []*Message
	for _, m := range s.messages[ch.ID] {
		if m.TS == ts && m.ThreadTS == "" {
			parent = m
		}
		if m.ThreadTS == ts && inRange(c, m.TS) {
			list = append(list, m)
		}
	}
	if parent == nil {
		return fail("thread_not_found")
	}
	list = append([]*Message{parent}, list...)
	from, to, next, e := s.page(c, len(list), 1000, 1000)
	if e != nil {
		return e
	}
	meta := truthy(c.args.Get("include_all_metadata"))
	out := []map[string]any{}
	for _, m := range list[from:to] {
		out = append(out, messageJSON(m, s.replyCount(ch.ID, m.TS), meta))
	}
	c.r["messages"] = out
	c.r["has_more"] = next != ""
	c.r["response_metadata"] = map[string]any{"next_cursor": next}
	return nil
}

// chatPostMessage follows
// https://docs.slack.dev/reference/methods/chat.postMessage: the bot must
// be in the channel (unless chat:write.public allows a public one), the
// channel must not be archived, there must be text or blocks, blocks must
// be valid Block Kit within its limits (invalid_blocks_format,
// invalid_blocks: see validateBlocks) and metadata an object with
// event_type and event_payload (invalid_metadata_format,
// invalid_metadata_schema).
func (s *Server) chatPostMessage(c *call) *apiError {
	if e := s.need(c, "chat:write"); e != nil {
		return e
	}
	ch, e := s.visible(c.args.Get("channel"))
	if e != nil {
		return e
	}
	switch {
	case ch.Archived:
		return fail("is_archived")
	case !ch.member(BotUserID) && (ch.Private || !c.tok.scopes["chat:write.public"]):
		return fail("not_in_channel")
	}
	text, rawBlocks := c.args.Get("text"), c.args.Get("blocks")
	if text == "" && rawBlocks == "" && c.args.Get("attachments") == "" {
		return fail("no_text")
	}
	m := &Message{Channel: ch.ID, User: BotUserID, Text: text}
	if rawBlocks != "" {
		var blocks []map[string]any
		if err := json.Unmarshal([]byte(rawBlocks), &blocks); err != nil {
			return fail("invalid_blocks_format")
		}
		if errs := validateBlocks(blocks); len(errs) > 0 {
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = "[ERROR] " + e
			}
			return &apiError{code: "invalid_blocks", extra: map[string]any{
				"errors": errs, "response_metadata": map[string]any{"messages": msgs},
			}}
		}
		m.Blocks = json.RawMessage(rawBlocks)
	}
	if raw := c.args.Get("metadata"); raw != "" {
		var md map[string]any
		if err := json.Unmarshal([]byte(raw), &md); err != nil {
			return fail("invalid_metadata_format")
		}
		et, _ := md["event_type"].(string)
		payload, ok := md["event_payload"].(map[string]any)
		if et == "" || !ok {
			return fail("invalid_metadata_schema")
		}
		m.Metadata = &Metadata{EventType: et, EventPayload: payload}
	}
	if t := c.args.Get("thread_ts"); t != "" {
		// A reply to a message that does not exist is posted un-threaded.
		for _, p := range s.messages[ch.ID] {
			if p.TS == t && p.ThreadTS == "" {
				m.ThreadTS = t
			}
		}
	}
	m.TS = s.newTS()
	s.messages[ch.ID] = append(s.messages[ch.ID], m)
	c.r["channel"] = ch.ID
	c.r["ts"] = m.TS
	c.r["message"] = messageJSON(m, 0, false)
	return nil
}

// filesGetUploadURLExternal follows
// https://docs.slack.dev/reference/methods/files.getUploadURLExternal: the
// first step of the external upload; it hands out a file id and a URL on
// this server to POST the bytes to.
func (s *Server) filesGetUploadURLExternal(c *call) *apiError {
	if e := s.need(c, "files:write"); e != nil {
		return e
	}
	name := c.args.Get("filename")
	length, err := strconv.Atoi(c.args.Get("length"))
	if name == "" || err != nil || length <= 0 {
		return fail("missing_argument")
	}
	f := &File{ID: s.newID("F"), Name: name, Length: length}
	s.files[f.ID] = f
	ticket := s.newID("UPL")
	s.tickets[ticket] = f.ID
	c.r["file_id"] = f.ID
	c.r["upload_url"] = s.srv.URL + "/upload/v1/" + ticket
	return nil
}

// serveUpload is the upload URL: it takes the file's bytes as a raw body or
// as the "file" part of a multipart form, and answers "OK - <length>" as
// Slack's upload endpoint does. A ticket takes one upload.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	var body []byte
	var err error
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		var f io.ReadCloser
		f, _, err = r.FormFile("file")
		if err == nil {
			body, err = io.ReadAll(f)
			f.Close()
		}
	} else {
		body, err = io.ReadAll(r.Body)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls["upload"]++
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err != nil {
		http.Error(w, "bad upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	id, ok := s.tickets[r.PathValue("ticket")]
	if !ok {
		http.Error(w, "unknown upload", http.StatusNotFound)
		return
	}
	delete(s.tickets, r.PathValue("ticket"))
	f := s.files[id]
	f.Content = body
	f.Uploaded = true
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "OK - %d", len(body))
}

// filesCompleteUploadExternal follows
// https://docs.slack.dev/reference/methods/files.completeUploadExternal:
// each file must have been uploaded (file_not_found otherwise); with
// channel_id it is shared into the channel, and with thread_ts as a reply
// in that message's thread (a top-level message of the channel; "never
// use a reply's ts value"). Without channel_id the file stays private.
func (s *Server) filesCompleteUploadExternal(c *call) *apiError {
	if e := s.need(c, "files:write"); e != nil {
		return e
	}
	var specs []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(c.args.Get("files")), &specs); err != nil || len(specs) == 0 {
		return fail("invalid_arguments")
	}
	var fs []*File
	for _, sp := range specs {
		f := s.files[sp.ID]
		if f == nil || !f.Uploaded || f.Completed {
			return fail("file_not_found")
		}
		fs = append(fs, f)
	}
	var ch *Channel
	thread := c.args.Get("thread_ts")
	if id := c.args.Get("channel_id"); id != "" {
		var e *apiError
		if ch, e = s.visible(id); e != nil || ch.Archived {
			return fail("invalid_channel")
		}
		if !ch.member(BotUserID) {
			return fail("posting_to_channel_denied")
		}
		if thread != "" {
			found := false
			for _, m := range s.messages[ch.ID] {
				found = found || (m.TS == thread && m.ThreadTS == "")
			}
			if !found {
				return &apiError{code: "invalid_arguments", extra: map[string]any{
					"response_metadata": map[string]any{"messages": []string{"[ERROR] thread_ts is not a message of the channel"}},
				}}
			}
		}
	}
	var out []map[string]any
	for i, f := range fs {
		f.Completed = true
		f.Title = specs[i].Title
		if ch != nil {
			f.Channel, f.ThreadTS = ch.ID, thread
		}
		out = append(out, map[string]any{"id": f.ID, "title": f.Title, "name": f.Name})
	}
	if ch != nil {
		m := &Message{Channel: ch.ID, ThreadTS: thread, User: BotUserID, Text: c.args.Get("initial_comment")}
		for _, f := range fs {
			m.Files = append(m.Files, *f)
		}
		m.TS = s.newTS()
		s.messages[ch.ID] = append(s.messages[ch.ID], m)
	}
	c.r["files"] = out
	return nil
}

// usergroupsList follows
// https://docs.slack.dev/reference/methods/usergroups.list.
func (s *Server) usergroupsList(c *call) *apiError {
	if e := s.need(c, "usergroups:read"); e != nil {
		return e
	}
	out := []map[string]any{}
	for _, g := range s.groups {
		out = append(out, map[string]any{"id": g.id, "team_id": TeamID, "handle": g.handle, "name": g.handle, "is_usergroup": true})
	}
	c.r["usergroups"] = out
	return nil
}

// usergroupsUsersList follows
// https://docs.slack.dev/reference/methods/usergroups.users.list:
// no_such_subteam for an unknown group.
func (s *Server) usergroupsUsersList(c *call) *apiError {
	if e := s.need(c, "usergroups:read"); e != nil {
		return e
	}
	for _, g := range s.groups {
		if g.id == c.args.Get("usergroup") {
			c.r["users"] = slices.Clone(g.members)
			return nil
		}
	}
	return fail("no_such_subteam")
}
