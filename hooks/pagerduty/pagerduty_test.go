package pagerduty_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// queueFunc adapts a function to hooks.Queue.
type queueFunc func(ctx context.Context, t hooks.Trigger) (bool, error)

func (f queueFunc) Put(ctx context.Context, t hooks.Trigger) (bool, error) { return f(ctx, t) }

type recorder struct {
	puts []hooks.Trigger
	dup  bool
	err  error
}

func (r *recorder) queue() hooks.Queue {
	return queueFunc(func(_ context.Context, t hooks.Trigger) (bool, error) {
		if r.err != nil {
			return false, r.err
		}
		r.puts = append(r.puts, t)
		return r.dup, nil
	})
}

func newHandler(t *testing.T, cfg pagerduty.Config, secrets []string, q hooks.Queue) http.Handler {
	t.Helper()
	h, err := pagerduty.NewHandler(cfg, secrets, q, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func post(h http.Handler, body []byte, header map[string]string) (*httptest.ResponseRecorder, hooks.Reply) {
	req := httptest.NewRequest(http.MethodPost, "/hooks/pagerduty", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var reply hooks.Reply
	_ = json.Unmarshal(rec.Body.Bytes(), &reply)
	return rec, reply
}

func TestHandler(t *testing.T) {
	v := hookstest.PagerDutyVectors(t)
	captured := v.Sets[0].Secret
	goPD := v.Sets[1].Secret
	triggered := hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json")
	sigTriggered := v.Sets[0].Vectors[1].Signature
	if v.Sets[0].Vectors[1].File != "incident.triggered.json" {
		t.Fatalf("vector order changed: got %s", v.Sets[0].Vectors[1].File)
	}
	huge := append([]byte(`{"event":{"event_type":"incident.triggered","x":"`), bytes.Repeat([]byte("a"), hooks.MaxBody)...)
	huge = append(huge, `"}}`...)
	notJSON := []byte("event=incident.triggered")
	v2 := []byte(`{"messages":[{"event":"incident.trigger"}]}`)
	serviceUpdated := hookstest.Fixture(t, "pagerduty-v3", "service.updated.devdocs.json")
	noteBody := hookstest.Fixture(t, "pagerduty-v3", "incident.annotated.json")

	tests := []struct {
		name    string
		cfg     pagerduty.Config
		secrets []string
		body    []byte
		header  map[string]string
		qerr    error
		dup     bool
		want    int
		status  string
		puts    int
		reason  string
	}{
		{name: "signed triggered", body: triggered, header: map[string]string{"X-PagerDuty-Signature": sigTriggered, "X-Webhook-Id": "wh-1"}, want: 202, status: "queued", puts: 1},
		{name: "rotation header", body: triggered, header: map[string]string{"X-PagerDuty-Signature": v.Rotation.Signature, "X-Webhook-Id": "wh-2"}, want: 202, status: "queued", puts: 1},
		{name: "second configured secret", secrets: []string{goPD, captured}, body: triggered, header: map[string]string{"X-PagerDuty-Signature": sigTriggered}, want: 202, status: "queued", puts: 1},
		{name: "unsigned", body: triggered, want: 401, reason: "missing X-PagerDuty-Signature"},
		{name: "tampered signature", body: hookstest.Fixture(t, "pagerduty-v3", v.Sets[0].Negative.File), header: map[string]string{"X-PagerDuty-Signature": v.Sets[0].Negative.Signature}, want: 401, reason: "matches none"},
		{name: "tampered body", body: bytes.Replace(triggered, []byte(`"Test"`), []byte(`"Tost"`), 1), header: map[string]string{"X-PagerDuty-Signature": sigTriggered}, want: 401, reason: "matches none"},
		{name: "wrong secret", secrets: []string{goPD}, body: triggered, header: map[string]string{"X-PagerDuty-Signature": sigTriggered}, want: 401},
		{name: "malformed header", body: triggered, header: map[string]string{"X-PagerDuty-Signature": "sha256=abc"}, want: 401, reason: "malformed"},
		{name: "too large", body: huge, header: map[string]string{"X-PagerDuty-Signature": hookstest.Sign(huge, captured)}, want: 413},
		{name: "not json", body: notJSON, header: map[string]string{"X-PagerDuty-Signature": hookstest.Sign(notJSON, captured)}, want: 400, reason: "not JSON"},
		{name: "not a v3 envelope", body: v2, header: map[string]string{"X-PagerDuty-Signature": hookstest.Sign(v2, captured)}, want: 400, reason: "not a PagerDuty v3 webhook"},
		{name: "ping", body: hookstest.Fixture(t, "pagerduty-v3", "pagey.ping.json"), header: map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[0].Signature}, want: 200, status: "pong"},
		{name: "acknowledged not configured", body: hookstest.Fixture(t, "pagerduty-v3", "incident.acknowledged.json"), header: map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[2].Signature}, want: 202, status: "ignored", reason: "incident.acknowledged"},
		{name: "service event not configured", body: serviceUpdated, header: map[string]string{"X-PagerDuty-Signature": hookstest.Sign(serviceUpdated, captured)}, want: 202, status: "ignored"},
		{name: "service event configured", cfg: pagerduty.Config{Events: []string{"service.updated"}}, body: serviceUpdated, header: map[string]string{"X-PagerDuty-Signature": hookstest.Sign(serviceUpdated, captured)}, want: 400, reason: "not an incident"},
		{name: "annotated configured", cfg: pagerduty.Config{Events: []string{"incident.annotated"}}, body: noteBody, header: map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[4].Signature}, want: 202, status: "queued", puts: 1},
		{name: "duplicate delivery", body: triggered, dup: true, header: map[string]string{"X-PagerDuty-Signature": sigTriggered, "X-Webhook-Id": "wh-1"}, want: 202, status: "duplicate", puts: 1},
		{name: "queue down", body: triggered, qerr: errors.New("nats: timeout"), header: map[string]string{"X-PagerDuty-Signature": sigTriggered}, want: 503, reason: "queue unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			secrets := tc.secrets
			if secrets == nil {
				secrets = []string{captured}
			}
			rec := &recorder{dup: tc.dup, err: tc.qerr}
			resp, reply := post(newHandler(t, tc.cfg, secrets, rec.queue()), tc.body, tc.header)
			if resp.Code != tc.want {
				t.Fatalf("got %d %s, want %d", resp.Code, resp.Body, tc.want)
			}
			if tc.status != "" && reply.Status != tc.status {
				t.Errorf("got status %q, want %q", reply.Status, tc.status)
			}
			if !strings.Contains(reply.Reason, tc.reason) {
				t.Errorf("got reason %q, want it to contain %q", reply.Reason, tc.reason)
			}
			if len(rec.puts) != tc.puts {
				t.Errorf("got %d jobs queued, want %d", len(rec.puts), tc.puts)
			}
			if resp.Code >= 400 && reply.Reason == "" {
				t.Errorf("refusal without a reason: %s", resp.Body)
			}
		})
	}
}

func TestHandlerMethod(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, pagerduty.Config{}, []string{"s"}, rec.queue())
	req := httptest.NewRequest(http.MethodGet, "/hooks/pagerduty", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("got %d, want 405", w.Code)
	}
}

func TestNewHandlerNeedsSecret(t *testing.T) {
	_, err := pagerduty.NewHandler(pagerduty.Config{}, []string{""}, nil, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "no webhook secret") {
		t.Fatalf("got %v, want a no-secret error", err)
	}
	_, err = pagerduty.NewHandler(pagerduty.Config{Events: []string{"triggered"}}, []string{"s"}, nil, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "events[0]") {
		t.Fatalf("got %v, want an events error", err)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		file     string
		delivery string
		want     hooks.Trigger
	}{
		{
			file:     "incident.triggered.json",
			delivery: "wh-1",
			want: hooks.Trigger{
				Source: "pagerduty", DeliveryID: "wh-1", Event: "incident.triggered",
				Incident: hooks.Incident{
					ID: "Q2CKYRLH85UNN4", Number: 37, Title: "Test",
					URL:     "https://aldaviva.pagerduty.com/incidents/Q2CKYRLH85UNN4",
					Service: hooks.Service{ID: "PNE3JZM", Name: "Webhook Tester"},
					Urgency: "low", Status: "triggered",
					CreatedAt: time.Date(2025, 4, 7, 3, 47, 13, 0, time.UTC),
				},
			},
		},
		{
			file: "incident.priority_updated.go-pagerduty.json",
			want: hooks.Trigger{
				Source: "pagerduty", DeliveryID: "01BWDWL3NYY7LUFPZCC28QUCMK", Event: "incident.priority_updated",
				Incident: hooks.Incident{
					ID: "PGR0VU2", Number: 2, Title: "A little bump in the road",
					URL:     "https://acme.pagerduty.com/incidents/PGR0VU2",
					Service: hooks.Service{ID: "PF9KMXH", Name: "API Service"},
					Urgency: "high", Priority: "P1", Status: "triggered",
				},
			},
		},
		{
			file:     "incident.annotated.json",
			delivery: "wh-3",
			want: hooks.Trigger{
				Source: "pagerduty", DeliveryID: "wh-3", Event: "incident.annotated",
				Incident: hooks.Incident{ID: "Q2CKYRLH85UNN4", Title: "Test", URL: "https://aldaviva.pagerduty.com/incidents/Q2CKYRLH85UNN4"},
			},
		},
		{
			file: "incident.priority_updated.devdocs.json",
			want: hooks.Trigger{
				Source: "pagerduty", DeliveryID: "5ac64822-4adc-4fda-ade0-410becf0de4f", Event: "incident.priority_updated",
				Incident: hooks.Incident{
					ID: "PGR0VU2", Number: 2, Title: "A little bump in the road",
					URL:     "https://acme.pagerduty.com/incidents/PGR0VU2",
					Service: hooks.Service{ID: "PF9KMXH", Name: "API Service"},
					Urgency: "high", Priority: "P1", Status: "triggered",
					CreatedAt: time.Date(2020, 4, 9, 15, 16, 27, 0, time.UTC),
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			got, err := pagerduty.Parse(hookstest.Fixture(t, "pagerduty-v3", tc.file), tc.delivery)
			if err != nil {
				t.Fatal(err)
			}
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(tc.want)
			if !bytes.Equal(gj, wj) {
				t.Errorf("got  %s\nwant %s", gj, wj)
			}
		})
	}
	if _, err := pagerduty.Parse(hookstest.Fixture(t, "pagerduty-v3", "pagey.ping.json"), ""); !errors.Is(err, pagerduty.ErrPing) {
		t.Errorf("ping: got %v, want ErrPing", err)
	}
	if _, err := pagerduty.Parse(hookstest.Fixture(t, "pagerduty-v3", "service.updated.devdocs.json"), ""); !errors.Is(err, pagerduty.ErrNotIncident) {
		t.Errorf("service.updated: got %v, want ErrNotIncident", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"event":{"event_type":"incident.triggered","data":{"type":"incident","id":"X"}}}`))
	f.Add([]byte(`{"event":{"event_type":"incident.annotated","data":{"type":"incident_note"}}}`))
	f.Add([]byte(`{"event":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := pagerduty.Parse(body, "d")
		if err == nil && (tr.Incident.ID == "" || tr.Event == "" || tr.DeliveryID == "") {
			t.Fatalf("accepted a trigger without incident id, event or delivery: %+v", tr)
		}
	})
}

// FuzzParseAgrees: the fast decoder and encoding/json give the same
// Trigger, or both refuse, for any body.
func FuzzParseAgrees(f *testing.F) {
	for _, name := range []string{"incident.triggered.json", "incident.annotated.json", "incident.priority_updated.go-pagerduty.json", "service.updated.devdocs.json", "pagey.ping.json"} {
		f.Add(hookstest.Fixture(f, "pagerduty-v3", name))
	}
	f.Add([]byte(`{"event":{"event_type":"incident.triggered","ID":"x","data":{"TYPE":"incident","id":"A","number":1e2}}}`))
	f.Add([]byte(`{"event":{"event_type":"incident.triggered","data":{"type":"incident","id":"A","title":"\ud800"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fast, ferr := pagerduty.Parse(body, "")
		var std hooks.Trigger
		var serr error
		pagerduty.WithStdlibJSON(func() { std, serr = pagerduty.Parse(body, "") })
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("decoders disagree on %q: fast %v, encoding/json %v", body, ferr, serr)
		}
		fj, _ := json.Marshal(fast)
		sj, _ := json.Marshal(std)
		if !bytes.Equal(fj, sj) {
			t.Fatalf("decoders disagree on %q:\nfast %s\nstd  %s", body, fj, sj)
		}
	})
}
