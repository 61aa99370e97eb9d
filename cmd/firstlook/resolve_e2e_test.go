package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks/hookstest"
)

// TestServeResolveBeforeRun: two incidents want the same playbook on the
// same host; the second waits for the first (one run of a playbook per
// host at a time) and resolves meanwhile: it never runs, and its note says
// it resolved before diagnostics ran, while the first, in progress when
// the resolve came, finishes. About 4 s.
func TestServeResolveBeforeRun(t *testing.T) {
	e := newEnv(t, "host-1")
	e.serve()
	e.send("INCRUNNING", "crash on host-1") // the crash playbook sleeps 3 s
	// Leased, planned and holding the host well within this (no SSH is
	// needed before the host lock); its run lasts 3 s more.
	time.Sleep(1500 * time.Millisecond)
	e.send("INCWAITING", "crash on host-1")
	time.Sleep(200 * time.Millisecond) // leased, waiting for the host

	var doc map[string]any
	if err := json.Unmarshal(hookstest.Fixture(t, "pagerduty-v3", "incident.resolved.json"), &doc); err != nil {
		t.Fatal(err)
	}
	doc["event"].(map[string]any)["data"].(map[string]any)["id"] = "INCWAITING"
	body, _ := json.Marshal(doc)
	code, reply := e.post(body, map[string]string{"X-PagerDuty-Signature": hookstest.Sign(body, e.secret), "X-Webhook-Id": "wh-resolved"})
	if code != http.StatusAccepted || reply.Status != "resolved" {
		t.Fatalf("resolve: got %d %+v, want 202 resolved", code, reply)
	}

	if b := e.wait("INCRUNNING", 1)[0].Manifest; b.Status != evidence.StatusOK {
		t.Errorf("the run in progress: got %s (%s), want it to finish ok", b.Status, b.Error)
	}
	b := e.wait("INCWAITING", 1)[0]
	if m := b.Manifest; m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "before diagnostics ran") || len(m.Steps) != 0 {
		t.Fatalf("the waiting run: got %s (%s), %d steps; want not started because it resolved", m.Status, m.Error, len(m.Steps))
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(e.notesFor("INCWAITING")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	notes := e.notesFor("INCWAITING")
	if len(notes) != 1 || !strings.Contains(notes[0].Content, "resolved") || !strings.Contains(notes[0].Content, "before diagnostics ran") {
		t.Errorf("got notes %+v, want one saying it resolved before diagnostics ran", notes)
	}
}
