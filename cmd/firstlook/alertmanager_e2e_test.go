package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/hooks/alertmanager/amtest"
)

// TestServeAlertmanager: alerts posted to two real Alertmanager processes
// (an HA pair that both deliver) reach a running serve through their
// webhook_configs, authenticated as http_config sends it, and end as one
// bundle from the host the alert's instance label names, behind the
// bastion, with the alert's labels in the commands. About 5 s.
func TestServeAlertmanager(t *testing.T) {
	amtest.Binary(t)
	e := newEnv(t, "web-01", "web-02")
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("am-token", "am-secret-token\n")
	e.write("firstlook.yaml", string(cfg)+"alertmanager:\n  bearer_tokens: [{file: am-token}]\n  basic_auth: [{username: am, password: am-pass}]\n")
	e.serve()
	url := e.url + "/hooks/alertmanager"
	a := amtest.Start(t, amtest.Options{WebhookURL: url, HTTPConfig: "authorization:\n  credentials: am-secret-token"})
	b := amtest.Start(t, amtest.Options{WebhookURL: url, HTTPConfig: "basic_auth:\n  username: am\n  password: am-pass"})

	alert := amtest.Alert{
		Labels:      map[string]string{"alertname": "DiskFull", "instance": "web-02:9100", "mountpoint": "/var/lib/x y"},
		Annotations: map[string]string{"summary": "disk full"},
		StartsAt:    time.Now().Add(-time.Minute).UTC().Truncate(time.Second),
	}
	a.Post(t, alert)
	b.Post(t, alert)
	bs := e.waitSource("alertmanager", 1)
	m := bs[0].Manifest
	if m.Host.Name != "web-02" || m.Status != evidence.StatusOK || m.Playbook.Name != "disk" {
		t.Fatalf("got a bundle of %s on %s, status %s (%s); want disk on web-02, ok", m.Playbook.Name, m.Host.Name, m.Status, m.Error)
	}
	if got := strings.TrimSpace(stdout(bs[0], 0)); got != "web-02" {
		t.Errorf("hostname: got %q, want web-02", got)
	}
	if got := strings.TrimSpace(stdout(bs[0], 1)); got != "/var/lib/x y" {
		t.Errorf("label as template field: got %q", got)
	}
	// Both peers delivered; the second made no second run.
	deadline := time.Now().Add(30 * time.Second)
	for {
		sa, _ := a.Notifications(t)
		sb, _ := b.Notifications(t)
		if sa >= 1 && sb >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications sent: %d and %d, want both peers to deliver", sa, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if bs := e.sourceBundles("alertmanager"); len(bs) != 1 {
		t.Fatalf("got %d bundles after both peers delivered, want 1", len(bs))
	}
}

// sourceBundles returns every stored bundle of a source.
func (e *env) sourceBundles(source string) []*evidence.Bundle {
	e.t.Helper()
	manifests, _ := filepath.Glob(filepath.Join(e.evidence, source, "*", "*", evidence.ManifestFile))
	store, err := dir.New(dir.Config{Path: e.evidence})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*evidence.Bundle
	for _, m := range manifests {
		rel, _ := filepath.Rel(e.evidence, filepath.Dir(m))
		b, err := evidence.Read(context.Background(), store, filepath.ToSlash(rel))
		if err != nil {
			continue // still being written
		}
		out = append(out, b)
	}
	return out
}

// waitSource polls until a source has n bundles, then returns them.
func (e *env) waitSource(source string, n int) []*evidence.Bundle {
	e.t.Helper()
	return e.waitFor(source, n, func() []*evidence.Bundle { return e.sourceBundles(source) })
}
