package slack_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// errExists is what the runner's state returns.
var errExists = evidence.ErrStateExists

// memState is a per-incident state in memory with compare-and-set Create.
type memState struct {
	mu      sync.Mutex
	m       map[string]string
	gets    int
	creates int
	// gate, when set, holds every Get that finds nothing until it is
	// closed, so that concurrent runs all miss the state and race.
	gate chan struct{}
}

func newState() *memState { return &memState{m: map[string]string{}} }

func (s *memState) Get(ctx context.Context, name string) (string, error) {
	s.mu.Lock()
	s.gets++
	v, gate := s.m[name], s.gate
	s.mu.Unlock()
	if v == "" && gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		// Still the first look's answer: reading again would let a run
		// woken late see the value a faster one created meanwhile, and
		// skip the race the gate is there to make (TestPublishRace
		// failed so under -race on a loaded machine).
	}
	return v, nil
}

func (s *memState) Create(_ context.Context, name, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creates++
	if s.m[name] != "" {
		return errExists
	}
	s.m[name] = value
	return nil
}

func (s *memState) value(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

// sleeps records the waits a publisher asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return nil
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// newServer starts a fake Slack for one test.
func newServer(t *testing.T) *slacktest.Server {
	t.Helper()
	srv := slacktest.NewServer()
	t.Cleanup(srv.Close)
	return srv
}

// newPublisher returns a publisher on srv with token, whose waits are
// recorded in the returned sleeps.
func newPublisher(t *testing.T, srv *slacktest.Server, cfg slack.Config, token string, opts ...slack.Option) (*slack.Publisher, *sleeps) {
	t.Helper()
	cfg.APIURL = srv.URL
	sl := &sleeps{}
	opts = append([]slack.Option{slack.WithSleep(sl.sleep), slack.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	p, err := slack.New(cfg, token, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, sl
}

// report returns a run of playbook "linux-baseline" on host for incident
// number n ("Disk full on db-1"), with two steps and their output.
func report(n int, host, marker string) evidence.Report {
	end := time.Now().Add(-time.Second)
	return evidence.Report{
		Bundle: &evidence.Bundle{
			Manifest: evidence.Manifest{
				Schema:    evidence.ManifestSchema,
				RunID:     "run-" + marker,
				Incident:  evidence.Incident{Source: "pagerduty", ID: fmt.Sprintf("Q%dABC", n), Number: n, Title: "Disk full on db-1", Service: "Database (prod)"},
				Host:      evidence.Host{Name: host, Address: "10.0.0.5"},
				Playbook:  evidence.Playbook{Name: "linux-baseline"},
				Status:    evidence.StatusFailed,
				StartedAt: end.Add(-3 * time.Second),
				EndedAt:   end,
				Steps: []evidence.Step{
					{Name: "load", Command: "uptime", ExitCode: 0, Stdout: evidence.Output{File: "1.stdout", Bytes: 60, Kept: 60}},
					{Name: "disk", Command: "df -h /var", ExitCode: 1, Stdout: evidence.Output{File: "2.stdout", Bytes: 48, Kept: 48},
						Stderr: evidence.Output{File: "2.stderr", Bytes: 20, Kept: 20}},
				},
			},
			Files: map[string][]byte{
				"1.stdout": []byte(" 12:00:01 up 10 days,  load average: 9.10, 8.20, 7.30\n"),
				"2.stdout": []byte("/dev/sda1  100G  100G  0 100% /var\n"),
				"2.stderr": []byte("df: warning: full\n"),
			},
		},
		Link:   "https://evidence.example/" + marker + "/manifest.json",
		Marker: "firstlook:" + marker,
	}
}

// markerOf returns the marker in a message's metadata.
func markerOf(m slacktest.Message) string {
	if m.Metadata == nil {
		return ""
	}
	s, _ := m.Metadata.EventPayload["marker"].(string)
	return s
}
