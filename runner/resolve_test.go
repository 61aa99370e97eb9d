package runner_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/ssh"
)

// startWith runs a runner over e with a publisher, and returns how many
// times it dialled a host.
func (e *queueEnv) startWith(t *testing.T, d runner.Dialer, sink *reportSink) {
	t.Helper()
	r, err := runner.New(runner.Options{
		Config:     runner.Config{Workers: 2, Grace: 5 * time.Second, Heartbeat: 500 * time.Millisecond, Hints: runner.HintsConfig{Title: []runner.TitlePattern{{Pattern: `\bon (?P<host>[a-z0-9-]+)`}}}},
		Jobs:       runner.QueueJobs(e.q),
		State:      e.q.State(),
		Inventory:  testInventory(t),
		Playbooks:  loadPlaybooks(t, map[string]string{"p.yaml": basic}),
		Dialer:     d,
		Store:      e.store,
		Publishers: []evidence.Publisher{sink},
		Log:        quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func counting(n *atomic.Int32, d runner.Dialer) runner.Dialer {
	return dialerFunc(func(ctx context.Context, tg ssh.Target) (runner.Conn, error) {
		n.Add(1)
		return d.Dial(ctx, tg)
	})
}

func (s *reportSink) all() []evidence.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]evidence.Report(nil), s.reps...)
}

// TestResolvedBeforeRunStarts: the incident resolved while its job was
// queued: the run does not start, nothing reaches the host, and the
// incident is told it resolved before diagnostics ran. The alert firing
// again later runs as usual.
func TestResolvedBeforeRunStarts(t *testing.T) {
	e := newQueueEnv(t)
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-time.Minute)
	tr := trigger("INC-R", "load on web-1")
	tr.ReceivedAt = t0
	if _, err := e.q.Put(ctx, tr); err != nil {
		t.Fatal(err)
	}
	res := tr
	res.DeliveryID, res.Event, res.ReceivedAt = "wh-resolved", "incident.resolved", t0.Add(time.Second)
	if err := runner.Resolutions(e.q.State()).Resolve(ctx, res); err != nil {
		t.Fatal(err)
	}
	var dials atomic.Int32
	sink := &reportSink{}
	e.startWith(t, counting(&dials, fixed(nil)), sink)
	e.waitFor(t, "the job's ack", func() bool { return len(e.manifests("INC-R")) == 1 && e.stored(t) == 0 && len(sink.all()) == 1 })
	m := sink.all()[0].Bundle.Manifest
	if m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "resolved") || !strings.Contains(m.Error, "before diagnostics ran") {
		t.Errorf("got status %s, error %q; want not started because it resolved", m.Status, m.Error)
	}
	if !strings.Contains(evidence.Markdown(sink.all()[0]), "before diagnostics ran") {
		t.Errorf("the note does not say it resolved:\n%s", evidence.Markdown(sink.all()[0]))
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("dialled %d hosts for a resolved incident", n)
	}
}

// TestResolveKeepsLatest: resolves of an alert keep the latest time, and
// a trigger received after it (the alarm went off again) runs.
func TestResolveKeepsLatest(t *testing.T) {
	e := newQueueEnv(t)
	ctx := context.Background()
	now := time.Now().UTC()
	res := runner.Resolutions(e.q.State())
	for _, at := range []time.Time{now.Add(-time.Hour), now.Add(-2 * time.Hour)} {
		if err := res.Resolve(ctx, hooks.Trigger{Source: "sns", Alert: "arn:alarm", Incident: hooks.Incident{ID: "arn:alarm"}, Event: "incident.resolved", ReceivedAt: at}); err != nil {
			t.Fatal(err)
		}
	}
	var dials atomic.Int32
	sink := &reportSink{}
	e.startWith(t, counting(&dials, fixed(nil)), sink)
	before := hooks.Trigger{Source: "sns", DeliveryID: "m-1", Event: "incident.triggered", Alert: "arn:alarm", ReceivedAt: now.Add(-90 * time.Minute),
		Incident: hooks.Incident{ID: "arn:alarm@1", Title: "load on web-1"}}
	after := before
	after.DeliveryID, after.Incident.ID, after.ReceivedAt = "m-2", "arn:alarm@2", now
	for _, tr := range []hooks.Trigger{before, after} {
		if _, err := e.q.Put(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor(t, "both jobs", func() bool { return len(sink.all()) == 2 && e.stored(t) == 0 })
	got := map[string]evidence.Status{}
	for _, rep := range sink.all() {
		got[rep.Bundle.Manifest.Incident.ID] = rep.Bundle.Manifest.Status
	}
	if got["arn:alarm@1"] != evidence.StatusNotStarted || got["arn:alarm@2"] != evidence.StatusOK {
		t.Errorf("got %v; want the one before the resolve not started, the one after it run", got)
	}
}

// TestRunInProgressFinishes: a resolve that arrives while the run is on
// the host does not stop it.
func TestRunInProgressFinishes(t *testing.T) {
	e := newQueueEnv(t)
	ctx := context.Background()
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	d := dialerFunc(func(ctx context.Context, tg ssh.Target) (runner.Conn, error) {
		once.Do(func() { close(entered) })
		<-release
		return fixed(nil).Dial(ctx, tg)
	})
	sink := &reportSink{}
	e.startWith(t, d, sink)
	tr := trigger("INC-P", "load on web-1")
	tr.ReceivedAt = time.Now().UTC()
	if _, err := e.q.Put(ctx, tr); err != nil {
		t.Fatal(err)
	}
	<-entered
	res := tr
	res.Event, res.ReceivedAt = "incident.resolved", time.Now().UTC().Add(time.Second)
	if err := runner.Resolutions(e.q.State()).Resolve(ctx, res); err != nil {
		t.Fatal(err)
	}
	close(release)
	e.waitFor(t, "the run", func() bool { return len(sink.all()) == 1 })
	if m := sink.all()[0].Bundle.Manifest; m.Status != evidence.StatusOK {
		t.Errorf("got %s (%s), want the run in progress to finish ok", m.Status, m.Error)
	}
}

// TestRunAgain: a person asks for the incident's diagnostics again: a new
// run although one is done, once per request, naming who asked.
func TestRunAgain(t *testing.T) {
	e := newQueueEnv(t)
	ctx := context.Background()
	sink := &reportSink{}
	e.startWith(t, fixed(nil), sink)
	tr := trigger("INC-A", "load on web-1")
	tr.ReceivedAt = time.Now().UTC()
	if _, err := e.q.Put(ctx, tr); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the first run", func() bool { return len(sink.all()) == 1 && e.stored(t) == 0 })
	again := tr
	again.DeliveryID, again.Again, again.Note = "again-wh-1", true, "Run again by Jane Doe from PagerDuty."
	for range 2 { // the second is a redelivery of the same press
		if _, err := e.q.Put(ctx, again); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor(t, "the second run", func() bool { return len(sink.all()) >= 2 && e.stored(t) == 0 })
	time.Sleep(300 * time.Millisecond)
	reps := sink.all()
	if len(reps) != 2 || len(e.manifests("INC-A")) != 2 {
		t.Fatalf("got %d reports, %d bundles; want 2 of each", len(reps), len(e.manifests("INC-A")))
	}
	if md := evidence.Markdown(reps[1]); !strings.Contains(md, "Run again by Jane Doe") {
		t.Errorf("the second note does not say who asked:\n%s", md)
	}
}
