package slack_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

func TestPublishCreatesChannel(t *testing.T) {
	srv := newServer(t)
	srv.AddUser("U0ALICE00", "U0BOB0000")
	p, _ := newPublisher(t, srv, slack.Config{InviteUsers: []string{"U0ALICE00", "U0BOB0000"}}, slacktest.Token)
	st := newState()
	rep := report(4242, "db-1", "a")

	if err := p.Publish(context.Background(), rep, st, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ch, ok := srv.ChannelByName("inc-4242-disk-full-on-db-1")
	if !ok {
		t.Fatalf("no channel inc-4242-disk-full-on-db-1; got %+v", srv.Channels())
	}
	if got := st.value(slack.StateKey); got != ch.ID {
		t.Errorf("state %s = %q, want %q", slack.StateKey, got, ch.ID)
	}
	for _, u := range []string{slacktest.BotUserID, "U0ALICE00", "U0BOB0000"} {
		if !contains(ch.Members, u) {
			t.Errorf("channel members %v lack %s", ch.Members, u)
		}
	}
	msgs := srv.Messages(ch.ID)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if got := markerOf(m); got != rep.Marker {
		t.Errorf("metadata marker %q, want %q", got, rep.Marker)
	}
	if m.Metadata.EventType != slack.EventType {
		t.Errorf("metadata event_type %q, want %q", m.Metadata.EventType, slack.EventType)
	}
	if !strings.Contains(m.Text, "linux-baseline on db-1") {
		t.Errorf("fallback text %q lacks the headline", m.Text)
	}
	replies := srv.Replies(ch.ID, m.TS)
	if len(replies) != 1 || len(replies[0].Files) != 1 {
		t.Fatalf("thread of the message: got %+v, want one reply with one file", replies)
	}
	f := replies[0].Files[0]
	if f.Name != "firstlook-linux-baseline-db-1.txt" {
		t.Errorf("file name %q, want firstlook-linux-baseline-db-1.txt", f.Name)
	}
	for _, want := range []string{"$ uptime", "$ df -h /var", "disk: exit 1", "load average: 9.10", "/dev/sda1  100G", "df: warning: full"} {
		if !strings.Contains(string(f.Content), want) {
			t.Errorf("file content lacks %q:\n%s", want, f.Content)
		}
	}
}

func TestPublishReusesChannel(t *testing.T) {
	srv := newServer(t)
	p, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
	st := newState()
	ctx := context.Background()
	for _, host := range []string{"db-1", "db-2", "db-3"} {
		if err := p.Publish(ctx, report(7, host, host), st, false); err != nil {
			t.Fatalf("Publish %s: %v", host, err)
		}
	}
	if got := srv.Calls("conversations.create"); got != 1 {
		t.Errorf("conversations.create called %d times, want 1", got)
	}
	if got := len(srv.Channels()); got != 1 {
		t.Errorf("got %d channels, want 1", got)
	}
	if got := len(srv.Messages(st.value(slack.StateKey))); got != 3 {
		t.Errorf("got %d messages in the incident channel, want 3", got)
	}
	// Another incident gets its own channel.
	other := newState()
	if err := p.Publish(ctx, report(8, "db-1", "x"), other, false); err != nil {
		t.Fatalf("Publish incident 8: %v", err)
	}
	if other.value(slack.StateKey) == st.value(slack.StateKey) {
		t.Errorf("incidents 7 and 8 share channel %s", st.value(slack.StateKey))
	}
}

// TestPublishRace runs two publishers (two workers) for one incident at
// once, both missing the state: one channel results, both runs land in it.
func TestPublishRace(t *testing.T) {
	srv := newServer(t)
	p1, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
	p2, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
	st := newState()
	st.gate = make(chan struct{})

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, p := range []*slack.Publisher{p1, p2} {
		wg.Go(func() {
			errs[i] = p.Publish(context.Background(), report(99, []string{"web-1", "web-2"}[i], []string{"r1", "r2"}[i]), st, false)
		})
	}
	// Both runs are inside Get, having found nothing; let them race on.
	for {
		st.mu.Lock()
		n := st.gets
		st.mu.Unlock()
		if n >= 2 {
			break
		}
		runtime.Gosched()
	}
	close(st.gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("publisher %d: %v", i+1, err)
		}
	}
	chans := srv.Channels()
	if len(chans) != 1 {
		t.Fatalf("got %d channels %+v, want 1", len(chans), chans)
	}
	if got := srv.Calls("conversations.create"); got != 2 {
		t.Errorf("conversations.create called %d times, want 2 (one name_taken)", got)
	}
	if got := st.value(slack.StateKey); got != chans[0].ID {
		t.Errorf("state holds %q, want %q", got, chans[0].ID)
	}
	msgs := srv.Messages(chans[0].ID)
	markers := map[string]bool{}
	for _, m := range msgs {
		markers[markerOf(m)] = true
		if n := len(srv.Replies(chans[0].ID, m.TS)); n != 1 {
			t.Errorf("message %s has %d replies, want its file", m.TS, n)
		}
	}
	if len(msgs) != 2 || !markers["firstlook:r1"] || !markers["firstlook:r2"] {
		t.Errorf("channel holds markers %v, want firstlook:r1 and firstlook:r2", markers)
	}
}

// TestPublishNameTaken covers a channel of the incident's name that firstlook
// did not make: the bot joins it, or posts to the fallback when it is
// archived (bot tokens cannot unarchive).
func TestPublishNameTaken(t *testing.T) {
	const name = "inc-5-disk-full-on-db-1"
	t.Run("joins", func(t *testing.T) {
		srv := newServer(t)
		srv.AddUser("U0ALICE00")
		// Pages of one channel, the one sought last: the search must
		// follow next_cursor.
		srv.PageSize = 1
		for i := range 5 {
			srv.AddChannel(slacktest.Channel{Name: "other-" + string(rune('a'+i))})
		}
		id := srv.AddChannel(slacktest.Channel{Name: name, Members: []string{"U0HUMAN00"}})
		p, _ := newPublisher(t, srv, slack.Config{InviteUsers: []string{"U0ALICE00"}}, slacktest.Token)
		st := newState()
		if err := p.Publish(context.Background(), report(5, "db-1", "a"), st, false); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if got := st.value(slack.StateKey); got != id {
			t.Errorf("state holds %q, want the existing channel %q", got, id)
		}
		ch, _ := srv.Channel(id)
		if !contains(ch.Members, slacktest.BotUserID) || !contains(ch.Members, "U0ALICE00") {
			t.Errorf("members %v, want the bot and U0ALICE00", ch.Members)
		}
		if got := len(srv.Messages(id)); got != 1 {
			t.Errorf("got %d messages, want 1", got)
		}
		if got := srv.Calls("conversations.list"); got != 6 {
			t.Errorf("conversations.list called %d times, want 6 pages", got)
		}
	})
	t.Run("archived with fallback", func(t *testing.T) {
		srv := newServer(t)
		id := srv.AddChannel(slacktest.Channel{Name: name, Members: []string{slacktest.BotUserID}, Archived: true})
		fb := srv.AddChannel(slacktest.Channel{Name: "firstlook", Members: []string{slacktest.BotUserID}})
		p, _ := newPublisher(t, srv, slack.Config{FallbackChannel: fb}, slacktest.Token)
		st := newState()
		for _, marker := range []string{"a", "b"} {
			if err := p.Publish(context.Background(), report(5, "db-1", marker), st, false); err != nil {
				t.Fatalf("Publish %s: %v", marker, err)
			}
		}
		if got := st.value(slack.StateKey); got != id {
			t.Errorf("state holds %q, want the incident's archived channel %q", got, id)
		}
		if got := len(srv.Messages(fb)); got != 2 {
			t.Errorf("fallback channel got %d messages, want 2", got)
		}
		if got := len(srv.Messages(id)); got != 0 {
			t.Errorf("archived channel got %d messages", got)
		}
	})
	t.Run("archived without fallback", func(t *testing.T) {
		srv := newServer(t)
		srv.AddChannel(slacktest.Channel{Name: name, Members: []string{slacktest.BotUserID}, Archived: true})
		p, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
		err := p.Publish(context.Background(), report(5, "db-1", "a"), newState(), false)
		if !errors.Is(err, evidence.ErrPermanent) || !strings.Contains(err.Error(), "is_archived") {
			t.Errorf("got %v, want a permanent is_archived error", err)
		}
	})
}

func TestPublishInvites(t *testing.T) {
	srv := newServer(t)
	srv.AddUser("U0ALICE00", "U0BOB0000")
	srv.AddUsergroup("S0SRE0000", "sre-oncall", "U0CAROL00", "U0DAVE000", "U0ALICE00")
	srv.AddUsergroup("S0DBA0000", "dba", "U0ERIN000")
	cases := []struct {
		name  string
		cfg   slack.Config
		want  []string
		calls int // conversations.invite calls
	}{
		{"users", slack.Config{InviteUsers: []string{"U0ALICE00", "U0BOB0000"}}, []string{"U0ALICE00", "U0BOB0000"}, 1},
		{"group by handle", slack.Config{InviteUsergroup: "@sre-oncall"}, []string{"U0ALICE00", "U0CAROL00", "U0DAVE000"}, 1},
		{"group by id", slack.Config{InviteUsergroup: "S0DBA0000"}, []string{"U0ERIN000"}, 1},
		{"users and group overlap", slack.Config{InviteUsers: []string{"U0ALICE00", "U0BOB0000"}, InviteUsergroup: "sre-oncall"},
			[]string{"U0ALICE00", "U0BOB0000", "U0CAROL00", "U0DAVE000"}, 1},
		// Slack invites nobody when one invitee fails: the bot itself and an
		// unknown user are dropped, and the rest invited on a second call.
		{"self and unknown dropped", slack.Config{InviteUsers: []string{slacktest.BotUserID, "U0ALICE00", "U0NOBODY0"}}, []string{"U0ALICE00"}, 2},
		{"nobody", slack.Config{}, nil, 0},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := srv.Calls("conversations.invite")
			p, _ := newPublisher(t, srv, tc.cfg, slacktest.Token)
			st := newState()
			if err := p.Publish(context.Background(), report(100+i, "db-1", "a"), st, false); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			ch, _ := srv.Channel(st.value(slack.StateKey))
			want := append([]string{slacktest.BotUserID}, tc.want...)
			if !sameSet(ch.Members, want) {
				t.Errorf("members %v, want %v", ch.Members, want)
			}
			if got := srv.Calls("conversations.invite") - before; got != tc.calls {
				t.Errorf("conversations.invite called %d times, want %d", got, tc.calls)
			}
		})
	}
	t.Run("already in channel", func(t *testing.T) {
		// A second run that finds the channel by name (the state was lost)
		// invites again: members already there are not an error.
		p, _ := newPublisher(t, srv, slack.Config{InviteUsers: []string{"U0ALICE00", "U0BOB0000"}}, slacktest.Token)
		if err := p.Publish(context.Background(), report(100, "db-2", "b"), newState(), false); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	})
	t.Run("unknown group", func(t *testing.T) {
		p, _ := newPublisher(t, srv, slack.Config{InviteUsergroup: "nobody"}, slacktest.Token)
		err := p.Publish(context.Background(), report(200, "db-1", "a"), newState(), false)
		if !errors.Is(err, evidence.ErrPermanent) || !strings.Contains(err.Error(), `no user group with handle "nobody"`) {
			t.Errorf("got %v, want a permanent error naming the handle", err)
		}
	})
}

func TestPublishChannelLess(t *testing.T) {
	srv := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})
	p, _ := newPublisher(t, srv, slack.Config{Channel: id}, slacktest.Token)
	st := newState()
	ctx := context.Background()
	for i, n := range []int{1, 2, 2} {
		if err := p.Publish(ctx, report(n, "db-1", string(rune('a'+i))), st, false); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	for _, m := range []string{"conversations.create", "conversations.list", "conversations.invite", "conversations.join"} {
		if got := srv.Calls(m); got != 0 {
			t.Errorf("%s called %d times in channel-less mode", m, got)
		}
	}
	if len(srv.Channels()) != 1 {
		t.Errorf("channels %+v, want only the configured one", srv.Channels())
	}
	msgs := srv.Messages(id)
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	for _, m := range msgs {
		if r := srv.Replies(id, m.TS); len(r) != 1 || len(r[0].Files) != 1 {
			t.Errorf("message %s: thread %+v, want one file", m.TS, r)
		}
	}
	if st.gets+st.creates != 0 {
		t.Errorf("state used %d times in channel-less mode", st.gets+st.creates)
	}
	// Channel-less publishing needs no state at all.
	if err := p.Publish(ctx, report(3, "db-1", "z"), nil, false); err != nil {
		t.Errorf("Publish with nil state: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range b {
		if !contains(a, x) {
			return false
		}
	}
	return true
}

// The runner takes the publisher as it is.
var _ evidence.Publisher = (*slack.Publisher)(nil)

func TestErrPermanent(t *testing.T) {
	srv := newServer(t)
	p, _ := newPublisher(t, srv, slack.Config{Channel: "C0GONE000"}, slacktest.Token)
	err := p.Publish(context.Background(), report(1, "db-1", "a"), nil, false)
	if !errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("channel_not_found: %v does not wrap ErrPermanent", err)
	}
	srv.Fail("chat.postMessage", "internal_error", 1)
	ok := srv.AddChannel(slacktest.Channel{Name: "x", Members: []string{slacktest.BotUserID}})
	p, _ = newPublisher(t, srv, slack.Config{Channel: ok}, slacktest.Token)
	if err := p.Publish(context.Background(), report(1, "db-1", "a"), nil, false); err == nil || errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("internal_error: %v, want a transient error", err)
	}
}
