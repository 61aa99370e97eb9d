package slack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
)

func TestRetryable(t *testing.T) {
	slackErr := func(code string) error { return goslack.SlackErrorResponse{Err: code} }
	netErr := &url.Error{Op: "Post", URL: "https://slack.com/api/chat.postMessage", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	cases := []struct {
		name       string
		err        error
		idempotent bool
		retry      bool
		wait       time.Duration
		permanent  bool
	}{
		{"429 with Retry-After", &goslack.RateLimitedError{RetryAfter: 7 * time.Second}, false, true, 7 * time.Second, false},
		{"429 wrapped by the upload", fmt.Errorf("CompleteUploadExternal: %w", &goslack.RateLimitedError{RetryAfter: time.Second}), false, true, time.Second, false},
		{"429 without Retry-After", goslack.StatusCodeError{Code: 429, Status: "429 Too Many Requests"}, false, true, 0, false},
		{"ratelimited in the body", slackErr("ratelimited"), false, true, 0, false},
		{"rate_limited (chat.postMessage)", slackErr("rate_limited"), false, true, 0, false},
		{"500 idempotent", goslack.StatusCodeError{Code: 500}, true, true, 0, false},
		{"503 post", goslack.StatusCodeError{Code: 503}, false, false, 0, false},
		{"404 wrong api_url", goslack.StatusCodeError{Code: 404}, true, false, 0, true},
		{"401", goslack.StatusCodeError{Code: 401}, true, false, 0, true},
		{"408", goslack.StatusCodeError{Code: 408}, false, false, 0, false},
		{"internal_error idempotent", slackErr("internal_error"), true, true, 0, false},
		{"internal_error post", slackErr("internal_error"), false, false, 0, false},
		{"fatal_error post", slackErr("fatal_error"), false, false, 0, false},
		{"service_unavailable", slackErr("service_unavailable"), true, true, 0, false},
		{"unknown code", slackErr("something_new"), true, true, 0, false},
		{"not_in_channel", slackErr("not_in_channel"), true, false, 0, true},
		{"channel_not_found", slackErr("channel_not_found"), true, false, 0, true},
		{"invalid_auth", slackErr("invalid_auth"), true, false, 0, true},
		{"account_inactive", slackErr("account_inactive"), true, false, 0, true},
		{"token_revoked", slackErr("token_revoked"), true, false, 0, true},
		{"missing_scope", slackErr("missing_scope"), true, false, 0, true},
		{"is_archived", slackErr("is_archived"), true, false, 0, true},
		{"invalid_blocks", slackErr("invalid_blocks"), false, false, 0, true},
		{"msg_blocks_too_long", slackErr("msg_blocks_too_long"), false, false, 0, true},
		{"name_taken is not retried", slackErr("name_taken"), true, false, 0, true},
		{"already_in_channel is not retried", slackErr("already_in_channel"), true, false, 0, true},
		{"connection refused idempotent", netErr, true, true, 0, false},
		{"connection refused post", netErr, false, false, 0, false},
		{"context canceled", fmt.Errorf("post: %w", context.Canceled), true, false, 0, false},
		{"deadline", context.DeadlineExceeded, true, false, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			retry, wait := retryable(tc.err, tc.idempotent)
			if retry != tc.retry || wait != tc.wait {
				t.Errorf("retryable = %v, %s; want %v, %s", retry, wait, tc.retry, tc.wait)
			}
			if got := permanent(tc.err); got != tc.permanent {
				t.Errorf("permanent = %v, want %v", got, tc.permanent)
			}
			if got := errors.Is(apiError("m", tc.err), evidence.ErrPermanent); got != tc.permanent {
				t.Errorf("errors.Is(apiError, ErrPermanent) = %v, want %v", got, tc.permanent)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{apiError("chat.postMessage", goslack.SlackErrorResponse{Err: "not_in_channel"}), "slack: chat.postMessage: not_in_channel: invite the bot to the channel (/invite @<bot>)"},
		{apiError("conversations.create", goslack.SlackErrorResponse{Err: "missing_scope", Needed: "channels:manage"}), "slack: conversations.create: missing_scope (the token needs channels:manage)"},
		{apiError("files.upload", uploadStep(fmt.Errorf("CompleteUploadExternal: %w", goslack.SlackErrorResponse{Err: "file_not_found"}))), "slack: files.completeUploadExternal: file_not_found"},
		{apiError("files.upload", uploadStep(fmt.Errorf("UploadToURL: %w", goslack.StatusCodeError{Code: 502, Status: "502 Bad Gateway"}))), "slack: upload URL: UploadToURL: slack server error: 502 Bad Gateway"},
		{permanentf("publish: report has no bundle"), "slack: publish: report has no bundle"},
	}
	for _, tc := range cases {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestCutText(t *testing.T) {
	cases := []struct {
		name   string
		s      string
		n      int
		mrkdwn bool
		want   string
	}{
		{"fits", "hello", 5, false, "hello"},
		{"plain", "hello world", 6, false, "hello…"},
		{"multi-byte", "ééééé", 3, false, "éé…"},
		{"emoji are two units", "a🔥🔥🔥", 4, false, "a🔥…"},
		{"emoji not split", "🔥🔥🔥", 4, false, "🔥…"},
		{"closes a code block", "x```abcdefghij", 10, true, "x```ab…```"},
		{"closed code block stays", "```ab``` cdefghijkl", 12, true, "```ab```…"},
		{"no partial fence", "abcd``efgh", 9, true, "abcd…"},
		{"link not split", "see <https://x.example/a|the link> now", 20, true, "see …"},
		{"entity not split", "a &amp; b &amp; c", 16, true, "a &amp; b …"},
		{"plain keeps angle brackets", "a <b> c d e f", 6, false, "a <b>…"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := cutText(tc.s, tc.n, tc.mrkdwn)
			if got != tc.want {
				t.Errorf("cutText(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
			if units(got) > tc.n || !utf8.ValidString(got) {
				t.Errorf("%q: %d units, want at most %d, valid UTF-8", got, units(got), tc.n)
			}
		})
	}
}

func TestFitSkipsNil(t *testing.T) {
	blocks := fit([]goslack.Block{nil, goslack.NewDividerBlock(), (*goslack.SectionBlock)(nil)})
	if len(blocks) != 1 || blocks[0].BlockType() != goslack.MBTDivider {
		t.Errorf("got %v, want the divider alone", blocks)
	}
	if s := fmt.Sprint(fit(nil)); !strings.Contains(s, "[]") {
		t.Errorf("fit(nil) = %s", s)
	}
}
