package digest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/runner/queue"
)

// PagerDuty lists incidents through the REST API: GET /incidents for the
// window's incidents, and GET /log_entries for their first
// acknowledgement, which is gone from an incident's acknowledgements once
// it is resolved (the spec: "This list will be empty if the
// Incident.status is resolved or triggered").
type PagerDuty struct {
	c *gopd.Client
}

// NewPagerDuty returns a client of the REST API at apiURL.
func NewPagerDuty(apiURL, token string, hc *http.Client) *PagerDuty {
	c := gopd.NewClient(token, gopd.WithAPIEndpoint(apiURL))
	if hc != nil {
		c.HTTPClient = hc
	}
	return &PagerDuty{c: c}
}

// maxPages bounds the listings: 100 pages of 100.
const maxPages = 100

// Incidents returns the incidents created in [since, until).
func (p *PagerDuty) Incidents(ctx context.Context, since, until time.Time) ([]Incident, error) {
	var out []Incident
	byID := map[string]int{}
	opts := gopd.ListIncidentsOptions{
		Since: since.UTC().Format(time.RFC3339), Until: until.UTC().Format(time.RFC3339),
		Limit: 100, TimeZone: "UTC",
	}
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, fmt.Errorf("pagerduty: more than %d incidents in the window", maxPages*100)
		}
		resp, err := p.c.ListIncidentsWithContext(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("pagerduty: list incidents: %w", err)
		}
		added := 0
		for _, in := range resp.Incidents {
			inc := Incident{
				ID: in.ID, Number: in.IncidentNumber, Title: in.Title, URL: in.HTMLURL,
				Service: in.Service.Summary, Urgency: in.Urgency, Status: in.Status,
				CreatedAt: parseTime(in.CreatedAt), ResolvedAt: parseTime(in.ResolvedAt),
			}
			if inc.Service == "" {
				inc.Service = in.Service.ID
			}
			if in.Status != "resolved" {
				inc.ResolvedAt = time.Time{}
			}
			for _, a := range in.Acknowledgements {
				if at := parseTime(a.At); !at.IsZero() && (inc.AckedAt.IsZero() || at.Before(inc.AckedAt)) {
					inc.AckedAt = at
				}
			}
			if _, dup := byID[inc.ID]; dup || inc.ID == "" {
				continue
			}
			byID[inc.ID] = len(out)
			out = append(out, inc)
			added++
		}
		// A page of nothing new ends the listing too: an API (or a
		// mock) that keeps saying "more" must not loop.
		if !resp.More || added == 0 {
			break
		}
		opts.Offset += uint(len(resp.Incidents))
	}
	if len(out) == 0 {
		return out, nil
	}
	// First acknowledgements, from the log: an incident acknowledged
	// after until is not acknowledged in this window.
	lopts := gopd.ListLogEntriesOptions{
		Since: since.UTC().Format(time.RFC3339), Until: until.UTC().Format(time.RFC3339),
		Limit: 100, TimeZone: "UTC", IsOverview: true,
	}
	seen := map[string]bool{}
	for page := 0; ; page++ {
		if page == maxPages {
			break // the incidents' own fields stand
		}
		resp, err := p.c.ListLogEntriesWithContext(ctx, lopts)
		if err != nil {
			return nil, fmt.Errorf("pagerduty: list log entries: %w", err)
		}
		added := 0
		for _, le := range resp.LogEntries {
			if seen[le.ID] {
				continue
			}
			seen[le.ID] = true
			added++
			i, ok := byID[le.Incident.ID]
			if !ok {
				continue
			}
			at := parseTime(le.CreatedAt)
			switch le.Type {
			case "acknowledge_log_entry":
				if a := &out[i].AckedAt; a.IsZero() || at.Before(*a) {
					*a = at
				}
			case "resolve_log_entry":
				if r := &out[i].ResolvedAt; r.IsZero() && out[i].Status == "resolved" {
					*r = at
				}
			}
		}
		if !resp.More || added == 0 {
			break
		}
		lopts.Offset += uint(len(resp.LogEntries))
	}
	return out, nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// State is the per-incident state (runner/queue).
type State interface {
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	Keys(ctx context.Context, filters ...string) ([]string, error)
}

// runState is the part of the runner's per-run state read here.
type runState struct {
	Status  string    `json:"status"`
	Since   time.Time `json:"since"`
	Bundle  string    `json:"bundle"`
	Outcome string    `json:"outcome"`
}

// Runs returns the runs firstlook finished in [since, until), with links
// to their evidence.
func Runs(ctx context.Context, st State, store evidence.Store, since, until time.Time) ([]Run, error) {
	keys, err := st.Keys(ctx, "run.>")
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	var out []Run
	for _, k := range keys {
		parts, err := queue.SplitKey(k)
		if err != nil || len(parts) < 5 {
			continue
		}
		raw, _, err := st.Get(ctx, k)
		if err != nil {
			continue
		}
		var rs runState
		if jsonUnmarshal(raw, &rs) != nil || rs.Status != "done" || rs.Since.Before(since) || !rs.Since.Before(until) {
			continue
		}
		// A run people asked for again is scoped "<incident>/again/<id>".
		inc, _, _ := strings.Cut(parts[2], "/again/")
		r := Run{Source: parts[1], Incident: inc, Host: parts[3], Playbook: parts[4], At: rs.Since, Outcome: rs.Outcome}
		if store != nil && rs.Bundle != "" {
			if l, err := store.Link(ctx, strings.TrimSuffix(rs.Bundle, "/")+"/"+evidence.ManifestFile); err == nil {
				r.Link = l
			}
		}
		out = append(out, r)
	}
	return out, nil
}
