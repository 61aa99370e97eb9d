// Package hooks is firstlook's HTTP intake: the Source contract that each
// alert source implements in its own package (hooks/pagerduty,
// hooks/alertmanager, hooks/mackerel, hooks/sns), the one pipeline they all
// go through (Handler: capped body read, authentication, parse, event
// filter, store before the 2xx, the JSON reply), and the normalised Trigger
// every source produces. A delivery is stored durably through a Queue (or
// its resolve recorded through a Resolver) before the 2xx, so a crash after
// the answer loses nothing.
package hooks

import (
	"context"
	"time"
)

// Trigger is an alert source's payload normalised into what firstlook needs:
// which incident, which event, and where to look. Playbooks match on it and
// their templates read it; nothing else of a payload reaches a playbook.
type Trigger struct {
	// Source names the sender ("pagerduty", "alertmanager", "mackerel",
	// "sns").
	Source string `json:"source"`
	// DeliveryID identifies one delivery; a sender's retries repeat it
	// (PagerDuty's X-Webhook-Id, SNS's MessageId; Alertmanager's group
	// key, fingerprint and startsAt).
	DeliveryID string `json:"delivery_id"`
	// Event is the sender's event type ("incident.triggered").
	Event string `json:"event"`
	// Incident is the incident the event is about.
	Incident Incident `json:"incident"`
	// Hints name the affected host(s) where the payload says so.
	Hints Hints `json:"hints,omitzero"`
	// Alert names what a resolve resolves when it is not the incident
	// itself: a CloudWatch alarm raises a new incident each time it goes
	// to ALARM, and its OK names the alarm. Empty: the incident.
	Alert string `json:"alert,omitempty"`
	// Again is set when a person asked for diagnostics again (PagerDuty's
	// "run again" action): the incident's runs start anew even though
	// they ran, once per request (DeliveryID).
	Again bool `json:"again,omitempty"`
	// Note is what the run must report besides its outcome: who asked
	// for it again, alerts the sender left out.
	Note string `json:"note,omitempty"`
	// Labels are the payload's key/value labels, if the source has any.
	Labels map[string]string `json:"labels,omitempty"`
	// ReceivedAt is when firstlook received the delivery.
	ReceivedAt time.Time `json:"received_at"`
}

// Incident is the sender's incident, reduced to the fields firstlook uses.
type Incident struct {
	ID        string    `json:"id"`
	Number    int       `json:"number,omitempty"`
	Title     string    `json:"title"`
	URL       string    `json:"url,omitempty"`
	Service   Service   `json:"service,omitzero"`
	Urgency   string    `json:"urgency,omitempty"`
	Priority  string    `json:"priority,omitempty"`
	Status    string    `json:"status,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Service is the sender's service (PagerDuty service, Alertmanager
// receiver…) that the incident belongs to.
type Service struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
}

// Hints are the places a payload names its host(s). They are only hints:
// the runner resolves them against the inventory and refuses the rest.
type Hints struct {
	Names       []string `json:"names,omitempty"`
	IPs         []string `json:"ips,omitempty"`
	InstanceIDs []string `json:"instance_ids,omitempty"`
}

// Empty reports whether h names nothing.
func (h Hints) Empty() bool {
	return len(h.Names) == 0 && len(h.IPs) == 0 && len(h.InstanceIDs) == 0
}

// JobID is the trigger's identity in the queue: a redelivery of the same
// webhook has the same JobID and makes no second job.
func (t Trigger) JobID() string { return t.Source + "." + t.DeliveryID }

// Queue stores triggers durably. Put returns only after the trigger is
// stored (or found to be a duplicate of one already stored); duplicate
// reports the latter.
type Queue interface {
	Put(ctx context.Context, t Trigger) (duplicate bool, err error)
}
