// Package sinktest is the contract every evidence.Publisher must keep, as
// one suite that each sink's tests run against a real (or the one
// faithful fake) service: evidence/pagerduty through Prism serving
// PagerDuty's spec, evidence/slack against slacktest, evidence/webhook
// against an HTTP server that verifies its signature.
//
// The contract, as the runner relies on it (see evidence.Publisher):
//
//   - a run is posted once;
//   - the same summary published again, with again set, is not posted a
//     second time;
//   - a permanent failure wraps evidence.ErrPermanent and is not retried;
//   - a retryable failure is retried, here or by the runner's redelivery
//     (Publish again with again set), and the run ends up posted once;
//   - exactly once across a crash between the post and the runner's
//     record of it: the post landed, its answer was lost, and the
//     redelivered publish finds it instead of posting again.
package sinktest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
)

// Backend is a publisher under test and the service it posts to, fresh
// for one subtest.
type Backend struct {
	// Publisher posts to the service. Its waits between attempts should
	// not be spent (a recorded sleep): the suite only counts them.
	Publisher evidence.Publisher
	// Posts returns how many summaries the service holds.
	Posts func(t *testing.T) int
	// Attempts returns how many times the service was asked to post a
	// summary, refused and lost posts included.
	Attempts func(t *testing.T) int
	// Fail makes the service's next post fail as f says.
	Fail func(t *testing.T, f Failure)
}

// Failure is a way a post fails.
type Failure int

// Failures the service must be able to produce.
const (
	// Permanent: the post is refused as when retrying cannot help (a
	// revoked token, a channel the bot may not post in).
	Permanent Failure = iota + 1
	// Retryable: the post is refused as when the service is throttled
	// (429) or briefly down; it did nothing.
	Retryable
	// Lost: the post lands and its answer is lost (a 502 from a proxy, a
	// cut connection).
	Lost
)

func (f Failure) String() string {
	switch f {
	case Permanent:
		return "permanent"
	case Retryable:
		return "retryable"
	case Lost:
		return "lost"
	}
	return "?"
}

// Incident is the incident of the suite's reports: a PagerDuty incident,
// which every sink can take.
var incident = evidence.Incident{
	Source: "pagerduty", ID: "Q2PA7TSJ0XGIQU", Number: 4242,
	Title: "CPU high on web-1", Service: "Checkout (prod)", Event: "incident.triggered",
}

// Report returns a finished run of incident Q2PA7TSJ0XGIQU on web-1,
// marked marker.
func Report(marker string) evidence.Report {
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return evidence.Report{
		Bundle: &evidence.Bundle{
			Manifest: evidence.Manifest{
				Schema:    evidence.ManifestSchema,
				RunID:     marker,
				Incident:  incident,
				Host:      evidence.Host{Name: "web-1", Address: "10.0.0.5"},
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
		Link:   "https://evidence.example.com/runs/" + marker + "/manifest.json",
		Marker: marker,
	}
}

// State is an evidence.IncidentState in memory, compare-and-set like the
// runner's.
type State struct {
	mu sync.Mutex
	m  map[string]string
}

// Get returns the value under name, or "".
func (s *State) Get(_ context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name], nil
}

// Create stores value under name, or fails with evidence.ErrStateExists.
func (s *State) Create(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[name]; ok {
		return evidence.ErrStateExists
	}
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[name] = value
	return nil
}

var _ evidence.IncidentState = (*State)(nil)

// maxRedeliveries bounds how often the suite plays the runner delivering a
// job again after a retryable error.
const maxRedeliveries = 5

// Run runs the contract against backends made by open; each subtest gets a
// fresh one.
func Run(t *testing.T, open func(t *testing.T) Backend) {
	ctx := func(t *testing.T) context.Context {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		return c
	}
	t.Run("Posts", func(t *testing.T) {
		b, st := open(t), &State{}
		if s := b.Publisher.Sink(); s == "" {
			t.Error("Sink() is empty: the runner keys its state by it")
		}
		if err := b.Publisher.Publish(ctx(t), Report("run-1"), st, false); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if got := b.Posts(t); got != 1 {
			t.Errorf("got %d posts, want 1", got)
		}
	})
	t.Run("SameSummaryTwice", func(t *testing.T) {
		b, st := open(t), &State{}
		rep := Report("run-1")
		for i, again := range []bool{false, true} {
			if err := b.Publisher.Publish(ctx(t), rep, st, again); err != nil {
				t.Fatalf("Publish %d (again %v): %v", i+1, again, err)
			}
		}
		if got := b.Posts(t); got != 1 {
			t.Errorf("got %d posts of one run published twice, want 1", got)
		}
		// Another run is another post.
		if err := b.Publisher.Publish(ctx(t), Report("run-2"), st, true); err != nil {
			t.Fatalf("Publish run-2: %v", err)
		}
		if got := b.Posts(t); got != 2 {
			t.Errorf("got %d posts of two runs, want 2", got)
		}
	})
	t.Run("PermanentNoRetry", func(t *testing.T) {
		b, st := open(t), &State{}
		b.Fail(t, Permanent)
		err := b.Publisher.Publish(ctx(t), Report("run-1"), st, false)
		if !errors.Is(err, evidence.ErrPermanent) {
			t.Fatalf("got %v, want an error wrapping evidence.ErrPermanent", err)
		}
		if got := b.Attempts(t); got != 1 {
			t.Errorf("got %d attempts, want 1: a permanent failure is not retried", got)
		}
		if got := b.Posts(t); got != 0 {
			t.Errorf("got %d posts, want 0", got)
		}
	})
	t.Run("RetryableRetried", func(t *testing.T) {
		b, st := open(t), &State{}
		b.Fail(t, Retryable)
		if err := redeliver(ctx(t), t, b, Report("run-1"), st); err != nil {
			t.Fatal(err)
		}
		if got := b.Attempts(t); got < 2 {
			t.Errorf("got %d attempts, want the refused post retried", got)
		}
		if got := b.Posts(t); got != 1 {
			t.Errorf("got %d posts, want 1", got)
		}
	})
	t.Run("CrashBetweenPostAndRecord", func(t *testing.T) {
		// The post lands; the worker dies before the runner records it,
		// so the job is delivered again and Publish runs with again set.
		b, st := open(t), &State{}
		rep := Report("run-1")
		if err := b.Publisher.Publish(ctx(t), rep, st, false); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		if err := b.Publisher.Publish(ctx(t), rep, st, true); err != nil {
			t.Fatalf("Publish again after the crash: %v", err)
		}
		if got := b.Posts(t); got != 1 {
			t.Errorf("got %d posts, want 1", got)
		}
	})
	t.Run("LostAnswer", func(t *testing.T) {
		// The post lands but its answer is lost: the publisher cannot
		// know, so it either looks before posting again or returns a
		// retryable error and the runner's redelivery looks.
		b, st := open(t), &State{}
		b.Fail(t, Lost)
		if err := redeliver(ctx(t), t, b, Report("run-1"), st); err != nil {
			t.Fatal(err)
		}
		if got := b.Posts(t); got != 1 {
			t.Errorf("got %d posts, want 1 (a lost answer must not make a second post)", got)
		}
	})
}

// redeliver publishes rep as the runner does: again, with again set, while
// the error is retryable.
func redeliver(ctx context.Context, t *testing.T, b Backend, rep evidence.Report, st evidence.IncidentState) error {
	t.Helper()
	again := false
	for range maxRedeliveries {
		err := b.Publisher.Publish(ctx, rep, st, again)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, evidence.ErrPermanent):
			return errors.New("got a permanent error for a retryable failure: " + err.Error())
		}
		again = true
	}
	return errors.New("still failing after redeliveries")
}
