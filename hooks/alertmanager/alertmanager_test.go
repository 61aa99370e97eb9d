package alertmanager_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/alertmanager"
	"github.com/firstlook/firstlook/hooks/hookstest"
)

func newSource(t *testing.T) *alertmanager.Webhooks {
	t.Helper()
	src, err := alertmanager.New(alertmanager.Config{}, []string{"old-token", "new-token"}, []hooks.BasicAuth{{Username: "am", Password: "pw-1"}})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func request(body []byte, auth string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/alertmanager", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Alertmanager/0.31.1")
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	return r
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

func TestContract(t *testing.T) {
	good := hookstest.Fixture(t, "alertmanager", "v4-firing.json")
	hookstest.Run(t, hookstest.Case{
		Source:  newSource(t),
		Request: func(_ testing.TB, body []byte) *http.Request { return request(body, "Bearer new-token") },
		Good:    good,
		Forged: map[string]*http.Request{
			"no credentials":     request(good, ""),
			"wrong token":        request(good, "Bearer nope"),
			"token prefix":       request(good, "Bearer new-toke"),
			"wrong password":     request(good, basic("am", "pw-2")),
			"wrong user":         request(good, basic("root", "pw-1")),
			"token as basic":     request(good, basic("new-token", "")),
			"other scheme":       request(good, "Token new-token"),
			"empty bearer token": request(good, "Bearer "),
		},
		Bad: map[string]hookstest.BadBody{
			"not json":       {Body: []byte("alertname=x"), Reason: "not an Alertmanager webhook"},
			"version 3":      {Body: bytes.Replace(good, []byte(`"version":"4"`), []byte(`"version":"3"`), 1), Reason: "version"},
			"no group key":   {Body: bytes.Replace(good, []byte(`"groupKey"`), []byte(`"groupKeyX"`), 1), Reason: "groupKey"},
			"no alerts":      {Body: []byte(`{"version":"4","groupKey":"{}:{}","alerts":[]}`), Reason: "no alerts"},
			"no fingerprint": {Body: bytes.Replace(good, []byte(`"fingerprint"`), []byte(`"fingerprintX"`), 1), Reason: "fingerprint"},
			"labels not map": {Body: []byte(`{"version":"4","groupKey":"k","alerts":[{"status":"firing","labels":["a"]}]}`), Reason: "not an Alertmanager webhook"},
			"odd status":     {Body: bytes.Replace(good, []byte(`"status":"firing","labels"`), []byte(`"status":"pending","labels"`), 1), Reason: "neither firing nor resolved"},
		},
	})
}

func TestBasicAuthAndRotation(t *testing.T) {
	good := hookstest.Fixture(t, "alertmanager", "v4-firing.json")
	for _, auth := range []string{"Bearer old-token", "Bearer new-token", "bearer new-token", basic("am", "pw-1")} {
		code, reply := hookstest.Serve(t, newSource(t), &hookstest.Queue{}, request(good, auth))
		if code != http.StatusAccepted || reply.Status != "queued" {
			t.Errorf("%s: got %d %+v, want 202 queued", auth, code, reply)
		}
	}
	for _, r := range []*http.Request{hookstest.AlertmanagerRequest(good, "old-token", ""), hookstest.AlertmanagerRequest(good, "", "am:pw-1")} {
		if code, reply := hookstest.Serve(t, newSource(t), &hookstest.Queue{}, r); code != http.StatusAccepted {
			t.Errorf("hookstest request: got %d %+v", code, reply)
		}
	}
}

func TestNeedsCredentials(t *testing.T) {
	for _, tokens := range [][]string{nil, {""}} {
		if _, err := alertmanager.New(alertmanager.Config{}, tokens, nil); err == nil || !strings.Contains(err.Error(), "no credentials") {
			t.Errorf("got %v, want a no-credentials error", err)
		}
	}
	if _, err := alertmanager.New(alertmanager.Config{}, nil, []hooks.BasicAuth{{Username: "a"}}); err == nil || !strings.Contains(err.Error(), "basic_auth[0]") {
		t.Errorf("got %v, want a basic_auth error", err)
	}
	if _, err := alertmanager.New(alertmanager.Config{HostLabels: []string{" "}}, []string{"t"}, nil); err == nil || !strings.Contains(err.Error(), "host_labels[0]") {
		t.Errorf("got %v, want a host_labels error", err)
	}
}

func TestParse(t *testing.T) {
	ts, err := alertmanager.Parse(hookstest.Fixture(t, "alertmanager", "v4-firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 {
		t.Fatalf("got %d triggers, want 1", len(ts))
	}
	tr := ts[0]
	if tr.Event != alertmanager.EventFiring || tr.Incident.ID != "ee4205d5c7c91149-1795419000" || tr.Incident.Service.Name != "diag-bot" || tr.Incident.Priority != "critical" {
		t.Errorf("got %+v", tr)
	}
	if want := "NodeFilesystemAlmostOutOfSpace: Filesystem has less than 5% space left."; tr.Incident.Title != want {
		t.Errorf("got title %q, want %q", tr.Incident.Title, want)
	}
	if want := (hooks.Hints{Names: []string{"web-01.example.com"}}); !reflect.DeepEqual(tr.Hints, want) {
		t.Errorf("got hints %+v, want %+v", tr.Hints, want)
	}
	if tr.Labels["mountpoint"] != "/" || tr.Labels["runbook_url"] == "" || tr.Labels["alertname"] != "NodeFilesystemAlmostOutOfSpace" {
		t.Errorf("labels and annotations are not template fields: %v", tr.Labels)
	}

	res, err := alertmanager.Parse(hookstest.Fixture(t, "alertmanager", "v4-resolved.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Event != alertmanager.EventResolved || res[0].Incident.ID != tr.Incident.ID {
		t.Errorf("resolved: got %+v, want the firing alert's incident resolved", res)
	}
	if res[0].DeliveryID == tr.DeliveryID {
		t.Error("resolved and firing share a delivery id")
	}
}

// TestHostLabels: the configured label keys in order; ports go, IPs are
// IPs.
func TestHostLabels(t *testing.T) {
	body := func(labels string) []byte {
		return []byte(`{"version":"4","groupKey":"g","receiver":"r","alerts":[{"status":"firing","fingerprint":"f","startsAt":"2026-01-01T00:00:00Z","labels":` + labels + `}]}`)
	}
	tests := []struct {
		cfg    []string
		labels string
		want   hooks.Hints
	}{
		{nil, `{"instance":"10.0.0.7:9100","nodename":"web-7"}`, hooks.Hints{Names: []string{"web-7"}, IPs: []string{"10.0.0.7"}}},
		{nil, `{"instance":"[::1]:9100"}`, hooks.Hints{IPs: []string{"::1"}}},
		{nil, `{"hostname":"db-1","host":"db-1"}`, hooks.Hints{Names: []string{"db-1"}}},
		{nil, `{"job":"node"}`, hooks.Hints{}},
		{[]string{"node"}, `{"node":"k8s-3:10250","instance":"x"}`, hooks.Hints{Names: []string{"k8s-3"}}},
	}
	for _, tc := range tests {
		src, err := alertmanager.New(alertmanager.Config{HostLabels: tc.cfg}, []string{"t"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := src.Parse(nil, body(tc.labels))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ts[0].Hints, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.labels, ts[0].Hints, tc.want)
		}
	}
}

// TestGroup: a group with firing and resolved alerts stores the firing
// ones and resolves the others; a truncated group says so on the run; the
// HA peer's copy of the group stores nothing new.
func TestGroup(t *testing.T) {
	body := []byte(`{"version":"4","groupKey":"{}:{alertname=\"Disk\"}","receiver":"r","truncatedAlerts":3,"alerts":[
 {"status":"firing","fingerprint":"a1","startsAt":"2026-01-01T00:00:00Z","labels":{"alertname":"Disk","instance":"web-1:9100"}},
 {"status":"firing","fingerprint":"a2","startsAt":"2026-01-01T00:00:00Z","labels":{"alertname":"Disk","instance":"web-2:9100"}},
 {"status":"resolved","fingerprint":"a3","startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T00:05:00Z","labels":{"alertname":"Disk","instance":"web-3:9100"}}]}`)
	q := &hookstest.Queue{}
	src := newSource(t)
	code, reply := hookstest.Serve(t, src, q, request(body, "Bearer old-token"))
	if code != http.StatusAccepted || reply.Status != "queued" || reply.Reason != "2 queued, 1 resolved" {
		t.Fatalf("got %d %+v, want 202 queued, reason 2 queued, 1 resolved", code, reply)
	}
	if len(q.Stored) != 2 || len(q.Resolved) != 1 || q.Resolved[0].Incident.ID != "a3-1767225600" {
		t.Fatalf("got %d stored, resolved %+v", len(q.Stored), q.Resolved)
	}
	if !strings.Contains(q.Stored[0].Note, "3 more alerts") {
		t.Errorf("truncatedAlerts not reported: %q", q.Stored[0].Note)
	}
	// The HA peer sends the same group (other peer, same group key).
	code, reply = hookstest.Serve(t, src, q, request(body, basic("am", "pw-1")))
	if code != http.StatusAccepted || reply.Status != "duplicate" || len(q.Stored) != 2 {
		t.Fatalf("peer: got %d %+v with %d stored, want nothing new stored", code, reply, len(q.Stored))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(hookstest.Fixture(f, "alertmanager", "v4-firing.json"))
	f.Add(hookstest.Fixture(f, "alertmanager", "v4-resolved.json"))
	f.Add([]byte(`{"version":"4","groupKey":"g","alerts":[{"status":"firing","fingerprint":"f","startsAt":"2026-01-01T00:00:00Z","labels":{"instance":"[::1"}}]}`))
	f.Add([]byte(`{"version":"4","groupKey":"g","alerts":[null]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ts, err := alertmanager.Parse(body)
		if err != nil {
			return
		}
		for _, tr := range ts {
			if tr.DeliveryID == "" || tr.Incident.ID == "" || (tr.Event != alertmanager.EventFiring && tr.Event != alertmanager.EventResolved) {
				t.Fatalf("accepted an incomplete trigger: %+v", tr)
			}
		}
	})
}
