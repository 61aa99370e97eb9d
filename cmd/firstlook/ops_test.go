package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// syncBuffer is a bytes.Buffer safe for the audit log's concurrent
// writers and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// scrape reads /metrics into families by name.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value finds one series by its labels; ok is false when it is absent.
// Histograms give their sample count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeOperations runs serve against OpenSSH behind a bastion, sends
// a known sequence of webhooks (a forged one, a run that works, a run for
// a host outside the inventory, a redelivery) and checks the exact
// counts on /metrics, the audit log, and the probes through shutdown.
func TestServeOperations(t *testing.T) {
	e := newEnv(t, "host-1")
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Long enough for the test to see /readyz turn 503 while the intake
	// still answers.
	cfg.HTTP.DrainDelay = 3 * time.Second
	audit := &syncBuffer{}
	lines := &lineLog{next: &testLog{t: t}}
	log := slog.New(slog.NewTextHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url, stop := startServe(t, ServeOptions{Config: cfg, Log: log, Stderr: audit})
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	e.url = url

	for _, p := range []string{"/livez", "/readyz", "/healthz"} {
		if code := get(t, url+p); code != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200", p, code)
		}
	}

	// 1. A forged delivery: 401, nothing queued.
	body, _ := e.webhook("INCFORGED", "load on host-1")
	if code, _ := e.post(body, map[string]string{"X-PagerDuty-Signature": "v1=00", "X-Webhook-Id": "wh-forged"}); code != http.StatusUnauthorized {
		t.Fatalf("forged delivery: got %d, want 401", code)
	}
	// 2. A run that works; 3. a host the inventory does not know.
	e.send("INCOK", "load on host-1")
	e.send("INCUNK", "load on web-9")
	// 4. PagerDuty delivers INCOK again: 202, duplicate, no job.
	body, sig := e.webhook("INCOK", "load on host-1")
	if code, reply := e.post(body, map[string]string{"X-PagerDuty-Signature": sig, "X-Webhook-Id": "wh-INCOK"}); code != http.StatusAccepted || reply.Status != "duplicate" {
		t.Fatalf("redelivery: got %d %+v, want 202 duplicate", code, reply)
	}
	e.wait("INCOK", 1)
	e.wait("INCUNK", 1)
	deadline := time.Now().Add(60 * time.Second)
	for !(lines.has(`msg="job done"`, "incident=INCOK") && lines.has(`msg="job done"`, "incident=INCUNK")) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}

	fams := scrape(t, url)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"firstlook_webhooks_total", []string{"source", "pagerduty", "code", "401"}, 1},
		{"firstlook_webhooks_total", []string{"source", "pagerduty", "code", "202"}, 3},
		{"firstlook_jobs_total", []string{"outcome", "acked"}, 2},
		{"firstlook_runs_total", []string{"playbook", "whoami", "outcome", "ok"}, 1},
		{"firstlook_runs_total", []string{"playbook", "whoami", "outcome", "not_started"}, 1},
		{"firstlook_run_duration_seconds", []string{"playbook", "whoami"}, 2},
		{"firstlook_step_duration_seconds", []string{"playbook", "whoami"}, 2},
		{"firstlook_webhook_to_evidence_seconds", nil, 2},
		{"firstlook_ssh_dials_total", []string{"hop", "host", "error", "none"}, 1},
		{"firstlook_ssh_sessions_open", []string{"bastion", "bastion"}, 0},
		{"firstlook_publish_attempts_total", []string{"sink", "pagerduty"}, 2},
		{"firstlook_publish_retries_total", []string{"sink", "pagerduty"}, 0},
		{"firstlook_publish_failures_total", []string{"sink", "pagerduty"}, 0},
		{"firstlook_redactions_total", nil, 0},
		{"firstlook_queue_jobs", nil, 0},
		{"firstlook_queue_oldest_job_age_seconds", nil, 0},
		{"firstlook_queue_up", nil, 1},
	} {
		got, ok := value(fams, c.name, c.labels...)
		// Counters and gauges of labels never seen are absent, which
		// is a zero.
		if !ok && c.want != 0 {
			t.Errorf("%s%v: absent, want %v", c.name, c.labels, c.want)
		} else if got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := value(fams, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}

	// The audit log: one line per run started, refused and finished,
	// JSON, with who asked and what ran; never output or secrets.
	type record struct {
		Audit          bool   `json:"audit"`
		Msg            string `json:"msg"`
		Source         string `json:"source"`
		DeliveryID     string `json:"delivery_id"`
		Incident       string `json:"incident"`
		Host           string `json:"host"`
		Playbook       string `json:"playbook"`
		PlaybookSHA256 string `json:"playbook_sha256"`
		Outcome        string `json:"outcome"`
		Reason         string `json:"reason"`
	}
	var recs []record
	sc := bufio.NewScanner(strings.NewReader(audit.String()))
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil || !r.Audit {
			t.Fatalf("audit line %q is not an audit record: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	got := map[string]record{}
	for _, r := range recs {
		got[r.Incident+" "+r.Msg] = r
	}
	if len(recs) != 4 {
		t.Errorf("got %d audit lines, want 4 (started, finished; refused, finished):\n%s", len(recs), audit.String())
	}
	if r := got["INCOK run started"]; r.Source != "pagerduty" || r.DeliveryID != "wh-INCOK" || r.Host != "host-1" || r.Playbook != "whoami" || len(r.PlaybookSHA256) != 64 {
		t.Errorf("run started: got %+v", r)
	}
	if r := got["INCOK run finished"]; r.Outcome != "ok" {
		t.Errorf("run finished: got %+v", r)
	}
	if r := got["INCUNK run refused"]; r.Outcome != "refused" || r.Reason != "not started" || r.Host != "web-9" || r.DeliveryID != "wh-INCUNK" {
		t.Errorf("run refused: got %+v", r)
	}
	for _, never := range []string{"load on host-1", "INCOK|host-1", e.secret, "pd-api-token"} {
		if strings.Contains(audit.String(), never) {
			t.Errorf("the audit log contains %q", never)
		}
	}

	// Shutdown: /readyz turns 503 while /livez still answers, before the
	// intake closes.
	done := make(chan error, 1)
	go func() { done <- stop() }()
	stopped = true
	deadline = time.Now().Add(cfg.HTTP.DrainDelay)
	ready := http.StatusOK
	for ready == http.StatusOK && time.Now().Before(deadline) {
		ready = get(t, url+"/readyz")
		if ready == http.StatusOK {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if ready != http.StatusServiceUnavailable {
		t.Errorf("/readyz during shutdown: got %d, want 503", ready)
	}
	if code := get(t, url+"/livez"); code != http.StatusOK {
		t.Errorf("/livez while draining: got %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
}
