package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/spool"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/queue"
	"github.com/firstlook/firstlook/runner/ssh"
)

// metrics are firstlook's own Prometheus metrics, served on GET /metrics.
// Names follow the Prometheus conventions: one firstlook_ prefix, base
// units, _total counters; labels are bounded (sources, sinks, playbooks,
// bastions, outcomes), never incident or host ids. README "Operations"
// lists them; examples/deploy/prometheus alerts on them.
type metrics struct {
	reg *prometheus.Registry

	webhooks          *prometheus.CounterVec
	jobs              *prometheus.CounterVec
	runs              *prometheus.CounterVec
	runDuration       *prometheus.HistogramVec
	stepDuration      *prometheus.HistogramVec
	webhookToEvidence prometheus.Histogram
	dials             *prometheus.CounterVec
	sessions          *prometheus.GaugeVec
	publishAttempts   *prometheus.CounterVec
	publishRetries    *prometheus.CounterVec
	publishFailures   *prometheus.CounterVec
	// publishRequestRetries counts the requests a publisher retried
	// within one publish call (evidence/retry's loop), by sink.
	publishRequestRetries *prometheus.CounterVec
	redactions            prometheus.Counter
	slackCommands         *prometheus.CounterVec
}

// durations spans a quick command to a playbook's whole timeout.
var durations = []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_webhooks_total",
			Help: "Webhook requests answered, by source and HTTP status code."}, []string{"source", "code"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_jobs_total",
			Help: "Jobs that left a worker, by outcome: acked, retried, requeued (shutdown), dropped (past the delivery limit)."}, []string{"outcome"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_runs_total",
			Help: "Planned runs, by playbook and outcome: ok, failed, not_started (stored runs), already_done, held (refused)."}, []string{"playbook", "outcome"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "firstlook_run_duration_seconds",
			Help: "Wall time of stored runs, by playbook.", Buckets: durations}, []string{"playbook"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "firstlook_step_duration_seconds",
			Help: "Wall time of steps that ran, by playbook.", Buckets: durations}, []string{"playbook"}),
		webhookToEvidence: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "firstlook_webhook_to_evidence_seconds",
			Help: "Time from a webhook's receipt to its run's stored evidence.", Buckets: durations}),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_ssh_dials_total",
			Help: "SSH connections to hosts, by the hop that failed (host when none did) and error kind: none, host_key_unknown, host_key_mismatch, auth, timeout, refused, unreachable, other."}, []string{"hop", "error"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "firstlook_ssh_sessions_open",
			Help: "SSH connections to hosts open now, by bastion (\"none\" for direct)."}, []string{"bastion"}),
		publishAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_publish_attempts_total",
			Help: "Publish calls, by sink."}, []string{"sink"}),
		publishRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_publish_retries_total",
			Help: "Publish calls that repeat an earlier attempt of the same run, by sink."}, []string{"sink"}),
		publishFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_publish_failures_total",
			Help: "Publish calls that failed, by sink."}, []string{"sink"}),
		publishRequestRetries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_publish_request_retries_total",
			Help: "Requests a publisher retried within one publish call (429, 5xx, network), by sink."}, []string{"sink"}),
		redactions: prometheus.NewCounter(prometheus.CounterOpts{Name: "firstlook_redactions_total",
			Help: "Secrets replaced in stored evidence."}),
		slackCommands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "firstlook_slack_commands_total",
			Help: "/firstlook Slack commands decided, by command (other for an unknown name) and decision: allowed, denied, error (permissions not checkable)."}, []string{"command", "decision"}),
	}
	m.reg.MustRegister(m.webhooks, m.jobs, m.runs, m.runDuration, m.stepDuration, m.webhookToEvidence,
		m.dials, m.sessions, m.publishAttempts, m.publishRetries, m.publishFailures, m.publishRequestRetries, m.redactions, m.slackCommands,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the registry.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// watchQueue adds the queue's depth and oldest job age, read at scrape
// time.
func (m *metrics) watchQueue(q *queue.Queue) {
	m.reg.MustRegister(&queueCollector{q: q})
}

// watchSpool adds the spool's backlog, read at scrape time.
func (m *metrics) watchSpool(s *spool.Store) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "firstlook_spool_pending_objects",
		Help: "Evidence objects waiting on local disk for the remote store."}, func() float64 { return float64(s.Stats().Pending) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "firstlook_spool_pending_bytes",
		Help: "Bytes of evidence waiting on local disk for the remote store."}, func() float64 { return float64(s.Stats().PendingBytes) }))
}

var (
	queueJobsDesc   = prometheus.NewDesc("firstlook_queue_jobs", "Jobs stored in the queue: waiting or leased.", nil, nil)
	queueLeasedDesc = prometheus.NewDesc("firstlook_queue_leased_jobs", "Jobs delivered to a worker and not yet acked.", nil, nil)
	queueOldestDesc = prometheus.NewDesc("firstlook_queue_oldest_job_age_seconds", "Age of the oldest stored job; 0 when the queue is empty.", nil, nil)
	queueUpDesc     = prometheus.NewDesc("firstlook_queue_up", "1 when the queue answered the scrape's query.", nil, nil)
)

type queueCollector struct{ q *queue.Queue }

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueJobsDesc
	ch <- queueLeasedDesc
	ch <- queueOldestDesc
	ch <- queueUpDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.q.Stats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 0)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(queueUpDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(queueJobsDesc, prometheus.GaugeValue, float64(st.Stored))
	ch <- prometheus.MustNewConstMetric(queueLeasedDesc, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, age)
}

// intake counts a source's webhook answers by status code.
func (m *metrics) intake(source string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		m.webhooks.WithLabelValues(source, strconv.Itoa(cmpStatus(sw.code))).Inc()
	})
}

func cmpStatus(code int) int {
	if code == 0 {
		return http.StatusOK
	}
	return code
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// runnerEvents turns the runner's events into metrics.
type runnerEvents struct {
	m   *metrics
	now func() time.Time
}

func (e runnerEvents) RunStarted(hooks.Trigger, runner.Run) {}

func (e runnerEvents) RunRefused(_ hooks.Trigger, run runner.Run, reason string) {
	switch reason {
	case runner.RefusedDone:
		e.m.runs.WithLabelValues(run.Playbook.Name, "already_done").Inc()
	case runner.RefusedBusy:
		e.m.runs.WithLabelValues(run.Playbook.Name, "held").Inc()
	}
	// Not started: counted when its bundle is stored.
}

func (e runnerEvents) RunStored(t hooks.Trigger, b *evidence.Bundle) {
	mf := b.Manifest
	pb := mf.Playbook.Name
	e.m.runs.WithLabelValues(pb, string(mf.Status)).Inc()
	if !mf.EndedAt.IsZero() && !mf.StartedAt.IsZero() {
		e.m.runDuration.WithLabelValues(pb).Observe(mf.EndedAt.Sub(mf.StartedAt).Seconds())
	}
	n := 0
	for _, st := range mf.Steps {
		n += st.Redactions
		if !st.Skipped && st.ExitCode >= 0 || st.TimedOut {
			e.m.stepDuration.WithLabelValues(pb).Observe(float64(st.DurationMS) / 1000)
		}
	}
	e.m.redactions.Add(float64(n))
	if !t.ReceivedAt.IsZero() {
		e.m.webhookToEvidence.Observe(max(e.now().Sub(t.ReceivedAt).Seconds(), 0))
	}
}

func (e runnerEvents) JobDone(_ hooks.Trigger, outcome string) {
	e.m.jobs.WithLabelValues(outcome).Inc()
}

func (e runnerEvents) Published(sink string, again bool, _ time.Duration, err error) {
	e.m.publishAttempts.WithLabelValues(sink).Inc()
	if again {
		e.m.publishRetries.WithLabelValues(sink).Inc()
	}
	if err != nil {
		e.m.publishFailures.WithLabelValues(sink).Inc()
	}
}

// dialer counts SSH dials by outcome and the connections open through each
// bastion.
type dialer struct {
	next runner.Dialer
	m    *metrics
}

func (d dialer) Dial(ctx context.Context, t ssh.Target) (runner.Conn, error) {
	c, err := d.next.Dial(ctx, t)
	hop, kind := dialOutcome(err)
	d.m.dials.WithLabelValues(hop, kind).Inc()
	if err != nil {
		return nil, err
	}
	bastion := "none"
	if t.Bastion != nil {
		bastion = t.Bastion.Name
	}
	g := d.m.sessions.WithLabelValues(bastion)
	g.Inc()
	return &countedConn{Conn: c, done: sync.OnceFunc(g.Dec)}, nil
}

type countedConn struct {
	runner.Conn
	done func()
}

func (c *countedConn) Close() error {
	defer c.done()
	return c.Conn.Close()
}

// dialOutcome names the hop that failed and how, in a few bounded kinds.
func dialOutcome(err error) (hop, kind string) {
	if err == nil {
		return ssh.HopHost, "none"
	}
	hop = ssh.HopHost
	var he *ssh.HopError
	var ke *ssh.HostKeyError
	switch {
	case errors.As(err, &ke):
		hop = ke.Hop
	case errors.As(err, &he):
		hop = he.Hop
	}
	var ne net.Error
	switch {
	case errors.Is(err, ssh.ErrHostKeyUnknown):
		kind = "host_key_unknown"
	case errors.Is(err, ssh.ErrHostKeyChanged), errors.Is(err, ssh.ErrHostKeyRevoked):
		kind = "host_key_mismatch"
	case errors.Is(err, ssh.ErrAuthFailed):
		kind = "auth"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		kind = "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = "refused"
	case errors.Is(err, ssh.ErrBastionUnreachable), errors.Is(err, ssh.ErrHostUnreachable):
		kind = "unreachable"
	default:
		kind = "other"
	}
	if hop == "" {
		hop = ssh.HopHost
	}
	return hop, kind
}
