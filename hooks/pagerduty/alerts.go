package pagerduty

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"

	"github.com/firstlook/firstlook/hooks"
)

// DefaultAlertDetailKeys are the alert detail keys read for host names
// when Config.AlertDetailKeys is empty.
var DefaultAlertDetailKeys = []string{"host", "hostname", "instance"}

// Alerts finds host hints in a PagerDuty incident's alerts: the webhook
// only carries the incident, while the monitoring tool that raised it put
// the host in the alert (cef_details.source_origin, or a details key).
type Alerts struct {
	client *gopd.Client
	keys   []string
}

// NewAlerts returns an Alerts that reads the REST API with token.
func NewAlerts(cfg Config, token string) *Alerts {
	opts := []gopd.ClientOptions{}
	if cfg.APIURL != "" {
		opts = append(opts, gopd.WithAPIEndpoint(strings.TrimSuffix(cfg.APIURL, "/")))
	}
	c := gopd.NewClient(token, opts...)
	// The lookup happens while a job runs; a slow API must not hold it.
	c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	keys := cfg.AlertDetailKeys
	if len(keys) == 0 {
		keys = DefaultAlertDetailKeys
	}
	return &Alerts{client: c, keys: keys}
}

var instanceID = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)

// Hints lists the incident's alerts and returns the hosts they name.
// Triggers from other sources have none.
func (a *Alerts) Hints(ctx context.Context, t hooks.Trigger) (hooks.Hints, error) {
	var h hooks.Hints
	if t.Source != Source {
		return h, nil
	}
	resp, err := a.client.ListIncidentAlertsWithContext(ctx, t.Incident.ID, gopd.ListIncidentAlertsOptions{Limit: 100})
	if err != nil {
		return h, fmt.Errorf("pagerduty: list alerts of %s: %w", t.Incident.ID, err)
	}
	seen := map[string]bool{}
	add := func(v any) {
		s, ok := v.(string)
		s = strings.TrimSpace(s)
		if !ok || s == "" || seen[s] {
			return
		}
		seen[s] = true
		switch {
		case net.ParseIP(s) != nil:
			h.IPs = append(h.IPs, s)
		case instanceID.MatchString(s):
			h.InstanceIDs = append(h.InstanceIDs, s)
		default:
			h.Names = append(h.Names, s)
		}
	}
	for _, al := range resp.Alerts {
		cef, _ := al.Body["cef_details"].(map[string]any)
		add(cef["source_origin"])
		for _, details := range []any{al.Body["details"], cef["details"]} {
			d, _ := details.(map[string]any)
			for _, k := range a.keys {
				add(d[k])
			}
		}
	}
	return h, nil
}
