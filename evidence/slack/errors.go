package slack

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
)

// Error is a failed Slack call, or a problem that stops a publish.
type Error struct {
	// Method is the Web API method that failed ("chat.postMessage"), or ""
	// when no call was involved.
	Method string
	// Code is Slack's error code ("channel_not_found", "missing_scope"),
	// or "" for a transport or HTTP failure.
	Code string
	// Needed lists the scopes Slack said the method needs, for
	// missing_scope.
	Needed string
	// Err is the underlying error.
	Err error

	permanent bool
}

func (e *Error) Error() string {
	var sb strings.Builder
	sb.WriteString("slack: ")
	if e.Method != "" {
		sb.WriteString(e.Method + ": ")
	}
	switch {
	case e.Code != "" && e.Needed != "":
		fmt.Fprintf(&sb, "%s (the token needs %s)", e.Code, e.Needed)
	case e.Code != "":
		sb.WriteString(e.Code)
		if hint := hints[e.Code]; hint != "" {
			sb.WriteString(": " + hint)
		}
	default:
		sb.WriteString(e.Err.Error())
	}
	return sb.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is makes a permanent error match evidence.ErrPermanent.
func (e *Error) Is(target error) bool { return target == evidence.ErrPermanent && e.permanent }

// Permanent reports whether retrying cannot help: the token is invalid or
// lacks a scope, the channel is gone or closed to the bot, the message is
// malformed. The runner records the sink as failed instead of retrying.
func (e *Error) Permanent() bool { return e.permanent }

// permanentf is a permanent error that is not a Slack answer.
func permanentf(format string, args ...any) *Error {
	return &Error{Err: fmt.Errorf(format, args...), permanent: true}
}

// hints say what to do about the errors an operator can fix.
var hints = map[string]string{
	"not_in_channel":            "invite the bot to the channel (/invite @<bot>)",
	"channel_not_found":         "the channel does not exist, or is private and the bot is not in it",
	"is_archived":               "the channel is archived (bot tokens cannot unarchive; set fallback_channel)",
	"invalid_auth":              "the token is not valid",
	"not_authed":                "no token was sent",
	"account_inactive":          "the token belongs to a deleted user or workspace",
	"token_revoked":             "the token was revoked or the app uninstalled",
	"restricted_action":         "a workspace setting forbids this to the bot",
	"posting_to_channel_denied": "the bot may not post in the channel",
}

// permanentCodes are Slack error codes that the same call will get again:
// authentication, scopes and permissions, a missing or archived channel, a
// malformed request (from each method's "Errors" table, e.g.
// https://docs.slack.dev/reference/methods/chat.postMessage). Codes not
// listed, internal_error and fatal_error among them, are transient.
var permanentCodes = map[string]bool{
	// authentication and permissions
	"not_authed": true, "invalid_auth": true, "account_inactive": true,
	"token_revoked": true, "token_expired": true, "no_permission": true,
	"missing_scope": true, "not_allowed_token_type": true, "access_denied": true,
	"ekm_access_denied": true, "team_access_not_granted": true, "is_bot": true,
	"two_factor_setup_required": true, "enterprise_is_restricted": true,
	"method_deprecated": true, "deprecated_endpoint": true, "restricted_action": true,
	"restricted_action_read_only_channel": true, "restricted_action_thread_only_channel": true,
	"posting_to_channel_denied": true, "user_is_restricted": true, "user_is_ultra_restricted": true,
	// channels
	"channel_not_found": true, "not_in_channel": true, "is_archived": true,
	"invalid_channel": true, "method_not_supported_for_channel_type": true,
	"cannot_create_channel": true, "invalid_name": true, "invalid_name_maxlength": true,
	"invalid_name_punctuation": true, "invalid_name_required": true, "invalid_name_specials": true,
	// users and groups
	"no_such_subteam": true, "user_not_found": true, "cant_invite": true,
	// answers the publisher handles, which a retry would only repeat
	"name_taken": true, "already_in_channel": true, "cant_invite_self": true,
	"ura_max_channels": true, "no_user": true,
	"no_external_invite_permission": true, "invitee_cant_see_channel": true,
	"org_user_not_in_team": true, "thread_not_found": true,
	// malformed requests: the same render fails the same way
	"invalid_blocks": true, "invalid_blocks_format": true, "msg_too_long": true,
	"msg_blocks_too_long": true, "no_text": true, "invalid_metadata_format": true,
	"invalid_metadata_schema": true, "metadata_too_large": true, "invalid_arguments": true,
	"invalid_arg_name": true, "invalid_form_data": true, "invalid_post_type": true,
	"missing_post_type": true, "invalid_charset": true, "invalid_array_arg": true,
	"missing_argument": true, "unknown_method": true,
	// files
	"file_uploads_disabled": true, "file_upload_size_restricted": true,
	"storage_limit_reached": true,
}

// retryable says whether another attempt at a failed call may succeed at
// once, and how long Slack asked to wait first (zero: back off). A call
// that Slack refused with 429 did nothing, so any call is retried. Other
// transient failures (a 5xx, a lost connection, internal_error) may have
// happened after Slack acted, so only idempotent calls are retried here;
// a post or upload is left to the runner's redelivery, whose again flag
// makes the publisher look for what landed before posting.
func retryable(err error, idempotent bool) (retry bool, wait time.Duration) {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	if rl, ok := errors.AsType[*goslack.RateLimitedError](err); ok {
		return true, rl.RetryAfter
	}
	if sc, ok := errors.AsType[goslack.StatusCodeError](err); ok {
		switch {
		case sc.Code == http.StatusTooManyRequests:
			return true, 0 // 429 without Retry-After
		case sc.Code >= 500:
			return idempotent, 0
		}
		return false, 0
	}
	if se, ok := errors.AsType[goslack.SlackErrorResponse](err); ok {
		switch {
		case se.Err == "ratelimited" || se.Err == "rate_limited":
			// The body's form of 429 (chat.postMessage's "rate_limited":
			// the message was not posted).
			return true, 0
		case permanentCodes[se.Err]:
			return false, 0
		}
		return idempotent, 0
	}
	// Transport failures, undecodable answers.
	return idempotent, 0
}

// permanent says whether err will recur however often the call is made.
func permanent(err error) bool {
	if se, ok := errors.AsType[goslack.SlackErrorResponse](err); ok {
		return permanentCodes[se.Err]
	}
	if sc, ok := errors.AsType[goslack.StatusCodeError](err); ok {
		// A 4xx other than 408 and 429 means a wrong api_url or a request
		// Slack will never take.
		return sc.Code >= 400 && sc.Code < 500 && sc.Code != http.StatusRequestTimeout && sc.Code != http.StatusTooManyRequests
	}
	return false
}

// apiError wraps a failed call's error as an *Error.
func apiError(method string, err error) error {
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	if st, ok := errors.AsType[*stepError](err); ok {
		method = st.method
	}
	e := &Error{Method: method, Err: err, permanent: permanent(err)}
	if se, ok := errors.AsType[goslack.SlackErrorResponse](err); ok {
		e.Code, e.Needed = se.Err, se.Needed
	}
	return e
}

// call runs fn, retrying as retryable allows: at most MaxAttempts
// attempts, waiting Retry-After when Slack gave one (but giving up if that
// is more than MaxRetryWait, leaving the retry to the runner) and a
// jittered exponential backoff otherwise, 1s, 2s, 4s… capped at 30s. The
// loop is the shared one (evidence/retry); slack-go's own retries stay off
// (its default) so that it is the only loop.
func (p *Publisher) call(ctx context.Context, method string, idempotent bool, fn func(context.Context) error) error {
	pol := p.policy
	pol.Name = "slack: " + method
	err := retry.Do(ctx, pol, func(err error) (bool, time.Duration) { return retryable(err, idempotent) }, fn)
	if err != nil {
		return apiError(method, retry.Last(err))
	}
	return nil
}
