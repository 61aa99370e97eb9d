package pagerduty

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/firstlook/firstlook/hooks"
)

// RunAgainName is the path under /hooks/ of the "run diagnostics again"
// button: a PagerDuty Custom Incident Action that POSTs there.
const RunAgainName = "pagerduty-run-again"

// DefaultRunAgainHeader is the custom header that carries the action's
// shared secret when RunAgainConfig.Header is empty.
const DefaultRunAgainHeader = "X-Firstlook-Secret"

// RunAgainConfig is the "run diagnostics again" Custom Incident Action
// (pagerduty.run_again), but for its secrets, which cmd/firstlook reads
// and hands to NewRunAgain. PagerDuty does not sign these requests; the
// action's custom header carries a shared secret.
// https://support.pagerduty.com/main/docs/custom-incident-actions
type RunAgainConfig struct {
	// Header is the custom header's name (default X-Firstlook-Secret).
	Header string `yaml:"header"`
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9-]+$`)

// Validate reports a configuration that cannot work.
func (c RunAgainConfig) Validate() error {
	if c.Header != "" && !headerName.MatchString(c.Header) {
		return fmt.Errorf("run_again.header: %q is not a header name", c.Header)
	}
	return nil
}

// RunAgain is the hooks.Source of the "run diagnostics again" action: it
// starts the incident's runs anew, and the run names who pressed it.
type RunAgain struct {
	header  string
	secrets []string
}

var _ hooks.Source = (*RunAgain)(nil)

// NewRunAgain returns the source accepting the secrets (empty ones are
// left out); it refuses to start without one.
func NewRunAgain(cfg RunAgainConfig, secrets []string) (*RunAgain, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &RunAgain{header: http.CanonicalHeaderKey(cmp.Or(cfg.Header, DefaultRunAgainHeader))}
	for i, v := range secrets {
		switch {
		case v == "":
		case len(v) < 16:
			return nil, fmt.Errorf("run_again.secrets[%d]: shorter than 16 characters; use a long random value (openssl rand -hex 24)", i)
		default:
			s.secrets = append(s.secrets, v)
		}
	}
	if len(s.secrets) == 0 {
		return nil, errors.New("run_again: no secrets: set secrets and the same value in the action's custom header")
	}
	return s, nil
}

// Name is the source's path under /hooks/.
func (s *RunAgain) Name() string { return RunAgainName }

// Authenticate compares the custom header with the secrets in constant
// time.
func (s *RunAgain) Authenticate(r *http.Request, _ []byte) error {
	v := r.Header.Get(s.header)
	if v == "" {
		return hooks.Errorf(http.StatusUnauthorized, "missing %s header: add it to the Custom Incident Action's custom headers", s.header)
	}
	if !hooks.MatchAny(v, s.secrets) {
		return hooks.Errorf(http.StatusUnauthorized, "%s matches none of the configured secrets", s.header)
	}
	return nil
}

// EventRunAgain is the event type of a run-again trigger: the incident's
// playbooks that match a new incident run again.
const EventRunAgain = "incident.triggered"

// Action runs the request; anything else the endpoint receives is
// ignored.
func (s *RunAgain) Action(event string) hooks.Action {
	if event == EventRunAgain {
		return hooks.Run
	}
	return hooks.Ignore
}

// actionPayload is what a Custom Incident Action POSTs: a webhook v2
// envelope whose message has event incident.custom, the incident, and
// the log entry of the press (type custom_log_entry) with the user who
// pressed it as agent. (The v2 shape, as receivers of these actions read
// it, e.g. gravitational/teleport-plugins' PagerDuty plugin.)
type actionPayload struct {
	Messages []struct {
		ID         string      `json:"id"`
		Event      string      `json:"event"`
		Incident   *v2Incident `json:"incident"`
		LogEntries []struct {
			Type  string     `json:"type"`
			Agent *reference `json:"agent"`
		} `json:"log_entries"`
	} `json:"messages"`
}

// v2Incident is the incident of a v2 webhook message.
type v2Incident struct {
	ID             string     `json:"id"`
	IncidentNumber int        `json:"incident_number"`
	Number         int        `json:"number"`
	Title          string     `json:"title"`
	HTMLURL        string     `json:"html_url"`
	Status         string     `json:"status"`
	Urgency        string     `json:"urgency"`
	CreatedAt      time.Time  `json:"created_at"`
	Service        *v2Service `json:"service"`
	Priority       *v2Service `json:"priority"`
}

type v2Service struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Summary string `json:"summary"`
}

func (s *v2Service) name() string {
	if s == nil {
		return ""
	}
	return cmp.Or(s.Summary, s.Name)
}

// Parse reads the action's request into one trigger per message.
func (s *RunAgain) Parse(r *http.Request, body []byte) ([]hooks.Trigger, error) {
	return ParseRunAgain(body, r.Header.Get("X-Webhook-Id"))
}

// ParseRunAgain reads a Custom Incident Action's body; delivery is its
// X-Webhook-Id (the message id when empty).
func ParseRunAgain(body []byte, delivery string) ([]hooks.Trigger, error) {
	var p actionPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("body is not a PagerDuty Custom Incident Action: %v", err)
	}
	var out []hooks.Trigger
	for i, m := range p.Messages {
		if m.Event != "incident.custom" {
			out = append(out, hooks.Trigger{Source: Source, Event: m.Event})
			continue
		}
		var agent *reference
		for _, le := range m.LogEntries {
			if le.Type == "custom_log_entry" && le.Agent != nil {
				agent = le.Agent
				break
			}
		}
		id := delivery
		if id == "" || len(p.Messages) > 1 {
			id = cmp.Or(m.ID, delivery)
		}
		t, err := runAgainTrigger(m.Incident, agent, id)
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("not a Custom Incident Action: no messages")
	}
	return out, nil
}

func runAgainTrigger(inc *v2Incident, agent *reference, delivery string) (hooks.Trigger, error) {
	if inc == nil || inc.ID == "" {
		return hooks.Trigger{}, errors.New("no incident id")
	}
	if delivery == "" {
		return hooks.Trigger{}, errors.New("no X-Webhook-Id header and no message id: cannot tell retries apart")
	}
	t := hooks.Trigger{
		Source: Source, DeliveryID: "again-" + delivery, Event: EventRunAgain, Again: true,
		Incident: hooks.Incident{
			ID: inc.ID, Number: max(inc.IncidentNumber, inc.Number), Title: inc.Title, URL: inc.HTMLURL,
			Status: inc.Status, Urgency: inc.Urgency, CreatedAt: inc.CreatedAt,
			Priority: inc.Priority.name(),
		},
	}
	if inc.Service != nil {
		t.Incident.Service = hooks.Service{ID: inc.Service.ID, Name: inc.Service.name()}
	}
	if agent != nil && agent.Summary != "" {
		t.Note = "Run again by " + agent.Summary + " from PagerDuty."
	} else {
		t.Note = "Run again from PagerDuty (it did not say by whom)."
	}
	return t, nil
}
