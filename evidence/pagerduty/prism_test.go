package pagerduty_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/pagerduty"
)

// specCheck records every exchange with Prism and what Prism's validation
// said of the request: Prism (mock --errors) answers a request the
// PagerDuty spec rejects with an error status and an sl-violations header.
type specCheck struct {
	next http.RoundTripper
	// prefer, when set, asks Prism for that response code (its Prefer
	// header), to see real-shaped error answers.
	prefer string

	mu   sync.Mutex
	seen []seen
}

type seen struct {
	method, path string
	status       int
	violations   string
}

func (s seen) String() string { return fmt.Sprintf("%s %s %d", s.method, s.path, s.status) }

func newSpecCheck() *specCheck {
	return &specCheck{next: http.DefaultTransport.(*http.Transport).Clone()}
}

func (c *specCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.prefer != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Prefer", "code="+c.prefer)
	}
	resp, err := c.next.RoundTrip(req)
	if resp != nil {
		c.mu.Lock()
		c.seen = append(c.seen, seen{req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("sl-violations")})
		c.mu.Unlock()
	}
	return resp, err
}

func (c *specCheck) exchanges() []seen {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]seen(nil), c.seen...)
}

// valid fails the test for any request the spec rejected.
func (c *specCheck) valid(t *testing.T) {
	t.Helper()
	for _, s := range c.exchanges() {
		if s.violations != "" {
			t.Errorf("%s: the PagerDuty spec rejects the request: %s", s, s.violations)
		}
	}
}

func prismPublisher(t *testing.T, check *specCheck, w *waits, edit func(*pagerduty.Config), opts ...pagerduty.Option) *pagerduty.Publisher {
	t.Helper()
	url := prismURL(t)
	return newPublisher(t, url, w, edit, append([]pagerduty.Option{pagerduty.WithTransport(check)}, opts...)...)
}

func TestPrismPublish(t *testing.T) {
	notStarted := func(r *evidence.Report) {
		m := &r.Bundle.Manifest
		m.Host.Name, m.Status, m.Error, m.Steps = "web-9", evidence.StatusNotStarted, "host not in the inventory", nil
	}
	tests := []struct {
		name  string
		again bool
		edit  func(*evidence.Report)
		cfg   func(*pagerduty.Config)
		opts  []pagerduty.Option
		want  string
	}{
		{name: "oauth token", cfg: func(c *pagerduty.Config) { c.OAuth = true }, want: "POST 200"},
		{name: "post", want: "POST 200"},
		{name: "again lists notes first", again: true, want: "GET 200, POST 200"},
		{name: "not started", edit: notStarted, want: "POST 200"},
		{name: "note at the size limit", want: "POST 200", opts: []pagerduty.Option{pagerduty.WithRender(func(evidence.Report) string {
			return strings.Repeat("load average: 7.42 — 界\n", 5000)
		})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := newSpecCheck()
			p := prismPublisher(t, check, &waits{}, tt.cfg, tt.opts...)
			rep := report()
			if tt.edit != nil {
				tt.edit(&rep)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := p.Publish(ctx, rep, nil, tt.again); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			check.valid(t)
			var got []string
			for _, s := range check.exchanges() {
				got = append(got, fmt.Sprintf("%s %d", s.method, s.status))
				if want := "/incidents/" + testID + "/notes"; s.path != want {
					t.Errorf("%s: want path %s", s, want)
				}
			}
			if strings.Join(got, ", ") != tt.want {
				t.Errorf("got %s, want %s", strings.Join(got, ", "), tt.want)
			}
		})
	}
}

// The spec's From header is enforced: the same request without it, or
// with a From that is not an email, is rejected. This is what makes the
// valid() checks above worth something.
func TestPrismEnforcesFrom(t *testing.T) {
	url := prismURL(t)
	tests := []struct {
		from          string
		wantStatus    int
		wantViolation string
	}{
		{testFrom, 200, ""},
		{"", 400, "required property 'from'"},
		{"firstlook", 400, "parameter from must match format"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.from), func(t *testing.T) {
			check := newSpecCheck()
			c := gopd.NewClient(testToken, gopd.WithAPIEndpoint(url))
			c.HTTPClient = &http.Client{Transport: check, Timeout: 10 * time.Second}
			_, err := c.CreateIncidentNoteWithContext(context.Background(), testID, gopd.IncidentNote{
				Content: "firstlook run " + testMark,
				User:    gopd.APIObject{Summary: tt.from},
			})
			if (err == nil) != (tt.wantStatus == 200) {
				t.Errorf("got error %v, want status %d", err, tt.wantStatus)
			}
			ex := check.exchanges()
			if len(ex) != 1 {
				t.Fatalf("got %d exchanges, want 1", len(ex))
			}
			if ex[0].status != tt.wantStatus {
				t.Errorf("got status %d, want %d", ex[0].status, tt.wantStatus)
			}
			if tt.wantViolation == "" && ex[0].violations != "" || !strings.Contains(ex[0].violations, tt.wantViolation) {
				t.Errorf("got sl-violations %q, want %q", ex[0].violations, tt.wantViolation)
			}
		})
	}
}

// Error answers shaped by the spec (Prism's Prefer: code=…) are classified
// as the scripted ones are: 429 retried, other 4xx permanent.
func TestPrismErrorAnswers(t *testing.T) {
	tests := []struct {
		code          string
		wantPermanent bool
		wantPosts     int
	}{
		{"429", false, 2},
		{"400", true, 1},
		{"401", true, 1},
		{"403", true, 1},
		{"404", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			check := newSpecCheck()
			check.prefer = tt.code
			w := &waits{}
			p := prismPublisher(t, check, w, func(c *pagerduty.Config) { c.Attempts = 2 })
			err := p.Publish(context.Background(), report(), nil, false)
			if err == nil || errors.Is(err, evidence.ErrPermanent) != tt.wantPermanent {
				t.Errorf("got %v, want an error, permanent %v", err, tt.wantPermanent)
			}
			check.valid(t)
			ex := check.exchanges()
			if len(ex) != tt.wantPosts {
				t.Errorf("got %v, want %d posts", ex, tt.wantPosts)
			}
			for _, s := range ex {
				if fmt.Sprint(s.status) != tt.code {
					t.Errorf("%s: want status %s", s, tt.code)
				}
			}
			if got := len(w.all()); got != tt.wantPosts-1 {
				t.Errorf("got %d waits, want %d", got, tt.wantPosts-1)
			}
		})
	}
}
