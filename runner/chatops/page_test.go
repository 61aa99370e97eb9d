package chatops_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/pagerduty/pdtest"
	"github.com/firstlook/firstlook/hooks/slack"
	"github.com/firstlook/firstlook/runner/chatops"
)

var pageReq = slack.PageRequest{
	ID: "1234.5678.abcd", Service: "Web (prod)", Summary: "checkout returns 502",
	User: "U0SRE0001", UserName: "sam", Channel: "C0OPS0001", ChannelName: "ops", Team: "T0FIRSTLK",
}

// Every request a page sends is checked against PagerDuty's spec. The
// spec's schema says incident.body.details is an object, while its own
// request example, the API reference and the live API take a string: that
// one violation is expected, and nothing else may be violated.
func TestPagePrism(t *testing.T) {
	p, err := pdtest.Mock()
	if err != nil {
		pdtest.RequireIntegration(t, err)
	}
	defer p.Close()
	check := &pdtest.Check{}
	pager, err := chatops.NewPager(p.URL, "pd-token", "firstlook@example.com", &http.Client{Transport: check, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := pageReq
	r.Service = "PSVC123" // by id: Prism's example list names another service
	_, err = pager.Page(context.Background(), r)
	ex := check.Exchanges()
	if len(ex) != 2 || ex[0].String() != "GET /services/PSVC123 200" || ex[0].Violations != "" || ex[1].Path != "/incidents" {
		t.Fatalf("got %v", ex)
	}
	var vs []struct {
		Location []string `json:"location"`
	}
	if err := json.Unmarshal([]byte(ex[1].Violations), &vs); err != nil {
		t.Fatalf("POST /incidents violations %q: %v", ex[1].Violations, err)
	}
	if len(vs) != 1 || strings.Join(vs[0].Location, ".") != "request.body.incident.body.details" {
		t.Errorf("POST /incidents: got violations %s, want only body.details' type", ex[1].Violations)
	}
	if err == nil || !strings.Contains(err.Error(), "status 400") {
		t.Errorf("got %v, want Prism's refusal", err)
	}
}

// The incident's details and its first note say who paged from where.
func TestPageSaysWhoRang(t *testing.T) {
	var mu sync.Mutex
	bodies := map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[r.Method+" "+r.URL.Path] = string(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/services":
			io.WriteString(w, `{"services":[{"id":"PWEB001","name":"Web (prod)"},{"id":"PWEB002","name":"Web (staging)"}],"more":false}`)
		case r.URL.Path == "/incidents":
			w.WriteHeader(201)
			io.WriteString(w, `{"incident":{"id":"Q9","incident_number":42,"html_url":"https://acme.pagerduty.com/incidents/Q9"}}`)
		default:
			io.WriteString(w, `{"note":{"id":"N1"}}`)
		}
	}))
	defer srv.Close()
	pager, err := chatops.NewPager(srv.URL, "pd-token", "firstlook@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := pager.Page(context.Background(), pageReq)
	if err != nil {
		t.Fatal(err)
	}
	if want := ":rotating_light: sam (U0SRE0001) in #ops paged *Web (prod)*: checkout returns 502 — incident <https://acme.pagerduty.com/incidents/Q9|#42>"; rep.Text != want {
		t.Errorf("got %q, want %q", rep.Text, want)
	}
	var inc struct {
		Incident struct {
			Title       string `json:"title"`
			IncidentKey string `json:"incident_key"`
			Service     struct{ ID string }
			Body        struct{ Details string }
		}
	}
	if err := json.Unmarshal([]byte(bodies["POST /incidents"]), &inc); err != nil {
		t.Fatal(err)
	}
	who := "Paged from Slack by sam (U0SRE0001) in #ops (workspace T0FIRSTLK): checkout returns 502"
	if inc.Incident.Service.ID != "PWEB001" || inc.Incident.Title != "checkout returns 502" || inc.Incident.Body.Details != who || inc.Incident.IncidentKey != "firstlook-slack-1234.5678.abcd" {
		t.Errorf("got incident %+v", inc.Incident)
	}
	if !strings.Contains(bodies["POST /incidents/Q9/notes"], who) {
		t.Errorf("got note %s", bodies["POST /incidents/Q9/notes"])
	}
	r := pageReq
	r.Service = "Web"
	if _, err := pager.Page(context.Background(), r); err == nil || !strings.Contains(err.Error(), `no PagerDuty service is called "Web"; close: Web (prod), Web (staging)`) {
		t.Errorf("got %v", err)
	}
}
