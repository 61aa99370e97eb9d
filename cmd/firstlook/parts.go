package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/firstlook/firstlook/evidence"
	pdnotes "github.com/firstlook/firstlook/evidence/pagerduty"
	slackpub "github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/evidence/store/s3"
	"github.com/firstlook/firstlook/evidence/store/spool"
	"github.com/firstlook/firstlook/evidence/webhook"
	"github.com/firstlook/firstlook/hooks/pagerduty"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/playbooks/library"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/inventory/ec2"
	"github.com/firstlook/firstlook/runner/ssh"
)

// parts are the pieces every command that touches hosts builds from the
// configuration. This is the one place that knows every implementation.
type parts struct {
	inventory runner.Inventory
	playbooks *playbooks.Set
	dialer    *ssh.Dialer
	store     evidence.Store
	// spool, when S3 is configured for serve, holds what S3 could not take
	// yet; serve runs its uploads.
	spool      *spool.Store
	alerts     runner.AlertHints
	publishers []evidence.Publisher
}

// planParts builds what planning needs: inventory, playbooks and alert
// lookups; no SSH, no store.
func (c *Config) planParts(ctx context.Context) (*parts, error) {
	inv, err := c.inventory(ctx)
	if err != nil {
		return nil, err
	}
	set, err := c.loadPlaybooks()
	if err != nil {
		return nil, fmt.Errorf("playbooks:\n%w", err)
	}
	p := &parts{inventory: inv, playbooks: set}
	if c.PagerDuty.APIToken.IsSet() {
		p.alerts = pagerduty.NewAlerts(c.PagerDuty.Config, c.PagerDuty.APIToken.Value())
	}
	return p, nil
}

// loadPlaybooks loads the playbooks under playbooks.paths and the library
// playbooks named in playbooks.library, as one set.
func (c *Config) loadPlaybooks() (*playbooks.Set, error) {
	var sets []*playbooks.Set
	if len(c.Playbooks.Paths) > 0 {
		s, err := playbooks.Load(c.Playbooks.Paths...)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	if len(c.Playbooks.Library) > 0 {
		s, err := library.Load(c.Playbooks.Library...)
		if err != nil {
			return nil, err
		}
		sets = append(sets, s)
	}
	return playbooks.Merge(sets...)
}

// inventory asks the configured sources in order (see
// InventoryConfig.sources). A new source is a package and a case here.
func (c *Config) inventory(ctx context.Context) (runner.Inventory, error) {
	var chain inventory.Chain
	// bastions are the static inventory's; other sources refer to them
	// by name.
	var bastions map[string]*inventory.Bastion
	for _, kind := range c.Inventory.sources() {
		switch kind {
		case sourceStatic:
			static, err := inventory.New(c.Inventory.Config)
			if err != nil {
				return nil, err
			}
			bastions = static.Bastions()
			chain = append(chain, static)
		case sourceEC2:
			src, err := ec2.New(ctx, *c.Inventory.EC2, bastions)
			if err != nil {
				return nil, fmt.Errorf("inventory.ec2: %w", err)
			}
			chain = append(chain, src)
		}
	}
	if len(chain) == 1 {
		return chain[0], nil
	}
	return chain, nil
}

// runParts builds everything a run needs. With S3 configured, serve
// (spooled) puts a local spool in front of it, so that an S3 outage loses
// nothing; a one-off run writes to S3 directly and says so if it fails.
// met, when not nil, counts the publishers' retried requests.
func (c *Config) runParts(ctx context.Context, spooled bool, met *metrics, log *slog.Logger) (_ *parts, err error) {
	p, err := c.planParts(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	if p.dialer, err = ssh.New(c.SSH); err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	switch {
	case c.Evidence.S3 != nil:
		remote, err := s3.New(ctx, *c.Evidence.S3)
		if err != nil {
			return nil, fmt.Errorf("evidence.s3: %w", err)
		}
		p.store = remote
		if spooled {
			if p.spool, err = spool.New(c.Evidence.Spool, remote, log.With("component", "spool")); err != nil {
				return nil, fmt.Errorf("evidence.spool: %w", err)
			}
			p.store = p.spool
		}
	default:
		if p.store, err = dir.New(c.Evidence.Dir); err != nil {
			return nil, fmt.Errorf("evidence: %w", err)
		}
	}
	if p.publishers, err = c.publishers(log, met); err != nil {
		return nil, err
	}
	return p, nil
}

// publishers are the sinks runs go to, in order: the PagerDuty note first
// (the incident is where responders look first), then Slack, then the
// webhook. Each sink is one line: its config key, whether it is on, and how
// it is built (its config, its secret, its logger, and with met set the
// counter of its retried requests).
func (c *Config) publishers(log *slog.Logger, met *metrics) ([]evidence.Publisher, error) {
	onRetry := func(sink string) func(int, time.Duration, error) {
		if met == nil {
			return nil
		}
		ctr := met.publishRequestRetries.WithLabelValues(sink)
		return func(int, time.Duration, error) { ctr.Inc() }
	}
	sinks := []struct {
		key   string
		on    bool
		build func() (evidence.Publisher, error)
	}{
		{"pagerduty.notes", c.PagerDuty.Notes.From != "", build(pdnotes.New, c.PagerDuty.Notes, c.PagerDuty.APIToken.Value(), pdnotes.WithLogger(log.With("sink", "pagerduty")), pdnotes.WithOnRetry(onRetry("pagerduty")))},
		{"slack", c.Slack.BotToken.IsSet(), build(slackpub.New, c.slackPublisherConfig(), c.Slack.BotToken.Value(), slackpub.WithLogger(log.With("sink", "slack")), slackpub.WithOnRetry(onRetry("slack")))},
		{"webhook", c.Webhook.URL != "", build(webhook.New, c.Webhook.Config, c.Webhook.Secret.Value(), webhook.WithLogger(log.With("sink", "webhook")), webhook.WithOnRetry(onRetry("webhook")))},
	}
	var out []evidence.Publisher
	for _, s := range sinks {
		if !s.on {
			continue
		}
		p, err := s.build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.key, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// build defers a publisher's constructor, New(cfg, secret, opts...), to
// when its sink is known to be on.
func build[C any, O any, P evidence.Publisher](newf func(C, string, ...O) (P, error), cfg C, secret string, opts ...O) func() (evidence.Publisher, error) {
	return func() (evidence.Publisher, error) { return newf(cfg, secret, opts...) }
}

var (
	_ evidence.Publisher = (*pdnotes.Publisher)(nil)
	_ evidence.Publisher = (*slackpub.Publisher)(nil)
	_ evidence.Publisher = (*webhook.Publisher)(nil)
)

func (p *parts) close() {
	if p.dialer != nil {
		p.dialer.Close()
	}
	if p.spool != nil {
		p.spool.Close()
	}
}

// runnerOptions are the runner's parts; jobs and state are added by serve.
func (c *Config) runnerOptions(p *parts, log *slog.Logger) runner.Options {
	// Validate compiled the patterns already.
	red, _ := evidence.NewRedactor(c.Evidence.Redact)
	o := runner.Options{
		Redactor:   red,
		Publishers: p.publishers,
		Config:     c.Runner,
		Inventory:  p.inventory,
		Playbooks:  p.playbooks,
		Alerts:     p.alerts,
		Params:     c.Params,
		Version:    version,
		Log:        log,
	}
	if p.dialer != nil {
		o.Dialer = runner.SSH(p.dialer)
	}
	o.Store = p.store
	return o
}

func newLogger(c *Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// slackPublisherConfig is slack's publisher config, with the Run again
// button when the /firstlook command is there to receive its press.
func (c *Config) slackPublisherConfig() slackpub.Config {
	spc := c.Slack.Config
	spc.RunAgainButton = c.Slack.Commands != nil
	return spc
}

// durationText writes durations as people read them ("28s"): slog's JSON
// handler would write nanoseconds (28000000000).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
