package pagerduty

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"

	"github.com/firstlook/firstlook/hooks"
)

// DefaultAlertDetailKeys returns the alert detail keys read for host
// names when Config.AlertDetailKeys is empty (a new slice each call).
func DefaultAlertDetailKeys() []string { return []string{"host", "hostname", "instance"} }

// Alerts finds host hints in a PagerDuty incident's alerts: the webhook
// only carries the incident, while the monitoring tool that raised it put
// the host in the alert (cef_details.source_origin, a details key, or the
// InstanceId dimension of a CloudWatch alarm in the details).
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
		keys = DefaultAlertDetailKeys()
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
			alarmInstanceIDs(details, 0, func(id string) { add(id) })
		}
	}
	return h, nil
}

// CloudWatch alarms reach PagerDuty through SNS: the notification's
// Message is the alarm as a JSON string, and PagerDuty's Amazon CloudWatch
// integration "expects to find in the Message property a nested
// JSON-encoded object" from which it builds the alert
// (https://support.pagerduty.com/main/docs/amazon-cloudwatch-integration-guide).
// What lands in the alert's details is not documented field by field: the
// parsed alarm itself, or the notification with Message still a string
// (Events API integrations, Event Orchestration, a Lambda forwarding the
// SNS record). So the details are searched, a few levels deep, for an
// object with a Trigger, decoding JSON strings on the way. The alarm shape
// is AWS's (fixtures/webhooks/cloudwatch-sns): Trigger.Dimensions[{name,
// value}], or for metric-math alarms Trigger.Metrics[].MetricStat.Metric.
// Dimensions.
const (
	alarmSearchDepth = 8
	alarmMaxJSON     = 256 << 10 // PagerDuty caps an event at 512 KB
)

// alarmInstanceIDs calls add with the value of every InstanceId dimension
// of the CloudWatch alarms found in v. Values that are not instance ids
// (AWS's own sample alarms say "TestInstance") are left out: they name no
// host.
func alarmInstanceIDs(v any, depth int, add func(string)) {
	if depth > alarmSearchDepth {
		return
	}
	switch v := v.(type) {
	case string:
		s := strings.TrimSpace(v)
		if len(s) > alarmMaxJSON || !strings.HasPrefix(s, "{") || !strings.Contains(s, `"Trigger"`) {
			return
		}
		var parsed any
		if json.Unmarshal([]byte(s), &parsed) == nil {
			alarmInstanceIDs(parsed, depth+1, add)
		}
	case []any:
		for _, e := range v {
			alarmInstanceIDs(e, depth+1, add)
		}
	case map[string]any:
		if trig, ok := v["Trigger"].(map[string]any); ok {
			dimensionIDs(trig["Dimensions"], add)
			metrics, _ := trig["Metrics"].([]any)
			for _, m := range metrics {
				m, _ := m.(map[string]any)
				stat, _ := m["MetricStat"].(map[string]any)
				metric, _ := stat["Metric"].(map[string]any)
				dimensionIDs(metric["Dimensions"], add)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if k != "Trigger" {
				alarmInstanceIDs(v[k], depth+1, add)
			}
		}
	}
}

// dimensionIDs reads [{name, value}] dimensions (the SNS notification's
// spelling; the CloudWatch API's Name/Value too).
func dimensionIDs(v any, add func(string)) {
	dims, _ := v.([]any)
	for _, d := range dims {
		d, _ := d.(map[string]any)
		field := func(lower, upper string) string {
			s, _ := d[lower].(string)
			if s == "" {
				s, _ = d[upper].(string)
			}
			return s
		}
		if value := field("value", "Value"); field("name", "Name") == "InstanceId" && instanceID.MatchString(value) {
			add(value)
		}
	}
}
