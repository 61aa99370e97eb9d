package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/sinktest"
	"github.com/firstlook/firstlook/evidence/webhook"
)

const secret = "0f3b8c2e9a7d4f1b6e5c8a2d9f7b3e1c"

// receiver is a webhook receiver as the README tells one to be written: it
// verifies the signature and the timestamp, and keeps one payload per run
// (X-Firstlook-Run). fail scripts the answers to the next posts.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	runs     map[string]webhook.Payload
	attempts int
	bad      int // requests whose signature did not verify
	fail     []sinktest.Failure
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, runs: map[string]webhook.Payload{}}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if err := webhook.Verify([]byte(secret), req.Header, body, time.Now()); err != nil {
		r.bad++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var f sinktest.Failure
	if len(r.fail) > 0 {
		f, r.fail = r.fail[0], r.fail[1:]
	}
	switch f {
	case sinktest.Permanent:
		http.Error(w, "this integration is disabled", http.StatusForbidden)
		return
	case sinktest.Retryable:
		w.Header().Set("Retry-After", "2")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	}
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil || p.Schema != webhook.Schema || p.Marker != req.Header.Get(webhook.HeaderRun) {
		http.Error(w, fmt.Sprintf("bad payload: %v", err), http.StatusBadRequest)
		return
	}
	if _, dup := r.runs[p.Marker]; !dup {
		r.runs[p.Marker] = p
	}
	if f == sinktest.Lost {
		// Taken, and the answer never comes back.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

func (r *receiver) tries() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// waits records the waits asked for without spending them.
type waits struct {
	mu  sync.Mutex
	got []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.got = append(w.got, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.got...)
}

func newPublisher(t *testing.T, url string, w *waits) *webhook.Publisher {
	t.Helper()
	p, err := webhook.New(webhook.Config{URL: url}, secret, webhook.WithSleep(w.sleep))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestContract runs the sink contract against a real HTTP server that
// verifies every request's signature.
func TestContract(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Backend {
		r := newReceiver(t)
		t.Cleanup(func() {
			if r.bad > 0 {
				t.Errorf("%d requests failed signature verification", r.bad)
			}
		})
		return sinktest.Backend{
			Publisher: newPublisher(t, r.srv.URL, &waits{}),
			Posts:     func(*testing.T) int { return r.count() },
			Attempts:  func(*testing.T) int { return r.tries() },
			Fail: func(_ *testing.T, f sinktest.Failure) {
				r.mu.Lock()
				r.fail = append(r.fail, f)
				r.mu.Unlock()
			},
		}
	})
}

// TestPayload: what a receiver gets, and that it verifies.
func TestPayload(t *testing.T) {
	r := newReceiver(t)
	w := &waits{}
	rep := sinktest.Report("run-7")
	if err := newPublisher(t, r.srv.URL, w).Publish(context.Background(), rep, nil, false); err != nil {
		t.Fatal(err)
	}
	got := r.runs["run-7"]
	if got.Text != evidence.Text(rep) || got.Markdown != evidence.Markdown(rep) || got.Link != rep.Link {
		t.Errorf("got text %q, link %q; want the report's", got.Text, got.Link)
	}
	m := got.Manifest
	if m.Incident.ID != "Q2PA7TSJ0XGIQU" || m.Host.Name != "web-1" || m.Status != evidence.StatusOK || len(m.Steps) != 1 {
		t.Errorf("got manifest %+v", m)
	}
	if len(w.all()) != 0 {
		t.Errorf("waited %v on a first-try success", w.all())
	}
}

// TestVerify: a changed body, another secret, an old timestamp and a
// missing one are all refused.
func TestVerify(t *testing.T) {
	body := []byte(`{"schema":"firstlook.webhook.v1"}`)
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	headers := func(ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(webhook.HeaderTimestamp, fmt.Sprint(ts.Unix()))
		h.Set(webhook.HeaderSignature, sig)
		return h
	}
	good := webhook.Sign([]byte(secret), now, body)
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		wantErr string
	}{
		{"valid", headers(now, good), body, ""},
		{"clock a minute apart", headers(now.Add(-time.Minute), webhook.Sign([]byte(secret), now.Add(-time.Minute), body)), body, ""},
		{"body changed", headers(now, good), []byte(`{"schema":"firstlook.webhook.v2"}`), "does not match"},
		{"other secret", headers(now, webhook.Sign([]byte("another secret, 32 bytes long..."), now, body)), body, "does not match"},
		{"replayed", headers(now.Add(-10*time.Minute), webhook.Sign([]byte(secret), now.Add(-10*time.Minute), body)), body, "replay"},
		{"no timestamp", http.Header{webhook.HeaderSignature: {good}}, body, "Unix seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhook.Verify([]byte(secret), tt.h, tt.body, now)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
	// The construction the README documents, computed independently:
	// hex HMAC-SHA256 of "v1:<ts>:<body>".
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(fmt.Sprintf("v1:%d:", now.Unix()) + string(body)))
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); good != want {
		t.Errorf("Sign = %q, want %q", good, want)
	}
}

func TestClassify(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	h := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	tests := []struct {
		status int
		h      http.Header
		retry  bool
		wait   time.Duration
	}{
		{0, nil, true, 0},
		{200, nil, false, 0},
		{301, nil, false, 0},
		{400, nil, false, 0},
		{401, nil, false, 0},
		{403, nil, false, 0},
		{404, nil, false, 0},
		{408, nil, true, 0},
		{413, nil, false, 0},
		{429, nil, true, 0},
		{429, h("7"), true, 7 * time.Second},
		{429, h(now.Add(30 * time.Second).Format(http.TimeFormat)), true, 30 * time.Second},
		{429, h("soon"), true, 0},
		{500, nil, true, 0},
		{503, h("2"), true, 2 * time.Second},
	}
	for _, tt := range tests {
		retry, wait := webhook.Classify(tt.status, tt.h, now)
		if retry != tt.retry || wait != tt.wait {
			t.Errorf("classify(%d, %v) = %v, %s; want %v, %s", tt.status, tt.h, retry, wait, tt.retry, tt.wait)
		}
	}
}

// TestRetries: Retry-After is honoured; the attempts are capped.
func TestRetries(t *testing.T) {
	r := newReceiver(t)
	r.fail = []sinktest.Failure{sinktest.Retryable, sinktest.Retryable}
	w := &waits{}
	if err := newPublisher(t, r.srv.URL, w).Publish(context.Background(), sinktest.Report("run-1"), nil, false); err != nil {
		t.Fatal(err)
	}
	for i, d := range w.all() {
		if d < 2*time.Second || d > 3*time.Second {
			t.Errorf("wait %d: %s, want Retry-After 2s plus up to 1s", i+1, d)
		}
	}
	if got := len(w.all()); got != 2 || r.tries() != 3 {
		t.Errorf("got %d waits and %d attempts, want 2 and 3", got, r.tries())
	}

	r2 := newReceiver(t)
	r2.fail = []sinktest.Failure{sinktest.Retryable, sinktest.Retryable, sinktest.Retryable, sinktest.Retryable, sinktest.Retryable, sinktest.Retryable}
	err := newPublisher(t, r2.srv.URL, &waits{}).Publish(context.Background(), sinktest.Report("run-1"), nil, false)
	if err == nil || errors.Is(err, evidence.ErrPermanent) || !strings.Contains(err.Error(), "5 attempts") {
		t.Errorf("got %v, want a retryable error after 5 attempts", err)
	}
}

// TestNoSecretsInErrors: neither the secret nor a token in the URL's query
// shows in an error.
func TestNoSecretsInErrors(t *testing.T) {
	r := newReceiver(t)
	r.fail = []sinktest.Failure{sinktest.Permanent}
	url := r.srv.URL + "/hook?sig=t0psecretQueryToken"
	p, err := webhook.New(webhook.Config{URL: url}, secret)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Publish(context.Background(), sinktest.Report("run-1"), nil, false)
	if !errors.Is(err, evidence.ErrPermanent) {
		t.Fatalf("got %v, want permanent (403)", err)
	}
	r.srv.Close()
	p2, _ := webhook.New(webhook.Config{URL: url, MaxAttempts: 1}, secret)
	err2 := p2.Publish(context.Background(), sinktest.Report("run-1"), nil, false)
	for _, e := range []error{err, err2} {
		if e == nil || strings.Contains(e.Error(), "t0psecretQueryToken") || strings.Contains(e.Error(), secret) {
			t.Errorf("error %q shows a secret", e)
		}
	}
	if s := fmt.Sprintf("%v %+v", p, p); strings.Contains(s, secret) {
		t.Errorf("printing the publisher shows the secret: %s", s)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		cfg     webhook.Config
		wantErr string
	}{
		{webhook.Config{URL: "https://hooks.example.com/firstlook"}, ""},
		{webhook.Config{URL: "http://127.0.0.1:9000/x"}, ""},
		{webhook.Config{}, "url: required"},
		{webhook.Config{URL: "ftp://x"}, "not an http(s) URL"},
		{webhook.Config{URL: "http://hooks.example.com/x"}, "plain http"},
		{webhook.Config{URL: "https://u:p@hooks.example.com/x"}, "credentials"},
		{webhook.Config{URL: "https://h.example.com", MaxAttempts: 50}, "max_attempts"},
		{webhook.Config{URL: "https://h.example.com", Timeout: -time.Second}, "timeout"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.wantErr)
		}
	}
	if _, err := webhook.New(webhook.Config{URL: "https://h.example.com"}, "short"); err == nil || !strings.Contains(err.Error(), "at least 16 bytes") {
		t.Errorf("short secret: got %v", err)
	}
}
