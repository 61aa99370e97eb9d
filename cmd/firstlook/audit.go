package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/runner"
)

// AuditConfig is the audit section: where the audit log goes.
type AuditConfig struct {
	// File is "stderr" (the default: the audit lines go with the logs,
	// marked audit=true) or a file that audit lines are appended to
	// (relative to the config file's directory).
	File string `yaml:"file"`
}

// audit writes the audit log: one JSON line for every run started, every
// run refused, and every run stored, saying who or what asked (source and
// delivery id, and requested_by for a person's request), which host,
// which playbook and its hash, and the outcome. It never carries command
// output, alert text or secrets: only names, ids and outcomes.
type audit struct {
	log *slog.Logger
}

// openAudit opens the audit sink; close closes a file sink.
func openAudit(c *Config, stderr io.Writer) (*audit, func() error, error) {
	var w io.Writer = stderr
	closeFn := func() error { return nil }
	if f := c.Audit.File; f != "" && f != "stderr" {
		if !filepath.IsAbs(f) && c.path != "" {
			f = filepath.Join(filepath.Dir(c.path), f)
		}
		file, err := os.OpenFile(f, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: open log: %w", err)
		}
		w, closeFn = file, file.Close
	}
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			a.Value = slog.StringValue(a.Value.Time().UTC().Format(time.RFC3339Nano))
		}
		return a
	}})
	return &audit{log: slog.New(h).With("audit", true)}, closeFn, nil
}

// who says who or what asked for the run.
func who(t hooks.Trigger) []any {
	attrs := []any{"source", t.Source, "delivery_id", t.DeliveryID, "incident", t.Incident.ID}
	// A person's request (Slack) names them in this label.
	if u := t.Labels["requested_by"]; u != "" {
		attrs = append(attrs, "requested_by", u)
	}
	return attrs
}

func runAttrs(run runner.Run) []any {
	a := []any{"host", run.Target}
	if p := run.Playbook; p != nil {
		a = append(a, "playbook", p.Name, "playbook_sha256", p.SHA256)
	}
	return a
}

func (a *audit) RunStarted(t hooks.Trigger, run runner.Run) {
	a.log.Info("run started", append(append(who(t), runAttrs(run)...), "outcome", "started")...)
}

func (a *audit) RunRefused(t hooks.Trigger, run runner.Run, reason string) {
	attrs := append(append(who(t), runAttrs(run)...), "outcome", "refused", "reason", reason)
	if reason == runner.RefusedNotStarted && run.Err != nil {
		// Why it could not start: an unknown host, a host outside the
		// inventory. Names and addresses only.
		attrs = append(attrs, "error", run.Err.Error())
	}
	a.log.Info("run refused", attrs...)
}

func (a *audit) RunStored(t hooks.Trigger, b *evidence.Bundle) {
	m := b.Manifest
	a.log.Info("run finished", append(who(t), "host", m.Host.Name, "playbook", m.Playbook.Name,
		"playbook_sha256", m.Playbook.SHA256, "outcome", string(m.Status), "run_id", m.RunID)...)
}

func (a *audit) JobDone(hooks.Trigger, string)                {}
func (a *audit) Published(string, bool, time.Duration, error) {}

var _ runner.Events = (*audit)(nil)

// events sends the runner's events to each of its parts.
type events []runner.Events

func (e events) RunStarted(t hooks.Trigger, run runner.Run) {
	for _, x := range e {
		x.RunStarted(t, run)
	}
}

func (e events) RunRefused(t hooks.Trigger, run runner.Run, reason string) {
	for _, x := range e {
		x.RunRefused(t, run, reason)
	}
}

func (e events) RunStored(t hooks.Trigger, b *evidence.Bundle) {
	for _, x := range e {
		x.RunStored(t, b)
	}
}

func (e events) JobDone(t hooks.Trigger, outcome string) {
	for _, x := range e {
		x.JobDone(t, outcome)
	}
}

func (e events) Published(sink string, again bool, took time.Duration, err error) {
	for _, x := range e {
		x.Published(sink, again, took, err)
	}
}
