package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/firstlook/firstlook/hooks/pagerduty"
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
	return Serve(ctx, ServeOptions{Config: cfg, Log: newLogger(cfg, stderr)})
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
	// Failpoints, in tests only, stops a job dead at the named points
	// (see runner.Options.Failpoints).
	Failpoints func(point string) bool
}

// Serve runs the intake and the workers until ctx ends, then shuts down in
// order: stop taking webhooks, let running jobs finish within the grace
// period (the rest stay queued), close the queue.
func Serve(ctx context.Context, opts ServeOptions) error {
	cfg, log := opts.Config, opts.Log
	if err := cfg.requireIntake(); err != nil {
		return err
	}
	p, err := cfg.runParts(ctx, true, log)
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

	ro := cfg.runnerOptions(p, log.With("component", "runner"))
	ro.Jobs = runner.QueueJobs(q)
	ro.State = q.State()
	ro.Leases = runner.QueueLeases(q)
	ro.Failpoints = opts.Failpoints
	r, err := runner.New(ro)
	if err != nil {
		return err
	}

	pd, err := pagerduty.NewHandler(cfg.PagerDuty.Config, cfg.webhookSecrets(), q, log.With("component", "intake"))
	if err != nil {
		return fmt.Errorf("pagerduty: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/hooks/pagerduty", pd)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})

	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
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
	log.Info("shutting down: intake first, then workers", "grace", cfg.Runner.Grace)
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
