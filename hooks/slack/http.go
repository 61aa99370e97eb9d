package slack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/hooks"
)

// Verifier checks Slack's request signatures
// (https://docs.slack.dev/authentication/verifying-requests-from-slack/)
// with slack-go's SecretsVerifier: X-Slack-Signature over the body and
// X-Slack-Request-Timestamp, which must be within five minutes of now, so
// a captured request cannot be replayed later. Several signing secrets are
// accepted while one is being rotated.
type Verifier struct {
	secrets []string
}

// NewVerifier returns a Verifier accepting any of secrets.
func NewVerifier(secrets []string) (*Verifier, error) {
	var ss []string
	for _, s := range secrets {
		if s != "" {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return nil, errors.New("no signing secret: copy it from the Slack app's Basic Information page")
	}
	return &Verifier{secrets: ss}, nil
}

// Verify checks the request's signature over body.
func (v *Verifier) Verify(h http.Header, body []byte) *hooks.Error {
	if h.Get("X-Slack-Signature") == "" || h.Get("X-Slack-Request-Timestamp") == "" {
		return hooks.Errorf(http.StatusUnauthorized, "missing X-Slack-Signature or X-Slack-Request-Timestamp: the request is not signed")
	}
	for _, s := range v.secrets {
		sv, err := goslack.NewSecretsVerifier(h, s)
		switch {
		case errors.Is(err, goslack.ErrExpiredTimestamp):
			return hooks.Errorf(http.StatusUnauthorized, "X-Slack-Request-Timestamp is more than 5 minutes from now: a replayed request, or a clock out of sync")
		case err != nil:
			return hooks.Errorf(http.StatusUnauthorized, "malformed Slack signature headers")
		}
		_, _ = sv.Write(body)
		if sv.Ensure() == nil {
			return nil
		}
	}
	return hooks.Errorf(http.StatusUnauthorized, "X-Slack-Signature matches none of the configured signing secrets")
}

// Handler is the HTTP transport: POST /hooks/slack/commands and POST
// /hooks/slack/interactions.
type Handler struct {
	svc *Service
	v   *Verifier
	mux *http.ServeMux
}

// NewHandler returns the HTTP transport of svc, verifying requests with
// any of the signing secrets.
func NewHandler(svc *Service, signingSecrets []string) (*Handler, error) {
	v, err := NewVerifier(signingSecrets)
	if err != nil {
		return nil, err
	}
	h := &Handler{svc: svc, v: v, mux: http.NewServeMux()}
	h.mux.HandleFunc("/hooks/slack/commands", h.commands)
	h.mux.HandleFunc("/hooks/slack/interactions", h.interactions)
	return h, nil
}

// ServeHTTP routes to the two endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// read reads, verifies and form-decodes a request body.
func (h *Handler) read(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	body, err := hooks.ReadBody(w, r)
	if err != nil {
		hooks.Fail(w, err)
		return nil, false
	}
	if herr := h.v.Verify(r.Header, body); herr != nil {
		h.svc.log.Warn("slack request refused", "remote", r.RemoteAddr, "path", r.URL.Path, "reason", herr.Reason)
		hooks.Fail(w, herr)
		return nil, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		hooks.Fail(w, hooks.Errorf(http.StatusBadRequest, "body is not form-encoded: %v", err))
		return nil, false
	}
	return form, true
}

// commands answers a slash command
// (https://docs.slack.dev/interactivity/implementing-slash-commands).
func (h *Handler) commands(w http.ResponseWriter, r *http.Request) {
	form, ok := h.read(w, r)
	if !ok {
		return
	}
	if cmd := form.Get("command"); cmd != "" && cmd != h.svc.cfg.Command {
		hooks.Fail(w, hooks.Errorf(http.StatusBadRequest, "command %q is not %s", cmd, h.svc.cfg.Command))
		return
	}
	req := Request{
		Text: form.Get("text"), Team: form.Get("team_id"),
		User: form.Get("user_id"), UserName: form.Get("user_name"),
		Channel: form.Get("channel_id"), ChannelName: form.Get("channel_name"),
		ResponseURL: form.Get("response_url"), ID: form.Get("trigger_id"), Received: time.Now(),
	}
	writeReply(w, h.svc.Handle(req))
}

// interactions answers a button press
// (https://docs.slack.dev/interactivity/handling-user-interaction): the
// payload form field holds the JSON; the answer is an empty 200 and the
// result goes to the response_url.
func (h *Handler) interactions(w http.ResponseWriter, r *http.Request) {
	form, ok := h.read(w, r)
	if !ok {
		return
	}
	var cb goslack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		hooks.Fail(w, hooks.Errorf(http.StatusBadRequest, "payload is not an interaction: %v", err))
		return
	}
	req, err := InteractionRequest(cb)
	if err != nil {
		// Other interactions (a shortcut someone added to the app) are
		// acknowledged and ignored.
		w.WriteHeader(http.StatusOK)
		return
	}
	rep := h.svc.Handle(req)
	w.WriteHeader(http.StatusOK)
	h.svc.respondAck(req, rep)
}

// respondAck sends a button's immediate answer through the response_url:
// an interaction's HTTP answer cannot carry a message.
func (s *Service) respondAck(req Request, rep Reply) {
	s.wg.Go(func() { s.respondLater(req, rep) })
}

// errNotOurs is an interaction firstlook did not ask for.
var errNotOurs = errors.New("not a firstlook action")

// InteractionRequest turns a block_actions payload whose action is one of
// firstlook's buttons into a Request.
func InteractionRequest(cb goslack.InteractionCallback) (Request, error) {
	if cb.Type != goslack.InteractionTypeBlockActions {
		return Request{}, errNotOurs
	}
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil || a.ActionID != ActionRun {
			continue
		}
		req := Request{
			Text: a.Value, Button: true, Team: cb.Team.ID,
			User: cb.User.ID, UserName: cmpStr(cb.User.Name, cb.User.Profile.DisplayName),
			Channel: cb.Channel.ID, ChannelName: cb.Channel.Name,
			ResponseURL: cb.ResponseURL, ID: cb.TriggerID, Received: time.Now(),
			ThreadTS: cmpStr(cb.Message.ThreadTimestamp, cb.Container.ThreadTs),
		}
		if req.Channel == "" {
			req.Channel = cb.Container.ChannelID
		}
		if req.ID == "" {
			req.ID = cb.ActionTs + "." + cb.User.ID
		}
		if !strings.HasPrefix(strings.TrimSpace(req.Text), "run ") {
			return Request{}, fmt.Errorf("%w: button value %q", errNotOurs, clipText(req.Text, 50))
		}
		return req, nil
	}
	return Request{}, errNotOurs
}

func cmpStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// writeReply answers a slash command with its acknowledgement message.
func writeReply(w http.ResponseWriter, rep Reply) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ackMessage(rep))
}

// ackMessage is rep as a slash command's immediate answer.
func ackMessage(rep Reply) goslack.Msg {
	msg := goslack.Msg{Text: rep.Text, ResponseType: goslack.ResponseTypeEphemeral}
	if rep.InChannel {
		msg.ResponseType = goslack.ResponseTypeInChannel
	}
	if len(rep.Blocks) > 0 {
		msg.Blocks = goslack.Blocks{BlockSet: rep.Blocks}
	}
	return msg
}
