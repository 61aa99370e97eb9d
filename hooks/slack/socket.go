package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// Socket is the Socket Mode transport
// (https://docs.slack.dev/apis/events-api/using-socket-mode): firstlook
// opens a websocket with an app-level token (xapp-…, scope
// connections:write) and Slack sends slash commands and button presses
// over it. Every envelope is acknowledged at once, as Slack requires; a
// slash command's acknowledgement carries the answer, as an HTTP answer
// would. Socket Mode needs no signing secret: the connection itself is
// authenticated by the token.
type Socket struct {
	svc    *Service
	client *socketmode.Client
}

// NewSocket returns the Socket Mode transport of svc.
func NewSocket(svc *Service, botToken, appToken string) (*Socket, error) {
	if !strings.HasPrefix(appToken, "xapp-") {
		return nil, errors.New("app_token: not an app-level token (xapp-…); create one with scope connections:write under the app's Basic Information")
	}
	opts := []goslack.Option{goslack.OptionAppLevelToken(appToken), goslack.OptionHTTPClient(svc.http)}
	if svc.cfg.APIURL != "" {
		u := svc.cfg.APIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		opts = append(opts, goslack.OptionAPIURL(u))
	}
	api := goslack.New(botToken, opts...)
	return &Socket{svc: svc, client: socketmode.New(api)}, nil
}

// Run connects and serves envelopes until ctx ends; slack-go reconnects
// on its own when the connection drops or Slack asks it to.
func (s *Socket) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.client.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			<-errc
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("socket mode: %w", err)
		case ev, ok := <-s.client.Events:
			if !ok {
				return nil
			}
			// Each envelope on its own: one slow command must not hold
			// the next one's acknowledgement.
			s.svc.wg.Go(func() { s.handle(ctx, ev) })
		}
	}
}

func (s *Socket) handle(ctx context.Context, ev socketmode.Event) {
	switch ev.Type {
	case socketmode.EventTypeConnected:
		s.svc.log.Info("slack socket mode connected")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeIncomingError, socketmode.EventTypeErrorBadMessage:
		s.svc.log.Warn("slack socket mode", "event", string(ev.Type), "data", fmt.Sprint(ev.Data))
	case socketmode.EventTypeInvalidAuth:
		s.svc.log.Error("slack socket mode: the app-level token was refused (invalid_auth)")
	case socketmode.EventTypeSlashCommand:
		cmd, ok := ev.Data.(goslack.SlashCommand)
		if !ok || ev.Request == nil {
			return
		}
		if cmd.Command != "" && cmd.Command != s.svc.cfg.Command {
			s.ack(ctx, ev, ackMessage(Reply{Text: fmt.Sprintf("this app answers %s only", s.svc.cfg.Command)}))
			return
		}
		rep := s.svc.Handle(Request{
			Text: cmd.Text, Team: cmd.TeamID, User: cmd.UserID, UserName: cmd.UserName,
			Channel: cmd.ChannelID, ChannelName: cmd.ChannelName,
			ResponseURL: cmd.ResponseURL, ID: cmd.TriggerID, Received: time.Now(),
		})
		s.ack(ctx, ev, ackMessage(rep))
	case socketmode.EventTypeInteractive:
		cb, ok := ev.Data.(goslack.InteractionCallback)
		if !ok || ev.Request == nil {
			return
		}
		req, err := InteractionRequest(cb)
		if err != nil {
			s.ack(ctx, ev, nil)
			return
		}
		// Acknowledge first: a button's answer cannot ride on the ack.
		s.ack(ctx, ev, nil)
		s.svc.respondAck(req, s.svc.Handle(req))
	case socketmode.EventTypeEventsAPI:
		s.ack(ctx, ev, nil)
	}
}

func (s *Socket) ack(ctx context.Context, ev socketmode.Event, payload any) {
	if err := s.client.AckCtx(ctx, ev.Request.EnvelopeID, payload); err != nil {
		s.svc.log.Warn("slack socket mode: ack", "envelope", ev.Request.EnvelopeID, "err", err)
	}
}
