package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

func newServer(t *testing.T) (*slacktest.Server, *goslack.Client) {
	t.Helper()
	srv := slacktest.NewServer()
	t.Cleanup(srv.Close)
	return srv, goslack.New(slacktest.Token, goslack.OptionAPIURL(srv.URL))
}

func code(err error) string {
	var se goslack.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func TestNameError(t *testing.T) {
	cases := map[string]string{
		"inc-1-disk-full":       "",
		"a_b-c9":                "",
		"":                      "invalid_name_required",
		strings.Repeat("a", 80): "",
		strings.Repeat("a", 81): "invalid_name_maxlength",
		"Inc-1":                 "invalid_name_specials",
		"inc 1":                 "invalid_name_specials",
		"café":                  "invalid_name_specials",
		"#inc":                  "invalid_name_specials",
		"---":                   "invalid_name_punctuation",
		"_-_":                   "invalid_name_punctuation",
	}
	for name, want := range cases {
		if got := slacktest.NameError(name); got != want {
			t.Errorf("NameError(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestCreate(t *testing.T) {
	srv, api := newServer(t)
	ctx := context.Background()
	ch, err := api.CreateConversationContext(ctx, goslack.CreateConversationParams{ChannelName: "inc-1"})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.IsMember || ch.IsPrivate || ch.Name != "inc-1" {
		t.Errorf("created %+v", ch)
	}
	for name, want := range map[string]string{"inc-1": "name_taken", "Inc-2": "invalid_name_specials", "": "invalid_name_required"} {
		_, err := api.CreateConversationContext(ctx, goslack.CreateConversationParams{ChannelName: name})
		if got := code(err); got != want {
			t.Errorf("create %q: %s, want %s", name, got, want)
		}
	}
	// An archived or private channel's name is taken too.
	srv.AddChannel(slacktest.Channel{Name: "old", Archived: true})
	srv.AddChannel(slacktest.Channel{Name: "secret", Private: true})
	for _, name := range []string{"old", "secret"} {
		if _, err := api.CreateConversationContext(ctx, goslack.CreateConversationParams{ChannelName: name}); code(err) != "name_taken" {
			t.Errorf("create %q: %v, want name_taken", name, err)
		}
	}
	got, _ := srv.ChannelByName("inc-1")
	if got.Creator != slacktest.BotUserID || len(got.Members) != 1 {
		t.Errorf("channel %+v: want the bot as creator and only member", got)
	}
	info, err := api.GetConversationInfoContext(ctx, &goslack.GetConversationInfoInput{ChannelID: ch.ID})
	if err != nil || info.Name != "inc-1" || !info.IsMember {
		t.Errorf("conversations.info: %+v %v", info, err)
	}
	secret, _ := srv.ChannelByName("secret")
	if _, err := api.GetConversationInfoContext(ctx, &goslack.GetConversationInfoInput{ChannelID: secret.ID}); code(err) != "channel_not_found" {
		t.Errorf("conversations.info of a private channel without the bot: %v, want channel_not_found", err)
	}
}

func TestListPagination(t *testing.T) {
	srv, api := newServer(t)
	for i := range 7 {
		srv.AddChannel(slacktest.Channel{Name: fmt.Sprintf("c%d", i), Archived: i == 3})
	}
	srv.AddChannel(slacktest.Channel{Name: "hidden", Private: true})
	srv.AddChannel(slacktest.Channel{Name: "mine", Private: true, Members: []string{slacktest.BotUserID}})
	list := func(p goslack.GetConversationsParameters) []string {
		var names []string
		for pages := 0; pages < 20; pages++ {
			chans, next, err := api.GetConversationsContext(context.Background(), &p)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range chans {
				names = append(names, c.Name)
			}
			if next == "" {
				return names
			}
			p.Cursor = next
		}
		t.Fatal("pagination never ended")
		return nil
	}
	if got := list(goslack.GetConversationsParameters{Limit: 3}); strings.Join(got, ",") != "c0,c1,c2,c3,c4,c5,c6" {
		t.Errorf("public channels: %v", got)
	}
	srv.PageSize = 2
	if got := list(goslack.GetConversationsParameters{Limit: 100, ExcludeArchived: true, Types: []string{"public_channel", "private_channel"}}); strings.Join(got, ",") != "c0,c1,c2,c4,c5,c6,mine" {
		t.Errorf("unarchived public and private: %v", got)
	}
	if got := srv.Calls("conversations.list"); got != 3+4 {
		t.Errorf("conversations.list called %d times, want 7 pages", got)
	}
}

func TestInvitePartialFailure(t *testing.T) {
	srv, api := newServer(t)
	srv.AddUser("U0ALICE00", "U0BOB0000")
	id := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID, "U0BOB0000"}})
	_, err := api.InviteUsersToConversationContext(context.Background(), id, "U0ALICE00", "U0BOB0000", slacktest.BotUserID)
	var se goslack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "already_in_channel" || len(se.Errors) != 2 {
		t.Fatalf("got %#v, want already_in_channel with two per-user errors", err)
	}
	if e := se.Errors[1].ConversationsInviteResponseError; e == nil || e.User != slacktest.BotUserID || e.Error != "cant_invite_self" {
		t.Errorf("second per-user error %+v", se.Errors[1])
	}
	if ch, _ := srv.Channel(id); len(ch.Members) != 2 {
		t.Errorf("members %v: nobody should be invited when one invite fails", ch.Members)
	}
	other := srv.AddChannel(slacktest.Channel{Name: "y"})
	if _, err := api.InviteUsersToConversationContext(context.Background(), other, "U0ALICE00"); code(err) != "not_in_channel" {
		t.Errorf("invite into a channel without the bot: %v, want not_in_channel", err)
	}
}

func TestPostMessageBlocks(t *testing.T) {
	srv, api := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})
	section := func(n int) goslack.Block {
		return goslack.NewSectionBlock(goslack.NewTextBlockObject(goslack.MarkdownType, strings.Repeat("é", n), false, false), nil, nil)
	}
	many := make([]goslack.Block, 51)
	for i := range many {
		many[i] = goslack.NewDividerBlock()
	}
	cases := []struct {
		name   string
		blocks []goslack.Block
		want   string // first error string, "" when accepted
	}{
		{"section at the limit", []goslack.Block{section(3000)}, ""},
		{"section over", []goslack.Block{section(3001)}, "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"},
		{"header over", []goslack.Block{goslack.NewHeaderBlock(goslack.NewTextBlockObject(goslack.PlainTextType, strings.Repeat("a", 151), false, false))},
			"must be less than 151 characters [json-pointer:/blocks/0/text/text]"},
		{"51 blocks", many, "no more than 50 items allowed [json-pointer:/blocks]"},
		{"unknown type", []goslack.Block{goslack.NewRichTextBlock("", goslack.NewRichTextSection(goslack.NewRichTextSectionTextElement("x", nil))), bogus{}},
			"unsupported type: bogus [json-pointer:/blocks/1/type]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Posts()
			_, _, err := api.PostMessage(id, goslack.MsgOptionBlocks(tc.blocks...))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if srv.Posts() != before+1 {
					t.Error("not posted")
				}
				return
			}
			var se goslack.SlackErrorResponse
			if !errors.As(err, &se) || se.Err != "invalid_blocks" {
				t.Fatalf("got %v, want invalid_blocks", err)
			}
			if len(se.Errors) == 0 || se.Errors[0].Message == nil || *se.Errors[0].Message != tc.want {
				t.Errorf("errors %+v, want %q", se.Errors, tc.want)
			}
			if len(se.ResponseMetadata.Messages) == 0 || se.ResponseMetadata.Messages[0] != "[ERROR] "+tc.want {
				t.Errorf("response_metadata.messages %v", se.ResponseMetadata.Messages)
			}
			if srv.Posts() != before {
				t.Error("an invalid message was posted")
			}
		})
	}
}

// bogus is a block of a type Block Kit does not have.
type bogus struct{}

func (bogus) BlockType() goslack.MessageBlockType { return "bogus" }
func (bogus) ID() string                          { return "" }
func (bogus) MarshalJSON() ([]byte, error)        { return []byte(`{"type":"bogus"}`), nil }

func TestPostMessageChecks(t *testing.T) {
	srv, api := newServer(t)
	member := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})
	archived := srv.AddChannel(slacktest.Channel{Name: "y", Members: []string{slacktest.BotUserID}, Archived: true})
	private := srv.AddChannel(slacktest.Channel{Name: "z", Private: true})
	srv.AddToken("xoxb-plain", "chat:write")
	plain := goslack.New("xoxb-plain", goslack.OptionAPIURL(srv.URL))
	outside := srv.AddChannel(slacktest.Channel{Name: "w"})
	cases := []struct {
		name string
		api  *goslack.Client
		ch   string
		opts []goslack.MsgOption
		want string
	}{
		{"ok", api, member, []goslack.MsgOption{goslack.MsgOptionText("hi", false)}, ""},
		{"no text", api, member, nil, "no_text"},
		{"archived", api, archived, []goslack.MsgOption{goslack.MsgOptionText("hi", false)}, "is_archived"},
		{"private, not a member", api, private, []goslack.MsgOption{goslack.MsgOptionText("hi", false)}, "channel_not_found"},
		{"unknown", api, "C0NOPE000", []goslack.MsgOption{goslack.MsgOptionText("hi", false)}, "channel_not_found"},
		{"public, not a member, chat:write.public", api, outside, []goslack.MsgOption{goslack.MsgOptionText("hi", false)}, ""},
		{"public, not a member", plain, outside, []goslack.MsgOption{goslack.MsgOptionText("hi", false)}, "not_in_channel"},
		{"metadata without event_type", api, member, []goslack.MsgOption{goslack.MsgOptionText("hi", false),
			goslack.MsgOptionMetadata(goslack.SlackMetadata{EventPayload: map[string]any{"a": 1}})}, "invalid_metadata_schema"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.api.PostMessage(tc.ch, tc.opts...)
			if got := code(err); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	srv, api := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})
	var tss []string
	for i := range 5 {
		_, ts, err := api.PostMessage(id, goslack.MsgOptionText(fmt.Sprint(i), false),
			goslack.MsgOptionMetadata(goslack.SlackMetadata{EventType: "e", EventPayload: map[string]any{"i": fmt.Sprint(i)}}))
		if err != nil {
			t.Fatal(err)
		}
		tss = append(tss, ts)
	}
	if _, _, err := api.PostMessage(id, goslack.MsgOptionText("reply", false), goslack.MsgOptionTS(tss[0])); err != nil {
		t.Fatal(err)
	}
	p := goslack.GetConversationHistoryParameters{ChannelID: id, Limit: 2, Oldest: tss[1], IncludeAllMetadata: true}
	var texts []string
	for range 10 {
		res, err := api.GetConversationHistory(&p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Messages {
			texts = append(texts, m.Text+"="+fmt.Sprint(m.Metadata.EventPayload["i"]))
		}
		if !res.HasMore {
			break
		}
		p.Cursor = res.ResponseMetaData.NextCursor
	}
	if got := strings.Join(texts, ","); got != "4=4,3=3,2=2" {
		t.Errorf("history after the second message, newest first: %s", got)
	}
	res, err := api.GetConversationHistory(&goslack.GetConversationHistoryParameters{ChannelID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 5 || res.Messages[4].Metadata.EventType != "" || res.Messages[4].ReplyCount != 1 {
		t.Errorf("without include_all_metadata: %+v", res.Messages)
	}
	msgs, _, _, err := api.GetConversationReplies(&goslack.GetConversationRepliesParameters{ChannelID: id, Timestamp: tss[0]})
	if err != nil || len(msgs) != 2 || msgs[1].Text != "reply" {
		t.Errorf("replies: %+v %v", msgs, err)
	}
	if _, _, _, err := api.GetConversationReplies(&goslack.GetConversationRepliesParameters{ChannelID: id, Timestamp: "1.000001"}); code(err) != "thread_not_found" {
		t.Errorf("replies of nothing: %v", err)
	}
}

func TestUpload(t *testing.T) {
	srv, api := newServer(t)
	ctx := context.Background()
	id := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})
	_, ts, err := api.PostMessage(id, goslack.MsgOptionText("summary", false))
	if err != nil {
		t.Fatal(err)
	}
	f, err := api.UploadFileContext(ctx, goslack.UploadFileParameters{Content: "full output\n", FileSize: 12, Filename: "out.txt", Title: "Output", Channel: id, ThreadTimestamp: ts})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	replies := srv.Replies(id, ts)
	if len(replies) != 1 || len(replies[0].Files) != 1 || replies[0].Files[0].ID != f.ID || string(replies[0].Files[0].Content) != "full output\n" {
		t.Errorf("thread %+v, want the file", replies)
	}
	if len(srv.Messages(id)) != 1 {
		t.Errorf("the file was shared at top level too")
	}

	// Completing before the bytes arrive fails, and nothing is shared.
	u, err := api.GetUploadURLExternalContext(ctx, goslack.GetUploadURLExternalParameters{FileName: "a.txt", FileSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	complete := goslack.CompleteUploadExternalParameters{Files: []goslack.FileSummary{{ID: u.FileID}}, Channel: id}
	if _, err := api.CompleteUploadExternalContext(ctx, complete); code(err) != "file_not_found" {
		t.Errorf("complete before upload: %v, want file_not_found", err)
	}
	if err := api.UploadToURL(ctx, goslack.UploadToURLParameters{UploadURL: u.UploadURL, Content: "abc", Filename: "a.txt"}); err != nil {
		t.Fatalf("upload bytes: %v", err)
	}
	if err := api.UploadToURL(ctx, goslack.UploadToURLParameters{UploadURL: u.UploadURL, Content: "abc", Filename: "a.txt"}); err == nil {
		t.Error("an upload URL took two uploads")
	}
	bad := complete
	bad.ThreadTimestamp = "1.000001"
	if _, err := api.CompleteUploadExternalContext(ctx, bad); code(err) != "invalid_arguments" {
		t.Errorf("complete into a missing thread: %v", err)
	}
	if _, err := api.CompleteUploadExternalContext(ctx, complete); err != nil {
		t.Errorf("complete: %v", err)
	}
	if _, err := api.CompleteUploadExternalContext(ctx, complete); code(err) != "file_not_found" {
		t.Errorf("second complete: %v, want file_not_found", err)
	}
	if got := len(srv.Files()); got != 2 {
		t.Errorf("%d completed files, want 2", got)
	}
	if got := srv.Posts(); got != 1 {
		t.Errorf("Posts() = %d; file shares are not posts", got)
	}
}

func TestAuthAndScopes(t *testing.T) {
	srv, api := newServer(t)
	res, err := api.AuthTest()
	if err != nil || res.UserID != slacktest.BotUserID || res.TeamID != slacktest.TeamID {
		t.Fatalf("auth.test: %+v %v", res, err)
	}
	if !strings.Contains(res.Header.Get("X-OAuth-Scopes"), "chat:write") {
		t.Errorf("X-OAuth-Scopes %q", res.Header.Get("X-OAuth-Scopes"))
	}
	srv.AddToken("xoxb-read", "channels:read")
	_, _, err = goslack.New("xoxb-read", goslack.OptionAPIURL(srv.URL)).PostMessage("C1", goslack.MsgOptionText("x", false))
	var se goslack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "missing_scope" || se.Needed != "chat:write" || se.Provided != "channels:read" {
		t.Errorf("got %#v, want missing_scope needing chat:write", err)
	}
	_, _, err = goslack.New("xoxb-read", goslack.OptionAPIURL(srv.URL)).GetConversations(&goslack.GetConversationsParameters{Types: []string{"private_channel"}})
	if !errors.As(err, &se) || se.Needed != "groups:read" {
		t.Errorf("listing private channels without groups:read: %v", err)
	}

	// Tokens as slack-go sends them (form field) and as others do
	// (Authorization header, JSON body), and no token at all.
	post := func(body, ctype, auth string) map[string]any {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"auth.test", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	for name, tc := range map[string]struct {
		body, ctype, auth string
		want              any
	}{
		"form token":      {url.Values{"token": {slacktest.Token}}.Encode(), "application/x-www-form-urlencoded", "", nil},
		"bearer":          {"", "application/x-www-form-urlencoded", slacktest.Token, nil},
		"json bearer":     {`{}`, "application/json", slacktest.Token, nil},
		"json body token": {`{"token":"` + slacktest.Token + `"}`, "application/json", "", "not_authed"},
		"none":            {"", "application/x-www-form-urlencoded", "", "not_authed"},
		"wrong":           {"", "application/x-www-form-urlencoded", "xoxb-wrong", "invalid_auth"},
	} {
		out := post(tc.body, tc.ctype, tc.auth)
		if out["error"] != tc.want {
			t.Errorf("%s: got %v, want error %v", name, out, tc.want)
		}
	}
}

func TestRateLimitAndFail(t *testing.T) {
	srv, api := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})
	srv.RateLimit("chat.postMessage", 1, 1500*time.Millisecond)
	_, _, err := api.PostMessage(id, goslack.MsgOptionText("x", false))
	var rl *goslack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second {
		t.Errorf("got %v, want a 429 with Retry-After 2s (whole seconds, rounded up)", err)
	}
	srv.Fail("chat.postMessage", "internal_error", 1)
	if _, _, err := api.PostMessage(id, goslack.MsgOptionText("x", false)); code(err) != "internal_error" {
		t.Errorf("scripted failure: %v", err)
	}
	if _, _, err := api.PostMessage(id, goslack.MsgOptionText("x", false)); err != nil {
		t.Errorf("after the script: %v", err)
	}
	if got, want := srv.Calls("chat.postMessage"), 3; got != want {
		t.Errorf("Calls = %d, want %d", got, want)
	}
	if got := srv.Posts(); got != 1 {
		t.Errorf("Posts = %d, want 1", got)
	}
	if _, err := api.GetUserGroupMembers("S0NONE000"); code(err) != "no_such_subteam" {
		t.Errorf("unknown user group: %v", err)
	}
	resp, err := http.Post(srv.URL+"files.upload", "application/x-www-form-urlencoded", strings.NewReader("token="+slacktest.Token))
	if err == nil {
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if out["error"] != "unknown_method" {
			t.Errorf("files.upload (discontinued): %v, want unknown_method", out)
		}
	}
}
