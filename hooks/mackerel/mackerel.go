// Package mackerel is the intake for Mackerel's webhook notification
// channel: an open warning or critical alert triggers, an ok or closed one
// resolves, and the other events are answered and ignored.
//
// Mackerel does not sign webhooks and lets a channel configure only a URL,
// so the URL carries the credential: a secret token as its last path
// segment (POST /hooks/mackerel/<token>) or basic-auth credentials in it
// (https://user:password@host/hooks/mackerel), which Mackerel's docs
// recommend: https://mackerel.io/docs/entry/howto/alerts/webhook
package mackerel

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/firstlook/firstlook/hooks"
)

// Name is the source's path under /hooks/ and its Trigger.Source.
const Name = "mackerel"

// Config is the mackerel section of firstlook.yaml. A channel has nothing
// to configure but its credentials, which cmd/firstlook reads as secrets
// and hands to New.
type Config struct{}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error { return nil }

// MinTokenLength is the shortest token New accepts: the token is the
// only credential, and it travels in a URL.
const MinTokenLength = 16

// Webhooks is the hooks.Source of Mackerel webhooks.
type Webhooks struct {
	tokens []string
	basic  []hooks.BasicAuth
}

var _ hooks.Source = (*Webhooks)(nil)

// New returns the source accepting the tokens (empty ones are left out)
// and basic-auth credentials; it refuses to start without any.
func New(cfg Config, tokens []string, basic []hooks.BasicAuth) (*Webhooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Webhooks{}
	for i, t := range tokens {
		switch {
		case t == "":
		case len(t) < MinTokenLength || strings.Contains(t, "/"):
			return nil, fmt.Errorf("tokens[%d]: shorter than %d characters or has a /; use a long random token (openssl rand -hex 24)", i, MinTokenLength)
		default:
			s.tokens = append(s.tokens, t)
		}
	}
	for i, b := range basic {
		if b.Username == "" || b.Password == "" {
			return nil, fmt.Errorf("basic_auth[%d]: needs a username and a password", i)
		}
		s.basic = append(s.basic, b)
	}
	if len(s.tokens) == 0 && len(s.basic) == 0 {
		return nil, errors.New("no credentials: set tokens and end the channel's URL with /hooks/mackerel/<token>, or basic_auth and put user:password@ in the URL")
	}
	return s, nil
}

// Name is the source's path under /hooks/.
func (s *Webhooks) Name() string { return Name }

// Authenticate accepts a configured token as the last path segment, or
// configured basic-auth credentials, compared in constant time.
func (s *Webhooks) Authenticate(r *http.Request, _ []byte) error {
	if present, err := hooks.CheckBasic(r, s.basic); present {
		return err
	}
	rest, found := strings.CutPrefix(r.URL.Path, "/hooks/"+Name+"/")
	if !found || rest == "" {
		return hooks.Errorf(http.StatusUnauthorized, "no credentials: end the URL with /hooks/mackerel/<token>, or put user:password@ in it")
	}
	if hooks.MatchAny(rest, s.tokens) {
		return nil
	}
	return hooks.Errorf(http.StatusUnauthorized, "the token in the URL matches none of the configured tokens")
}

// The event types of Mackerel triggers.
const (
	EventAlert    = hooks.EventTriggered
	EventResolved = hooks.EventResolved
)

// Action runs open warning and critical alerts and resolves on ok and
// closed ones; Mackerel's other events are ignored.
func (s *Webhooks) Action(event string) hooks.Action {
	return hooks.TriggeredOrResolved(event)
}

// notification is the part of a webhook that firstlook reads. Mackerel
// adds fields over time; unknown ones are ignored, and numbers are read as
// numbers whatever their form.
type notification struct {
	Event   string `json:"event"`
	Type    string `json:"type"`
	Message string `json:"message"`
	Host    *struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		URL   string `json:"url"`
		Roles []struct {
			Fullname    string `json:"fullname"`
			ServiceName string `json:"serviceName"`
			RoleName    string `json:"roleName"`
		} `json:"roles"`
	} `json:"host"`
	Service *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"service"`
	Alert *struct {
		ID              string      `json:"id"`
		Status          string      `json:"status"`
		IsOpen          bool        `json:"isOpen"`
		Trigger         string      `json:"trigger"`
		URL             string      `json:"url"`
		OpenedAt        json.Number `json:"openedAt"`
		StatusChangedAt json.Number `json:"statusChangedAt"`
		MonitorName     string      `json:"monitorName"`
		MetricLabel     string      `json:"metricLabel"`
	} `json:"alert"`
}

// Parse reads a notification into one trigger.
func (s *Webhooks) Parse(_ *http.Request, body []byte) ([]hooks.Trigger, error) {
	t, err := Parse(body)
	if err != nil {
		return nil, err
	}
	return []hooks.Trigger{t}, nil
}

// unmarshal decodes notifications: goccy/go-json, as the other sources
// do, about three times encoding/json's speed on this struct;
// FuzzParseAgrees holds it to encoding/json's results.
var unmarshal = gojson.Unmarshal

// Parse reads a notification. Events other than an alert give a trigger
// with only the event type, which the intake ignores.
func Parse(body []byte) (hooks.Trigger, error) {
	var n notification
	if err := unmarshal(body, &n); err != nil {
		return hooks.Trigger{}, fmt.Errorf("body is not a Mackerel webhook: %v", err)
	}
	if n.Event == "" {
		return hooks.Trigger{}, errors.New("not a Mackerel webhook: no event")
	}
	t := hooks.Trigger{Source: Name, Event: n.Event}
	if n.Event != "alert" {
		// alertGroup, hostStatus, hostRegister, hostRetire, monitor…
		return t, nil
	}
	a := n.Alert
	if a == nil || a.ID == "" {
		return hooks.Trigger{}, errors.New("alert event without alert.id")
	}
	switch {
	case !a.IsOpen || a.Status == "ok":
		t.Event = EventResolved
	case a.Status == "warning" || a.Status == "critical":
		t.Event = EventAlert
	default:
		// unknown: the check's state is not known; nothing to look at.
		t.Event = "alert." + a.Status
	}
	// Mackerel sends no delivery id: one alert's notification is its id,
	// status and when the status changed.
	sum := sha256.Sum256([]byte(strings.Join([]string{a.ID, a.Status, strconv.FormatBool(a.IsOpen), a.StatusChangedAt.String(), a.Trigger}, "\x00")))
	t.DeliveryID = hex.EncodeToString(sum[:16])
	t.Incident = hooks.Incident{
		ID:       a.ID,
		Title:    title(n),
		URL:      a.URL,
		Priority: a.Status,
		Status:   a.Status,
	}
	if sec, err := a.OpenedAt.Float64(); err == nil && sec > 0 && sec < 1e11 {
		t.Incident.CreatedAt = time.Unix(int64(sec), 0).UTC()
	}
	t.Labels = map[string]string{"monitor": a.MonitorName, "type": n.Type, "status": a.Status, "trigger": trigger(a.Trigger)}
	if h := n.Host; h != nil {
		var roles []string
		for _, r := range h.Roles {
			if r.Fullname != "" {
				roles = append(roles, r.Fullname)
			}
		}
		if len(roles) > 0 {
			t.Labels["role"] = roles[0]
			t.Labels["roles"] = strings.Join(roles, ",")
			t.Incident.Service = hooks.Service{Name: h.Roles[0].ServiceName}
		}
		if name := strings.TrimSpace(h.Name); name != "" {
			if net.ParseIP(name) != nil {
				t.Hints.IPs = []string{name}
			} else {
				t.Hints.Names = []string{name}
			}
		}
	}
	if n.Service != nil && n.Service.Name != "" {
		t.Incident.Service = hooks.Service{ID: n.Service.ID, Name: n.Service.Name}
	}
	return t, nil
}

// trigger is what caused the notification. Mackerel's docs disagree on
// the value for a monitor firing: the field table says "monitoring", the
// example says "monitor"; both read "monitoring".
func trigger(s string) string {
	if s == "monitor" {
		return "monitoring"
	}
	return s
}

func title(n notification) string {
	t := n.Alert.MonitorName
	if n.Host != nil && n.Host.Name != "" {
		t += " on " + n.Host.Name
	}
	if n.Message != "" {
		t += ": " + n.Message
	}
	return strings.TrimSpace(t)
}
