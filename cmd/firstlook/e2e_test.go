package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// env is a running firstlook against a real bastion and hosts (OpenSSH in
// network namespaces), with its own data directory.
type env struct {
	t        *testing.T
	net      *sshtest.Net
	dir      string
	cfgPath  string
	secret   string
	url      string
	evidence string
	// alertHost is what the PagerDuty API answers as the alert's
	// cef_details.source_origin.
	alertHost atomic.Value
	// notes are the incident notes posted to the PagerDuty API.
	notesMu sync.Mutex
	notes   []pdNote
}

// pdNote is a note as the PagerDuty API received it.
type pdNote struct {
	Incident, From, Content string
}

func newEnv(t *testing.T, hosts ...string) *env {
	t.Helper()
	sshtest.Require(t)
	if len(hosts) == 0 {
		hosts = []string{"host-1", "host-2"}
	}
	e := &env{t: t, net: sshtest.New(t, sshtest.Options{Hosts: hosts}), dir: t.TempDir(), secret: hookstest.CapturedSecret(t)}
	e.alertHost.Store("")
	pd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // incidents/<id>/(alerts|notes)
		switch {
		case len(parts) == 3 && parts[2] == "alerts":
			host, _ := e.alertHost.Load().(string)
			fmt.Fprintf(w, `{"alerts":[{"id":"PA1","type":"alert","body":{"type":"alert_body","cef_details":{"source_origin":%q}}}],"more":false}`, host)
		case len(parts) == 3 && parts[2] == "notes" && r.Method == http.MethodPost:
			var body struct {
				Note struct {
					Content string `json:"content"`
				} `json:"note"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			e.notesMu.Lock()
			e.notes = append(e.notes, pdNote{Incident: parts[1], From: r.Header.Get("From"), Content: body.Note.Content})
			e.notesMu.Unlock()
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"note":{"id":"PN1","content":%q}}`, body.Note.Content)
		case len(parts) == 3 && parts[2] == "notes":
			e.notesMu.Lock()
			var ns []map[string]string
			for _, n := range e.notes {
				if n.Incident == parts[1] {
					ns = append(ns, map[string]string{"id": "PN1", "content": n.Content})
				}
			}
			e.notesMu.Unlock()
			_ = json.NewEncoder(w).Encode(map[string]any{"notes": ns})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(pd.Close)

	var inv strings.Builder
	b := e.net.Bastion()
	bhost, bport, _ := net.SplitHostPort(b.Addr)
	fmt.Fprintf(&inv, "defaults: {user: %s, bastion: %s}\nbastions:\n  - {name: %s, address: %s, port: %s}\nhosts:\n", b.User, b.Name, b.Name, bhost, bport)
	for _, h := range e.net.Hosts() {
		a, p, _ := net.SplitHostPort(h.Addr)
		fmt.Fprintf(&inv, "  - {name: %s, address: %s, port: %s, user: %s}\n", h.Name, a, p, h.User)
	}
	e.write("inventory.yaml", inv.String())
	e.write("secret.txt", e.secret+"\n")
	e.write("token.txt", "pd-api-token\n")
	pbDir, _ := filepath.Abs("testdata/playbooks")
	e.write("firstlook.yaml", fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: data
log_level: debug
pagerduty:
  webhook_secret_files: [secret.txt]
  api_token_file: token.txt
  api_url: %s
  notes:
    from: firstlook-bot@example.com
queue:
  ack_wait: 5s
inventory:
  file: inventory.yaml
ssh:
  known_hosts: [%s]
  identity_files: [%s]
playbooks:
  paths: [%s]
runner:
  heartbeat: 1s
  grace: 10s
  hints:
    title:
      - pattern: '\bon (?P<host>[a-z0-9-]+)'
`, pd.URL, e.net.KnownHostsFile, e.net.IdentityFile, pbDir))
	e.cfgPath = filepath.Join(e.dir, "firstlook.yaml")
	e.evidence = filepath.Join(e.dir, "data", "evidence")
	return e
}

func (e *env) write(name, content string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// serve runs Serve in process until the test ends.
func (e *env) serve() {
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(&testLog{t: e.t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url, stop := startServe(e.t, ServeOptions{Config: cfg, Log: log})
	e.t.Cleanup(func() {
		if err := stop(); err != nil {
			e.t.Errorf("serve: %v", err)
		}
	})
	e.url = url
}

// startServe runs Serve in process on a loopback port and returns its base
// URL once it answers /healthz, and a stop that shuts it down and returns
// Serve's error.
func startServe(tb testing.TB, opts ServeOptions) (string, func() error) {
	tb.Helper()
	return startServeCtx(tb, context.Background(), opts)
}

// startServeCtx is startServe with a base context: one carrying
// failpoints (runner/failpoint).
func startServeCtx(tb testing.TB, base context.Context, opts ServeOptions) (string, func() error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	opts.Listener = ln
	ctx, cancel := context.WithCancel(base)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, opts) }()
	url := "http://" + ln.Addr().String()
	waitHealthy(tb, url)
	return url, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("serve did not stop within 30s of its context ending")
		}
	}
}

// testLog sends log lines to t.Log until the test has finished.
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Cleanup(func() { l.mu.Lock(); l.done = true; l.mu.Unlock() })
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// webhook is the captured incident.triggered delivery with its incident id
// and title replaced, signed with the subscription secret.
func (e *env) webhook(id, title string) ([]byte, string) {
	e.t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(hookstest.Fixture(e.t, "pagerduty-v3", "incident.triggered.json"), &doc); err != nil {
		e.t.Fatal(err)
	}
	data := doc["event"].(map[string]any)["data"].(map[string]any)
	data["id"], data["title"] = id, title
	body, _ := json.Marshal(doc)
	return body, hookstest.Sign(body, e.secret)
}

func (e *env) post(body []byte, header map[string]string) (int, hooks.Reply) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/hooks/pagerduty", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply hooks.Reply
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &reply)
	return resp.StatusCode, reply
}

// send posts a webhook for a new incident and requires a 202 "queued".
func (e *env) send(id, title string) {
	e.t.Helper()
	body, sig := e.webhook(id, title)
	code, reply := e.post(body, map[string]string{"X-PagerDuty-Signature": sig, "X-Webhook-Id": "wh-" + id})
	if code != http.StatusAccepted || reply.Status != "queued" {
		e.t.Fatalf("send %s: got %d %+v, want 202 queued", id, code, reply)
	}
}

// bundles returns the stored bundles of an incident, ordered by host then
// playbook.
func (e *env) bundles(incident string) []*evidence.Bundle {
	e.t.Helper()
	manifests, _ := filepath.Glob(filepath.Join(e.evidence, "pagerduty", incident, "*", evidence.ManifestFile))
	store, err := dir.New(dir.Config{Path: e.evidence})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*evidence.Bundle
	for _, m := range manifests {
		rel, _ := filepath.Rel(e.evidence, filepath.Dir(m))
		b, err := evidence.Read(context.Background(), store, filepath.ToSlash(rel))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Manifest, out[j].Manifest
		return a.Host.Name+"/"+a.Playbook.Name < b.Host.Name+"/"+b.Playbook.Name
	})
	return out
}

// wait polls until the incident has n bundles, then returns them.
func (e *env) wait(incident string, n int) []*evidence.Bundle {
	e.t.Helper()
	return e.waitFor("incident "+incident, n, func() []*evidence.Bundle { return e.bundles(incident) })
}

// waitFor polls list until it returns n bundles or 45 s have passed, and
// fails the test, naming what, unless it ends with exactly n.
func (e *env) waitFor(what string, n int, list func() []*evidence.Bundle) []*evidence.Bundle {
	e.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		bs := list()
		if len(bs) >= n || time.Now().After(deadline) {
			if len(bs) != n {
				e.t.Fatalf("%s: got %d bundles, want %d", what, len(bs), n)
			}
			return bs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func stdout(b *evidence.Bundle, step int) string {
	return string(b.Files[b.Manifest.Steps[step].Stdout.File])
}

// TestServeFixtureToBundle: the real captured, signed incident.triggered
// delivery, over HTTP to a running serve, ends as a bundle with real
// output from the host the incident's alert names, behind the bastion.
func TestServeFixtureToBundle(t *testing.T) {
	e := newEnv(t)
	e.alertHost.Store("host-2")
	e.serve()
	v := hookstest.PagerDutyVectors(t)
	body := hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json")
	code, reply := e.post(body, map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[1].Signature, "X-Webhook-Id": "fixture-1"})
	if code != http.StatusAccepted || reply.Status != "queued" {
		t.Fatalf("got %d %+v, want 202 queued", code, reply)
	}
	b := e.wait("Q2CKYRLH85UNN4", 1)[0]
	m := b.Manifest
	if m.Status != evidence.StatusOK {
		t.Fatalf("got status %s (%s), want ok", m.Status, m.Error)
	}
	if m.Host.Name != "host-2" || m.Host.Bastion != "bastion" || m.Playbook.Name != "whoami" || m.Playbook.SHA256 == "" {
		t.Errorf("got host %+v playbook %+v", m.Host, m.Playbook)
	}
	if m.Incident.ID != "Q2CKYRLH85UNN4" || m.Incident.Delivery != "fixture-1" || m.Incident.Event != "incident.triggered" {
		t.Errorf("got incident %+v", m.Incident)
	}
	if got := stdout(b, 0); got != "host-2\n" {
		t.Errorf("hostname step: got %q, want %q", got, "host-2\n")
	}
	if got := stdout(b, 1); got != "Q2CKYRLH85UNN4|host-2\n" {
		t.Errorf("incident step: got %q", got)
	}
	if c := m.Steps[1].Command; c != `printf '%s|%s\n' 'Q2CKYRLH85UNN4' 'host-2'` {
		t.Errorf("command as run: got %q", c)
	}
	for _, st := range m.Steps {
		if st.ExitCode != 0 || st.Stdout.SHA256 == "" || st.Stdout.Bytes != st.Stdout.Kept || st.Stdout.Truncated {
			t.Errorf("step %s: got %+v", st.Name, st)
		}
	}
	if m.FirstlookVersion == "" || m.EndedAt.Before(m.StartedAt) {
		t.Errorf("got version %q, start %s, end %s", m.FirstlookVersion, m.StartedAt, m.EndedAt)
	}
	// The run's summary is on the incident, once, as the configured user.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.notesFor("Q2CKYRLH85UNN4")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	notes := e.notesFor("Q2CKYRLH85UNN4")
	if len(notes) != 1 || notes[0].From != "firstlook-bot@example.com" ||
		!strings.Contains(notes[0].Content, "whoami on host-2: 2/2 steps ok") ||
		!strings.Contains(notes[0].Content, "Full evidence: file://") ||
		!strings.Contains(notes[0].Content, m.RunID) {
		t.Errorf("got notes %+v, want one summary note with the link and the run's marker", notes)
	}

	// The same delivery again (PagerDuty's retry) makes no second job.
	code, reply = e.post(body, map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[1].Signature, "X-Webhook-Id": "fixture-1"})
	if code != http.StatusAccepted || reply.Status != "duplicate" {
		t.Fatalf("redelivery: got %d %+v, want 202 duplicate", code, reply)
	}
	// A different delivery for the same incident finds the run done.
	code, _ = e.post(body, map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[1].Signature, "X-Webhook-Id": "fixture-2"})
	if code != http.StatusAccepted {
		t.Fatalf("second delivery: got %d", code)
	}
	time.Sleep(2 * time.Second)
	if n := len(e.bundles("Q2CKYRLH85UNN4")); n != 1 {
		t.Fatalf("got %d bundles after a redelivery and a second delivery, want 1", n)
	}
	if n := len(e.notesFor("Q2CKYRLH85UNN4")); n != 1 {
		t.Fatalf("got %d notes after a redelivery and a second delivery, want 1", n)
	}
}

func (e *env) notesFor(incident string) []pdNote {
	e.notesMu.Lock()
	defer e.notesMu.Unlock()
	var out []pdNote
	for _, n := range e.notes {
		if n.Incident == incident {
			out = append(out, n)
		}
	}
	return out
}

func TestServeIntake(t *testing.T) {
	e := newEnv(t, "host-1")
	e.serve()
	v := hookstest.PagerDutyVectors(t)
	body := hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json")
	tests := []struct {
		name   string
		body   []byte
		header map[string]string
		want   int
		status string
	}{
		{"tampered signature", body, map[string]string{"X-PagerDuty-Signature": "v1=" + strings.Repeat("0", 64)}, 401, "error"},
		{"tampered body", append(bytes.Clone(body), ' '), map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[1].Signature}, 401, "error"},
		{"unsigned", body, nil, 401, "error"},
		{"rotation header", body, map[string]string{"X-PagerDuty-Signature": v.Rotation.Signature, "X-Webhook-Id": "rot-1"}, 202, "queued"},
		{"ping", hookstest.Fixture(t, "pagerduty-v3", "pagey.ping.json"), map[string]string{"X-PagerDuty-Signature": v.Sets[0].Vectors[0].Signature}, 200, "pong"},
		{"too large", bytes.Repeat([]byte("x"), hooks.MaxBody+1), map[string]string{"X-PagerDuty-Signature": "v1=00"}, 413, "error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, reply := e.post(tc.body, tc.header)
			if code != tc.want || reply.Status != tc.status {
				t.Fatalf("got %d %+v, want %d %s", code, reply, tc.want, tc.status)
			}
		})
	}
}

// TestServeFailuresAreEvidence: every run that cannot start or stops early
// leaves a bundle that says why.
func TestServeFailuresAreEvidence(t *testing.T) {
	e := newEnv(t)
	e.serve()

	t.Run("two hosts", func(t *testing.T) {
		e.send("INCTWO", "load on host-1 and on host-2")
		bs := e.wait("INCTWO", 2)
		for i, want := range []string{"host-1\n", "host-2\n"} {
			if got := stdout(bs[i], 0); got != want || bs[i].Manifest.Status != evidence.StatusOK {
				t.Errorf("bundle %d: got %q (%s), want %q", i, got, bs[i].Manifest.Status, want)
			}
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		e.send("INCUNKNOWN", "load on web-9")
		m := e.wait("INCUNKNOWN", 1)[0].Manifest
		if m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, `"web-9": not in the inventory`) || m.Host.Name != "web-9" {
			t.Fatalf("got %s %q host %q, want not_started naming web-9", m.Status, m.Error, m.Host.Name)
		}
	})
	t.Run("step timeout", func(t *testing.T) {
		e.send("INCSLOW", "slow on host-1")
		m := e.wait("INCSLOW", 1)[0].Manifest
		st := m.Steps[0]
		if m.Status != evidence.StatusFailed || !st.TimedOut || st.ExitCode != -1 || !strings.Contains(st.Error, "timed out after 1s") {
			t.Fatalf("got %s, step %+v", m.Status, st)
		}
		if after := m.Steps[1]; !after.Skipped || !strings.Contains(after.Error, `step "sleep" failed`) {
			t.Errorf("step after the timeout: got %+v, want skipped", after)
		}
		for _, p := range e.net.Processes("host-1") {
			if strings.Contains(p.Cmdline, "sleep 300") {
				t.Errorf("the timed-out command still runs on the host: %+v", p)
			}
		}
	})
	t.Run("output cap", func(t *testing.T) {
		e.send("INCBIG", "big on host-2")
		b := e.wait("INCBIG", 1)[0]
		st := b.Manifest.Steps[0]
		if st.Stdout.Bytes != 3000000 || st.Stdout.Kept != 1<<20 || !st.Stdout.Truncated || len(b.Files[st.Stdout.File]) != 1<<20 {
			t.Errorf("stdout: got %+v", st.Stdout)
		}
		if st.Stderr.Bytes != 1500000 || st.Stderr.Kept != 1<<20 || !st.Stderr.Truncated {
			t.Errorf("stderr: got %+v", st.Stderr)
		}
		if st.ExitCode != 0 {
			t.Errorf("exit: got %d, want 0", st.ExitCode)
		}
	})
	t.Run("host key changed on the host", func(t *testing.T) {
		e.net.ReplaceHostKey("host-2")
		e.send("INCHOSTKEY", "load on host-2")
		m := e.wait("INCHOSTKEY", 1)[0].Manifest
		if m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "host-2") || !strings.Contains(m.Error, "changed") {
			t.Fatalf("got %s %q, want not_started: host key of host-2 changed", m.Status, m.Error)
		}
	})
	t.Run("host key changed on the bastion", func(t *testing.T) {
		e.net.ReplaceHostKey("bastion")
		e.send("INCBASTIONKEY", "load on host-1")
		m := e.wait("INCBASTIONKEY", 1)[0].Manifest
		if m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "bastion") || !strings.Contains(m.Error, "changed") {
			t.Fatalf("got %s %q, want not_started: bastion host key changed", m.Status, m.Error)
		}
	})
	t.Run("bastion down", func(t *testing.T) {
		e.net.Stop("bastion")
		e.send("INCDOWN", "load on host-1")
		m := e.wait("INCDOWN", 1)[0].Manifest
		if m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "bastion") {
			t.Fatalf("got %s %q, want not_started: bastion unreachable", m.Status, m.Error)
		}
	})
}
