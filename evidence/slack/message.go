package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
)

// Slack's limits on a message, declared once: Blocks renders within them,
// and fit enforces them whatever the renderer returns.
// Block Kit's are documented in https://docs.slack.dev/reference/block-kit/blocks
// and each block's page; "characters" are counted here as UTF-16 code
// units, which is never fewer than Slack's count however it counts.
const (
	maxBlocks          = 50
	maxTextObject      = 3000 // a section's text, a context element
	maxSectionFields   = 10
	maxSectionField    = 2000
	maxHeaderText      = 150
	maxContextElements = 10
	maxActionsElements = 25
	maxButtonText      = 75
	maxButtonURL       = 3000
	maxMarkdownText    = 12000 // all markdown blocks of a message together
	// maxMessageText bounds the text of all blocks together.
	// chat.postMessage rejects long messages with msg_blocks_too_long at an
	// undocumented total that users met between 11,300 and 13,300
	// characters of text, and that Slack's staff put at "12,000 text
	// characters with a buffer for block containers"
	// (https://github.com/slackapi/bolt-js/issues/2509, /issues/2867).
	maxMessageText = 10000
	// maxFallbackText bounds the notification text: "For best results,
	// limit the number of characters in the text field to 4,000"
	// (https://docs.slack.dev/reference/methods/chat.postMessage), with
	// room for escaping.
	maxFallbackText = 3000
)

// cutNote ends a message whose blocks were cut to fit.
const cutNote = ":scissors: This summary was cut to fit in one Slack message; the full output is in the thread."

// Retried publishes look for their message in the channel's history since
// the run ended, less historySkew for clocks that disagree, over at most
// maxHistoryPages pages of 200 messages.
const (
	historySkew     = 10 * time.Minute
	maxHistoryPages = 10
)

// deliver posts rep to channel ch: the message, then the full output in
// its thread. With again, what already landed is not posted again.
func (p *Publisher) deliver(ctx context.Context, ch string, rep evidence.Report, again bool) error {
	name := fileName(rep.Bundle.Manifest)
	ts := ""
	if again && rep.Marker != "" {
		var err error
		if ts, err = p.findMarker(ctx, ch, rep); err != nil {
			return err
		}
	}
	if ts != "" {
		has, err := p.threadHasFile(ctx, ch, ts, name)
		if err != nil || has {
			return err
		}
	} else {
		var err error
		if ts, err = p.post(ctx, ch, rep); err != nil {
			return err
		}
	}
	return p.upload(ctx, ch, ts, name, rep)
}

// post posts the run's message and returns its ts.
func (p *Publisher) post(ctx context.Context, ch string, rep evidence.Report) (string, error) {
	payload := map[string]any{"run_id": rep.Bundle.Manifest.RunID}
	if rep.Marker != "" {
		payload["marker"] = rep.Marker
	}
	opts := []goslack.MsgOption{
		goslack.MsgOptionText(cutText(p.text(rep), maxFallbackText, false), true),
		goslack.MsgOptionMetadata(goslack.SlackMetadata{EventType: EventType, EventPayload: payload}),
		// Slack's unfurler would fetch the evidence link (a presigned URL).
		goslack.MsgOptionDisableLinkUnfurl(),
		goslack.MsgOptionDisableMediaUnfurl(),
	}
	if blocks := fit(p.blocks(rep)); len(blocks) > 0 {
		opts = append(opts, goslack.MsgOptionBlocks(blocks...))
	}
	var ts string
	err := p.call(ctx, "chat.postMessage", false, func(ctx context.Context) error {
		var err error
		_, ts, err = p.api.PostMessageContext(ctx, ch, opts...)
		return err
	})
	return ts, err
}

// upload shares the run's full output as a file in the thread of message
// ts, with the three-step external upload
// (https://docs.slack.dev/messaging/working-with-files#uploading_files).
// A failed attempt that Slack did not refuse outright is not retried here:
// its file may be in the thread, which a retried publish checks.
func (p *Publisher) upload(ctx context.Context, ch, ts, name string, rep evidence.Report) error {
	content := p.file(rep)
	if len(content) == 0 {
		return nil
	}
	m := rep.Bundle.Manifest
	return p.call(ctx, "files.upload", false, func(ctx context.Context) error {
		_, err := p.api.UploadFileContext(ctx, goslack.UploadFileParameters{
			Reader:          bytes.NewReader(content),
			FileSize:        len(content),
			Filename:        name,
			Title:           fmt.Sprintf("firstlook: %s on %s, full output", m.Playbook.Name, m.Host.Name),
			Channel:         ch,
			ThreadTimestamp: ts,
		})
		return uploadStep(err)
	})
}

// stepError names the step of the external upload that failed, which
// slack-go reports only as a message prefix.
type stepError struct {
	method string
	err    error
}

func (e *stepError) Error() string { return e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func uploadStep(err error) error {
	if err == nil {
		return nil
	}
	for prefix, method := range map[string]string{
		"GetUploadURLExternal:":   "files.getUploadURLExternal",
		"UploadToURL:":            "upload URL",
		"CompleteUploadExternal:": "files.completeUploadExternal",
	} {
		if strings.HasPrefix(err.Error(), prefix) {
			return &stepError{method: method, err: err}
		}
	}
	return err
}

// findMarker returns the ts of the message carrying rep's marker in its
// metadata, or "" when the channel has none since the run ended.
func (p *Publisher) findMarker(ctx context.Context, ch string, rep evidence.Report) (string, error) {
	params := goslack.GetConversationHistoryParameters{ChannelID: ch, Limit: 200, IncludeAllMetadata: true}
	if end := rep.Bundle.Manifest.EndedAt; !end.IsZero() {
		t := end.Add(-historySkew)
		params.Oldest = fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
	}
	for range maxHistoryPages {
		var res *goslack.GetConversationHistoryResponse
		err := p.call(ctx, "conversations.history", true, func(ctx context.Context) error {
			var err error
			res, err = p.api.GetConversationHistoryContext(ctx, &params)
			return err
		})
		if err != nil {
			return "", err
		}
		for _, m := range res.Messages {
			if m.Metadata.EventType == EventType && m.Metadata.EventPayload["marker"] == rep.Marker {
				return m.Timestamp, nil
			}
		}
		if !res.HasMore || res.ResponseMetaData.NextCursor == "" {
			return "", nil
		}
		params.Cursor = res.ResponseMetaData.NextCursor
	}
	// Thousands of messages since the run ended and none is ours: post.
	return "", nil
}

// threadHasFile reports whether the thread of message ts holds a file
// called name.
func (p *Publisher) threadHasFile(ctx context.Context, ch, ts, name string) (bool, error) {
	params := goslack.GetConversationRepliesParameters{ChannelID: ch, Timestamp: ts, Limit: 200}
	for range maxHistoryPages {
		var msgs []goslack.Message
		var more bool
		var next string
		err := p.call(ctx, "conversations.replies", true, func(ctx context.Context) error {
			var err error
			msgs, more, next, err = p.api.GetConversationRepliesContext(ctx, &params)
			return err
		})
		if err != nil {
			return false, err
		}
		for _, m := range msgs {
			for _, f := range m.Files {
				if f.Name == name {
					return true, nil
				}
			}
		}
		if !more || next == "" {
			break
		}
		params.Cursor = next
	}
	return false, nil
}

// fileName names the full-output file of a run.
func fileName(m evidence.Manifest) string {
	name := "firstlook"
	for _, part := range []string{m.Playbook.Name, m.Host.Name} {
		if s := cutSlug(slugify(part), 60); s != "" {
			name += "-" + s
		}
	}
	return name + ".txt"
}

// fit returns blocks within Slack's limits: each text cut to its block's
// limit, and, when the blocks are too many or their text too long
// together, the first ones that fit followed by a note that the message
// was cut. Blocks go out as the JSON their type marshals to.
func fit(in []goslack.Block) []goslack.Block {
	type item struct {
		m    map[string]any
		cost int
	}
	var items []item
	total, markdown := 0, maxMarkdownText
	for _, b := range in {
		if b == nil {
			continue
		}
		raw, err := json.Marshal(b)
		if err != nil {
			continue
		}
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&m) != nil || m == nil {
			continue
		}
		limitBlock(m, &markdown)
		c := textCost(m)
		total += c
		items = append(items, item{m, c})
	}
	out := make([]goslack.Block, 0, min(len(items), maxBlocks))
	if len(items) <= maxBlocks && total <= maxMessageText {
		for _, it := range items {
			out = append(out, toBlock(it.m))
		}
		return out
	}
	budget := maxMessageText - units(cutNote)
	for _, it := range items {
		if len(out) == maxBlocks-1 {
			break
		}
		if it.cost <= budget {
			budget -= it.cost
			out = append(out, toBlock(it.m))
			continue
		}
		// Keep the start of a long block when enough room is left for it
		// to say something; that fills the message. A block that cannot be
		// shortened is left out, and later, smaller ones may still fit.
		if budget >= 200 && shrinkBlock(it.m, budget) {
			out = append(out, toBlock(it.m))
			break
		}
	}
	note := map[string]any{"type": "context", "elements": []any{map[string]any{"type": "mrkdwn", "text": cutNote}}}
	return append(out, toBlock(note))
}

// limitBlock cuts the texts of one block (a JSON object) to their limits;
// markdown is what remains of the markdown blocks' shared allowance.
func limitBlock(m map[string]any, markdown *int) {
	switch m["type"] {
	case "section":
		limitTextObject(m["text"], maxTextObject)
		if fields, ok := m["fields"].([]any); ok {
			if len(fields) > maxSectionFields {
				fields = fields[:maxSectionFields]
				m["fields"] = fields
			}
			for _, f := range fields {
				limitTextObject(f, maxSectionField)
			}
		}
	case "header":
		limitTextObject(m["text"], maxHeaderText)
	case "context":
		if els, ok := m["elements"].([]any); ok {
			if len(els) > maxContextElements {
				m["elements"] = els[:maxContextElements]
			}
			for _, el := range els[:min(len(els), maxContextElements)] {
				limitTextObject(el, maxTextObject)
			}
		}
	case "actions":
		if els, ok := m["elements"].([]any); ok {
			if len(els) > maxActionsElements {
				m["elements"] = els[:maxActionsElements]
			}
			for _, el := range els[:min(len(els), maxActionsElements)] {
				if b, ok := el.(map[string]any); ok && b["type"] == "button" {
					limitTextObject(b["text"], maxButtonText)
				}
			}
		}
	case "markdown":
		if s, ok := m["text"].(string); ok {
			s = cutText(s, max(*markdown, 1), true)
			*markdown -= units(s)
			m["text"] = s
		}
	}
}

// shrinkBlock shortens a block so that its text costs at most budget:
// a section loses fields from the end, then has its text cut; a context
// loses elements from the end; a markdown block or a header has its text
// cut. It reports whether the block fits and still says something.
func shrinkBlock(m map[string]any, budget int) bool {
	switch m["type"] {
	case "section":
		fields, _ := m["fields"].([]any)
		for len(fields) > 0 && textCost(m) > budget {
			fields = fields[:len(fields)-1]
			m["fields"] = fields
		}
		if len(fields) == 0 {
			delete(m, "fields")
		}
		if textCost(m) > budget {
			limitTextObject(m["text"], budget-textCost(m["fields"]))
		}
		_, hasText := m["text"]
		return textCost(m) <= budget && (hasText || len(fields) > 0)
	case "context":
		els, _ := m["elements"].([]any)
		for len(els) > 1 && textCost(m) > budget {
			els = els[:len(els)-1]
			m["elements"] = els
		}
		return textCost(m) <= budget
	case "markdown", "header":
		if m["type"] == "markdown" {
			if s, ok := m["text"].(string); ok {
				m["text"] = cutText(s, budget, true)
			}
		} else {
			limitTextObject(m["text"], budget)
		}
		return textCost(m) <= budget
	}
	return false
}

// limitTextObject cuts a text object's text to n.
func limitTextObject(v any, n int) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	if s, ok := obj["text"].(string); ok {
		obj["text"] = cutText(s, n, obj["type"] == "mrkdwn")
	}
}

// textCost is the length of every text in a block.
func textCost(v any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "text" {
				n += units(s)
			} else {
				n += textCost(x)
			}
		}
	case []any:
		for _, x := range v {
			n += textCost(x)
		}
	}
	return n
}

// units counts s in UTF-16 code units.
func units(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// cutText cuts s to at most n UTF-16 units, on a character boundary, and
// marks the cut with "…". In mrkdwn it also avoids ending inside a link
// ("<url|label>") or an entity ("&amp;"), and closes a code block
// ("```") the cut left open, so the rest still renders.
func cutText(s string, n int, mrkdwn bool) string {
	if units(s) <= n {
		return s
	}
	const ell = "…"
	room := n - 1
	if mrkdwn {
		room = n - 4 // "…```"
	}
	end, u := 0, 0
	for i, r := range s {
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if u+w > room {
			break
		}
		u += w
		end = i + len(string(r))
	}
	keep := s[:end]
	if !mrkdwn {
		return keep + ell
	}
	if s[end] == '`' {
		// The cut fell inside a run of backticks: drop the run's start.
		keep = strings.TrimRight(keep, "`")
	}
	if lt := strings.LastIndexByte(keep, '<'); lt > strings.LastIndexByte(keep, '>') {
		keep = keep[:lt]
	}
	if amp := strings.LastIndexByte(keep, '&'); amp > strings.LastIndexByte(keep, ';') && len(keep)-amp < 8 {
		keep = keep[:amp]
	}
	if strings.Count(keep, "```")%2 == 1 {
		return keep + ell + "```"
	}
	return keep + ell
}

// rawBlock is a block as JSON, after fit.
type rawBlock struct {
	typ goslack.MessageBlockType
	id  string
	raw json.RawMessage
}

func (b rawBlock) BlockType() goslack.MessageBlockType { return b.typ }
func (b rawBlock) ID() string                          { return b.id }

// MarshalJSON returns the block's JSON as fit left it.
func (b rawBlock) MarshalJSON() ([]byte, error) { return b.raw, nil }

func toBlock(m map[string]any) goslack.Block {
	raw, _ := json.Marshal(m)
	typ, _ := m["type"].(string)
	id, _ := m["block_id"].(string)
	return rawBlock{typ: goslack.MessageBlockType(typ), id: id, raw: raw}
}
