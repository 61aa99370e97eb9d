package slack_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// TestAgain: a publish retried with again set posts only what did not land
// the first time.
func TestAgain(t *testing.T) {
	cases := []struct {
		name string
		// fail makes the first publish fail after some of it landed.
		fail      func(srv *slacktest.Server)
		firstErr  bool
		wantCalls map[string]int // calls made by the second publish
	}{
		{"all landed", func(*slacktest.Server) {}, false,
			map[string]int{"chat.postMessage": 0, "files.completeUploadExternal": 0, "conversations.history": 1, "conversations.replies": 1}},
		{"message landed, file did not", func(srv *slacktest.Server) { srv.Fail("files.completeUploadExternal", "internal_error", 1) }, true,
			map[string]int{"chat.postMessage": 0, "files.completeUploadExternal": 1, "conversations.history": 1, "conversations.replies": 1}},
		{"upload lost before complete", func(srv *slacktest.Server) { srv.Fail("files.getUploadURLExternal", "internal_error", 1) }, true,
			map[string]int{"chat.postMessage": 0, "files.completeUploadExternal": 1, "conversations.replies": 1}},
		{"nothing landed", func(srv *slacktest.Server) { srv.Fail("chat.postMessage", "internal_error", 1) }, true,
			map[string]int{"chat.postMessage": 1, "files.completeUploadExternal": 1, "conversations.history": 1, "conversations.replies": 0}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			p, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
			st := newState()
			rep := report(12, "db-1", "a")
			tc.fail(srv)
			ctx := context.Background()
			if err := p.Publish(ctx, rep, st, false); (err != nil) != tc.firstErr {
				t.Fatalf("first Publish: %v, want error %v", err, tc.firstErr)
			}
			before := map[string]int{}
			for m := range tc.wantCalls {
				before[m] = srv.Calls(m)
			}
			// The runner found the attempt recorded but not its success.
			if err := p.Publish(ctx, rep, st, true); err != nil {
				t.Fatalf("Publish again: %v", err)
			}
			for m, want := range tc.wantCalls {
				if got := srv.Calls(m) - before[m]; got != want {
					t.Errorf("again: %s called %d times, want %d", m, got, want)
				}
			}
			ch := st.value(slack.StateKey)
			msgs := srv.Messages(ch)
			if len(msgs) != 1 || srv.Posts() != 1 {
				t.Fatalf("got %d messages (%d posts), want exactly one", len(msgs), srv.Posts())
			}
			replies := srv.Replies(ch, msgs[0].TS)
			if len(replies) != 1 || len(replies[0].Files) != 1 || len(srv.Files()) != 1 {
				t.Errorf("thread %+v, files %d: want exactly one file, in the thread", replies, len(srv.Files()))
			}
		})
	}
}

// TestAgainBusyChannel looks for the marker through pages of a shared
// channel where other runs posted since.
func TestAgainBusyChannel(t *testing.T) {
	srv := newServer(t)
	srv.PageSize = 2
	id := srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})
	p, _ := newPublisher(t, srv, slack.Config{Channel: id}, slacktest.Token)
	ctx := context.Background()
	mine := report(1, "db-1", "mine")
	if err := p.Publish(ctx, mine, nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for i := range 9 {
		if err := p.Publish(ctx, report(i+2, "db-1", fmt.Sprint("other", i)), nil, false); err != nil {
			t.Fatalf("Publish other: %v", err)
		}
	}
	before := srv.Calls("conversations.history")
	if err := p.Publish(ctx, mine, nil, true); err != nil {
		t.Fatalf("Publish again: %v", err)
	}
	if got := srv.Posts(); got != 10 {
		t.Errorf("%d messages, want 10: the retry posted again", got)
	}
	if got := srv.Calls("conversations.history") - before; got != 5 {
		t.Errorf("conversations.history called %d times, want 5 pages of 2", got)
	}
	// A retry of a run that never posted does post.
	if err := p.Publish(ctx, report(50, "db-1", "new"), nil, true); err != nil {
		t.Fatalf("Publish new again: %v", err)
	}
	if got := srv.Posts(); got != 11 {
		t.Errorf("%d messages, want 11", got)
	}
}
