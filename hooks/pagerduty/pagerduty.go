// Package pagerduty is the intake for PagerDuty v3 webhooks (Webhooks): it
// verifies X-PagerDuty-Signature against every configured secret and
// parses the v3 envelope into a hooks.Trigger, which the hooks pipeline
// stores before answering; incident.resolved resolves. RunAgain is the
// "run diagnostics again" Custom Incident Action.
//
// PagerDuty expects a 2xx within 5 seconds and disables a subscription
// after repeated failures, so everything that is not a refusal of a bad
// request answers 2xx, including event types firstlook ignores:
// https://developer.pagerduty.com/docs/webhooks-overview
package pagerduty

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/PagerDuty/go-pagerduty/webhookv3"

	"github.com/firstlook/firstlook/hooks"
)

// Source is the Trigger.Source of PagerDuty triggers.
const Source = "pagerduty"

// DefaultEvents returns the event types that make a job when Config.Events
// is empty: a new incident is when a first look helps (a new slice each
// call).
func DefaultEvents() []string { return []string{"incident.triggered"} }

// Config is the PagerDuty intake's configuration. The signing secrets are
// not part of it: they are handed to NewHandler, so printing a Config never
// shows one.
type Config struct {
	// Events are the event types that make a job; other types are answered
	// 202 and dropped.
	Events []string `yaml:"events"`
	// APIURL is the REST API used to look up an incident's alerts when an
	// API token is configured (default https://api.pagerduty.com).
	APIURL string `yaml:"api_url"`
	// AlertDetailKeys are the keys of an alert's details (custom_details)
	// that name its host, besides cef_details.source_origin.
	AlertDetailKeys []string `yaml:"alert_detail_keys"`
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	for i, e := range c.Events {
		if !strings.Contains(e, ".") {
			return fmt.Errorf("events[%d]: %q is not a PagerDuty v3 event type such as incident.triggered", i, e)
		}
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("api_url: %q is not an http(s) URL", c.APIURL)
		}
	}
	return nil
}

// Name is the source's path under /hooks/.
const Name = "pagerduty"

// Webhooks is the hooks.Source of PagerDuty v3 webhooks.
type Webhooks struct {
	secrets []*signer
	events  map[string]bool
}

var _ hooks.Source = (*Webhooks)(nil)

// New returns the source that accepts webhooks signed with any of secrets.
func New(cfg Config, secrets []string) (*Webhooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var ss []*signer
	for _, s := range secrets {
		if s != "" {
			ss = append(ss, newSigner(s))
		}
	}
	if len(ss) == 0 {
		return nil, errors.New("no webhook secret: set the subscription's signing secret (PagerDuty shows it once, when the subscription is created)")
	}
	events := cfg.Events
	if len(events) == 0 {
		events = DefaultEvents()
	}
	s := &Webhooks{secrets: ss, events: make(map[string]bool, len(events))}
	for _, e := range events {
		s.events[e] = true
	}
	return s, nil
}

// NewHandler returns the handler of POST /hooks/pagerduty: the source
// through the shared pipeline, storing triggers through q (and recording
// resolved incidents, when q is also a hooks.Resolver).
func NewHandler(cfg Config, secrets []string, q hooks.Queue, log *slog.Logger) (*hooks.Handler, error) {
	s, err := New(cfg, secrets)
	if err != nil {
		return nil, err
	}
	res, _ := q.(hooks.Resolver)
	// PagerDuty gives up on a delivery after 5 s; the pipeline answers
	// 503 before that so it retries rather than counting a timeout.
	return hooks.NewHandler(s, hooks.Options{Queue: q, Resolver: res, Log: log, Timeout: 4 * time.Second}), nil
}

// Name is the source's path under /hooks/.
func (s *Webhooks) Name() string { return Name }

// Action runs the configured event types and resolves on
// incident.resolved.
func (s *Webhooks) Action(event string) hooks.Action {
	switch {
	case s.events[event]:
		return hooks.Run
	case event == ResolvedEvent:
		return hooks.Resolve
	}
	return hooks.Ignore
}

// ResolvedEvent is the event type that resolves an incident.
const ResolvedEvent = "incident.resolved"

// Parse reads a verified delivery: pagey.ping is answered "pong", an event
// type that Action ignores gives a trigger with only its event type (its
// data may be any resource), any other the incident's trigger.
func (s *Webhooks) Parse(r *http.Request, body []byte) ([]hooks.Trigger, error) {
	ev, err := decode(body)
	if err != nil {
		return nil, hooks.Errorf(http.StatusBadRequest, "%v", err)
	}
	if ev.EventType == "pagey.ping" {
		return nil, &hooks.Answer{Code: http.StatusOK, Reply: hooks.Reply{Status: "pong"}}
	}
	if s.Action(ev.EventType) == hooks.Ignore {
		return []hooks.Trigger{{Source: Source, Event: ev.EventType}}, nil
	}
	t, err := ev.trigger(r.Header.Get("X-Webhook-Id"))
	if err != nil {
		return nil, hooks.Errorf(http.StatusBadRequest, "%v", err)
	}
	return []hooks.Trigger{t}, nil
}

// Authenticate checks X-PagerDuty-Signature against every secret; the
// header may carry several v1= signatures while a secret is being rotated.
func (s *Webhooks) Authenticate(r *http.Request, body []byte) error {
	header := r.Header.Get("X-PagerDuty-Signature")
	if header == "" {
		return hooks.Errorf(http.StatusUnauthorized, "missing X-PagerDuty-Signature header: the request is not signed")
	}
	for _, secret := range s.secrets {
		err := secret.verify(header, body)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, webhookv3.ErrMalformedHeader):
			return hooks.Errorf(http.StatusUnauthorized, "malformed X-PagerDuty-Signature header: want v1=<hex>[,v1=<hex>…]")
		case errors.Is(err, webhookv3.ErrMalformedBody):
			return hooks.Errorf(http.StatusBadRequest, "empty body")
		}
	}
	return hooks.Errorf(http.StatusUnauthorized, "X-PagerDuty-Signature matches none of the configured secrets")
}

// ErrPing is returned by Parse for pagey.ping, PagerDuty's test delivery.
var ErrPing = errors.New("pagey.ping")

// event is the part of a v3 webhook that firstlook reads. Unknown fields
// are ignored: PagerDuty adds fields over time.
type event struct {
	ID           string        `json:"id"`
	EventType    string        `json:"event_type"`
	ResourceType string        `json:"resource_type"`
	Data         *incidentData `json:"data"`

	// dataErr is set when data is not shaped like an incident or a note
	// (another resource's event); the envelope is still good.
	dataErr error
}

type reference struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
	HTMLURL string `json:"html_url"`
}

type incidentData struct {
	Type      string     `json:"type"`
	ID        string     `json:"id"`
	HTMLURL   string     `json:"html_url"`
	Number    int        `json:"number"`
	Status    string     `json:"status"`
	Title     string     `json:"title"`
	CreatedAt time.Time  `json:"created_at"`
	Service   *reference `json:"service"`
	Priority  *reference `json:"priority"`
	Urgency   string     `json:"urgency"`
	// incident_note (incident.annotated) carries the incident as a reference.
	Incident *reference `json:"incident"`
}

// Parse turns a v3 webhook body into a Trigger. delivery is the
// X-Webhook-Id header; when empty, the event id is used instead (it is also
// stable across PagerDuty's retries). pagey.ping gives ErrPing; events that
// are not about an incident (service.updated, …) give ErrNotIncident.
func Parse(body []byte, delivery string) (hooks.Trigger, error) {
	ev, err := decode(body)
	if err != nil {
		return hooks.Trigger{}, err
	}
	if ev.EventType == "pagey.ping" {
		return hooks.Trigger{}, ErrPing
	}
	return ev.trigger(delivery)
}

// ErrNotIncident is returned by Parse for events whose data is not an
// incident or an incident note.
var ErrNotIncident = errors.New("not an incident event")

// unmarshal decodes webhook bodies. The body has passed signature
// verification before it gets here, and the intake's benchmark spends a
// tenth of serve's time in encoding/json on it; goccy/go-json decodes the
// same structs into the same values about three times faster (ratio to
// the no-op baseline 0.49 -> 0.54 on two cores). FuzzParseAgrees checks
// that both decoders give the same Trigger for any body.
var unmarshal = gojson.Unmarshal

// decode reads the envelope and, in the same pass, the incident: this is
// the webhook's hot path. Only when data is not shaped like an incident is
// the envelope read again on its own, so that an event type firstlook does
// not handle is still answered as ignored rather than refused.
func decode(body []byte) (*event, error) {
	var env struct {
		Event *event `json:"event"`
	}
	if err := unmarshal(body, &env); err != nil {
		var loose struct {
			Event *struct {
				ID        string          `json:"id"`
				EventType string          `json:"event_type"`
				Data      json.RawMessage `json:"data"`
			} `json:"event"`
		}
		if lerr := unmarshal(body, &loose); lerr != nil {
			return nil, fmt.Errorf("body is not JSON: %v", lerr)
		}
		env.Event = nil
		if loose.Event != nil {
			env.Event = &event{ID: loose.Event.ID, EventType: loose.Event.EventType, dataErr: err}
		}
	}
	if env.Event == nil || env.Event.EventType == "" {
		return nil, errors.New("not a PagerDuty v3 webhook: no event.event_type (v2 webhooks are not supported; create a v3 webhook subscription)")
	}
	return env.Event, nil
}

func (ev *event) trigger(delivery string) (hooks.Trigger, error) {
	if delivery == "" {
		delivery = ev.ID
	}
	if delivery == "" {
		return hooks.Trigger{}, errors.New("no X-Webhook-Id header and no event.id: cannot tell retries apart")
	}
	t := hooks.Trigger{Source: Source, DeliveryID: delivery, Event: ev.EventType}
	if ev.dataErr != nil {
		return hooks.Trigger{}, fmt.Errorf("event %s: data is not an incident (%v): %w", ev.EventType, ev.dataErr, ErrNotIncident)
	}
	if ev.Data == nil {
		return hooks.Trigger{}, fmt.Errorf("event %s has no data", ev.EventType)
	}
	d := ev.Data
	// Dispatch on data.type, not resource_type: incident.annotated has
	// resource_type "incident" but its data is the note.
	switch d.Type {
	case "incident":
		t.Incident = hooks.Incident{
			ID:        d.ID,
			Number:    d.Number,
			Title:     d.Title,
			URL:       d.HTMLURL,
			Urgency:   d.Urgency,
			Status:    d.Status,
			CreatedAt: d.CreatedAt,
		}
		if d.Service != nil {
			t.Incident.Service = hooks.Service{ID: d.Service.ID, Name: d.Service.Summary}
		}
		if d.Priority != nil {
			t.Incident.Priority = d.Priority.Summary
		}
	case "incident_note":
		if d.Incident == nil {
			return hooks.Trigger{}, fmt.Errorf("event %s: incident_note without an incident", ev.EventType)
		}
		t.Incident = hooks.Incident{ID: d.Incident.ID, Title: d.Incident.Summary, URL: d.Incident.HTMLURL}
	default:
		return hooks.Trigger{}, fmt.Errorf("event %s: data.type %q: %w", ev.EventType, d.Type, ErrNotIncident)
	}
	if t.Incident.ID == "" {
		return hooks.Trigger{}, fmt.Errorf("event %s: incident has no id", ev.EventType)
	}
	return t, nil
}

// Sign returns the X-PagerDuty-Signature value PagerDuty sends for body
// under secret. firstlook's demo and load tests sign with it.
func Sign(body []byte, secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}
