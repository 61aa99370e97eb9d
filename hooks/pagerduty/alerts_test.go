package pagerduty_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// alertsBody is a listIncidentAlerts response in the documented shape:
// one alert from the Events API v2 (cef_details) and one from an
// integration that put the host in custom details.
const alertsBody = `{"alerts":[
 {"id":"PT4KHLK","type":"alert","status":"triggered","body":{"type":"alert_body",
  "cef_details":{"source_origin":"web-1","details":{"hostname":"web-1.prod.example.com"}},
  "details":{"host":"10.1.0.12","instance":"i-0abc1234def567890","ignored":"db-9"}}},
 {"id":"PT4KHLL","type":"alert","status":"triggered","body":{"type":"alert_body","details":{"host":"web-1"}}},
 {"id":"PT4KHLM","type":"alert","status":"triggered","body":null}
],"limit":100,"offset":0,"more":false}`

func TestAlertsHints(t *testing.T) {
	var gotPath, gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotAuth = r.URL.Path+"?"+r.URL.RawQuery, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(alertsBody))
	}))
	defer srv.Close()
	a := pagerduty.NewAlerts(pagerduty.Config{APIURL: srv.URL}, "tok-123")
	h, err := a.Hints(context.Background(), hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "Q2CKYRLH85UNN4"}})
	if err != nil {
		t.Fatal(err)
	}
	want := hooks.Hints{
		Names:       []string{"web-1", "web-1.prod.example.com"},
		IPs:         []string{"10.1.0.12"},
		InstanceIDs: []string{"i-0abc1234def567890"},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("got %+v, want %+v", h, want)
	}
	if !strings.HasPrefix(gotPath, "/incidents/Q2CKYRLH85UNN4/alerts?") || !strings.Contains(gotPath, "limit=100") {
		t.Errorf("got request %s, want /incidents/Q2CKYRLH85UNN4/alerts?limit=100", gotPath)
	}
	if gotAuth != "Token token=tok-123" {
		t.Errorf("got Authorization %q", gotAuth)
	}
}

func TestAlertsOtherSource(t *testing.T) {
	a := pagerduty.NewAlerts(pagerduty.Config{APIURL: "http://127.0.0.1:1"}, "tok")
	h, err := a.Hints(context.Background(), hooks.Trigger{Source: "alertmanager"})
	if err != nil || !h.Empty() {
		t.Fatalf("got %+v, %v; want nothing for another source", h, err)
	}
}

func TestAlertsError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"Invalid Token"}}`, http.StatusUnauthorized)
	}))
	defer srv.Close()
	a := pagerduty.NewAlerts(pagerduty.Config{APIURL: srv.URL}, "bad")
	_, err := a.Hints(context.Background(), hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "X"}})
	if err == nil || !strings.Contains(err.Error(), "list alerts of X") {
		t.Fatalf("got %v, want a list alerts error", err)
	}
	if strings.Contains(err.Error(), "bad") && strings.Contains(err.Error(), "token=bad") {
		t.Fatalf("error shows the token: %v", err)
	}
}
