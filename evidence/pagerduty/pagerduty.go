// Package pagerduty posts a run's summary to its PagerDuty incident as a
// note (POST /incidents/{id}/notes), exactly once in effect.
//
// Every note ends with a marker line, "firstlook run <marker>", which a
// person can ignore and a retried publish looks for: when the runner calls
// Publish again after a crash, or when a post failed in a way that may
// have landed (a 5xx, a cut connection), the incident's notes are listed
// first and nothing is posted if one already carries the marker.
//
// Requests PagerDuty throttles (429) or fails (5xx), and requests that got
// no answer, are retried with capped exponential backoff and jitter,
// honouring the ratelimit-reset and Retry-After headers. Any other 4xx
// (a revoked token, a missing incident, a rejected From) is permanent:
// the error wraps evidence.ErrPermanent.
package pagerduty

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
)

// Source is the incident source this publisher annotates
// (evidence.Incident.Source); reports from other sources have no
// PagerDuty incident.
const Source = "pagerduty"

// Defaults applied by New to the zero values of Config.
const (
	// DefaultAPIURL is PagerDuty's REST API.
	DefaultAPIURL = "https://api.pagerduty.com"
	// DefaultMaxNote is PagerDuty's limit on a note: "incident notes are
	// limited to 65,535 single-byte characters", that is bytes, so a
	// multi-byte character counts for each of its bytes
	// (https://support.pagerduty.com/main/docs/edit-incidents#add-a-note-to-an-incident;
	// the OpenAPI spec states no limit).
	DefaultMaxNote = 65535
	// DefaultAttempts is how many times one publish tries before it
	// returns the error (and the runner delivers the job again later).
	DefaultAttempts = 5
	// DefaultBackoff is the wait after the first failed attempt when the
	// server named none; it doubles with every attempt.
	DefaultBackoff = time.Second
	// DefaultMaxWait caps one wait. PagerDuty's REST limits are per
	// minute (960 requests per key), so ratelimit-reset never asks for
	// more than a minute.
	DefaultMaxWait = time.Minute
	// DefaultTimeout bounds one request, answer included.
	DefaultTimeout = 10 * time.Second
	// MinNote is the smallest max_note accepted: room for the marker
	// line and a useful first line.
	MinNote = 256
)

// Config configures the publisher. The API token is not part of it: it is
// a secret, passed to New.
type Config struct {
	// From is the email address of the PagerDuty user the notes are
	// posted as: the REST API requires it in the From header of writes.
	From string `yaml:"from"`
	// APIURL is the REST API (DefaultAPIURL). Plain http is accepted only
	// for loopback addresses (tests, a local proxy): the token travels in
	// every request.
	APIURL string `yaml:"api_url"`
	// OAuth says the token passed to New is an OAuth access token (a
	// scoped OAuth app with incidents.read and incidents.write), sent as
	// "Authorization: Bearer"; otherwise it is a REST API key (account or
	// user, not read-only), sent as "Authorization: Token token=".
	OAuth bool `yaml:"oauth"`
	// MaxNote is the most bytes a note may have (DefaultMaxNote, at least
	// MinNote). Longer summaries are cut, the marker line kept.
	MaxNote int `yaml:"max_note"`
	// Attempts caps the tries of one publish (DefaultAttempts); a try
	// lists the incident's notes when it must, then posts.
	Attempts int `yaml:"attempts"`
	// Backoff is the first wait between attempts when the server gave no
	// Retry-After or ratelimit-reset (DefaultBackoff); it doubles, capped
	// by MaxWait, with jitter.
	Backoff time.Duration `yaml:"backoff"`
	// MaxWait caps a wait (DefaultMaxWait). A server that asks for longer
	// gets no retry from this publish: the runner delivers the job again.
	MaxWait time.Duration `yaml:"max_wait"`
	// Timeout bounds one request (DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
}

// emailFormat is the "email" format of ajv-formats (full mode), which
// Prism applies to the From header as the REST API's spec declares it
// (format: email): a From this accepts is one the spec accepts.
var emailFormat = regexp.MustCompile("(?i)^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")

// Validate reports a configuration that cannot work. Zero values stand
// for the defaults.
func (c Config) Validate() error {
	if c.From == "" {
		return errors.New("from: required: the email of the PagerDuty user the notes are posted as")
	}
	if !emailFormat.MatchString(c.From) {
		return fmt.Errorf("from: %q is not an email address", c.From)
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("api_url: %q is not an http(s) URL", c.APIURL)
		}
		if u.Scheme == "http" && !loopback(u.Hostname()) {
			return fmt.Errorf("api_url: %q: plain http would send the API token in the clear; use https", c.APIURL)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("api_url: %q: want scheme, host and path only", c.APIURL)
		}
	}
	if c.MaxNote != 0 && (c.MaxNote < MinNote || c.MaxNote > DefaultMaxNote) {
		return fmt.Errorf("max_note: %d is outside %d..%d (PagerDuty's limit)", c.MaxNote, MinNote, DefaultMaxNote)
	}
	if c.Attempts < 0 {
		return fmt.Errorf("attempts: %d is negative", c.Attempts)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"backoff", c.Backoff}, {"max_wait", c.MaxWait}, {"timeout", c.Timeout}} {
		if d.v < 0 {
			return fmt.Errorf("%s: %s is negative", d.name, d.v)
		}
	}
	if c.Backoff > 0 && c.MaxWait > 0 && c.Backoff > c.MaxWait {
		return fmt.Errorf("backoff: %s is longer than max_wait %s", c.Backoff, c.MaxWait)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withDefaults returns c with its zero values replaced by the defaults.
func (c Config) withDefaults() Config {
	c.APIURL = cmp.Or(c.APIURL, DefaultAPIURL)
	c.MaxNote = cmp.Or(c.MaxNote, DefaultMaxNote)
	c.Attempts = cmp.Or(c.Attempts, DefaultAttempts)
	c.MaxWait = cmp.Or(c.MaxWait, max(DefaultMaxWait, c.Backoff))
	c.Backoff = cmp.Or(c.Backoff, min(DefaultBackoff, c.MaxWait))
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	return c
}

// Option changes how New builds a Publisher.
type Option func(*options)

type options struct {
	render    func(evidence.Report) string
	transport http.RoundTripper
	sleep     func(context.Context, time.Duration) error
	log       *slog.Logger
	onRetry   func(attempt int, wait time.Duration, err error)
}

// WithRender sets how a report becomes the note's text, before the marker
// line; the default is evidence.Markdown. The text is cut to fit the note.
func WithRender(f func(evidence.Report) string) Option {
	return func(o *options) { o.render = f }
}

// WithLogger sets where retried attempts are logged (default: nowhere).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithOnRetry sets a function told of each request retried inside one
// publish (attempt is 1-based, before the wait): serve counts them in
// firstlook_publish_request_retries_total. It must not block.
func WithOnRetry(f func(attempt int, wait time.Duration, err error)) Option {
	return func(o *options) { o.onRetry = f }
}

// WithTransport sets the transport requests go through (default: a clone
// of http.DefaultTransport, proxies from the environment).
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// Publisher posts incident notes. It is safe for concurrent use.
type Publisher struct {
	client  *gopd.Client
	from    string
	maxNote int
	policy  retry.Policy
	render  func(evidence.Report) string
	// redact removes the token from error text; a pointer, so that
	// printing a Publisher never prints the token.
	redact *strings.Replacer
}

// New returns a Publisher that posts as cfg.From with token, a REST API
// key or, with cfg.OAuth, an OAuth access token. The token needs to read
// an incident's notes and write them (scopes incidents.read and
// incidents.write).
func New(cfg Config, token string, opts ...Option) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("pagerduty: no API token")
	}
	cfg = cfg.withDefaults()
	o := options{render: evidence.Markdown, transport: http.DefaultTransport}
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		o.transport = t.Clone()
	}
	for _, opt := range opts {
		opt(&o)
	}
	copts := []gopd.ClientOptions{gopd.WithAPIEndpoint(strings.TrimSuffix(cfg.APIURL, "/"))}
	if cfg.OAuth {
		copts = append(copts, gopd.WithOAuth())
	}
	c := gopd.NewClient(token, copts...)
	// go-pagerduty v1.8.0 does not retry; this publisher does. The
	// recorder hands each attempt its response's status and headers,
	// which go-pagerduty's errors do not carry (ratelimit-reset).
	c.HTTPClient = &http.Client{Transport: recorder{o.transport}, Timeout: cfg.Timeout}
	return &Publisher{
		client:  c,
		from:    cfg.From,
		maxNote: cfg.MaxNote,
		// A server's wait gets up to a second added, so that clients
		// throttled together do not all return at the second the limit
		// resets.
		policy: retry.Policy{
			Name: "pagerduty: note", Initial: cfg.Backoff, Max: cfg.MaxWait,
			MaxTries: cfg.Attempts, MaxWait: cfg.MaxWait, MaxWaitName: "max_wait",
			HintJitter: time.Second, Log: o.log, OnRetry: o.onRetry, Sleep: o.sleep,
		},
		render: o.render,
		redact: strings.NewReplacer(token, "<redacted>"),
	}, nil
}

// Sink names this publisher in the per-incident state.
func (p *Publisher) Sink() string { return "pagerduty" }

// incidentID is the shape of PagerDuty ids. go-pagerduty puts the id in
// the path unescaped, so anything else is refused rather than sent.
var incidentID = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// Publish posts rep as a note on its PagerDuty incident, a run that could
// not start included (the note says why). Reports whose incident comes
// from another source are not PagerDuty's: Publish returns nil without a
// request. With again set, or after a failed post that may have landed,
// it lists the incident's notes first and posts nothing if one carries
// rep.Marker. The state is not used.
//
// Errors that retrying cannot fix wrap evidence.ErrPermanent; others may succeed
// when the job is delivered again.
func (p *Publisher) Publish(ctx context.Context, rep evidence.Report, _ evidence.IncidentState, again bool) error {
	if rep.Bundle == nil {
		return fmt.Errorf("pagerduty: publish: %w: report without a bundle", evidence.ErrPermanent)
	}
	inc := rep.Bundle.Manifest.Incident
	if inc.Source != Source {
		return nil
	}
	if !incidentID.MatchString(inc.ID) {
		return fmt.Errorf("pagerduty: publish: %w: incident id %q is not a PagerDuty id", evidence.ErrPermanent, inc.ID)
	}
	content, err := note(p.render(rep), rep.Marker, p.maxNote)
	if err != nil {
		return fmt.Errorf("pagerduty: note on incident %s: %w: %w", inc.ID, evidence.ErrPermanent, err)
	}
	if err := p.post(ctx, inc.ID, rep.Marker, content, again); err != nil {
		return p.scrub(fmt.Errorf("pagerduty: note on incident %s: %w", inc.ID, err))
	}
	return nil
}

// post creates the note unless check finds it already there. A post that
// failed with anything but a 429 may have landed (a 5xx from a proxy in
// front of a backend that did the work, an answer lost on the way), so
// the next attempt looks before it posts again.
func (p *Publisher) post(ctx context.Context, id, marker, content string, check bool) error {
	n := gopd.IncidentNote{
		Content: content,
		// go-pagerduty sends User.Summary as the From header.
		User: gopd.APIObject{Summary: p.from},
	}
	return p.retry(ctx, func(ctx context.Context) error {
		if check {
			notes, err := p.client.ListIncidentNotesWithContext(ctx, id)
			if err != nil {
				return fmt.Errorf("list notes: %w", err)
			}
			for _, existing := range notes {
				if hasMarker(existing.Content, marker) {
					return nil
				}
			}
			check = false
		}
		if _, err := p.client.CreateIncidentNoteWithContext(ctx, id, n); err != nil {
			check = exchangeFrom(ctx).status != http.StatusTooManyRequests
			return fmt.Errorf("post note: %w", err)
		}
		return nil
	})
}

// scrub keeps the token out of an error's text, should a server or proxy
// ever echo the Authorization header back.
func (p *Publisher) scrub(err error) error {
	return scrubbed{err, p.redact}
}

type scrubbed struct {
	err error
	r   *strings.Replacer
}

func (s scrubbed) Error() string { return s.r.Replace(s.err.Error()) }
func (s scrubbed) Unwrap() error { return s.err }
