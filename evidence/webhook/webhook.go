// Package webhook posts a run's summary as JSON to a URL of your choosing,
// signed with a shared secret, so that Opsgenie, a Teams or Mattermost
// workflow, or an in-house system can take it.
//
// Every request is a POST of a Payload with these headers:
//
//	Content-Type: application/json
//	X-Firstlook-Run: <the run's marker>
//	X-Firstlook-Timestamp: <Unix seconds when the request was signed>
//	X-Firstlook-Signature: v1=<hex HMAC-SHA256(secret, "v1:" + timestamp + ":" + body)>
//
// A receiver verifies the signature over the raw body with its copy of the
// secret (a constant-time comparison), rejects a timestamp more than five
// minutes from its clock (a replay), and deduplicates on X-Firstlook-Run:
// a webhook cannot be searched, so a publish retried after a crash or a
// lost answer may deliver the same run again, and the run header is what
// makes it exactly once in effect. Verify shows how.
//
// Answers: 2xx is delivered; 408, 429 and 5xx, and requests that got no
// answer, are retried with capped exponential backoff and jitter,
// honouring Retry-After; any other status (a 3xx included: redirects are
// not followed, a POST would turn into a GET) is permanent and wraps
// evidence.ErrPermanent.
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
)

// Headers of every request.
const (
	HeaderRun       = "X-Firstlook-Run"
	HeaderTimestamp = "X-Firstlook-Timestamp"
	HeaderSignature = "X-Firstlook-Signature"
)

// Schema is the Payload's schema field; a change a receiver must know
// about gets a new one.
const Schema = "firstlook.webhook.v1"

// Defaults applied to the zero values of Config.
const (
	DefaultMaxAttempts  = 5
	DefaultMaxRetryWait = time.Minute
	DefaultTimeout      = 10 * time.Second
	// MaxSkew is how far from a receiver's clock Verify accepts a
	// timestamp.
	MaxSkew = 5 * time.Minute
	// MinSecret is the shortest secret accepted, in bytes.
	MinSecret = 16
)

// Config configures the sink. The signing secret is not part of it: it is
// passed to New, so that printing a Config never shows it.
type Config struct {
	// URL receives the POSTs: https, or http to a loopback address (the
	// payload is the run's evidence summary).
	URL string `yaml:"url"`
	// MaxAttempts bounds the attempts at one publish (DefaultMaxAttempts);
	// after them the job is delivered again later.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxRetryWait is the longest wait honoured within a publish
	// (DefaultMaxRetryWait); a receiver asking for longer gets the job's
	// next delivery instead.
	MaxRetryWait time.Duration `yaml:"max_retry_wait"`
	// Timeout bounds one request (DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
}

// Validate reports a configuration that cannot work; zero values stand for
// the defaults.
func (c Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("url: required: where to POST each run's summary")
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		return errors.New("url: not an http(s) URL with a host")
	case u.Scheme == "http" && !loopback(u.Hostname()):
		return errors.New("url: plain http would send the evidence in the clear; use https (http only to a loopback address)")
	case u.User != nil:
		return errors.New("url: must not carry credentials; the secret signs the requests")
	case c.MaxAttempts < 0 || c.MaxAttempts > 20:
		return fmt.Errorf("max_attempts: %d is not between 1 and 20", c.MaxAttempts)
	case c.MaxRetryWait < 0:
		return fmt.Errorf("max_retry_wait: %s is negative", c.MaxRetryWait)
	case c.Timeout < 0:
		return fmt.Errorf("timeout: %s is negative", c.Timeout)
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

// Payload is the JSON body of every request.
type Payload struct {
	// Schema is "firstlook.webhook.v1".
	Schema string `json:"schema"`
	// Marker identifies the run (the X-Firstlook-Run header): deduplicate
	// on it.
	Marker string `json:"marker"`
	// Text is the run's outcome in one line, for a notification.
	Text string `json:"text"`
	// Markdown is the summary as PagerDuty notes show it.
	Markdown string `json:"markdown"`
	// Link opens the full evidence, when the store gives one.
	Link string `json:"link,omitempty"`
	// Findings are the run's findings, most severe first.
	Findings []Finding `json:"findings,omitempty"`
	// Manifest is the run's manifest: incident, host, playbook, status,
	// times and steps (the output itself is behind Link).
	Manifest evidence.Manifest `json:"manifest"`
	// Fanout, for a playbook run across a group of hosts, lists them.
	Fanout *Fanout `json:"fanout,omitempty"`
}

// Finding is one finding of a run.
type Finding struct {
	Severity string `json:"severity"`
	Message  string `json:"message"`
	Step     string `json:"step"`
}

// Fanout is a group run's hosts and those that stand out.
type Fanout struct {
	Target      string      `json:"target"`
	Hosts       []FanoutRun `json:"hosts"`
	Differences []string    `json:"differences,omitempty"`
}

// FanoutRun is one host's run in a group run.
type FanoutRun struct {
	Host    string          `json:"host"`
	Status  evidence.Status `json:"status"`
	Outcome string          `json:"outcome"`
	Link    string          `json:"link,omitempty"`
}

// NewPayload is rep as the sink sends it.
func NewPayload(rep evidence.Report) Payload {
	m := rep.Bundle.Manifest
	p := Payload{
		Schema: Schema, Marker: rep.Marker, Text: evidence.Text(rep), Markdown: evidence.Markdown(rep),
		Link: rep.Link, Manifest: m,
	}
	for _, f := range evidence.Findings(m) {
		p.Findings = append(p.Findings, Finding{Severity: string(f.Severity), Message: f.Message, Step: f.Step})
	}
	if f := rep.Fanout; f != nil {
		p.Fanout = &Fanout{Target: f.Target}
		for _, r := range f.Runs {
			rm := r.Bundle.Manifest
			p.Fanout.Hosts = append(p.Fanout.Hosts, FanoutRun{Host: rm.Host.Name, Status: rm.Status, Outcome: evidence.Outcome(rm), Link: r.Link})
		}
		for _, d := range f.Differences {
			p.Fanout.Differences = append(p.Fanout.Differences, d.String())
		}
	}
	return p
}

// Sign returns the X-Firstlook-Signature value of body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	fmt.Fprintf(mac, "v1:%d:", ts.Unix())
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a received request's headers against body and secret, as
// a receiver written in Go would: the signature in constant time, the
// timestamp within MaxSkew of now.
func Verify(secret []byte, h http.Header, body []byte, now time.Time) error {
	sec, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: verify: %s: not Unix seconds", HeaderTimestamp)
	}
	ts := time.Unix(sec, 0)
	if d := now.Sub(ts); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("webhook: verify: timestamp %s is %s from now (more than %s: a replay?)", ts.UTC().Format(time.RFC3339), d.Round(time.Second), MaxSkew)
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return errors.New("webhook: verify: signature does not match (another secret, or the body changed)")
	}
	return nil
}

// Publisher posts runs to the webhook. It is safe for concurrent use.
type Publisher struct {
	cfg    Config
	secret []byte
	hc     *http.Client
	policy retry.Policy
	now    func() time.Time
}

var _ evidence.Publisher = (*Publisher)(nil)

// Option configures a Publisher.
type Option func(*options)

type options struct {
	log       *slog.Logger
	transport http.RoundTripper
	sleep     func(context.Context, time.Duration) error
	onRetry   func(attempt int, wait time.Duration, err error)
}

// WithLogger sets where retried attempts are logged (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithOnRetry sets a function told of each request retried inside one
// publish (attempt is 1-based, before the wait): serve counts them in
// firstlook_publish_request_retries_total. It must not block.
func WithOnRetry(f func(attempt int, wait time.Duration, err error)) Option {
	return func(o *options) { o.onRetry = f }
}

// WithTransport sets the transport requests go through (default: a clone
// of http.DefaultTransport).
func WithTransport(rt http.RoundTripper) Option { return func(o *options) { o.transport = rt } }

// New returns a Publisher posting to cfg.URL, signing with secret.
func New(cfg Config, secret string, opts ...Option) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("webhook: secret: want at least %d bytes (openssl rand -hex 32)", MinSecret)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.transport == nil {
		o.transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, DefaultMaxAttempts)
	cfg.MaxRetryWait = cmp.Or(cfg.MaxRetryWait, DefaultMaxRetryWait)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	return &Publisher{
		cfg:    cfg,
		secret: []byte(secret),
		hc: &http.Client{
			Transport: o.transport,
			Timeout:   cfg.Timeout,
			// A redirected POST becomes a GET: say so instead.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		policy: retry.Policy{
			Name: "webhook: post", Initial: time.Second, Max: 30 * time.Second,
			MaxTries: cfg.MaxAttempts, MaxWait: cfg.MaxRetryWait, MaxWaitName: "max_retry_wait",
			HintJitter: time.Second, Log: o.log, OnRetry: o.onRetry, Sleep: o.sleep,
		},
		now: time.Now,
	}, nil
}

// Sink names the publisher in the per-incident state.
func (p *Publisher) Sink() string { return "webhook" }

// Publish posts rep. A webhook cannot be searched, so again changes
// nothing: the receiver deduplicates on X-Firstlook-Run. The state is not
// used.
func (p *Publisher) Publish(ctx context.Context, rep evidence.Report, _ evidence.IncidentState, _ bool) error {
	if rep.Bundle == nil {
		return fmt.Errorf("webhook: publish: %w: report without a bundle", evidence.ErrPermanent)
	}
	body, err := json.Marshal(NewPayload(rep))
	if err != nil {
		return fmt.Errorf("webhook: publish: %w: %w", evidence.ErrPermanent, err)
	}
	var status int
	var header http.Header
	err = retry.Do(ctx, p.policy, func(error) (bool, time.Duration) {
		return classify(status, header, p.now())
	}, func(ctx context.Context) error {
		status, header = 0, nil
		resp, err := p.post(ctx, rep.Marker, body)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		status, header = resp.StatusCode, resp.Header
		if status/100 == 2 {
			return nil
		}
		return &StatusError{Status: status, Body: strings.TrimSpace(string(snippet))}
	})
	switch {
	case err == nil:
		return nil
	case retry.IsPermanent(err):
		return fmt.Errorf("webhook: post %s: %w: %w", p.where(), evidence.ErrPermanent, retry.Last(err))
	}
	return fmt.Errorf("webhook: post %s: %w", p.where(), err)
}

// post sends one signed request. Errors leave the URL out: it may carry a
// token (a Teams workflow's sig=).
func (p *Publisher) post(ctx context.Context, marker string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("build request")
	}
	ts := p.now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "firstlook")
	req.Header.Set(HeaderRun, marker)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(p.secret, ts, body))
	resp, err := p.hc.Do(req)
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return nil, ue.Err
	}
	return resp, err
}

// where is the URL without its query, for errors.
func (p *Publisher) where() string {
	u, _ := url.Parse(p.cfg.URL)
	return u.Scheme + "://" + u.Host + u.Path
}

// StatusError is an answer other than 2xx.
type StatusError struct {
	Status int
	// Body is the start of the answer's body.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("status %d", e.Status)
	}
	return fmt.Sprintf("status %d: %s", e.Status, e.Body)
}

// classify says whether a request that failed with status (0: no answer
// came back) is worth another attempt, and how long the receiver asked to
// wait (Retry-After, seconds or an HTTP date).
func classify(status int, h http.Header, now time.Time) (bool, time.Duration) {
	switch {
	case status == 0, status == http.StatusRequestTimeout:
		return true, 0
	case status == http.StatusTooManyRequests, status >= 500:
		var wait time.Duration
		if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
			if s, err := strconv.Atoi(v); err == nil && s > 0 && s < 1e6 {
				wait = time.Duration(s) * time.Second
			} else if t, err := http.ParseTime(v); err == nil && t.After(now) {
				wait = t.Sub(now)
			}
		}
		return true, wait
	}
	return false, 0
}
