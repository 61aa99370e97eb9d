package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/queue"
	"github.com/firstlook/firstlook/runner/runnertest"
	"github.com/firstlook/firstlook/runner/ssh"
)

// dialerFunc and connFunc adapt functions to the runner's Dialer and
// Conn: these tests are about what is queued and published, not SSH.
type (
	dialerFunc = runnertest.DialerFunc
	connFunc   = runnertest.ConnFunc
)

// fixed is a host that answers every command with "<host>: <cmd>" and
// exit 0, except commands listed in exits.
func fixed(exits map[string]int) runner.Dialer {
	return dialerFunc(func(_ context.Context, t ssh.Target) (runner.Conn, error) {
		return connFunc(func(_ context.Context, cmd string, _ ssh.RunOptions) (ssh.Result, error) {
			out := []byte(t.Name + ": " + cmd + "\n")
			return ssh.Result{ExitCode: exits[cmd], Stdout: out, StdoutBytes: int64(len(out)), Started: time.Now(), Duration: time.Millisecond}, nil
		}), nil
	})
}

func loadPlaybooks(t *testing.T, files map[string]string) *playbooks.Set {
	t.Helper()
	d := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := playbooks.Load(d)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func testInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.New(inventory.Config{
		Defaults: inventory.Defaults{User: "firstlook", Bastion: "b"},
		Bastions: []inventory.BastionConfig{{Name: "b", Address: "192.0.2.1"}},
		Hosts: []inventory.HostConfig{
			{Name: "web-1", Address: "10.0.0.1", Groups: []string{"web"}},
			{Name: "web-2", Address: "10.0.0.2", Groups: []string{"web"}},
			{Name: "db-1", Address: "10.0.0.3"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func trigger(id, title string) hooks.Trigger {
	return hooks.Trigger{
		Source: "pagerduty", DeliveryID: "wh-" + id, Event: "incident.triggered",
		Incident: hooks.Incident{ID: id, Title: title, Service: hooks.Service{ID: "PSVC", Name: "Web"}},
	}
}

const basic = `name: basic
steps:
  - name: a
    run: uptime
  - name: b
    run: df -h
`

func TestExecuteSequencing(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": `name: seq
steps:
  - name: check
    run: test -f /etc/nginx/nginx.conf
  - name: plain
    run: echo plain
  - name: on failure
    run: echo fallback
    when: {step: check, failed: true}
  - name: on success
    run: echo success
    when: {step: check, exit_code: [0]}
`})
	r, err := runner.New(runner.Options{Inventory: testInventory(t), Playbooks: set, Dialer: fixed(map[string]int{"test -f /etc/nginx/nginx.conf": 1}), Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := testInventory(t).Resolve(context.Background(), "web-1")
	pb, _ := set.Get("seq")
	b := r.Execute(context.Background(), trigger("I1", "x"), runner.Run{Playbook: pb, Host: host, Target: host.Name})
	m := b.Manifest
	if m.Status != evidence.StatusFailed || len(m.Steps) != 4 {
		t.Fatalf("got %s with %d steps, want failed with 4", m.Status, len(m.Steps))
	}
	want := []struct {
		skipped bool
		exit    int
		errHas  string
	}{
		{false, 1, ""},
		{true, -1, `step "check" failed`},
		{false, 0, ""},
		{true, -1, ""},
	}
	for i, w := range want {
		st := m.Steps[i]
		if st.Skipped != w.skipped || st.ExitCode != w.exit || !strings.Contains(st.Error, w.errHas) || (w.errHas == "" && st.Error != "") {
			t.Errorf("step %d %q: got skipped=%v exit=%d error=%q, want skipped=%v exit=%d error containing %q", i, st.Name, st.Skipped, st.ExitCode, st.Error, w.skipped, w.exit, w.errHas)
		}
	}
	if got := string(b.Files[m.Steps[2].Stdout.File]); got != "web-1: echo fallback\n" {
		t.Errorf("fallback output: got %q", got)
	}
	if m.Host.Bastion != "b" || m.Host.Address != "10.0.0.1:22" || m.Playbook.SHA256 == "" {
		t.Errorf("got host %+v playbook %+v", m.Host, m.Playbook)
	}
}

func TestExecuteParallel(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": `name: par
parallel: true
steps:
  - {name: one, run: echo 1}
  - {name: two, run: echo 2}
  - {name: three, run: echo 3}
`})
	// Each Run waits until all three have started: the playbook can only
	// finish if its steps run at the same time.
	var started sync.WaitGroup
	started.Add(3)
	d := dialerFunc(func(context.Context, ssh.Target) (runner.Conn, error) {
		return connFunc(func(ctx context.Context, cmd string, _ ssh.RunOptions) (ssh.Result, error) {
			started.Done()
			done := make(chan struct{})
			go func() { started.Wait(); close(done) }()
			select {
			case <-done:
				out := []byte(cmd + " printed this\n")
				return ssh.Result{ExitCode: 0, Stdout: out, StdoutBytes: int64(len(out)), Stderr: out, StderrBytes: int64(len(out))}, nil
			case <-ctx.Done():
				return ssh.Result{ExitCode: -1, TimedOut: true}, nil
			}
		}), nil
	})
	r, _ := runner.New(runner.Options{Inventory: testInventory(t), Playbooks: set, Dialer: d, Log: quiet()})
	host, _ := testInventory(t).Resolve(context.Background(), "web-1")
	pb, _ := set.Get("par")
	b := r.Execute(context.Background(), trigger("I2", "x"), runner.Run{Playbook: pb, Host: host, Target: host.Name})
	m := b.Manifest
	if m.Status != evidence.StatusOK {
		t.Fatalf("got %s %+v, want the three steps to run concurrently", m.Status, m.Steps)
	}
	for i, st := range m.Steps {
		want := fmt.Sprintf("echo %d printed this\n", i+1)
		if got := string(b.Files[st.Stdout.File]); got != want || string(b.Files[st.Stderr.File]) != want {
			t.Errorf("step %s: got stdout %q, want %q (and the same on stderr)", st.Name, got, want)
		}
	}
}

func TestExecuteNotStarted(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": basic})
	boom := &ssh.HopError{Hop: "bastion", Name: "b", Addr: "192.0.2.1:22", Op: "dial", Err: errors.New("connection refused")}
	d := dialerFunc(func(context.Context, ssh.Target) (runner.Conn, error) { return nil, boom })
	r, _ := runner.New(runner.Options{Inventory: testInventory(t), Playbooks: set, Dialer: d, Log: quiet()})
	host, _ := testInventory(t).Resolve(context.Background(), "web-2")
	pb, _ := set.Get("basic")
	m := r.Execute(context.Background(), trigger("I3", "x"), runner.Run{Playbook: pb, Host: host, Target: host.Name}).Manifest
	if m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "connect: ") || !strings.Contains(m.Error, "connection refused") {
		t.Fatalf("got %s %q", m.Status, m.Error)
	}
	if len(m.Steps) != 0 {
		t.Errorf("got %d steps in a run that never started", len(m.Steps))
	}
}

func TestExecutePlaybookTimeout(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": `name: slow
timeout: 1s
steps:
  - {name: hang, run: sleep 100, timeout: 1s}
  - {name: after, run: echo after}
`})
	d := dialerFunc(func(context.Context, ssh.Target) (runner.Conn, error) {
		return connFunc(func(ctx context.Context, cmd string, _ ssh.RunOptions) (ssh.Result, error) {
			<-ctx.Done()
			return ssh.Result{ExitCode: -1, TimedOut: true}, nil
		}), nil
	})
	r, _ := runner.New(runner.Options{Inventory: testInventory(t), Playbooks: set, Dialer: d, Log: quiet()})
	host, _ := testInventory(t).Resolve(context.Background(), "web-1")
	pb, _ := set.Get("slow")
	m := r.Execute(context.Background(), trigger("I4", "x"), runner.Run{Playbook: pb, Host: host, Target: host.Name}).Manifest
	if !m.Steps[0].TimedOut || !m.Steps[1].Skipped || !strings.Contains(m.Steps[1].Error, "timeout was reached") {
		t.Fatalf("got steps %+v", m.Steps)
	}
}

func TestPlan(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{
		"a.yaml": basic,
		"g.yaml": "name: group\nmatch: {title: fleet}\ntargets: {group: web}\nsteps: [{name: s, run: uptime}]\n",
		"n.yaml": "name: never\nmatch: {title: '^nope$'}\nsteps: [{name: s, run: uptime}]\n",
	})
	cfg := runner.Config{Hints: runner.HintsConfig{Title: []runner.TitlePattern{
		{Service: "Web", Pattern: `\bon (?P<host>[a-z0-9-]+)`},
		{Service: "Other", Pattern: `(?P<host>db-\d+)`},
	}}}
	alerts := alertsFunc(func(context.Context, hooks.Trigger) (hooks.Hints, error) {
		return hooks.Hints{IPs: []string{"10.0.0.2"}}, errors.New("pagerduty: 503")
	})
	r, err := runner.New(runner.Options{Config: cfg, Inventory: testInventory(t), Playbooks: set, Alerts: alerts, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	plan := r.Plan(context.Background(), trigger("I5", "load on web-1 and on web-9, db-1 too"))
	var got []string
	for _, run := range plan.Runs {
		s := run.Playbook.Name + "@" + run.Target
		if run.Err != nil {
			s += "!"
		}
		got = append(got, s)
	}
	// Hints: web-1 and web-9 from the title (the db pattern is for
	// another service), 10.0.0.2 from the alerts; web-9 is refused.
	want := "basic@web-1 basic@web-2 basic@web-9!"
	if strings.Join(got, " ") != want {
		t.Errorf("got runs %v, want %s", got, want)
	}
	if plan.HintErr == nil || !strings.Contains(plan.HintErr.Error(), "503") {
		t.Errorf("got hint error %v, want the alert lookup failure", plan.HintErr)
	}
	for _, run := range plan.Runs {
		if run.Target == "web-9" && !errors.Is(run.Err, inventory.ErrUnknownHost) {
			t.Errorf("web-9: got %v, want ErrUnknownHost", run.Err)
		}
	}

	plan = r.Plan(context.Background(), trigger("I6", "fleet-wide latency"))
	got = got[:0]
	for _, run := range plan.Runs {
		got = append(got, fmt.Sprintf("%s@%s:%v", run.Playbook.Name, run.Target, run.Err != nil))
	}
	// No host hint at all, except the alert's 10.0.0.2 (web-2).
	if strings.Join(got, " ") != "basic@web-2:false group@web-1:false group@web-2:false" {
		t.Errorf("got %v", got)
	}

	r2, _ := runner.New(runner.Options{Inventory: testInventory(t), Playbooks: set, Log: quiet()})
	plan = r2.Plan(context.Background(), trigger("I7", "something broke"))
	if len(plan.Runs) != 1 || !errors.Is(plan.Runs[0].Err, runner.ErrNoHost) {
		t.Fatalf("got %+v, want one run that cannot start: no host", plan.Runs)
	}
}

type alertsFunc func(context.Context, hooks.Trigger) (hooks.Hints, error)

func (f alertsFunc) Hints(ctx context.Context, t hooks.Trigger) (hooks.Hints, error) {
	return f(ctx, t)
}

func TestConfigValidate(t *testing.T) {
	bad := []runner.Config{
		{Workers: -1},
		{Grace: -time.Second},
		{Hints: runner.HintsConfig{Title: []runner.TitlePattern{{Pattern: "("}}}},
		{Hints: runner.HintsConfig{Title: []runner.TitlePattern{{Pattern: `web-\d+`}}}},
	}
	for _, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: got no error", c)
		}
	}
}

// queueEnv is a runner working jobs from a real embedded JetStream queue.
type queueEnv struct {
	q     *queue.Queue
	store *dir.Store
	root  string
}

func newQueueEnv(t *testing.T) *queueEnv {
	t.Helper()
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir(), AckWait: 2 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	root := t.TempDir()
	store, err := dir.New(dir.Config{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	return &queueEnv{q: q, store: store, root: root}
}

func (e *queueEnv) start(t *testing.T, set *playbooks.Set, d runner.Dialer, grace time.Duration) (stop func()) {
	t.Helper()
	r, err := runner.New(runner.Options{
		Config:    runner.Config{Workers: 2, Grace: grace, Heartbeat: 500 * time.Millisecond, Hints: runner.HintsConfig{Title: []runner.TitlePattern{{Pattern: `\bon (?P<host>[a-z0-9-]+)`}}}},
		Jobs:      runner.QueueJobs(e.q),
		State:     e.q.State(),
		Leases:    runner.QueueLeases(e.q),
		Inventory: testInventory(t),
		Playbooks: set,
		Dialer:    d,
		Store:     e.store,
		Log:       quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (e *queueEnv) manifests(incident string) []string {
	ms, _ := filepath.Glob(filepath.Join(e.root, "pagerduty", incident, "*", evidence.ManifestFile))
	return ms
}

func (e *queueEnv) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *queueEnv) stored(t *testing.T) uint64 {
	st, err := e.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Stored
}

func TestRunOncePerIncident(t *testing.T) {
	e := newQueueEnv(t)
	set := loadPlaybooks(t, map[string]string{"p.yaml": basic})
	e.start(t, set, fixed(nil), 5*time.Second)
	ctx := context.Background()
	if _, err := e.q.Put(ctx, trigger("INC1", "load on web-1")); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the bundle", func() bool { return len(e.manifests("INC1")) == 1 })
	e.waitFor(t, "the job's ack", func() bool { return e.stored(t) == 0 })

	// Age the record, as if the incident came back an hour later: only
	// "done" may stop a second run now, not a fresh claim.
	key := queue.Key("run", "pagerduty", "INC1", "web-1", "basic")
	raw, rev, err := e.q.State().Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	_ = json.Unmarshal(raw, &rec)
	rec["since"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano)
	aged, _ := json.Marshal(rec)
	if _, err := e.q.State().Update(ctx, key, aged, rev); err != nil {
		t.Fatal(err)
	}
	// Another delivery about the same incident: the run is done.
	again := trigger("INC1", "load on web-1")
	again.DeliveryID = "wh-other"
	if _, err := e.q.Put(ctx, again); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the second job's ack", func() bool { return e.stored(t) == 0 })
	if n := len(e.manifests("INC1")); n != 1 {
		t.Fatalf("got %d bundles after a second delivery, want 1", n)
	}
	raw, _, err = e.q.State().Get(ctx, key)
	if err != nil || !strings.Contains(string(raw), `"status":"done"`) {
		t.Fatalf("got state %s, %v; want done", raw, err)
	}
}

// TestRedeliveryTakesOverItsClaim: a worker that died mid-run left its
// claim; the redelivered job (same job id) takes it over and runs.
func TestRedeliveryTakesOverItsClaim(t *testing.T) {
	e := newQueueEnv(t)
	set := loadPlaybooks(t, map[string]string{"p.yaml": basic})
	tr := trigger("INC2", "load on web-2")
	key := queue.Key("run", "pagerduty", "INC2", "web-2", "basic")
	claim := fmt.Sprintf(`{"status":"running","job":%q,"since":%q}`, tr.JobID(), time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := e.q.State().Create(context.Background(), key, []byte(claim)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.q.Put(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	e.start(t, set, fixed(nil), 5*time.Second)
	e.waitFor(t, "the bundle", func() bool { return len(e.manifests("INC2")) == 1 })

	// A run whose host × playbook another job's live lease holds waits
	// in the queue (the worker does not block on it), and runs once the
	// lease is released; a claim whose holder holds no lease is stale.
	other := trigger("INC3", "load on web-2")
	key3 := queue.Key("run", "pagerduty", "INC3", "web-2", "basic")
	claim3 := fmt.Sprintf(`{"status":"running","job":"pagerduty.someone-else","since":%q}`, time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := e.q.State().Create(context.Background(), key3, []byte(claim3)); err != nil {
		t.Fatal(err)
	}
	// INC2's run releases its own lease after its bundle is stored (it
	// still publishes): wait for that, as a loaded machine may take a
	// moment.
	var lease *queue.Lease
	e.waitFor(t, "INC2's lease released", func() bool {
		l, err := e.q.Leases().Acquire(context.Background(), queue.Key("lock", "web-2", "basic"), "pagerduty.someone-else")
		if err != nil && !errors.Is(err, queue.ErrHeld) {
			t.Fatal(err)
		}
		lease = l
		return err == nil
	})
	if _, err := e.q.Put(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the workers take other work.
	if _, err := e.q.Put(context.Background(), trigger("INC6", "load on web-1")); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the other host's bundle", func() bool { return len(e.manifests("INC6")) == 1 })
	time.Sleep(2 * time.Second) // a few deferrals
	if n := len(e.manifests("INC3")); n != 0 {
		t.Fatalf("got %d bundles for a run whose host another job holds, want 0", n)
	}
	if n := e.stored(t); n != 1 {
		t.Fatalf("got %d jobs queued while the host is busy, want 1", n)
	}
	if err := lease.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitFor(t, "the bundle once the lease is released", func() bool { return len(e.manifests("INC3")) == 1 })
	e.waitFor(t, "the job's ack", func() bool { return e.stored(t) == 0 })
}

// TestShutdownHandsJobsBack: a job still running when the grace period
// ends is not stored half-done; it stays queued and runs after a restart.
func TestShutdownHandsJobsBack(t *testing.T) {
	e := newQueueEnv(t)
	set := loadPlaybooks(t, map[string]string{"p.yaml": basic})
	entered := make(chan struct{}, 1)
	hang := dialerFunc(func(context.Context, ssh.Target) (runner.Conn, error) {
		return connFunc(func(ctx context.Context, cmd string, _ ssh.RunOptions) (ssh.Result, error) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-ctx.Done()
			return ssh.Result{ExitCode: -1, TimedOut: true}, nil
		}), nil
	})
	stop := e.start(t, set, hang, 200*time.Millisecond)
	if _, err := e.q.Put(context.Background(), trigger("INC4", "load on db-1")); err != nil {
		t.Fatal(err)
	}
	<-entered
	stop()
	if n := len(e.manifests("INC4")); n != 0 {
		t.Fatalf("got %d bundles from a run cut by shutdown, want 0", n)
	}
	if n := e.stored(t); n != 1 {
		t.Fatalf("got %d jobs queued after shutdown, want 1", n)
	}
	e.start(t, set, fixed(nil), 5*time.Second)
	e.waitFor(t, "the bundle after restart", func() bool { return len(e.manifests("INC4")) == 1 })
}

// TestExhaustedJobIsReported: a job whose workers kept dying is not run
// again once past the delivery limit; its runs are reported as not
// started, so the incident hears why.
func TestExhaustedJobIsReported(t *testing.T) {
	e := &queueEnv{}
	q, err := queue.Open(context.Background(), queue.Config{DataDir: t.TempDir(), AckWait: time.Second, MaxDeliver: 2, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	e.q = q
	e.root = t.TempDir()
	if e.store, err = dir.New(dir.Config{Path: e.root}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Put(context.Background(), trigger("INC5", "load on web-1")); err != nil {
		t.Fatal(err)
	}
	// Two deliveries that die: leased and never answered, as a worker
	// killed mid-job leaves them.
	for i := 1; i <= 2; i++ {
		job, err := q.Next(context.Background())
		if err != nil || job.Delivery != i {
			t.Fatalf("delivery %d: got %+v, %v", i, job, err)
		}
	}
	ran := false
	d := dialerFunc(func(context.Context, ssh.Target) (runner.Conn, error) {
		ran = true
		return nil, errors.New("must not dial")
	})
	e.start(t, loadPlaybooks(t, map[string]string{"p.yaml": basic}), d, 5*time.Second)
	e.waitFor(t, "the give-up bundle", func() bool { return len(e.manifests("INC5")) == 1 })
	e.waitFor(t, "the job's ack", func() bool { return e.stored(t) == 0 })
	b, err := evidence.Read(context.Background(), e.store, strings.TrimPrefix(filepath.Dir(e.manifests("INC5")[0]), e.root+"/"))
	if err != nil {
		t.Fatal(err)
	}
	if m := b.Manifest; m.Status != evidence.StatusNotStarted || !strings.Contains(m.Error, "gave up") || m.Host.Name != "web-1" {
		t.Fatalf("got %s %q on %q", m.Status, m.Error, m.Host.Name)
	}
	if ran {
		t.Error("an exhausted job was run again")
	}
}

// TestExecuteRedacts: what a host prints leaves Execute redacted, with the
// count in the manifest.
func TestExecuteRedacts(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": "name: env\nsteps:\n  - {name: env, run: env}\n"})
	d := dialerFunc(func(context.Context, ssh.Target) (runner.Conn, error) {
		return connFunc(func(context.Context, string, ssh.RunOptions) (ssh.Result, error) {
			out := []byte("HOME=/root\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAPP_TICKET=T-991\n")
			return ssh.Result{Stdout: out, StdoutBytes: int64(len(out))}, nil
		}), nil
	})
	red, err := evidence.NewRedactor(evidence.RedactConfig{Patterns: []string{`T-\d+`}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runner.New(runner.Options{Inventory: testInventory(t), Playbooks: set, Dialer: d, Redactor: red, Log: quiet()})
	host, _ := testInventory(t).Resolve(context.Background(), "web-1")
	pb, _ := set.Get("env")
	b := r.Execute(context.Background(), trigger("I8", "x"), runner.Run{Playbook: pb, Host: host, Target: host.Name})
	st := b.Manifest.Steps[0]
	if got := string(b.Files[st.Stdout.File]); got != "HOME=/root\nAWS_ACCESS_KEY_ID=[REDACTED:aws-access-key]\nAPP_TICKET=[REDACTED:custom]\n" || st.Redactions != 2 {
		t.Fatalf("got %q with %d redactions", got, st.Redactions)
	}
}
