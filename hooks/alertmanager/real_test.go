package alertmanager_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/alertmanager"
	"github.com/firstlook/firstlook/hooks/alertmanager/amtest"
	"github.com/firstlook/firstlook/hooks/hookstest"
)

// TestRealAlertmanager: two real Alertmanager processes, one
// authenticating with a bearer token and one with basic auth, both get the
// same alert (an HA pair before gossip settles); both deliver it, and one
// trigger is stored. Resolving the alert records the resolve. About 3 s.
func TestRealAlertmanager(t *testing.T) {
	amtest.Binary(t)
	q := &hookstest.Queue{}
	srv := httptest.NewServer(hooks.NewHandler(newSource(t), hooks.Options{Queue: q, Resolver: q, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer srv.Close()
	url := srv.URL + "/hooks/alertmanager"
	a := amtest.Start(t, amtest.Options{WebhookURL: url, HTTPConfig: "authorization:\n  credentials: old-token"})
	b := amtest.Start(t, amtest.Options{WebhookURL: url, HTTPConfig: "basic_auth:\n  username: am\n  password: pw-1"})

	start := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	alert := amtest.Alert{
		Labels:      map[string]string{"alertname": "DiskFull", "instance": "web-01:9100", "mountpoint": "/var"},
		Annotations: map[string]string{"summary": "/var is full"},
		StartsAt:    start,
	}
	a.Post(t, alert)
	b.Post(t, alert)
	waitFor(t, "both peers delivered", func() bool {
		sa, _ := a.Notifications(t)
		sb, _ := b.Notifications(t)
		return sa >= 1 && sb >= 1
	})
	stored, _ := q.Triggers()
	if len(stored) != 1 {
		t.Fatalf("got %d triggers stored from the HA pair, want 1", len(stored))
	}
	tr := stored[0]
	if tr.Hints.Names[0] != "web-01" || tr.Labels["mountpoint"] != "/var" || tr.Labels["summary"] != "/var is full" || tr.Event != alertmanager.EventFiring {
		t.Errorf("got %+v", tr)
	}

	alert.EndsAt = time.Now().Add(-time.Second).UTC()
	a.Post(t, alert)
	waitFor(t, "the resolve delivered", func() bool { _, r := q.Counts(); return r >= 1 })
	if _, resolved := q.Triggers(); resolved[0].Incident.ID != tr.Incident.ID {
		t.Errorf("resolved %s, want %s", resolved[0].Incident.ID, tr.Incident.ID)
	}
	if _, failed := a.Notifications(t); failed != 0 {
		t.Errorf("alertmanager counted %d failed notifications", failed)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
