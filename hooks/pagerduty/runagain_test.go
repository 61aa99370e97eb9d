package pagerduty_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

const actionSecret = "run-again-secret-0123456789"

func actionRequest(body []byte, header, secret, delivery string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/pagerduty-run-again", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if secret != "" {
		r.Header.Set(header, secret)
	}
	if delivery != "" {
		r.Header.Set("X-Webhook-Id", delivery)
	}
	return r
}

func TestRunAgainContract(t *testing.T) {
	good, err := os.ReadFile("testdata/incident.custom.v2.json")
	if err != nil {
		t.Fatal(err)
	}
	src, err := pagerduty.NewRunAgain(pagerduty.RunAgainConfig{}, []string{"old-secret-0123456789", actionSecret})
	if err != nil {
		t.Fatal(err)
	}
	hookstest.Run(t, hookstest.Case{
		Source: src,
		Request: func(_ testing.TB, body []byte) *http.Request {
			return actionRequest(body, pagerduty.DefaultRunAgainHeader, actionSecret, "wh-7")
		},
		Good: good,
		Forged: map[string]*http.Request{
			"no header":      actionRequest(good, "", "", "wh-7"),
			"wrong secret":   actionRequest(good, pagerduty.DefaultRunAgainHeader, "run-again-secret-012345678", "wh-7"),
			"other header":   hookstest.RunAgainRequest(good, "X-Other", actionSecret, "wh-7"),
			"webhook signed": withSig(actionRequest(good, "", "", "wh-7"), good),
		},
		Bad: map[string]hookstest.BadBody{
			"not json":    {Body: []byte("incident.custom"), Reason: "not a PagerDuty Custom Incident Action"},
			"no messages": {Body: []byte(`{"messages":[]}`), Reason: "no messages"},
			"no incident": {Body: []byte(`{"messages":[{"event":"incident.custom","id":"m"}]}`), Reason: "no incident id"},
		},
	})
}

// withSig signs the body as a webhook: the action is not a webhook
// subscription, and a webhook signature does not stand for its secret.
func withSig(r *http.Request, body []byte) *http.Request {
	r.Header.Set("X-PagerDuty-Signature", pagerduty.Sign(body, actionSecret))
	return r
}

func TestRunAgainParse(t *testing.T) {
	good, err := os.ReadFile("testdata/incident.custom.v2.json")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := pagerduty.ParseRunAgain(good, "wh-7")
	if err != nil {
		t.Fatal(err)
	}
	tr := ts[0]
	if !tr.Again || tr.Source != "pagerduty" || tr.Event != "incident.triggered" || tr.Incident.ID != "PGR0VU2" || tr.Incident.Number != 2 || tr.Incident.Service.Name != "API Service" || tr.Incident.Priority != "P2" {
		t.Errorf("got %+v", tr)
	}
	if tr.Note != "Run again by Jane Doe from PagerDuty." {
		t.Errorf("got note %q, want it to name who pressed", tr.Note)
	}
	// Each press is its own request; PagerDuty's retry of one press is
	// the same delivery.
	if again, _ := pagerduty.ParseRunAgain(good, "wh-8"); again[0].DeliveryID == tr.DeliveryID {
		t.Error("two presses share a delivery id")
	}
	anon := bytes.Replace(good, []byte(`"custom_log_entry"`), []byte(`"annotate_log_entry"`), 1)
	if ts, _ := pagerduty.ParseRunAgain(anon, "wh-9"); !strings.Contains(ts[0].Note, "did not say by whom") {
		t.Errorf("got note %q without an agent", ts[0].Note)
	}
	other := bytes.Replace(good, []byte(`"incident.custom"`), []byte(`"incident.acknowledge"`), 1)
	src, _ := pagerduty.NewRunAgain(pagerduty.RunAgainConfig{}, []string{actionSecret})
	if code, reply := hookstest.Serve(t, src, &hookstest.Queue{}, actionRequest(other, pagerduty.DefaultRunAgainHeader, actionSecret, "wh-10")); code != http.StatusAccepted || reply.Status != "ignored" {
		t.Errorf("other v2 event: got %d %+v, want 202 ignored", code, reply)
	}
	if _, err := pagerduty.NewRunAgain(pagerduty.RunAgainConfig{}, []string{""}); err == nil || !strings.Contains(err.Error(), "no secrets") {
		t.Errorf("got %v, want a no-secrets error", err)
	}
	if _, err := pagerduty.NewRunAgain(pagerduty.RunAgainConfig{Header: "X Bad:"}, []string{actionSecret}); err == nil {
		t.Error("a bad header name was accepted")
	}
}

func FuzzParseRunAgain(f *testing.F) {
	good, err := os.ReadFile("testdata/incident.custom.v2.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"messages":[{"event":"incident.custom","incident":{"id":"X"},"log_entries":[{"type":"custom_log_entry","agent":null}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ts, err := pagerduty.ParseRunAgain(body, "d")
		if err != nil {
			return
		}
		for _, tr := range ts {
			if tr.Event == pagerduty.EventRunAgain && (tr.Incident.ID == "" || tr.DeliveryID == "" || !tr.Again) {
				t.Fatalf("accepted an incomplete trigger: %+v", tr)
			}
		}
	})
}
