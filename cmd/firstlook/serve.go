package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/alertmanager"
	"github.com/firstlook/firstlook/hooks/mackerel"
	"github.com/firstlook/firstlook/hooks/pagerduty"
	"github.com/firstlook/firstlook/hooks/sns"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/queue"
)

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "firstlook.yaml", "configuration `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	cfg.logWarnings(log)
	return Serve(ctx, ServeOptions{Config: cfg, Log: log, Stderr: stderr})
}

// ServeOptions are serve's inputs; tests build them to run the daemon in
// process.
type ServeOptions struct {
	Config *Config
	Log    *slog.Logger
	// Listener, when set, is used instead of listening on Config.Listen.
	Listener net.Listener
	// Ready, when set, is called with the intake's address once it
	// accepts requests.
	Ready func(addr string)
	// NoWorkers runs the intake alone: jobs are stored and stay queued.
	// The benchmark uses it to measure the intake by itself.
	NoWorkers bool
	// SourceClient, in tests only, is the HTTP client of the sources that
	// call their sender (SNS: signing certificates, confirmations), to
	// reach a fake of it; the sources still request only their sender's
	// URLs.
	SourceClient *http.Client
	// Stderr is where audit lines go when audit.file is stderr (default
	// os.Stderr).
	Stderr io.Writer
}

// Serve runs the intake and the workers until ctx ends, then shuts down in
// order: stop taking webhooks, let running jobs finish within the grace
// period (the rest stay queued), close the queue.
func Serve(ctx context.Context, opts ServeOptions) error {
	cfg, log := opts.Config, opts.Log
	if err := cfg.requireIntake(); err != nil {
		return err
	}
	// Metrics first: the publishers count their retried requests in them.
	met := newMetrics()
	p, err := cfg.runParts(ctx, true, met, log)
	if err != nil {
		return err
	}
	defer p.close()

	qcfg := cfg.Queue
	qcfg.Logger = log.With("component", "queue")
	q, err := queue.Open(ctx, qcfg)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer q.Close()

	// Metrics and the audit log: the intake, the queue and the spool are
	// read at scrape time; the runner and SSH report through small
	// wrappers (see metrics.go, audit.go).
	met.watchQueue(q)
	if p.spool != nil {
		met.watchSpool(p.spool)
	}
	auditTo := opts.Stderr
	if auditTo == nil {
		auditTo = os.Stderr
	}
	aud, closeAudit, err := openAudit(cfg, auditTo)
	if err != nil {
		return err
	}
	defer closeAudit()

	ro := cfg.runnerOptions(p, log.With("component", "runner"))
	ro.Jobs = runner.QueueJobs(q)
	ro.State = q.State()
	ro.Leases = runner.QueueLeases(q)
	ro.Events = events{runnerEvents{m: met, now: time.Now}, aud}
	if ro.Dialer != nil {
		ro.Dialer = dialer{next: ro.Dialer, m: met}
	}
	r, err := runner.New(ro)
	if err != nil {
		return err
	}

	srcs, err := cfg.sources(sourceOptions{log: log.With("component", "intake"), client: opts.SourceClient})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	intakeLog := log.With("component", "intake")
	res := runner.Resolutions(q.State())
	for _, src := range srcs {
		h := met.intake(src.Name(), hooks.NewHandler(src, hooks.Options{Queue: q, Resolver: res, Log: intakeLog}))
		// The exact path, and below it for sources that take a token
		// as the last path segment (Mackerel).
		mux.Handle("/hooks/"+src.Name(), h)
		mux.Handle("/hooks/"+src.Name()+"/", h)
	}
	var stopping atomic.Bool
	health(mux, q, &stopping)
	mux.Handle("GET /metrics", met.handler())
	// The /firstlook command is not a trigger source: its answer is a
	// Slack message and its work a command, so it has its own handler,
	// verified like a source (hooks/slack.Verifier.Authenticate).
	slackCmd, err := cfg.slackCommands(q, r, p, met, log)
	if err != nil {
		return err
	}
	if slackCmd != nil {
		defer slackCmd.close()
		if slackCmd.http != nil {
			mux.Handle("/hooks/slack/", slackCmd.http)
		}
	}

	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	// net/http refuses some requests itself, before any handler (headers
	// over MaxHeaderBytes, a malformed request): their plain-text answers
	// become the JSON every other refusal gets.
	ln = jsonRefusals{ln}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	runCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunner()
	var wg sync.WaitGroup
	var runErr, srvErr error
	if !opts.NoWorkers {
		wg.Go(func() { runErr = r.Run(runCtx) })
	}
	if p.spool != nil {
		// Uploads what S3 could not take; stops with the workers, and
		// what is left is uploaded at the next start.
		wg.Go(func() { _ = p.spool.Run(runCtx) })
	}
	if slackCmd != nil && slackCmd.socket != nil {
		wg.Go(func() {
			if err := slackCmd.socket.Run(runCtx); err != nil {
				log.Error("slack socket mode stopped", "err", err)
			}
		})
	}
	if slackCmd != nil && slackCmd.digest != nil && !opts.NoWorkers {
		wg.Go(func() { _ = slackCmd.digest.Run(runCtx) })
	}
	srvDone := make(chan struct{})
	go func() {
		defer close(srvDone)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			srvErr = err
		}
	}()
	log.Info("listening", "addr", ln.Addr().String(), "version", version, "workers", cfg.Runner.Workers)
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case <-srvDone:
	}
	// Not ready first, so that a load balancer stops sending webhooks
	// here before the intake closes.
	stopping.Store(true)
	if d := cfg.HTTP.DrainDelay; d > 0 {
		log.Info("not ready; draining before the intake closes", "delay", d.String())
		time.Sleep(d)
	}
	log.Info("shutting down: intake first, then workers", "grace", cfg.Runner.Grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("intake shutdown", "err", err)
	}
	<-srvDone
	stopRunner()
	wg.Wait()
	log.Info("stopped")
	return errors.Join(srvErr, runErr)
}

// maxHeaderBytes caps a request's header block (net/http allows 4 KiB
// more).
const maxHeaderBytes = 64 << 10

// jsonRefusals is a listener whose connections rewrite the plain-text
// responses net/http writes on its own, before any handler runs (431 for
// an oversized header block, 400 for a malformed request…), into JSON
// bodies like every other refusal of the intake. net/http writes each of
// them in one Write, in a fixed form (net/http/server.go, conn.serve).
type jsonRefusals struct{ net.Listener }

func (l jsonRefusals) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonRefusalConn{Conn: c}, nil
}

type jsonRefusalConn struct{ net.Conn }

// netHTTPErrorHeaders are the headers of every response net/http writes
// itself.
const netHTTPErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonRefusalConn) Write(p []byte) (int, error) {
	rest, ok := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !ok {
		return c.Conn.Write(p)
	}
	status, _, ok := bytes.Cut(rest, []byte(netHTTPErrorHeaders))
	if !ok || len(status) < 3 {
		return c.Conn.Write(p)
	}
	code, err := strconv.Atoi(string(status[:3]))
	if err != nil || code < 400 || code > 599 {
		return c.Conn.Write(p)
	}
	reason := strings.ToLower(http.StatusText(code))
	if code == http.StatusRequestHeaderFieldsTooLarge {
		reason = fmt.Sprintf("request header fields too large: the limit is %d KiB", maxHeaderBytes>>10)
	}
	body, _ := json.Marshal(hooks.Reply{Status: "error", Reason: reason})
	body = append(body, '\n')
	resp := fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	if _, err := c.Conn.Write(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite lets net/http half-close the connection after a refusal, as
// it does on a bare TCP connection.
func (c *jsonRefusalConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// sources builds the configured alert sources. This is the one list of
// every source firstlook has: a new source is one line here (and its
// section in Config). With replay, every source is built, configured or
// not, with placeholder credentials: replay parses and never
// authenticates.
func (c *Config) sources(opts sourceOptions) ([]hooks.Source, error) {
	replay := opts.replay
	var out []hooks.Source
	var errs []error
	add := func(section string, configured bool, build func() (hooks.Source, error)) {
		if !configured && !replay {
			return
		}
		src, err := build()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", section, err))
			return
		}
		out = append(out, src)
	}
	// cred is the configured credentials, or for replay one that is
	// never checked.
	cred := func(ss []string) []string {
		if replay {
			return []string{"replay: never checked"}
		}
		return ss
	}
	basic := func(list []BasicAuthConfig) []hooks.BasicAuth {
		if replay {
			return nil
		}
		return basicAuth(list)
	}
	am, mk, ra, ns := deref(c.Alertmanager), deref(c.Mackerel), c.PagerDuty.RunAgain, deref(c.SNS)
	if replay && len(ns.TopicARNs) == 0 {
		ns.TopicARNs = []string{"arn:aws:sns:us-east-1:000000000000:replay"}
	}
	add("pagerduty", len(c.webhookSecrets()) > 0, func() (hooks.Source, error) { return pagerduty.New(c.PagerDuty.Config, cred(c.webhookSecrets())) })
	add("pagerduty.run_again", len(values(ra.Secrets)) > 0, func() (hooks.Source, error) {
		return pagerduty.NewRunAgain(ra.RunAgainConfig, cred(values(ra.Secrets)))
	})
	add("alertmanager", c.Alertmanager != nil, func() (hooks.Source, error) {
		return alertmanager.New(am.Config, cred(values(am.BearerTokens)), basic(am.BasicAuth))
	})
	add("mackerel", c.Mackerel != nil, func() (hooks.Source, error) {
		return mackerel.New(mk.Config, cred(values(mk.Tokens)), basic(mk.BasicAuth))
	})
	add("sns", c.SNS != nil, func() (hooks.Source, error) { return sns.New(ns, sns.Options{Log: opts.log, HTTPClient: opts.client}) })
	if len(out) == 0 && len(errs) == 0 && !replay {
		return nil, errors.New("no alert source configured: set pagerduty.webhook_secrets (from the environment: [\"${PAGERDUTY_WEBHOOK_SECRET}\"]), or an alertmanager, mackerel or sns section")
	}
	return out, errors.Join(errs...)
}

// sourceOptions are what building the sources needs besides the config.
type sourceOptions struct {
	// replay builds every source, with placeholder credentials.
	replay bool
	log    *slog.Logger
	client *http.Client
}

// deref is *p, or the zero value when p is nil.
func deref[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}
