package digest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks/slack"
	"github.com/firstlook/firstlook/runner/queue"
)

var jsonUnmarshal = json.Unmarshal

// Incidents lists the incidents created in a window.
type Incidents interface {
	Incidents(ctx context.Context, since, until time.Time) ([]Incident, error)
}

// Options are a Digester's parts.
type Options struct {
	Config    Config
	Incidents Incidents
	State     State
	Store     evidence.Store
	// BotToken posts to Slack; SlackAPIURL overrides Slack's Web API
	// (tests).
	BotToken    string
	SlackAPIURL string
	HTTPClient  *http.Client
	Log         *slog.Logger
}

// Digester makes and posts digests: on request (slack.Digester) and on
// schedule (Run).
type Digester struct {
	cfg       Config
	loc       *time.Location
	incidents Incidents
	state     State
	store     evidence.Store
	api       *goslack.Client
	log       *slog.Logger
	now       func() time.Time
}

var _ slack.Digester = (*Digester)(nil)

// New returns a Digester.
func New(opts Options) (*Digester, error) {
	cfg := opts.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Incidents == nil || opts.State == nil || opts.BotToken == "" {
		return nil, errors.New("digest: incidents (a PagerDuty API token), state and a Slack bot token are required")
	}
	loc, _ := time.LoadLocation(cfg.TimeZone)
	var so []goslack.Option
	if opts.HTTPClient != nil {
		so = append(so, goslack.OptionHTTPClient(opts.HTTPClient))
	}
	if opts.SlackAPIURL != "" {
		u := opts.SlackAPIURL
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		so = append(so, goslack.OptionAPIURL(u))
	}
	return &Digester{
		cfg: cfg, loc: loc, incidents: opts.Incidents, state: opts.State, store: opts.Store,
		api: goslack.New(opts.BotToken, so...), log: logger(opts.Log), now: time.Now,
	}, nil
}

// Make computes the digest of [since, until).
func (d *Digester) Make(ctx context.Context, since, until time.Time) (Figures, error) {
	incs, err := d.incidents.Incidents(ctx, since, until)
	if err != nil {
		return Figures{}, err
	}
	runs, err := Runs(ctx, d.state, d.store, since, until)
	if err != nil {
		return Figures{}, err
	}
	return Compute(since, until, incs, runs, d.cfg.TopHosts), nil
}

// Post makes the digest of [since, until) and posts it to channel; when it
// cannot be made, it posts why instead, and returns the error.
func (d *Digester) Post(ctx context.Context, since, until time.Time, channel string) error {
	f, err := d.Make(ctx, since, until)
	if err != nil {
		d.log.Error("digest failed", "since", since, "until", until, "err", err)
		if _, _, perr := d.api.PostMessageContext(ctx, channel, goslack.MsgOptionText(FailureText(since, until, d.loc, err), false)); perr != nil {
			return errors.Join(err, fmt.Errorf("post the failure: %w", perr))
		}
		return err
	}
	_, _, err = d.api.PostMessageContext(ctx, channel,
		goslack.MsgOptionText(Text(f, d.loc), false),
		goslack.MsgOptionBlocks(Blocks(f, d.loc)...),
		goslack.MsgOptionDisableLinkUnfurl())
	if err != nil {
		return fmt.Errorf("post digest: chat.postMessage: %w", err)
	}
	return nil
}

// Digest posts the digest of the last hours (0: Config.Window) to channel
// (the /firstlook digest command).
func (d *Digester) Digest(ctx context.Context, hours int, channel string) (slack.Reply, error) {
	window := d.cfg.Window
	if hours > 0 {
		window = time.Duration(hours) * time.Hour
	}
	until := d.now()
	if err := d.Post(ctx, until.Add(-window), until, channel); err != nil {
		return slack.Reply{}, err
	}
	return slack.Reply{Text: fmt.Sprintf("Digest of the last %s posted.", window)}, nil
}

// Claim takes the slot for this node: a create-only key per slot in the
// shared state, so that of several nodes exactly one posts it.
func (d *Digester) Claim(ctx context.Context, slot time.Time) (bool, error) {
	_, err := d.state.Create(ctx, queue.Key("digest", slot.UTC().Format(time.RFC3339)), []byte(d.now().UTC().Format(time.RFC3339)))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, queue.ErrExists):
		return false, nil
	}
	return false, fmt.Errorf("claim digest slot %s: %w", slot.UTC().Format(time.RFC3339), err)
}

// Slot posts the scheduled digest of the window ending at slot, if this
// node claims it.
func (d *Digester) Slot(ctx context.Context, slot time.Time) error {
	mine, err := d.Claim(ctx, slot)
	if err != nil || !mine {
		return err
	}
	return d.Post(ctx, slot.Add(-d.cfg.Window), slot, d.cfg.Channel)
}

// Run posts scheduled digests until ctx ends. A slot missed while no node
// was running is not posted late.
func (d *Digester) Run(ctx context.Context) error {
	if len(d.cfg.Times) == 0 {
		return nil
	}
	for {
		slot, ok := NextSlot(d.now(), d.cfg.Times, d.loc)
		if !ok {
			return nil
		}
		t := time.NewTimer(time.Until(slot))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		if err := d.Slot(sctx, slot); err != nil {
			d.log.Error("scheduled digest", "slot", slot, "err", err)
		}
		cancel()
	}
}
