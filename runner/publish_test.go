package runner_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/failpoint"
)

// sink is a publisher that keeps what it was sent and, like the real
// ones, looks for the run's marker when asked to publish again.
type sink struct {
	name  string
	mu    sync.Mutex
	posts map[string]int // marker → posts
	calls int
}

func (s *sink) Sink() string { return s.name }

func (s *sink) Publish(_ context.Context, rep evidence.Report, _ evidence.IncidentState, again bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if again && s.posts[rep.Marker] > 0 {
		return nil
	}
	if s.posts == nil {
		s.posts = map[string]int{}
	}
	s.posts[rep.Marker]++
	return nil
}

func (s *sink) total() (posts, markers int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.posts {
		posts += n
	}
	return posts, len(s.posts)
}

// TestPublishExactlyOnce kills the worker at each point of the run's
// store-and-publish path; after redelivery every sink has exactly one post
// and the store exactly one bundle.
func TestPublishExactlyOnce(t *testing.T) {
	points := []string{"", "store:after", "publish:pagerduty:before", "publish:pagerduty:after", "publish:slack:before", "publish:slack:after"}
	for _, point := range points {
		name := point
		if name == "" {
			name = "no crash"
		}
		t.Run(name, func(t *testing.T) {
			e := newQueueEnv(t)
			pd, sl := &sink{name: "pagerduty"}, &sink{name: "slack"}
			var fired atomic.Bool
			r, err := runner.New(runner.Options{
				Config:     runner.Config{Workers: 1, Heartbeat: 500 * time.Millisecond, Hints: runner.HintsConfig{Title: []runner.TitlePattern{{Pattern: `\bon (?P<host>[a-z0-9-]+)`}}}},
				Jobs:       runner.QueueJobs(e.q),
				State:      e.q.State(),
				Leases:     runner.QueueLeases(e.q),
				Inventory:  testInventory(t),
				Playbooks:  loadPlaybooks(t, map[string]string{"p.yaml": basic}),
				Dialer:     fixed(nil),
				Store:      e.store,
				Publishers: []evidence.Publisher{pd, sl},
				Log:        quiet(),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(failpoint.With(context.Background(), func(p string) bool { return p == point && fired.CompareAndSwap(false, true) }))
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			defer func() { cancel(); <-done }()

			if _, err := e.q.Put(context.Background(), trigger("INC-X", "load on web-1")); err != nil {
				t.Fatal(err)
			}
			e.waitFor(t, "both sinks to have the run", func() bool {
				p, _ := pd.total()
				s, _ := sl.total()
				return p >= 1 && s >= 1 && e.stored(t) == 0
			})
			if point != "" && !fired.Load() {
				t.Fatalf("the failpoint %s never fired", point)
			}
			for _, s := range []*sink{pd, sl} {
				if posts, markers := s.total(); posts != 1 || markers != 1 {
					t.Errorf("%s: got %d posts of %d runs, want exactly 1", s.name, posts, markers)
				}
			}
			if n := len(e.manifests("INC-X")); n != 1 {
				t.Errorf("got %d bundles, want 1", n)
			}
		})
	}
}
