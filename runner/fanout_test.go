package runner_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
)

// gauge counts runs in progress per host and overall, and remembers the
// highest counts seen.
type gauge struct {
	mu                sync.Mutex
	active, maxActive map[string]int
	all, maxAll       int
	changed           chan struct{}
}

func newGauge() *gauge {
	return &gauge{active: map[string]int{}, maxActive: map[string]int{}, changed: make(chan struct{}, 100)}
}

func (g *gauge) enter(host string) {
	g.mu.Lock()
	g.active[host]++
	g.all++
	g.maxActive[host] = max(g.maxActive[host], g.active[host])
	g.maxAll = max(g.maxAll, g.all)
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

func (g *gauge) leave(host string) {
	g.mu.Lock()
	g.active[host]--
	g.all--
	g.mu.Unlock()
}

// waitFor blocks until cond holds or a second passes: long enough for a
// run that is not held back to start, so a missing lock shows.
func (g *gauge) waitFor(cond func() bool) {
	deadline := time.After(time.Second)
	for {
		g.mu.Lock()
		ok := cond()
		g.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-g.changed:
		case <-deadline:
			return
		}
	}
}

// dialer is a host whose only step waits until wait says so, while the
// gauge watches.
func (g *gauge) dialer(wait func(host string)) runner.Dialer {
	return dialerFunc(func(_ context.Context, t ssh.Target) (runner.Conn, error) {
		return connFunc(func(context.Context, string, ssh.RunOptions) (ssh.Result, error) {
			g.enter(t.Name)
			defer g.leave(t.Name)
			wait(t.Name)
			return ssh.Result{ExitCode: 0}, nil
		}), nil
	})
}

// TestOneRunPerHostAndPlaybook: two incidents about one host, worked at
// the same time, never run the same playbook on it at once; both run.
func TestOneRunPerHostAndPlaybook(t *testing.T) {
	e := newQueueEnv(t)
	g := newGauge()
	// A run waits until a second run of it is on the host (which the lock
	// must prevent) or a second passes.
	d := g.dialer(func(host string) { g.waitFor(func() bool { return g.active[host] > 1 }) })
	set := loadPlaybooks(t, map[string]string{"p.yaml": "name: one\nsteps: [{name: s, run: uptime}]\n"})
	e.start(t, set, d, 5*time.Second)
	for _, id := range []string{"INC-A", "INC-B"} {
		if _, err := e.q.Put(context.Background(), trigger(id, "load on web-1")); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor(t, "both bundles", func() bool { return len(e.manifests("INC-A")) == 1 && len(e.manifests("INC-B")) == 1 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxActive["web-1"] != 1 {
		t.Fatalf("got %d runs of one playbook on web-1 at once, want 1", g.maxActive["web-1"])
	}
}

// TestGroupConcurrency: a group target runs on every host, at most
// targets.concurrency at a time, and reaches that concurrency.
func TestGroupConcurrency(t *testing.T) {
	e := newQueueEnv(t)
	g := newGauge()
	d := g.dialer(func(string) { g.waitFor(func() bool { return g.all >= 2 }) })
	set := loadPlaybooks(t, map[string]string{"p.yaml": `name: fleet
match: {title: fleet}
targets: {group: web, concurrency: 2}
steps: [{name: s, run: uptime}]
`})
	// testInventory's group web holds web-1 and web-2.
	e.start(t, set, d, 5*time.Second)
	if _, err := e.q.Put(context.Background(), trigger("INC-G", "fleet latency")); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "both hosts' bundles", func() bool { return len(e.manifests("INC-G")) == 2 })
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.maxAll != 2 {
		t.Fatalf("got at most %d runs at once, want 2 (concurrency 2, two hosts)", g.maxAll)
	}
}

// reportSink keeps every report it is given.
type reportSink struct {
	mu   sync.Mutex
	reps []evidence.Report
}

func (s *reportSink) Sink() string { return "test" }

func (s *reportSink) Publish(_ context.Context, rep evidence.Report, _ evidence.IncidentState, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reps = append(s.reps, rep)
	return nil
}

// TestFanoutSummary: a group playbook's hosts are published as one
// summary that names the host that differs.
func TestFanoutSummary(t *testing.T) {
	e := newQueueEnv(t)
	var hosts []inventory.HostConfig
	for i := 1; i <= 4; i++ {
		hosts = append(hosts, inventory.HostConfig{Name: fmt.Sprintf("web-%d", i), Address: fmt.Sprintf("10.0.1.%d", i), Groups: []string{"web"}})
	}
	inv, err := inventory.New(inventory.Config{Defaults: inventory.Defaults{User: "u"}, Hosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	use := map[string]int{"web-1": 41, "web-2": 38, "web-3": 97, "web-4": 42}
	d := dialerFunc(func(_ context.Context, tg ssh.Target) (runner.Conn, error) {
		return connFunc(func(context.Context, string, ssh.RunOptions) (ssh.Result, error) {
			out := []byte(fmt.Sprintf("/dev/vda1 100G %dG %d%% /\n", use[tg.Name], use[tg.Name]))
			return ssh.Result{Stdout: out, StdoutBytes: int64(len(out))}, nil
		}), nil
	})
	sink := &reportSink{}
	r, err := runner.New(runner.Options{
		Config:     runner.Config{Workers: 1},
		Jobs:       runner.QueueJobs(e.q),
		State:      e.q.State(),
		Leases:     runner.QueueLeases(e.q),
		Inventory:  inv,
		Playbooks:  loadPlaybooks(t, map[string]string{"p.yaml": "name: disk\nmatch: {title: disk}\ntargets: {group: web, concurrency: 4}\nsteps:\n  - name: df\n    run: df -h\n    findings: [{name: full, pattern: '(?P<use>\\d+)%', value: use, above: {crit: 95}, message: '{{ .use }}% full'}]\n"}),
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
	defer func() { cancel(); <-done }()
	if _, err := e.q.Put(context.Background(), trigger("INC-F", "disk filling on the web fleet")); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the job's ack", func() bool { return len(e.manifests("INC-F")) == 4 && e.stored(t) == 0 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.reps) != 1 || sink.reps[0].Fanout == nil {
		t.Fatalf("got %d reports, want one fan-out summary", len(sink.reps))
	}
	f := sink.reps[0].Fanout
	if len(f.Runs) != 4 || len(f.Differences) != 1 || f.Differences[0].Host != "web-3" || f.Target != "group web" ||
		f.Differences[0].String() != `web-3: df: CRIT 97% full where 3 of 4 hosts have no "full" finding` {
		t.Fatalf("got %d runs, differences %v, target %q", len(f.Runs), f.Differences, f.Target)
	}
	for _, run := range f.Runs {
		if run.Link == "" {
			t.Errorf("%s: no link to its evidence", run.Bundle.Manifest.Host.Name)
		}
	}
}
