package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
)

// intakeOnly runs serve in process with no workers and returns its base
// URL: enough for the intake's HTTP behaviour, no SSH needed.
func intakeOnly(t *testing.T) string {
	t.Helper()
	cfg := intakeConfig(t, hookstest.CapturedSecret(t), "")
	base, stop := startServe(t, ServeOptions{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), NoWorkers: true})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return base
}

// intakeConfig writes and loads the configuration of an intake that
// accepts PagerDuty deliveries signed with secret and has one playbook
// and one host it cannot reach (no SSH agent); extra is more YAML for the
// top level, empty or ending in a newline.
func intakeConfig(tb testing.TB, secret, extra string) *Config {
	tb.Helper()
	dir := tb.TempDir()
	writeFile(tb, filepath.Join(dir, "secret"), secret)
	writeFile(tb, filepath.Join(dir, "known_hosts"), "")
	writeFile(tb, filepath.Join(dir, "firstlook.yaml"), `data_dir: data
log_level: error
`+extra+`pagerduty:
  webhook_secret_files: [secret]
inventory:
  hosts: [{name: h, address: 127.0.0.1, user: u}]
ssh:
  known_hosts: [known_hosts]
  agent: true
playbooks:
  paths: [playbooks]
`)
	if err := os.MkdirAll(filepath.Join(dir, "playbooks"), 0o700); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "playbooks", "p.yaml"), "name: p\nsteps:\n  - name: s\n    run: uptime\n")
	tb.Setenv("SSH_AUTH_SOCK", filepath.Join(dir, "no-agent"))
	cfg, err := LoadConfig(filepath.Join(dir, "firstlook.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// TestIntakeRefusalsAreJSON: requests net/http refuses before any handler
// runs (an oversized header block: 2,000 signatures in
// X-PagerDuty-Signature, 136 KB; a malformed request line) get the JSON
// error every other refusal gets, not net/http's plain text; and the
// intake still answers afterwards.
func TestIntakeRefusalsAreJSON(t *testing.T) {
	base := intakeOnly(t)
	var sigs []string
	for i := range 2000 {
		sigs = append(sigs, fmt.Sprintf("v1=%064x", i))
	}
	sig := strings.Join(sigs, ",")
	if len(sig) < 130_000 {
		t.Fatalf("signature header is %d bytes, want about 136 KB", len(sig))
	}
	body := hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json")
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/pagerduty", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-PagerDuty-Signature", sig)
	req.Header.Set("X-Webhook-Id", "huge-header")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkJSONRefusal(t, resp, http.StatusRequestHeaderFieldsTooLarge, "header")

	// A malformed request line, over a raw connection.
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "NOT A REQUEST\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkJSONRefusal(t, resp, http.StatusBadRequest, "bad request")

	// Unsigned but well-formed: the handler's own refusal, still JSON.
	req, _ = http.NewRequest(http.MethodPost, base+"/hooks/pagerduty", strings.NewReader(string(body)))
	req.Header.Set("X-Webhook-Id", "unsigned")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkJSONRefusal(t, resp, http.StatusUnauthorized, "")
}

func checkJSONRefusal(t *testing.T, resp *http.Response, code int, reason string) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var reply hooks.Reply
	if resp.StatusCode != code || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("got %d %s %q, want %d application/json", resp.StatusCode, resp.Header.Get("Content-Type"), raw, code)
	}
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Status != "error" || !strings.Contains(reply.Reason, reason) {
		t.Fatalf("got body %q (%v), want a JSON error whose reason mentions %q", raw, err, reason)
	}
}
