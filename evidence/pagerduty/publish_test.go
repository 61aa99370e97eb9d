package pagerduty_test

import (
	"context"
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
	"github.com/firstlook/firstlook/evidence/pagerduty"
)

const (
	testToken = "y_NbAkKc66ryYTWUXYEu" // the shape of a PagerDuty REST key
	testFrom  = "firstlook-bot@example.com"
	testID    = "Q1VZ8CYX3AZ5H0"
	testMark  = "01JD5Z7T3Q-web-1-linux-baseline"
)

// step is one scripted answer of the fake PagerDuty: the request it
// expects and what it replies.
type step struct {
	method string
	status int
	header map[string]string
	body   string // default: a body fitting method and status
}

// request is what the fake PagerDuty received.
type request struct {
	method, path, from, auth, accept string
	body                             []byte
}

// fakePD is an in-process PagerDuty REST API answering from a script, one
// step per request; Prism cannot script 429s and 5xx per request, this can.
type fakePD struct {
	t      *testing.T
	mu     sync.Mutex
	script []step
	got    []request
	srv    *httptest.Server
}

func newFakePD(t *testing.T, script ...step) *fakePD {
	f := &fakePD{t: t, script: script}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, request{r.Method, r.URL.Path, r.Header.Get("From"), r.Header.Get("Authorization"), r.Header.Get("Accept"), body})
	if len(f.script) == 0 {
		f.t.Errorf("unscripted request %s %s", r.Method, r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
		return
	}
	s := f.script[0]
	f.script = f.script[1:]
	if r.Method != s.method {
		f.t.Errorf("request %d: got %s %s, want %s", len(f.got), r.Method, r.URL.Path, s.method)
	}
	if want := "/incidents/" + testID + "/notes"; r.URL.Path != want {
		f.t.Errorf("request %d: got path %s, want %s", len(f.got), r.URL.Path, want)
	}
	for k, v := range s.header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	b := s.body
	switch {
	case b != "":
	case s.status >= 400:
		b = fmt.Sprintf(`{"error":{"message":"scripted %d","code":2001}}`, s.status)
	case r.Method == http.MethodPost:
		b = `{"note":{"id":"PWL7QXS","content":"posted","created_at":"2026-11-23T12:00:00Z"}}`
	default:
		b = notes("Firefighters are on the scene.")
	}
	io.WriteString(w, b)
}

// requests returns the methods of the requests received, in order.
func (f *fakePD) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var m []string
	for _, r := range f.got {
		m = append(m, r.method)
	}
	return m
}

func (f *fakePD) posts() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	var p []request
	for _, r := range f.got {
		if r.method == http.MethodPost {
			p = append(p, r)
		}
	}
	return p
}

// left fails the test if scripted steps were never requested.
func (f *fakePD) left(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.script) > 0 {
		t.Errorf("%d scripted answers never requested, first %s %d", len(f.script), f.script[0].method, f.script[0].status)
	}
}

// notes is a list-notes answer with those contents.
func notes(contents ...string) string {
	type note struct {
		ID      string `json:"id"`
		Content string `json:"content"`
	}
	var ns []note
	for i, c := range contents {
		ns = append(ns, note{fmt.Sprintf("PN%d", i), c})
	}
	b, _ := json.Marshal(map[string][]note{"notes": ns})
	return string(b)
}

// waits records the waits the publisher asks for instead of sleeping.
type waits struct {
	mu  sync.Mutex
	got []time.Duration
	// then runs on every wait, e.g. to cancel the publish.
	then func()
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.got = append(w.got, d)
	then := w.then
	w.mu.Unlock()
	if then != nil {
		then()
	}
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.got...)
}

func newPublisher(t *testing.T, url string, w *waits, edit func(*pagerduty.Config), opts ...pagerduty.Option) *pagerduty.Publisher {
	t.Helper()
	cfg := pagerduty.Config{From: testFrom, APIURL: url}
	if edit != nil {
		edit(&cfg)
	}
	p, err := pagerduty.New(cfg, testToken, append([]pagerduty.Option{pagerduty.WithSleep(w.sleep)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// report is a finished run on web-1 for the PagerDuty incident testID.
func report() evidence.Report {
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return evidence.Report{
		Bundle: &evidence.Bundle{
			Manifest: evidence.Manifest{
				Schema:    evidence.ManifestSchema,
				RunID:     "01JD5Z7T3Q",
				Incident:  evidence.Incident{Source: "pagerduty", ID: testID, Title: "CPU high on web-1", Event: "incident.triggered"},
				Host:      evidence.Host{Name: "web-1"},
				Playbook:  evidence.Playbook{Name: "linux-baseline"},
				Status:    evidence.StatusOK,
				StartedAt: start, EndedAt: start.Add(2 * time.Second),
				Steps: []evidence.Step{{
					Name: "load", Command: "uptime", DurationMS: 12,
					Stdout: evidence.Output{File: "steps/01-load.stdout", Bytes: 60, Kept: 60},
				}},
			},
			Files: map[string][]byte{"steps/01-load.stdout": []byte(" 12:00:00 up 3 days,  load average: 7.42, 6.10, 5.01\n")},
		},
		Link:   "https://evidence.example.com/runs/01JD5Z7T3Q/manifest.json",
		Marker: testMark,
	}
}

func TestPublishPostsNote(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 201})
	w := &waits{}
	p := newPublisher(t, f.srv.URL, w, nil)
	if err := p.Publish(context.Background(), report(), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	f.left(t)
	posts := f.posts()
	if len(posts) != 1 {
		t.Fatalf("got %d posts, want 1", len(posts))
	}
	r := posts[0]
	if r.from != testFrom {
		t.Errorf("From: got %q, want %q", r.from, testFrom)
	}
	if want := "Token token=" + testToken; r.auth != want {
		t.Errorf("Authorization: got %q, want %q", r.auth, want)
	}
	if want := "application/vnd.pagerduty+json;version=2"; r.accept != want {
		t.Errorf("Accept: got %q, want %q", r.accept, want)
	}
	var body struct {
		Note struct {
			Content string `json:"content"`
		} `json:"note"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	c := body.Note.Content
	if !strings.HasSuffix(c, "\n\nfirstlook run "+testMark) {
		t.Errorf("content ends %q, want the marker line last", c[max(0, len(c)-60):])
	}
	for _, want := range []string{"linux-baseline on web-1", "load average: 7.42", "https://evidence.example.com/runs/01JD5Z7T3Q/manifest.json"} {
		if !strings.Contains(c, want) {
			t.Errorf("content %q: want it to contain %q", c, want)
		}
	}
	if got := w.all(); len(got) != 0 {
		t.Errorf("got waits %v, want none", got)
	}
}

func TestPublishOAuth(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 201})
	p := newPublisher(t, f.srv.URL, &waits{}, func(c *pagerduty.Config) { c.OAuth = true })
	if err := p.Publish(context.Background(), report(), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got, want := f.posts()[0].auth, "Bearer "+testToken; got != want {
		t.Errorf("Authorization: got %q, want %q", got, want)
	}
}

func TestPublishNotStarted(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 201})
	p := newPublisher(t, f.srv.URL, &waits{}, nil)
	rep := report()
	m := &rep.Bundle.Manifest
	m.Host.Name, m.Status, m.Error, m.Steps = "web-9", evidence.StatusNotStarted, "host not in the inventory", nil
	if err := p.Publish(context.Background(), rep, nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	posts := f.posts()
	if len(posts) != 1 {
		t.Fatalf("got %d posts, want 1: a run that could not start is reported too", len(posts))
	}
	for _, want := range []string{"web-9", "could not run", "host not in the inventory", "firstlook run " + testMark} {
		if !strings.Contains(string(posts[0].body), want) {
			t.Errorf("note %s: want it to contain %q", posts[0].body, want)
		}
	}
}

func TestPublishRender(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 201})
	render := func(r evidence.Report) string { return "custom for " + r.Bundle.Manifest.Host.Name }
	p := newPublisher(t, f.srv.URL, &waits{}, nil, pagerduty.WithRender(render))
	if err := p.Publish(context.Background(), report(), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var body struct {
		Note struct{ Content string } `json:"note"`
	}
	json.Unmarshal(f.posts()[0].body, &body)
	if want := "custom for web-1\n\nfirstlook run " + testMark; body.Note.Content != want {
		t.Errorf("got %q, want %q", body.Note.Content, want)
	}
}

func TestPublishCutsToMaxNote(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 201})
	render := func(evidence.Report) string { return strings.Repeat("ü", 5000) }
	p := newPublisher(t, f.srv.URL, &waits{}, func(c *pagerduty.Config) { c.MaxNote = 1000 }, pagerduty.WithRender(render))
	if err := p.Publish(context.Background(), report(), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var body struct {
		Note struct{ Content string } `json:"note"`
	}
	json.Unmarshal(f.posts()[0].body, &body)
	c := body.Note.Content
	if len(c) > 1000 || len(c) < 990 {
		t.Errorf("got %d bytes, want the most that fits in 1000", len(c))
	}
	if !strings.HasSuffix(c, "\n\nfirstlook run "+testMark) || !strings.Contains(c, "cut to fit") {
		t.Errorf("got …%q, want a cut notice and the marker line last", c[len(c)-120:])
	}
}

func TestPublishSkips(t *testing.T) {
	tests := []struct {
		name          string
		edit          func(*evidence.Report)
		wantPermanent bool
	}{
		{"other source", func(r *evidence.Report) { r.Bundle.Manifest.Incident.Source = "alertmanager" }, false},
		{"no bundle", func(r *evidence.Report) { r.Bundle = nil }, true},
		{"id with a path", func(r *evidence.Report) { r.Bundle.Manifest.Incident.ID = "../users/P1" }, true},
		{"no id", func(r *evidence.Report) { r.Bundle.Manifest.Incident.ID = "" }, true},
		{"no marker", func(r *evidence.Report) { r.Marker = "" }, true},
		{"marker on two lines", func(r *evidence.Report) { r.Marker = "a\nfirstlook run b" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePD(t)
			p := newPublisher(t, f.srv.URL, &waits{}, nil)
			rep := report()
			tt.edit(&rep)
			err := p.Publish(context.Background(), rep, nil, true)
			if got := errors.Is(err, evidence.ErrPermanent); got != tt.wantPermanent {
				t.Errorf("got %v (permanent %v), want permanent %v", err, got, tt.wantPermanent)
			}
			if !tt.wantPermanent && err != nil {
				t.Errorf("got %v, want nil", err)
			}
			if got := f.requests(); len(got) != 0 {
				t.Errorf("got requests %v, want none", got)
			}
		})
	}
}

// within reports whether d is in [lo, hi].
func within(d, lo, hi time.Duration) bool { return d >= lo && d <= hi }

func TestPublishRetries(t *testing.T) {
	f := newFakePD(t,
		step{method: "POST", status: 429, header: map[string]string{"ratelimit-limit": "960", "ratelimit-remaining": "0", "ratelimit-reset": "7"}},
		step{method: "POST", status: 500},
		// A 500 may have landed: look before posting again.
		step{method: "GET", status: 200},
		step{method: "POST", status: 503, header: map[string]string{"Retry-After": "2"}},
		step{method: "GET", status: 200},
		step{method: "POST", status: 201},
	)
	w := &waits{}
	p := newPublisher(t, f.srv.URL, w, nil)
	if err := p.Publish(context.Background(), report(), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	f.left(t)
	if got, want := strings.Join(f.requests(), " "), "POST POST GET POST GET POST"; got != want {
		t.Errorf("got requests %s, want %s", got, want)
	}
	got := w.all()
	if len(got) != 3 {
		t.Fatalf("got waits %v, want 3", got)
	}
	for i, want := range []struct{ lo, hi time.Duration }{
		{7 * time.Second, 8 * time.Second}, // ratelimit-reset, plus up to 1s of jitter
		{time.Second, 2 * time.Second},     // second attempt's backoff: 2s, half of it random
		{2 * time.Second, 3 * time.Second}, // Retry-After
	} {
		if !within(got[i], want.lo, want.hi) {
			t.Errorf("wait %d: got %s, want within [%s, %s]", i+1, got[i], want.lo, want.hi)
		}
	}
	posts := f.posts()
	for _, r := range posts[1:] {
		if string(r.body) != string(posts[0].body) {
			t.Errorf("retried post differs: got %s, want %s", r.body, posts[0].body)
		}
	}
}

func TestPublishPermanent(t *testing.T) {
	for _, status := range []int{400, 401, 403, 404, 422} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			f := newFakePD(t, step{method: "POST", status: status})
			w := &waits{}
			p := newPublisher(t, f.srv.URL, w, nil)
			err := p.Publish(context.Background(), report(), nil, false)
			if !errors.Is(err, evidence.ErrPermanent) {
				t.Errorf("got %v, want ErrPermanent", err)
			}
			if err != nil && !strings.Contains(err.Error(), fmt.Sprint(status)) {
				t.Errorf("error %q does not name the status %d", err, status)
			}
			if got := f.requests(); len(got) != 1 {
				t.Errorf("got requests %v, want 1: no retry", got)
			}
			if got := w.all(); len(got) != 0 {
				t.Errorf("got waits %v, want none", got)
			}
		})
	}
}

func TestPublishAttemptsCapped(t *testing.T) {
	f := newFakePD(t,
		step{method: "POST", status: 503},
		step{method: "GET", status: 200},
		step{method: "POST", status: 502},
		step{method: "GET", status: 200},
		step{method: "POST", status: 504},
	)
	w := &waits{}
	p := newPublisher(t, f.srv.URL, w, func(c *pagerduty.Config) { c.Attempts = 3 })
	err := p.Publish(context.Background(), report(), nil, false)
	if err == nil || errors.Is(err, evidence.ErrPermanent) {
		t.Fatalf("got %v, want a retryable error", err)
	}
	if !strings.Contains(err.Error(), "3 attempts") || !strings.Contains(err.Error(), "504") {
		t.Errorf("got %q, want it to say 3 attempts and the last status", err)
	}
	f.left(t)
	if got := len(f.posts()); got != 3 {
		t.Errorf("got %d posts, want 3", got)
	}
	if got := w.all(); len(got) != 2 {
		t.Errorf("got waits %v, want 2", got)
	}
}

func TestPublishContextCancelStops(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 503})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &waits{then: cancel}
	p := newPublisher(t, f.srv.URL, w, nil)
	err := p.Publish(ctx, report(), nil, false)
	if !errors.Is(err, context.Canceled) || errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("got %v, want context.Canceled, not permanent", err)
	}
	if got := f.requests(); len(got) != 1 {
		t.Errorf("got requests %v, want 1", got)
	}

	// Cancelled before it starts: no request at all.
	f2 := newFakePD(t)
	p2 := newPublisher(t, f2.srv.URL, &waits{}, nil)
	if err := p2.Publish(ctx, report(), nil, false); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if got := f2.requests(); len(got) != 0 {
		t.Errorf("got requests %v, want none", got)
	}
}

func TestPublishWaitBeyondMaxWait(t *testing.T) {
	f := newFakePD(t, step{method: "POST", status: 429, header: map[string]string{"ratelimit-reset": "120"}})
	w := &waits{}
	p := newPublisher(t, f.srv.URL, w, func(c *pagerduty.Config) { c.MaxWait = time.Minute })
	err := p.Publish(context.Background(), report(), nil, false)
	if err == nil || errors.Is(err, evidence.ErrPermanent) || !strings.Contains(err.Error(), "max_wait") {
		t.Errorf("got %v, want a retryable error naming max_wait", err)
	}
	if got := w.all(); len(got) != 0 {
		t.Errorf("got waits %v, want none: the job is delivered again instead", got)
	}
}

func TestPublishNoAnswer(t *testing.T) {
	f := newFakePD(t)
	url := f.srv.URL
	f.srv.Close()
	w := &waits{}
	p := newPublisher(t, url, w, func(c *pagerduty.Config) { c.Attempts = 2 })
	err := p.Publish(context.Background(), report(), nil, false)
	if err == nil || errors.Is(err, evidence.ErrPermanent) {
		t.Errorf("got %v, want a retryable error", err)
	}
	if got := w.all(); len(got) != 1 {
		t.Errorf("got waits %v, want 1", got)
	}
}

func TestPublishAgain(t *testing.T) {
	mine := "**firstlook: linux-baseline on web-1**\n\nfirstlook run " + testMark
	tests := []struct {
		name   string
		script []step
	}{
		{"landed before", []step{
			{method: "GET", status: 200, body: notes("Firefighters are on the scene.", mine)},
		}},
		{"not landed", []step{
			{method: "GET", status: 200, body: notes("Firefighters are on the scene.")},
			{method: "POST", status: 201},
		}},
		{"similar marker is not ours", []step{
			{method: "GET", status: 200, body: notes(mine + "0")},
			{method: "POST", status: 201},
		}},
		{"list throttled, then landed", []step{
			{method: "GET", status: 429, header: map[string]string{"ratelimit-reset": "1"}},
			{method: "GET", status: 200, body: notes(mine)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakePD(t, tt.script...)
			p := newPublisher(t, f.srv.URL, &waits{}, nil)
			if err := p.Publish(context.Background(), report(), nil, true); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			f.left(t)
		})
	}
}

// A post that failed in a way that may have landed is not posted twice.
func TestPublishAmbiguousFailure(t *testing.T) {
	mine := "summary\n\nfirstlook run " + testMark
	f := newFakePD(t,
		step{method: "POST", status: 502},
		step{method: "GET", status: 200, body: notes(mine)},
	)
	p := newPublisher(t, f.srv.URL, &waits{}, nil)
	if err := p.Publish(context.Background(), report(), nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	f.left(t)
	if got := len(f.posts()); got != 1 {
		t.Errorf("got %d posts, want 1", got)
	}
}

func TestTokenNeverShown(t *testing.T) {
	// A server (or proxy) that echoes the Authorization header back.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusUnauthorized
		if r.Method == http.MethodGet {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":"bad credentials %s","code":2006,"errors":[%q]}}`, r.Header.Get("Authorization"), r.Header.Get("Authorization"))
	}))
	defer echo.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	cfg := pagerduty.Config{From: testFrom, APIURL: echo.URL, Attempts: 2}
	p, err := pagerduty.New(cfg, testToken, pagerduty.WithSleep((&waits{}).sleep))
	if err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, again := range []bool{false, true} {
		err := p.Publish(context.Background(), report(), nil, again)
		if err == nil {
			t.Fatal("Publish: got nil, want an error")
		}
		shown = append(shown, err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err))
	}
	pc, _ := pagerduty.New(pagerduty.Config{From: testFrom, APIURL: closed.URL, Attempts: 1}, testToken)
	if err := pc.Publish(context.Background(), report(), nil, false); err != nil {
		shown = append(shown, err.Error())
	} else {
		t.Error("Publish to a closed server: got nil, want an error")
	}
	shown = append(shown,
		fmt.Sprintf("%v", p), fmt.Sprintf("%+v", *p), fmt.Sprintf("%#v", *p),
		fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
	)
	if _, err := pagerduty.New(pagerduty.Config{From: "nope"}, testToken); err != nil {
		shown = append(shown, err.Error())
	}
	for _, s := range shown {
		if strings.Contains(s, testToken) {
			t.Errorf("token shown in %q", s)
		}
	}
	if !strings.Contains(shown[0], "bad credentials Token token=<redacted>") {
		t.Errorf("got %q, want the server's message with the token redacted", shown[0])
	}
}
