// Package amtest runs real Prometheus Alertmanager processes on loopback
// for tests: configured with one webhook receiver, fed alerts through its
// API, stopped when the test ends.
package amtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// EnvAlertmanager names the alertmanager binary; default: PATH.
	EnvAlertmanager = "FIRSTLOOK_ALERTMANAGER"
	// EnvRequire, set to "1", turns skips for a missing binary into
	// failures, for CI where the integration tests must run.
	EnvRequire = "FIRSTLOOK_REQUIRE_INTEGRATION"
	// Version is the Alertmanager the tests are written against (the
	// Makefile's tools target installs it): v0.35.0's module lacks the
	// UI assets and does not build with go install.
	Version = "v0.31.1"
)

// Binary returns the alertmanager to run. When there is none it skips the
// test, saying why, or fails it under FIRSTLOOK_REQUIRE_INTEGRATION=1.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvAlertmanager); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		missing(t, EnvAlertmanager+"="+p+" does not exist")
	}
	if p, err := exec.LookPath("alertmanager"); err == nil {
		return p
	}
	missing(t, "no alertmanager in "+EnvAlertmanager+" or PATH (make tools, or go install github.com/prometheus/alertmanager/cmd/alertmanager@"+Version+")")
	return ""
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("amtest: %s (%s=1)", why, EnvRequire)
	}
	t.Skip("amtest: " + why)
}

// Options configure one Alertmanager.
type Options struct {
	// WebhookURL is where its one receiver POSTs.
	WebhookURL string
	// HTTPConfig is the webhook_config's http_config, as YAML
	// (authorization or basic_auth).
	HTTPConfig string
}

// Server is a running Alertmanager.
type Server struct {
	// URL is its API's base URL.
	URL string
}

// Start runs an Alertmanager that groups by alertname, waits half a
// second before a group's first notification and sends resolved alerts.
// It runs without clustering: two of them model an HA pair whose gossip
// has not yet settled, which is when both peers deliver the group.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: firstlook
  group_by: [alertname]
  group_wait: 500ms
  group_interval: 1s
  repeat_interval: 4h
receivers:
  - name: firstlook
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
%s
`, opts.WebhookURL, indent(opts.HTTPConfig, "          "))
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+filepath.Join(dir, "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--cluster.listen-address=", // no gossip: nothing beyond loopback
		"--log.level=debug",
	)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("amtest: start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("alertmanager %s log:\n%s", url, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return &Server{URL: url}
			}
		}
		select {
		case <-done:
			t.Fatalf("amtest: alertmanager exited:\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("amtest: alertmanager not ready within 30s:\n%s", logs.String())
		}
	}
}

// Alert is one alert as POST /api/v2/alerts takes it.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Post sends alerts to the API, as Prometheus does.
func (s *Server) Post(t testing.TB, alerts ...Alert) {
	t.Helper()
	body, _ := json.Marshal(alerts)
	resp, err := http.Post(s.URL+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("amtest: post alerts: %d %s", resp.StatusCode, raw)
	}
}

// Notifications returns how many webhook notifications the server has
// sent successfully, from its own metrics.
func (s *Server) Notifications(t testing.TB) (sent, failed int) {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.Contains(line, `integration="webhook"`) {
			continue
		}
		f := strings.Fields(line)
		n, _ := strconv.ParseFloat(f[len(f)-1], 64)
		switch {
		case strings.HasPrefix(line, "alertmanager_notifications_total{"):
			sent += int(n)
		case strings.HasPrefix(line, "alertmanager_notifications_failed_total{"):
			failed += int(n)
		}
	}
	return sent - failed, failed
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
