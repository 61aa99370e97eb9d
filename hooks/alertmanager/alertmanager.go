// Package alertmanager is the intake for Prometheus Alertmanager's webhook
// (payload version 4): each firing alert of a notification becomes a
// trigger, each resolved one resolves its incident.
//
// Alertmanager authenticates with what its webhook_config's http_config
// sends, a bearer token or basic auth; it retries only on 5xx (and on
// network errors), and an HA pair delivers every group from each peer, so
// the delivery id is built from the group key and each alert's fingerprint
// and start time: a retry or the second peer stores nothing new.
// https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
package alertmanager

import (
	"crypto/sha256"
	"encoding/hex"
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
const Name = "alertmanager"

// DefaultHostLabels returns the label keys that name an alert's host, in
// order, when Config.HostLabels is empty (a new slice each call).
func DefaultHostLabels() []string { return []string{"instance", "host", "hostname", "nodename"} }

// Config is the alertmanager section of firstlook.yaml, but for the
// credentials, which cmd/firstlook reads as secrets and hands to New.
type Config struct {
	// HostLabels are the label keys whose value names the alert's host,
	// tried in order; a host:port value loses its port.
	HostLabels []string `yaml:"host_labels"`
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	for i, k := range c.HostLabels {
		if strings.TrimSpace(k) == "" {
			return fmt.Errorf("host_labels[%d]: empty label name", i)
		}
	}
	return nil
}

// Webhooks is the hooks.Source of Alertmanager webhooks.
type Webhooks struct {
	tokens []string
	basic  []hooks.BasicAuth
	hosts  []string
}

var _ hooks.Source = (*Webhooks)(nil)

// New returns the source accepting the bearer tokens and basic-auth
// credentials (empty ones are left out). It refuses to start without any:
// an open intake lets anyone make firstlook SSH into the fleet.
func New(cfg Config, tokens []string, basic []hooks.BasicAuth) (*Webhooks, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Webhooks{hosts: cfg.HostLabels}
	for _, t := range tokens {
		if t != "" {
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
		return nil, errors.New("no credentials: set bearer_tokens or basic_auth, and the same in the webhook_config's http_config")
	}
	if len(s.hosts) == 0 {
		s.hosts = DefaultHostLabels()
	}
	return s, nil
}

// Name is the source's path under /hooks/.
func (s *Webhooks) Name() string { return Name }

// Authenticate accepts a configured bearer token or basic-auth pair,
// compared in constant time.
func (s *Webhooks) Authenticate(r *http.Request, _ []byte) error {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return hooks.Errorf(http.StatusUnauthorized, "missing Authorization header: set authorization or basic_auth in the webhook_config's http_config")
	}
	if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		if hooks.MatchAny(strings.TrimSpace(tok), s.tokens) {
			return nil
		}
		return hooks.Errorf(http.StatusUnauthorized, "bearer token matches none of the configured tokens")
	}
	if present, err := hooks.CheckBasic(r, s.basic); present {
		return err
	}
	return hooks.Errorf(http.StatusUnauthorized, "Authorization header is neither Bearer nor Basic")
}

// The event types of Alertmanager triggers: a firing alert is a new
// incident to diagnose, a resolved one resolves it.
const (
	EventFiring   = hooks.EventTriggered
	EventResolved = hooks.EventResolved
)

// Action runs firing alerts and resolves on resolved ones.
func (s *Webhooks) Action(event string) hooks.Action {
	return hooks.TriggeredOrResolved(event)
}

// message is the webhook payload, version 4. Unknown fields are ignored.
type message struct {
	Version         string  `json:"version"`
	GroupKey        string  `json:"groupKey"`
	TruncatedAlerts int     `json:"truncatedAlerts"`
	Receiver        string  `json:"receiver"`
	ExternalURL     string  `json:"externalURL"`
	Alerts          []alert `json:"alerts"`
}

type alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Parse reads a notification into one trigger per alert.
func (s *Webhooks) Parse(_ *http.Request, body []byte) ([]hooks.Trigger, error) {
	return parse(body, s.hosts)
}

// Parse reads a notification with the default host labels (replay, tests).
func Parse(body []byte) ([]hooks.Trigger, error) { return parse(body, DefaultHostLabels()) }

func parse(body []byte, hostLabels []string) ([]hooks.Trigger, error) {
	var m message
	if err := gojson.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("body is not an Alertmanager webhook: %v", err)
	}
	if m.Version != "4" {
		return nil, fmt.Errorf("webhook payload version %q: firstlook reads version 4 (Alertmanager 0.x)", m.Version)
	}
	if m.GroupKey == "" {
		return nil, errors.New("no groupKey: cannot tell retries and HA peers apart")
	}
	if len(m.Alerts) == 0 {
		return nil, errors.New("no alerts")
	}
	out := make([]hooks.Trigger, 0, len(m.Alerts))
	for i, a := range m.Alerts {
		if a.Fingerprint == "" || a.StartsAt.IsZero() {
			return nil, fmt.Errorf("alerts[%d]: no fingerprint or startsAt", i)
		}
		t := hooks.Trigger{Source: Name}
		switch a.Status {
		case "firing":
			t.Event = EventFiring
		case "resolved":
			t.Event = EventResolved
		default:
			return nil, fmt.Errorf("alerts[%d]: status %q is neither firing nor resolved", i, a.Status)
		}
		start := a.StartsAt.UTC().Format(time.RFC3339Nano)
		sum := sha256.Sum256([]byte(m.GroupKey + "\x00" + a.Fingerprint + "\x00" + start + "\x00" + a.Status))
		t.DeliveryID = hex.EncodeToString(sum[:16])
		// The same alert firing again later starts anew: a new incident.
		t.Incident = hooks.Incident{
			ID:        a.Fingerprint + "-" + strconv.FormatInt(a.StartsAt.Unix(), 10),
			Title:     title(a),
			URL:       a.GeneratorURL,
			Service:   hooks.Service{Name: m.Receiver},
			Priority:  a.Labels["severity"],
			Status:    a.Status,
			CreatedAt: a.StartsAt.UTC(),
		}
		t.Labels = make(map[string]string, len(a.Labels)+len(a.Annotations))
		// Annotations are template fields too; a label of the same name
		// wins.
		for k, v := range a.Annotations {
			t.Labels[k] = v
		}
		for k, v := range a.Labels {
			t.Labels[k] = v
		}
		t.Hints = hints(a.Labels, hostLabels)
		if m.TruncatedAlerts > 0 {
			// max_alerts left alerts of the group out: the run says so.
			t.Note = fmt.Sprintf("Alertmanager truncated this notification: %d more alerts of the group were not sent (max_alerts).", m.TruncatedAlerts)
		}
		out = append(out, t)
	}
	return out, nil
}

// title is the alert's name and summary.
func title(a alert) string {
	t := a.Labels["alertname"]
	if s := a.Annotations["summary"]; s != "" {
		t += ": " + s
	}
	return t
}

// hints reads the host label keys, in order, without ports.
func hints(labels map[string]string, keys []string) hooks.Hints {
	var h hooks.Hints
	seen := map[string]bool{}
	for _, k := range keys {
		v := strings.TrimSpace(labels[k])
		if host, port, err := net.SplitHostPort(v); err == nil {
			if _, perr := strconv.Atoi(port); perr == nil {
				v = host
			}
		}
		if v == "" || seen[v] {
			continue
		}
		seen[v] = true
		if net.ParseIP(v) != nil {
			h.IPs = append(h.IPs, v)
		} else {
			h.Names = append(h.Names, v)
		}
	}
	return h
}
