package slacktest

import (
	"fmt"
	"unicode/utf8"
)

// Block Kit limits, from https://docs.slack.dev/reference/block-kit/blocks
// and the pages of each block and composition object.
const (
	maxBlocks          = 50    // blocks per message
	maxTextObject      = 3000  // any text object; a section's text
	maxSectionFields   = 10    // section fields
	maxSectionField    = 2000  // each section field
	maxHeaderText      = 150   // header text (plain_text)
	maxContextElements = 10    // context elements
	maxActionsElements = 25    // actions elements
	maxButtonText      = 75    // button text
	maxURL             = 3000  // button url, image_url
	maxAltText         = 2000  // image alt_text
	maxBlockID         = 255   // block_id, action_id
	maxMarkdownTotal   = 12000 // cumulative text of markdown blocks in one payload
)

// validateBlocks checks blocks as chat.postMessage does and returns Slack's
// error strings ("must be less than 3001 characters
// [json-pointer:/blocks/0/text/text]"), empty when the blocks are valid.
// It checks in depth the block types firstlook sends; other Block Kit
// types pass, and types Block Kit does not have are rejected, as Slack
// rejects them.
func validateBlocks(blocks []map[string]any) []string {
	v := &validator{ids: map[string]bool{}}
	if len(blocks) > maxBlocks {
		v.add("/blocks", "no more than %d items allowed", maxBlocks)
	}
	for i, b := range blocks {
		v.block(fmt.Sprintf("/blocks/%d", i), b)
	}
	if v.markdown > maxMarkdownTotal {
		v.add("/blocks", "cumulative markdown text must be less than %d characters", maxMarkdownTotal+1)
	}
	return v.errs
}

type validator struct {
	errs     []string
	ids      map[string]bool
	markdown int
}

func (v *validator) add(ptr, format string, args ...any) {
	v.errs = append(v.errs, fmt.Sprintf(format, args...)+" [json-pointer:"+ptr+"]")
}

// str checks an optional string field's length.
func (v *validator) str(ptr string, obj map[string]any, key string, maxLen int) {
	s, ok := obj[key].(string)
	if !ok {
		if _, present := obj[key]; present {
			v.add(ptr+"/"+key, "must provide a string")
		}
		return
	}
	if utf8.RuneCountInString(s) > maxLen {
		v.add(ptr+"/"+key, "must be less than %d characters", maxLen+1)
	}
}

// text checks a text composition object
// (https://docs.slack.dev/reference/block-kit/composition-objects/text-object):
// plain_text or mrkdwn (only plain_text when plainOnly), 1 to maxLen
// characters.
func (v *validator) text(ptr string, raw any, maxLen int, plainOnly bool) {
	obj, ok := raw.(map[string]any)
	if !ok {
		v.add(ptr, "must provide an object")
		return
	}
	switch obj["type"] {
	case "plain_text":
	case "mrkdwn":
		if plainOnly {
			v.add(ptr+"/type", "must be plain_text")
		}
	default:
		v.add(ptr+"/type", "must be plain_text or mrkdwn")
	}
	s, ok := obj["text"].(string)
	switch {
	case !ok:
		v.add(ptr+"/text", "must provide a string")
	case s == "":
		v.add(ptr+"/text", "must be more than 0 characters")
	case utf8.RuneCountInString(s) > maxLen:
		v.add(ptr+"/text", "must be less than %d characters", maxLen+1)
	}
}

func (v *validator) block(ptr string, b map[string]any) {
	if id, ok := b["block_id"].(string); ok {
		if v.ids[id] {
			v.add(ptr+"/block_id", "must be unique")
		}
		v.ids[id] = true
		v.str(ptr, b, "block_id", maxBlockID)
	}
	switch b["type"] {
	case "section":
		_, hasText := b["text"]
		fields, hasFields := b["fields"].([]any)
		if !hasText && !hasFields {
			v.add(ptr, "must provide text or fields")
		}
		if hasText {
			v.text(ptr+"/text", b["text"], maxTextObject, false)
		}
		if len(fields) > maxSectionFields {
			v.add(ptr+"/fields", "no more than %d items allowed", maxSectionFields)
		}
		for i, f := range fields {
			v.text(fmt.Sprintf("%s/fields/%d", ptr, i), f, maxSectionField, false)
		}
	case "header":
		v.text(ptr+"/text", b["text"], maxHeaderText, true)
	case "context":
		els, _ := b["elements"].([]any)
		switch {
		case len(els) == 0:
			v.add(ptr+"/elements", "must provide at least 1 item")
		case len(els) > maxContextElements:
			v.add(ptr+"/elements", "no more than %d items allowed", maxContextElements)
		}
		for i, el := range els {
			p := fmt.Sprintf("%s/elements/%d", ptr, i)
			if m, ok := el.(map[string]any); ok && m["type"] == "image" {
				v.image(p, m)
				continue
			}
			v.text(p, el, maxTextObject, false)
		}
	case "actions":
		els, _ := b["elements"].([]any)
		switch {
		case len(els) == 0:
			v.add(ptr+"/elements", "must provide at least 1 item")
		case len(els) > maxActionsElements:
			v.add(ptr+"/elements", "no more than %d items allowed", maxActionsElements)
		}
		for i, el := range els {
			p := fmt.Sprintf("%s/elements/%d", ptr, i)
			m, ok := el.(map[string]any)
			if !ok || m["type"] != "button" {
				// Only buttons are checked in depth; firstlook sends no
				// other interactive element.
				continue
			}
			v.text(p+"/text", m["text"], maxButtonText, true)
			v.str(p, m, "url", maxURL)
			v.str(p, m, "action_id", maxBlockID)
			v.str(p, m, "value", maxSectionField)
		}
	case "divider":
	case "markdown":
		s, ok := b["text"].(string)
		if !ok || s == "" {
			v.add(ptr+"/text", "must provide a string")
		}
		v.markdown += utf8.RuneCountInString(s)
	case "image":
		v.image(ptr, b)
	case "rich_text":
		if els, _ := b["elements"].([]any); len(els) == 0 {
			v.add(ptr+"/elements", "must provide at least 1 item")
		}
	case "file", "video", "input", "table", "call", "context_actions":
		// Real block types firstlook does not send: not checked in depth.
	default:
		v.add(ptr+"/type", "unsupported type: %v", b["type"])
	}
}

func (v *validator) image(ptr string, m map[string]any) {
	if _, ok := m["image_url"].(string); !ok {
		if _, ok := m["slack_file"]; !ok {
			v.add(ptr, "must provide image_url or slack_file")
		}
	}
	v.str(ptr, m, "image_url", maxURL)
	if _, ok := m["alt_text"].(string); !ok {
		v.add(ptr+"/alt_text", "must provide a string")
	}
	v.str(ptr, m, "alt_text", maxAltText)
}
