package main

import (
	"fmt"
	"log/slog"
	"net/http"

	slackcmd "github.com/firstlook/firstlook/hooks/slack"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/chatops"
	"github.com/firstlook/firstlook/runner/queue"
)

// slackCommand is the /firstlook command as serve runs it: the service and
// its one transport.
type slackCommand struct {
	svc    *slackcmd.Service
	http   http.Handler
	socket *slackcmd.Socket
}

func (s *slackCommand) close() { s.svc.Close() }

// slackCommands builds the /firstlook command when slack.commands is set:
// runs go through the queue like every webhook's, answers and the
// digest through the bot token.
func (c *Config) slackCommands(q *queue.Queue, r *runner.Runner, p *parts, log *slog.Logger) (*slackCommand, error) {
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
	svc, err := slackcmd.New(slackcmd.Options{
		Config:    sc.Config,
		BotToken:  c.Slack.BotToken.value(),
		Incidents: desk,
		Runs:      desk,
		Log:       log.With("component", "slack-command"),
		Audit:     log.With("component", "audit"),
	})
	if err != nil {
		return nil, fmt.Errorf("slack.commands: %w", err)
	}
	out := &slackCommand{svc: svc}
	switch svc.Config().Transport {
	case slackcmd.TransportSocket:
		out.socket, err = slackcmd.NewSocket(svc, c.Slack.BotToken.value(), sc.AppToken.value())
	default:
		out.http, err = slackcmd.NewHandler(svc, sc.signingSecrets())
	}
	if err != nil {
		svc.Close()
		return nil, fmt.Errorf("slack.commands: %w", err)
	}
	return out, nil
}
