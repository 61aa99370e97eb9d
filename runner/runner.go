// Package runner is firstlook's worker loop: lease a job from the queue,
// find the incident's hosts in the inventory, match playbooks, run them
// over SSH through the bastion, store each run's bundle, record the run as
// done and only then acknowledge the job.
//
// Execution is at least once (a worker that dies mid-job leaves the job to
// be redelivered) and effect is once: each incident × host × playbook run
// is claimed and marked done in the per-incident state, so a redelivered
// job skips what already finished.
package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner/failpoint"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/queue"
	"github.com/firstlook/firstlook/runner/ssh"
)

// Config is the runner's configuration.
type Config struct {
	// Workers is how many jobs run at once on this node (default 4).
	Workers int `yaml:"workers"`
	// Grace is how long running jobs may finish after shutdown starts
	// (default 30s); what is not done by then stays queued.
	Grace time.Duration `yaml:"grace"`
	// Heartbeat is how often a running job tells the queue it is alive
	// (default 15s; keep it well under the queue's ack_wait).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Hints says where to look for the incident's host.
	Hints HintsConfig `yaml:"hints"`
}

// WithDefaults returns c with zero values replaced by the defaults.
func (c Config) WithDefaults() Config {
	c.Workers = cmp.Or(c.Workers, 4)
	c.Grace = cmp.Or(c.Grace, 30*time.Second)
	c.Heartbeat = cmp.Or(c.Heartbeat, 15*time.Second)
	return c
}

// Validate reports a configuration that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Workers < 0:
		return fmt.Errorf("workers: %d is negative", c.Workers)
	case c.Grace < 0:
		return fmt.Errorf("grace: %s is negative", c.Grace)
	case c.Heartbeat < 0:
		return fmt.Errorf("heartbeat: %s is negative", c.Heartbeat)
	}
	if err := c.Hints.Validate(); err != nil {
		return fmt.Errorf("hints.%w", err)
	}
	return nil
}

// Jobs hands out queued jobs to workers.
type Jobs interface {
	// Next blocks until a job is leased or ctx ends.
	Next(ctx context.Context) (Job, error)
}

// Job is one leased trigger.
type Job interface {
	Trigger() hooks.Trigger
	// Exhausted reports a delivery past the queue's delivery limit: the
	// earlier attempts never finished (their worker died, or kept
	// failing). The job is not run again; its runs are reported as not
	// started.
	Exhausted() bool
	InProgress(ctx context.Context) error
	Ack(ctx context.Context) error
	Nak(ctx context.Context, delay time.Duration) error
}

// Inventory resolves hints to hosts and selects host groups.
type Inventory interface {
	Resolve(ctx context.Context, hint string) (inventory.Host, error)
	Select(ctx context.Context, group string, labels map[string]string) ([]inventory.Host, error)
}

// Dialer connects to a host, through its bastion when it has one.
type Dialer interface {
	Dial(ctx context.Context, t ssh.Target) (Conn, error)
}

// Conn runs commands on one host.
type Conn interface {
	Run(ctx context.Context, cmd string, opts ssh.RunOptions) (ssh.Result, error)
	Close() error
}

// Options are a Runner's parts. Jobs, State, Dialer and Store may be nil
// for a Runner that only plans (firstlook replay).
type Options struct {
	Config    Config
	Jobs      Jobs
	State     State
	Inventory Inventory
	Playbooks *playbooks.Set
	Dialer    Dialer
	Store     evidence.Store
	// Alerts, when set, looks up hints in the incident's alerts.
	Alerts AlertHints
	// Redactor redacts every bundle before it leaves Execute; nil uses
	// the built-in rules only.
	Redactor *evidence.Redactor
	// Publishers take each stored run to the PagerDuty incident, the
	// Slack channel…, in this order.
	Publishers []evidence.Publisher
	// Params are per-service playbook parameter overrides: service name
	// or id → parameter → value.
	Params  map[string]map[string]string
	Version string
	Log     *slog.Logger
	// Events, when set, is told about runs, jobs and publishes (metrics,
	// the audit log).
	Events Events
}

// Runner executes jobs.
type Runner struct {
	cfg        Config
	jobs       Jobs
	state      State
	inv        Inventory
	playbooks  *playbooks.Set
	dialer     Dialer
	store      evidence.Store
	alerts     AlertHints
	redactor   *evidence.Redactor
	publishers []evidence.Publisher
	failpoints func(string) bool
	params     map[string]map[string]string
	version    string
	log        *slog.Logger
	events     Events
	now        func() time.Time
}

// New returns a Runner over opts.
func New(opts Options) (*Runner, error) {
	cfg := opts.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Inventory == nil || opts.Playbooks == nil {
		return nil, errors.New("runner: an inventory and playbooks are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	red := opts.Redactor
	if red == nil {
		var err error
		if red, err = evidence.NewRedactor(evidence.RedactConfig{}); err != nil {
			return nil, err
		}
	}
	var events Events = nopEvents{}
	if opts.Events != nil {
		events = opts.Events
	}
	return &Runner{
		cfg: cfg, jobs: opts.Jobs, state: opts.State, inv: opts.Inventory,
		playbooks: opts.Playbooks, dialer: opts.Dialer, store: opts.Store,
		alerts: opts.Alerts, redactor: red, publishers: opts.Publishers,
		params: opts.Params, version: opts.Version,
		log: log, events: events, now: time.Now,
	}, nil
}

// Run works jobs until ctx ends. Then it leases nothing more, gives
// running jobs Config.Grace to finish and returns; jobs cut short are
// handed back to the queue for another worker or the next start.
func (r *Runner) Run(ctx context.Context) error {
	if r.jobs == nil || r.state == nil || r.dialer == nil || r.store == nil {
		return errors.New("runner: jobs, state, dialer and store are required to run jobs")
	}
	// Tests stop jobs dead at failpoints given through ctx.
	r.failpoints = failpoint.From(ctx)
	jobCtx, stopJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopJobs()
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() { r.work(ctx, jobCtx) })
	}
	<-ctx.Done()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	grace := time.NewTimer(r.cfg.Grace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		r.log.Warn("shutdown grace period over; handing unfinished jobs back to the queue", "grace", r.cfg.Grace)
		stopJobs()
		<-done
	}
	return nil
}

func (r *Runner) work(leaseCtx, jobCtx context.Context) {
	// Leasing fails while the queue is unreachable; only the end of
	// leaseCtx stops retrying it.
	pol := retry.Policy{Name: "lease job", Initial: 100 * time.Millisecond, Max: 10 * time.Second, Log: r.log}
	for {
		var job Job
		err := retry.Do(leaseCtx, pol, retry.Always, func(ctx context.Context) (err error) {
			job, err = r.jobs.Next(ctx)
			return err
		})
		// With retry.Always and no cap, err means that leaseCtx ended or
		// that its deadline comes before the next attempt could.
		if err != nil {
			<-leaseCtx.Done()
		}
		if leaseCtx.Err() != nil {
			if job != nil {
				r.nak(job, 0)
			}
			return
		}
		r.handle(jobCtx, job)
	}
}

// errShutdown marks work cut short by the end of the grace period.
var errShutdown = errors.New("shutting down")

// handle runs every planned run of one job, then acks it, or naks it so
// that what did not finish is tried again.
func (r *Runner) handle(ctx context.Context, job Job) {
	t := job.Trigger()
	log := r.log.With("job", t.JobID(), "incident", t.Incident.ID)
	hbCtx, stopHB := context.WithCancel(ctx)
	var hb sync.WaitGroup
	hb.Go(func() { r.heartbeat(hbCtx, job) })
	defer func() { stopHB(); hb.Wait() }()

	plan := r.Plan(ctx, t)
	if plan.HintErr != nil {
		log.Warn("hint lookup failed; using the hints found elsewhere", "err", plan.HintErr)
	}
	exec := r.runOnce
	if job.Exhausted() {
		log.Error("job delivered past its limit without finishing; reporting its runs as not started")
		exec = r.giveUp
	}
	// Each playbook's runs go at most targets.concurrency at a time;
	// the bastion's session cap bounds the total.
	sems := map[string]chan struct{}{}
	for _, run := range plan.Runs {
		if sems[run.Playbook.Name] == nil {
			sems[run.Playbook.Name] = make(chan struct{}, max(run.Playbook.Targets.Concurrency, 1))
		}
	}
	var g errgroup.Group
	var mu sync.Mutex
	var failed []error
	for _, run := range plan.Runs {
		g.Go(func() error {
			sem := sems[run.Playbook.Name]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				failed = append(failed, errShutdown)
				mu.Unlock()
				return nil
			}
			defer func() { <-sem }()
			if err := exec(ctx, t, run); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if len(failed) == 0 && ctx.Err() == nil {
		if err := r.publishFanouts(ctx, t, plan); err != nil {
			failed = append(failed, err)
		}
	}
	stopHB()
	hb.Wait()

	switch err := errors.Join(failed...); {
	case errors.Is(err, errKilled):
		// A test stopped the worker dead: leave the job to be
		// redelivered, as a killed process would.
		log.Warn("job stopped at a failpoint", "err", err)
		r.events.JobDone(t, "killed")
	case err == nil:
		if len(plan.Runs) == 0 {
			log.Info("no playbook matches", "event", t.Event, "service", t.Incident.Service.Name)
		}
		r.ack(job, log)
		r.events.JobDone(t, "acked")
		log.Debug("job done", "runs", len(plan.Runs))
	case errors.Is(err, errShutdown) || ctx.Err() != nil:
		log.Info("job cut short by shutdown; it stays queued")
		r.nak(job, 0)
		r.events.JobDone(t, "requeued")
	case job.Exhausted():
		log.Error("could not even report the job's runs; dropping it", "err", err)
		r.ack(job, log)
		r.events.JobDone(t, "dropped")
	default:
		// Also on the last regular delivery: the queue delivers once
		// more, as exhausted, and that delivery reports the runs.
		log.Warn("job failed; it will be delivered again", "err", err)
		r.nak(job, 5*time.Second)
		r.events.JobDone(t, "retried")
	}
}

func (r *Runner) heartbeat(ctx context.Context, job Job) {
	tick := time.NewTicker(r.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := job.InProgress(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("job heartbeat", "job", job.Trigger().JobID(), "err", err)
			}
		}
	}
}

// ack and nak use their own short deadline: they must reach the queue
// even when the job's context has ended.
func (r *Runner) ack(job Job, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := job.Ack(ctx); err != nil {
		log.Error("ack job; it may be delivered again, its finished runs will be skipped", "err", err)
	}
}

func (r *Runner) nak(job Job, delay time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := job.Nak(ctx, delay); err != nil {
		r.log.Warn("nak job; it will be redelivered after the ack wait", "job", job.Trigger().JobID(), "err", err)
	}
}

// errGaveUp is why the runs of an exhausted job did not run.
var errGaveUp = errors.New("diagnostics gave up: the job was delivered several times and never finished (a worker may have crashed running it; see firstlook's logs)")

// giveUp reports a run of an exhausted job as not started, unless it
// already finished.
func (r *Runner) giveUp(ctx context.Context, t hooks.Trigger, run Run) error {
	if run.Err == nil {
		run.Err = errGaveUp
	}
	return r.runOnce(ctx, t, run)
}

// runOnce executes one planned run unless it already finished, stores its
// bundle and marks it done.
func (r *Runner) runOnce(ctx context.Context, t hooks.Trigger, run Run) error {
	key := queue.Key("run", t.Source, runScope(t), run.Target, run.Playbook.Name)
	log := r.log.With("incident", t.Incident.ID, "host", run.Target, "playbook", run.Playbook.Name)
	// A claim older than the playbook's whole timeout plus slack belongs
	// to a worker that is gone.
	stale := run.Playbook.Timeout + 2*time.Minute
	c, prev, err := r.claimRun(ctx, key, t.JobID(), stale)
	switch {
	case errors.Is(err, errDone) && isGroup(run):
		return nil // published with its group, in publishFanouts
	case errors.Is(err, errDone) && r.unpublished(prev):
		// Stored, but a publisher has not had it: publish the stored
		// bundle; the run itself is not repeated.
		log.Info("run done but not published everywhere; publishing it", "bundle", prev.Bundle)
		b, err := evidence.Read(ctx, r.store, prev.Bundle)
		if err != nil {
			return fmt.Errorf("read bundle %s: %w", prev.Bundle, err)
		}
		return r.publish(ctx, t, key, t.JobID(), b, prev.Bundle)
	case errors.Is(err, errDone):
		log.Info("run already done; not running it again", "bundle", prev.Bundle)
		r.events.RunRefused(t, run, RefusedDone)
		return nil
	case errors.Is(err, errBusy):
		log.Info("run held by another job", "job", prev.Job, "since", prev.Since)
		r.events.RunRefused(t, run, RefusedBusy)
		return nil
	case err != nil:
		return err
	}
	if prev.Bundle != "" {
		// A worker of this job stored (or began storing) a bundle and
		// died before recording it: a complete bundle is the run.
		if b, err := evidence.Read(ctx, r.store, prev.Bundle); err == nil {
			log.Info("adopting the bundle an earlier attempt stored", "bundle", prev.Bundle)
			if err := r.finishRun(ctx, c, t.JobID(), prev.Bundle, string(b.Manifest.Status)); err != nil || isGroup(run) {
				return err
			}
			return r.publish(ctx, t, key, t.JobID(), b, prev.Bundle)
		}
	}
	if run.Err == nil {
		unlock, err := r.lockHost(ctx, run.Host.Name, run.Playbook.Name, t.JobID(), stale)
		if err != nil {
			return err
		}
		defer unlock()
		// Last look before the run starts: an incident that resolved
		// meanwhile is not diagnosed (its host may be a healthy
		// replacement by now). A run already started finishes.
		if err := r.resolvedFirst(ctx, t); err != nil {
			if _, ok := errors.AsType[*ResolvedError](err); !ok {
				return err
			}
			log.Info("incident resolved before the run started; not running it", "why", err)
			run.Err = err
		}
	}
	if run.Err == nil {
		r.events.RunStarted(t, run)
	} else {
		r.events.RunRefused(t, run, RefusedNotStarted)
	}
	b := r.Execute(ctx, t, run)
	if ctx.Err() != nil {
		// Cut by the end of the grace period, not by a playbook
		// timeout: leave the run to the next delivery rather than
		// storing half of it.
		return errShutdown
	}
	prefix := evidence.Prefix(b.Manifest)
	if c, err = r.noteBundle(ctx, c, t.JobID(), prefix); err != nil {
		return err
	}
	if _, err := evidence.Write(ctx, r.store, b); err != nil {
		return fmt.Errorf("store bundle: %w", err)
	}
	if err := r.failpoint("store:after"); err != nil {
		return err
	}
	log.Info("run finished", "status", b.Manifest.Status, "bundle", prefix)
	r.events.RunStored(t, b)
	if err := r.finishRun(ctx, c, t.JobID(), prefix, string(b.Manifest.Status)); err != nil || isGroup(run) {
		return err
	}
	return r.publish(ctx, t, key, t.JobID(), b, prefix)
}

// QueueJobs adapts runner/queue to the runner's Jobs.
func QueueJobs(q *queue.Queue) Jobs { return queueJobs{q} }

type queueJobs struct{ q *queue.Queue }

func (j queueJobs) Next(ctx context.Context) (Job, error) {
	job, err := j.q.Next(ctx)
	if err != nil {
		return nil, err
	}
	return queueJob{job}, nil
}

type queueJob struct{ *queue.Job }

func (j queueJob) Trigger() hooks.Trigger { return j.Job.Trigger }
