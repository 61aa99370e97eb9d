package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"

	slackcmd "github.com/firstlook/firstlook/hooks/slack"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/chatops"
	"github.com/firstlook/firstlook/runner/digest"
	"github.com/firstlook/firstlook/runner/queue"
)

// slackCommand is the /firstlook command as serve runs it: the service and
// its one transport.
type slackCommand struct {
	svc    *slackcmd.Service
	http   http.Handler
	socket *slackcmd.Socket
	// digest posts scheduled digests when configured.
	digest *digest.Digester
}

func (s *slackCommand) close() { s.svc.Close() }

// slackCommands builds the /firstlook command when slack.commands is set:
// runs go through the queue like every webhook's, answers and the
// digest through the bot token. Its decisions are counted in met.
func (c *Config) slackCommands(q *queue.Queue, r *runner.Runner, p *parts, met *metrics, log *slog.Logger) (*slackCommand, error) {
	sc := c.Slack.Commands
	if sc == nil {
		return nil, nil
	}
	desk, err := chatops.New(chatops.Options{
		Queue: q, State: q.State(), Store: p.store, Targets: r, Playbooks: p.playbooks,
		Log: log.With("component", "slack-command"),
	})
	if err != nil {
		return nil, err
	}
	opts := slackcmd.Options{
		Config:    sc.Config,
		BotToken:  c.Slack.BotToken.Value(),
		Incidents: desk,
		Runs:      desk,
		Log:       log.With("component", "slack-command"),
		Audit:     log.With("component", "audit"),
		OnDecision: func(command, decision string) {
			met.slackCommands.WithLabelValues(command, decision).Inc()
		},
	}
	pdAPI := cmp.Or(c.PagerDuty.APIURL, "https://api.pagerduty.com")
	if c.PagerDuty.APIToken.IsSet() && c.PagerDuty.Notes.From != "" {
		if opts.Pager, err = chatops.NewPager(pdAPI, c.PagerDuty.APIToken.Value(), c.PagerDuty.Notes.From, nil); err != nil {
			return nil, fmt.Errorf("slack.commands: %w", err)
		}
	}
	var dg *digest.Digester
	if sc.Digest != nil {
		dc := *sc.Digest
		dc.APIURL = cmp.Or(dc.APIURL, pdAPI)
		dg, err = digest.New(digest.Options{
			Config:    dc,
			Incidents: digest.NewPagerDuty(dc.APIURL, c.PagerDuty.APIToken.Value(), nil),
			State:     q.State(), Store: p.store,
			BotToken: c.Slack.BotToken.Value(), SlackAPIURL: c.Slack.APIURL,
			Log: log.With("component", "digest"),
		})
		if err != nil {
			return nil, fmt.Errorf("slack.commands.digest: %w", err)
		}
		opts.Digester = dg
	}
	svc, err := slackcmd.New(opts)
	if err != nil {
		return nil, fmt.Errorf("slack.commands: %w", err)
	}
	out := &slackCommand{svc: svc, digest: dg}
	switch svc.Config().Transport {
	case slackcmd.TransportSocket:
		out.socket, err = slackcmd.NewSocket(svc, c.Slack.BotToken.Value(), sc.AppToken.Value())
	default:
		out.http, err = slackcmd.NewHandler(svc, sc.signingSecrets())
	}
	if err != nil {
		svc.Close()
		return nil, fmt.Errorf("slack.commands: %w", err)
	}
	return out, nil
}
