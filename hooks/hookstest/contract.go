package hookstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/firstlook/firstlook/hooks"
)

// Case is one source put through the contract every source keeps: 401
// for bad credentials, 400 with a reason for bad bodies, 413 over the body
// cap, 405 for anything but POST, a trigger stored before its 2xx, a
// retried delivery stored once, 503 when the queue cannot store.
type Case struct {
	Source hooks.Source
	// Request returns a request carrying body that the source
	// authenticates (credentials, a signature over body).
	Request func(tb testing.TB, body []byte) *http.Request
	// Good is a delivery that runs at least one trigger.
	Good []byte
	// Forged are requests the source must refuse with 401, by name.
	Forged map[string]*http.Request
	// Bad are authenticated bodies the source must refuse with 400, by
	// name, each with a part of the reason it must give.
	Bad map[string]BadBody
}

// BadBody is a body a source refuses and a part of the reason it gives.
type BadBody struct {
	Body   []byte
	Reason string
}

// Queue is an in-memory hooks.Queue and hooks.Resolver for tests: it
// de-duplicates on the job id as the real queue does, and fails when Err
// is set.
type Queue struct {
	mu       sync.Mutex
	Stored   []hooks.Trigger
	Resolved []hooks.Trigger
	Err      error
	seen     map[string]bool
}

// Put stores t unless its job id was stored before.
func (q *Queue) Put(_ context.Context, t hooks.Trigger) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Err != nil {
		return false, q.Err
	}
	if q.seen == nil {
		q.seen = map[string]bool{}
	}
	if q.seen[t.JobID()] {
		return true, nil
	}
	q.seen[t.JobID()] = true
	q.Stored = append(q.Stored, t)
	return false, nil
}

// Resolve records t.
func (q *Queue) Resolve(_ context.Context, t hooks.Trigger) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.Err != nil {
		return q.Err
	}
	q.Resolved = append(q.Resolved, t)
	return nil
}

// Counts returns how many triggers were stored and resolved.
func (q *Queue) Counts() (stored, resolved int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.Stored), len(q.Resolved)
}

// Triggers returns copies of what was stored and resolved, for tests
// whose deliveries arrive concurrently.
func (q *Queue) Triggers() (stored, resolved []hooks.Trigger) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]hooks.Trigger(nil), q.Stored...), append([]hooks.Trigger(nil), q.Resolved...)
}

// Serve sends r to a handler of src over q and returns the status and
// the decoded reply.
func Serve(tb testing.TB, src hooks.Source, q *Queue, r *http.Request) (int, hooks.Reply) {
	tb.Helper()
	h := hooks.NewHandler(src, hooks.Options{Queue: q, Resolver: q, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var reply hooks.Reply
	if err := json.Unmarshal(w.Body.Bytes(), &reply); err != nil {
		tb.Fatalf("reply %q is not JSON: %v", w.Body, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		tb.Errorf("got Content-Type %q, want application/json", ct)
	}
	return w.Code, reply
}

// Run puts c through the contract.
func Run(t *testing.T, c Case) {
	t.Run("stores before 2xx", func(t *testing.T) {
		q := &Queue{}
		code, reply := Serve(t, c.Source, q, c.Request(t, c.Good))
		stored, _ := q.Counts()
		if code != http.StatusAccepted || reply.Status != "queued" || stored == 0 {
			t.Fatalf("got %d %+v with %d stored, want 202 queued with triggers stored", code, reply, stored)
		}
		for _, tr := range q.Stored {
			if tr.Source == "" || tr.DeliveryID == "" || tr.Incident.ID == "" || tr.Event == "" || tr.ReceivedAt.IsZero() {
				t.Errorf("stored an incomplete trigger: %+v", tr)
			}
		}
		// The sender's retry of the same delivery stores nothing new.
		code, reply = Serve(t, c.Source, q, c.Request(t, c.Good))
		again, _ := q.Counts()
		if code != http.StatusAccepted || reply.Status != "duplicate" || again != stored {
			t.Errorf("retry: got %d %+v with %d stored, want 202 duplicate with %d stored", code, reply, again, stored)
		}
	})
	t.Run("queue down", func(t *testing.T) {
		q := &Queue{Err: errors.New("nats: timeout")}
		code, reply := Serve(t, c.Source, q, c.Request(t, c.Good))
		if code != http.StatusServiceUnavailable || !strings.Contains(reply.Reason, "retry") {
			t.Errorf("got %d %+v, want 503 asking for a retry", code, reply)
		}
	})
	t.Run("over the cap", func(t *testing.T) {
		q := &Queue{}
		big := append(bytes.Repeat([]byte(" "), hooks.MaxBody), c.Good...)
		code, reply := Serve(t, c.Source, q, c.Request(t, big))
		if stored, _ := q.Counts(); code != http.StatusRequestEntityTooLarge || stored != 0 || reply.Reason == "" {
			t.Errorf("got %d %+v with %d stored, want 413 with a reason and nothing stored", code, reply, stored)
		}
	})
	t.Run("not POST", func(t *testing.T) {
		r := c.Request(t, c.Good)
		r.Method = http.MethodGet
		if code, _ := Serve(t, c.Source, &Queue{}, r); code != http.StatusMethodNotAllowed {
			t.Errorf("got %d, want 405", code)
		}
	})
	for name, r := range c.Forged {
		t.Run("forged/"+name, func(t *testing.T) {
			q := &Queue{}
			code, reply := Serve(t, c.Source, q, r)
			if stored, resolved := q.Counts(); code != http.StatusUnauthorized || stored+resolved != 0 || reply.Reason == "" {
				t.Errorf("got %d %+v with %d stored, want 401 with a reason and nothing stored", code, reply, stored+resolved)
			}
		})
	}
	for name, b := range c.Bad {
		t.Run("bad/"+name, func(t *testing.T) {
			q := &Queue{}
			code, reply := Serve(t, c.Source, q, c.Request(t, b.Body))
			if stored, resolved := q.Counts(); code != http.StatusBadRequest || stored+resolved != 0 || !strings.Contains(reply.Reason, b.Reason) {
				t.Errorf("got %d %+v with %d stored, want 400 with a reason containing %q and nothing stored", code, reply, stored+resolved, b.Reason)
			}
		})
	}
}
