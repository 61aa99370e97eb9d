package pagerduty_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/pagerduty"
	"github.com/firstlook/firstlook/evidence/sinktest"
)

// TestContract runs the sink contract through Prism serving PagerDuty's
// spec: every request the publisher sends is validated by it and answered
// in its shape (its Prefer header gives the refusals real-shaped bodies).
// Prism keeps no state, so noteBook, in front of it, remembers the notes
// it accepted and lists them back.
func TestContract(t *testing.T) {
	url := prismURL(t)
	sinktest.Run(t, func(t *testing.T) sinktest.Backend {
		check := newSpecCheck()
		t.Cleanup(func() { check.valid(t) })
		book := &noteBook{next: check}
		p := newPublisher(t, url, &waits{}, nil, pagerduty.WithTransport(book))
		return sinktest.Backend{
			Publisher: p,
			Posts:     func(*testing.T) int { return book.count() },
			Attempts:  func(*testing.T) int { return book.tries() },
			Fail:      func(_ *testing.T, f sinktest.Failure) { book.failNext(f) },
		}
	})
}

// noteBook is the notes of PagerDuty incidents, kept in front of Prism.
type noteBook struct {
	next http.RoundTripper

	mu       sync.Mutex
	notes    []string // contents, in order
	attempts int
	fail     []sinktest.Failure
}

func (b *noteBook) failNext(f sinktest.Failure) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fail = append(b.fail, f)
}

func (b *noteBook) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.notes)
}

func (b *noteBook) tries() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempts
}

func (b *noteBook) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasSuffix(req.URL.Path, "/notes") {
		return b.next.RoundTrip(req)
	}
	if req.Method == http.MethodGet {
		resp, err := b.next.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			return resp, err
		}
		resp.Body.Close()
		b.mu.Lock()
		var list []map[string]any
		for i, c := range b.notes {
			list = append(list, map[string]any{
				"id": fmt.Sprintf("PNOTE%02d", i), "content": c, "created_at": time.Now().UTC().Format(time.RFC3339),
				"user": map[string]any{"id": "PUSER01", "type": "user_reference"}, "channel": map[string]any{"summary": "The PagerDuty website or APIs"},
			})
		}
		b.mu.Unlock()
		body, _ := json.Marshal(map[string]any{"notes": list})
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
		return resp, nil
	}
	raw, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	var n struct {
		Note struct {
			Content string `json:"content"`
		} `json:"note"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("note body: %w", err)
	}
	b.mu.Lock()
	b.attempts++
	var f sinktest.Failure
	if len(b.fail) > 0 {
		f, b.fail = b.fail[0], b.fail[1:]
	}
	b.mu.Unlock()
	req = req.Clone(req.Context())
	req.Body = io.NopCloser(bytes.NewReader(raw))
	switch f {
	case sinktest.Permanent:
		req.Header.Set("Prefer", "code=401")
	case sinktest.Retryable:
		req.Header.Set("Prefer", "code=429")
	}
	resp, err := b.next.RoundTrip(req)
	if err != nil || resp.StatusCode/100 != 2 {
		return resp, err
	}
	b.mu.Lock()
	b.notes = append(b.notes, n.Note.Content)
	b.mu.Unlock()
	if f == sinktest.Lost {
		resp.Body.Close()
		return nil, errors.New("read: connection reset by peer")
	}
	return resp, nil
}
