package pagerduty_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/pagerduty"
	"github.com/firstlook/firstlook/evidence/redacttest"
)

// TestPrismRedactedNote: a run whose output and alert title held planted
// secrets of every kind, redacted as the runner does before publishing,
// becomes a note the PagerDuty spec accepts and that holds none of them.
func TestPrismRedactedNote(t *testing.T) {
	red, err := evidence.NewRedactor(evidence.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	secrets := redacttest.Plant(11)
	rep := report()
	b := rep.Bundle
	st := &b.Manifest.Steps[0]
	st.Stdout = b.SetOutput(st.Stdout.File, []byte(redacttest.Output(secrets)), 0)
	b.Manifest.Incident.Title = "CPU high on web-1 " + secrets[0].Text
	red.RedactBundle(b)

	check := newSpecCheck()
	rec := &bodies{next: check}
	p := newPublisher(t, prismURL(t), &waits{}, nil, pagerduty.WithTransport(rec))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Publish(ctx, rep, nil, false); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	check.valid(t)
	notes := rec.notes(t)
	if len(notes) != 1 {
		t.Fatalf("posted %d notes, want 1", len(notes))
	}
	if leaks := redacttest.Leaks(notes[0], secrets); len(leaks) > 0 {
		t.Errorf("the note leaks %d secrets:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
	if !strings.Contains(notes[0], "[REDACTED:") || !strings.Contains(notes[0], "secret(s) redacted") {
		t.Errorf("the note shows no redaction:\n%s", notes[0])
	}
}

// bodies keeps the request bodies that pass through it.
type bodies struct {
	next http.RoundTripper
	mu   sync.Mutex
	got  [][]byte
}

func (r *bodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(b))
		r.mu.Lock()
		r.got = append(r.got, b)
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

// notes are the contents of the notes posted.
func (r *bodies) notes(t *testing.T) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.got {
		var body struct {
			Note struct {
				Content string `json:"content"`
			} `json:"note"`
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("request body: %v", err)
		}
		out = append(out, body.Note.Content)
	}
	return out
}
