package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

func mrkdwn(s string) *goslack.TextBlockObject {
	return goslack.NewTextBlockObject(goslack.MarkdownType, s, false, false)
}

func plain(s string) *goslack.TextBlockObject {
	return goslack.NewTextBlockObject(goslack.PlainTextType, s, false, false)
}

// oversized is a render that breaks every limit: a 400-character header,
// 15 context elements, a section with 12 long fields, and 60 sections of
// 4000 characters in code blocks, with multi-byte characters and emoji
// (two UTF-16 units) everywhere a cut may fall.
func oversized(evidence.Report) []goslack.Block {
	blocks := []goslack.Block{goslack.NewHeaderBlock(plain(strings.Repeat("Disque plein é🔥 ", 25)))}
	var els []goslack.MixedElement
	for i := range 15 {
		els = append(els, mrkdwn(fmt.Sprintf("element %d ", i)+strings.Repeat("ü", 90)))
	}
	blocks = append(blocks, goslack.NewContextBlock("", els...))
	var fields []*goslack.TextBlockObject
	for range 12 {
		fields = append(fields, mrkdwn(strings.Repeat("ø", 2500)))
	}
	blocks = append(blocks, goslack.NewSectionBlock(nil, fields, nil))
	for i := range 60 {
		body := strings.Repeat("line é🔥 <https://x.example/?a=1&b=2|link> &amp; `x`\n", 80)
		blocks = append(blocks, goslack.NewSectionBlock(mrkdwn(fmt.Sprintf("*%d. step*\n```%s```", i, body)), nil, nil))
	}
	return blocks
}

// posted returns the blocks of the only message in channel id, as JSON.
func posted(t *testing.T, srv *slacktest.Server, id string) []map[string]any {
	t.Helper()
	msgs := srv.Messages(id)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	var blocks []map[string]any
	if err := json.Unmarshal(msgs[0].Blocks, &blocks); err != nil {
		t.Fatalf("blocks of the message: %v", err)
	}
	return blocks
}

func textOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["text"].(string)
	return s
}

func runes(s string) int { return utf8.RuneCountInString(s) }

func TestLimitsOversizedRender(t *testing.T) {
	srv := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})

	// The fake rejects this render as Slack would.
	api := goslack.New(slacktest.Token, goslack.OptionAPIURL(srv.URL))
	_, _, err := api.PostMessage(id, goslack.MsgOptionBlocks(oversized(evidence.Report{})...))
	if err == nil || !strings.Contains(err.Error(), "invalid_blocks") {
		t.Fatalf("posting the raw render: got %v, want invalid_blocks", err)
	}

	p, _ := newPublisher(t, srv, slack.Config{Channel: id}, slacktest.Token, slack.WithRenderer(oversized, nil))
	if err := p.Publish(context.Background(), report(1, "db-1", "a"), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	blocks := posted(t, srv, id)
	if len(blocks) > 50 {
		t.Errorf("got %d blocks, want at most 50", len(blocks))
	}
	total := 0
	for i, b := range blocks {
		var texts []string
		switch b["type"] {
		case "header":
			h := textOf(b["text"])
			if runes(h) > 150 {
				t.Errorf("header has %d characters, want at most 150", runes(h))
			}
			if !strings.HasSuffix(h, "…") {
				t.Errorf("header %q does not show its cut", h)
			}
			texts = append(texts, h)
		case "section":
			if s := textOf(b["text"]); s != "" {
				if runes(s) > 3000 {
					t.Errorf("block %d: section text has %d characters, want at most 3000", i, runes(s))
				}
				if strings.Count(s, "```")%2 != 0 {
					t.Errorf("block %d: the cut left a code block open: …%s", i, s[len(s)-40:])
				}
				if strings.LastIndex(s, "<") > strings.LastIndex(s, ">") {
					t.Errorf("block %d: the cut split a link: …%s", i, s[len(s)-40:])
				}
				texts = append(texts, s)
			}
			fields, _ := b["fields"].([]any)
			if len(fields) > 10 {
				t.Errorf("block %d: %d fields, want at most 10", i, len(fields))
			}
			for _, f := range fields {
				if runes(textOf(f)) > 2000 {
					t.Errorf("block %d: field of %d characters, want at most 2000", i, runes(textOf(f)))
				}
				texts = append(texts, textOf(f))
			}
		case "context":
			els, _ := b["elements"].([]any)
			if len(els) > 10 {
				t.Errorf("block %d: %d context elements, want at most 10", i, len(els))
			}
			for _, el := range els {
				texts = append(texts, textOf(el))
			}
		}
		for _, s := range texts {
			if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
				t.Errorf("block %d: text is not clean UTF-8 after the cut", i)
			}
			total += runes(s)
		}
	}
	// msg_blocks_too_long was met at 11,300 characters of text and more.
	if total > 11000 {
		t.Errorf("blocks carry %d characters of text, want at most 11000", total)
	}
	last := blocks[len(blocks)-1]
	if last["type"] != "context" || !strings.Contains(textOf(last["elements"].([]any)[0]), "full output is in the thread") {
		t.Errorf("last block %v, want the note that the message was cut", last)
	}
	if len(blocks) < 4 {
		t.Errorf("only %d blocks kept: the cut should keep what fits", len(blocks))
	}
}

func TestLimitsBlockCount(t *testing.T) {
	cases := []struct {
		name     string
		n        int
		want     int
		wantNote bool
	}{
		{"fits", 50, 50, false},
		{"one too many", 51, 50, true},
		{"far too many", 120, 50, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t)
			id := srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})
			render := func(evidence.Report) []goslack.Block {
				var bs []goslack.Block
				for i := range tc.n {
					if i%2 == 0 {
						bs = append(bs, goslack.NewDividerBlock())
					} else {
						bs = append(bs, goslack.NewSectionBlock(mrkdwn(fmt.Sprintf("step %d", i)), nil, nil))
					}
				}
				return bs
			}
			p, _ := newPublisher(t, srv, slack.Config{Channel: id}, slacktest.Token, slack.WithRenderer(render, nil))
			if err := p.Publish(context.Background(), report(1, "db-1", "a"), nil, false); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			blocks := posted(t, srv, id)
			if len(blocks) != tc.want {
				t.Errorf("got %d blocks, want %d", len(blocks), tc.want)
			}
			last := blocks[len(blocks)-1]
			if note := last["type"] == "context"; note != tc.wantNote {
				t.Errorf("last block %v: note %v, want %v", last, note, tc.wantNote)
			}
		})
	}
}

// TestLimitsFittingRenderUnchanged: a render within the limits goes out as
// its blocks marshal.
func TestLimitsFittingRenderUnchanged(t *testing.T) {
	srv := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})
	blocks := []goslack.Block{
		goslack.NewHeaderBlock(plain("linux-baseline on db-1: 1/2 steps ok")),
		goslack.NewSectionBlock(mrkdwn("*1. load* — exit 0\n```load average: 9.10```"), nil, nil),
		goslack.NewDividerBlock(),
		goslack.NewContextBlock("", mrkdwn("Output truncated in 1 stream(s).")),
	}
	want, _ := json.Marshal(blocks)
	p, _ := newPublisher(t, srv, slack.Config{Channel: id}, slacktest.Token,
		slack.WithRenderer(func(evidence.Report) []goslack.Block { return blocks }, func(evidence.Report) string { return "fallback <text> & more" }))
	if err := p.Publish(context.Background(), report(1, "db-1", "a"), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	m := srv.Messages(id)[0]
	var got, exp any
	_ = json.Unmarshal(m.Blocks, &got)
	_ = json.Unmarshal(want, &exp)
	if g, e := fmt.Sprint(got), fmt.Sprint(exp); g != e {
		t.Errorf("blocks changed:\ngot  %s\nwant %s", g, e)
	}
	if m.Text != "fallback &lt;text&gt; &amp; more" {
		t.Errorf("fallback text %q, want it escaped for mrkdwn", m.Text)
	}
}

// TestDefaultRenderers: without options the evidence package's renderers
// are used, and their blocks pass the fake's Block Kit checks.
func TestDefaultRenderers(t *testing.T) {
	srv := newServer(t)
	id := srv.AddChannel(slacktest.Channel{Name: "incidents", Members: []string{slacktest.BotUserID}})
	p, _ := newPublisher(t, srv, slack.Config{Channel: id}, slacktest.Token)
	rep := report(1, "db-1", "a")
	if err := p.Publish(context.Background(), rep, nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	blocks := posted(t, srv, id)
	want, _ := json.Marshal(slack.Blocks(rep))
	var exp []map[string]any
	_ = json.Unmarshal(want, &exp)
	if fmt.Sprint(blocks) != fmt.Sprint(exp) {
		t.Errorf("blocks:\ngot  %v\nwant %v", blocks, exp)
	}
	m := srv.Messages(id)[0]
	if m.Text != evidence.Text(rep) {
		t.Errorf("text %q, want %q", m.Text, evidence.Text(rep))
	}
	files := srv.Replies(id, m.TS)[0].Files
	if len(files) != 1 || string(files[0].Content) != string(evidence.FullOutput(rep)) {
		t.Errorf("thread file %+v, want evidence.FullOutput", files)
	}
}

// TestPublishFanout posts a group playbook's summary: one message for all
// hosts, one file with every host's output.
func TestPublishFanout(t *testing.T) {
	srv := newServer(t)
	p, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
	f := &evidence.Fanout{Target: "group web"}
	for _, host := range []string{"web-1", "web-2"} {
		r := report(77, host, host)
		f.Runs = append(f.Runs, evidence.FanoutRun{Bundle: r.Bundle, Link: r.Link})
	}
	m := evidence.FanoutManifest(f)
	rep := evidence.Report{Bundle: &evidence.Bundle{Manifest: m}, Fanout: f, Marker: "firstlook:fanout"}
	st := newState()
	if err := p.Publish(context.Background(), rep, st, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	ch := st.value(slack.StateKey)
	if c, _ := srv.Channel(ch); c.Name != "inc-77-disk-full-on-db-1" {
		t.Errorf("channel %q", c.Name)
	}
	msgs := srv.Messages(ch)
	if len(msgs) != 1 || markerOf(msgs[0]) != rep.Marker {
		t.Fatalf("messages %+v, want one with the fan-out's marker", msgs)
	}
	files := srv.Replies(ch, msgs[0].TS)[0].Files
	if len(files) != 1 || files[0].Name != "firstlook-linux-baseline-group-web.txt" {
		t.Fatalf("files %+v", files)
	}
	for _, host := range []string{"web-1", "web-2"} {
		if !strings.Contains(string(files[0].Content), "host:     "+host) {
			t.Errorf("file lacks %s's output", host)
		}
	}
}
