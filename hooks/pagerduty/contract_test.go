package pagerduty_test

import (
	"net/http"
	"testing"

	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

func TestContract(t *testing.T) {
	secret := hookstest.CapturedSecret(t)
	src, err := pagerduty.New(pagerduty.Config{}, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	good := hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json")
	unsigned := hookstest.PagerDutyRequest(good, secret, "wh-1")
	unsigned.Header.Del("X-PagerDuty-Signature")
	hookstest.Run(t, hookstest.Case{
		Source: src,
		Request: func(_ testing.TB, body []byte) *http.Request {
			return hookstest.PagerDutyRequest(body, secret, "wh-1")
		},
		Good: good,
		Forged: map[string]*http.Request{
			"wrong secret": hookstest.PagerDutyRequest(good, "not-the-secret", "wh-1"),
			"unsigned":     unsigned,
		},
		Bad: map[string]hookstest.BadBody{
			"not json": {Body: []byte("event=incident.triggered"), Reason: "not JSON"},
			"v2":       {Body: []byte(`{"messages":[{"event":"incident.trigger"}]}`), Reason: "not a PagerDuty v3 webhook"},
			"no id":    {Body: []byte(`{"event":{"event_type":"incident.triggered","data":{"type":"incident"}}}`), Reason: "no id"},
		},
	})
}

func TestResolve(t *testing.T) {
	secret := hookstest.CapturedSecret(t)
	src, err := pagerduty.New(pagerduty.Config{}, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	q := &hookstest.Queue{}
	code, reply := hookstest.Serve(t, src, q, hookstest.PagerDutyRequest(hookstest.Fixture(t, "pagerduty-v3", "incident.resolved.json"), secret, "wh-9"))
	if code != http.StatusAccepted || reply.Status != "resolved" || len(q.Resolved) != 1 || len(q.Stored) != 0 {
		t.Fatalf("got %d %+v, %d resolved, %d stored; want 202 resolved, 1 resolved, none stored", code, reply, len(q.Resolved), len(q.Stored))
	}
	if got := q.Resolved[0].Incident.ID; got != "Q2CKYRLH85UNN4" {
		t.Errorf("resolved %q, want Q2CKYRLH85UNN4", got)
	}
}
