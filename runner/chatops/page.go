package chatops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	gopd "github.com/PagerDuty/go-pagerduty"

	"github.com/firstlook/firstlook/hooks/slack"
)

// Pager pages a PagerDuty service through the REST API: it creates an
// incident on the service (POST /incidents) whose body says who paged from
// which channel, and adds that as the incident's first note, so the page
// says who rang. Slack's own "PagerDuty" command cannot say either.
type Pager struct {
	c    *gopd.Client
	api  string
	from string
}

var _ slack.Pager = (*Pager)(nil)

// NewPager returns a Pager. from is the email of the PagerDuty user the
// incidents and notes are created as (the REST API's From header).
func NewPager(apiURL, token, from string, hc *http.Client) (*Pager, error) {
	if token == "" || from == "" {
		return nil, errors.New("page: needs pagerduty.api_token (write access) and pagerduty.notes.from (the user it pages as)")
	}
	c := gopd.NewClient(token, gopd.WithAPIEndpoint(apiURL))
	if hc != nil {
		c.HTTPClient = hc
	}
	return &Pager{c: c, api: strings.TrimSuffix(apiURL, "/"), from: from}, nil
}

var serviceIDRE = regexp.MustCompile(`^P[A-Z0-9]{5,}$`)

// Page creates the incident and its first note.
func (p *Pager) Page(ctx context.Context, r slack.PageRequest) (slack.Reply, error) {
	svc, err := p.service(ctx, r.Service)
	if err != nil {
		return slack.Reply{}, err
	}
	caller := who(r.UserName, r.User, r.ChannelName, r.Channel)
	text := fmt.Sprintf("Paged from Slack by %s (workspace %s): %s", caller, r.Team, r.Summary)
	key := ""
	if r.ID != "" {
		// A retried request finds the open incident instead of paging
		// twice.
		key = "firstlook-slack-" + r.ID
	}
	inc, err := p.create(ctx, svc.ID, r.Summary, key, text)
	if err != nil {
		return slack.Reply{}, fmt.Errorf("pagerduty: create incident on %s: %w", svc.Name, err)
	}
	note := ""
	if _, err := p.c.CreateIncidentNoteWithContext(ctx, inc.ID, gopd.IncidentNote{Content: text, User: gopd.APIObject{Summary: p.from}}); err != nil {
		note = " (the note saying who paged could not be added: " + err.Error() + ")"
	}
	ref := fmt.Sprintf("#%d", inc.IncidentNumber)
	if inc.HTMLURL != "" {
		ref = "<" + inc.HTMLURL + "|" + ref + ">"
	}
	return slack.Reply{InChannel: true, Text: fmt.Sprintf(":rotating_light: %s paged *%s*: %s — incident %s%s",
		caller, svc.Name, r.Summary, ref, note)}, nil
}

// service finds the service by id (P…) or by exact name, case-insensitive.
func (p *Pager) service(ctx context.Context, name string) (gopd.Service, error) {
	if serviceIDRE.MatchString(name) {
		s, err := p.c.GetServiceWithContext(ctx, name, nil)
		if err != nil {
			return gopd.Service{}, fmt.Errorf("pagerduty: service %s: %w", name, err)
		}
		return *s, nil
	}
	resp, err := p.c.ListServicesWithContext(ctx, gopd.ListServiceOptions{Query: name, Limit: 100})
	if err != nil {
		return gopd.Service{}, fmt.Errorf("pagerduty: find service %q: %w", name, err)
	}
	var found []gopd.Service
	var names []string
	for _, s := range resp.Services {
		names = append(names, s.Name)
		if strings.EqualFold(s.Name, name) {
			found = append(found, s)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		if len(names) > 0 {
			return gopd.Service{}, fmt.Errorf("no PagerDuty service is called %q; close: %s", name, clipList(names, 5))
		}
		return gopd.Service{}, fmt.Errorf("no PagerDuty service is called %q", name)
	}
	return gopd.Service{}, fmt.Errorf("%d PagerDuty services are called %q: use the service id (P…)", len(found), name)
}

// create is POST /incidents with the body the REST API documents
// (https://developer.pagerduty.com/api-reference/a7d81b0e9200f-create-an-incident).
// go-pagerduty's CreateIncident always sends "priority": null, which the
// spec refuses; this sends no priority. body.details is a string, as the
// API reference and the spec's own request example have it (the spec's
// schema says object: see TestPagePrism).
func (p *Pager) create(ctx context.Context, service, title, key, details string) (gopd.Incident, error) {
	type ref struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	type body struct {
		Type    string `json:"type"`
		Details string `json:"details"`
	}
	var req struct {
		Incident struct {
			Type        string `json:"type"`
			Title       string `json:"title"`
			Service     ref    `json:"service"`
			IncidentKey string `json:"incident_key,omitempty"`
			Body        body   `json:"body"`
		} `json:"incident"`
	}
	req.Incident.Type, req.Incident.Title, req.Incident.IncidentKey = "incident", title, key
	req.Incident.Service = ref{ID: service, Type: "service_reference"}
	req.Incident.Body = body{Type: "incident_body", Details: details}
	b, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.api+"/incidents", bytes.NewReader(b))
	if err != nil {
		return gopd.Incident{}, err
	}
	hr.Header.Set("From", p.from)
	resp, err := p.c.Do(hr, true)
	if err != nil {
		return gopd.Incident{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return gopd.Incident{}, err
	}
	if resp.StatusCode/100 != 2 {
		return gopd.Incident{}, fmt.Errorf("status %d: %s", resp.StatusCode, clipText(strings.TrimSpace(string(raw)), 300))
	}
	var out struct {
		Incident gopd.Incident `json:"incident"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return gopd.Incident{}, fmt.Errorf("decode answer: %w", err)
	}
	return out.Incident, nil
}
