package pagerduty

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
)

// classify says whether a request that failed with status (0: no answer
// came back) is worth another attempt, and how long the server asked to
// wait first (0: it did not say; the loop's backoff applies).
//
// PagerDuty answers 429 when a key is over its rate limit and says in
// ratelimit-reset how many seconds until it resets
// (https://support.pagerduty.com/main/docs/rest-api-rate-limits); 5xx are
// its own trouble. Every other 4xx is the request's fault ("retrying with
// the same arguments will not work", the REST spec's ArgumentError).
func classify(status int, h http.Header) (retry bool, wait time.Duration) {
	switch {
	case status == 0:
		// No answer: refused, reset, timed out. Transient as far as we
		// can tell.
		return true, 0
	case status == http.StatusTooManyRequests, status >= 500:
		return true, serverWait(h, time.Now())
	case status == http.StatusRequestTimeout:
		return true, 0
	case status >= 200 && status < 300:
		// The request went through but its answer could not be read.
		return true, 0
	}
	return false, 0
}

// serverWait is how long the response's headers ask a client to wait:
// PagerDuty's ratelimit-reset (seconds), or the standard Retry-After
// (seconds or an HTTP date, RFC 9110 §10.2.3), the longer if both.
func serverWait(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if s, err := strconv.ParseFloat(strings.TrimSpace(h.Get("Ratelimit-Reset")), 64); err == nil && s > 0 && s < 1e6 {
		d = time.Duration(s * float64(time.Second))
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.Atoi(v); err == nil {
			if s > 0 && s < 1e6 {
				d = max(d, time.Duration(s)*time.Second)
			}
		} else if t, err := http.ParseTime(v); err == nil {
			d = max(d, t.Sub(now))
		}
	}
	return d
}

// retry runs op until it succeeds, fails for good, or the attempts, an
// acceptable wait or ctx run out. classify decides; the shared loop
// (evidence/retry) only waits.
func (p *Publisher) retry(ctx context.Context, op func(context.Context) error) error {
	var ex *exchange
	err := retry.Do(ctx, p.policy, func(error) (bool, time.Duration) {
		return classify(ex.status, ex.header)
	}, func(ctx context.Context) error {
		ex = &exchange{}
		return op(context.WithValue(ctx, exchangeKey{}, ex))
	})
	if retry.IsPermanent(err) {
		return fmt.Errorf("%w: %w", evidence.ErrPermanent, retry.Last(err))
	}
	return err
}

// exchange is what an attempt's last response said, beyond what
// go-pagerduty's errors carry.
type exchange struct {
	status int
	header http.Header
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		return ex
	}
	return &exchange{}
}

// recorder notes each response's status and headers in the exchange of
// the request's context. go-pagerduty builds every request with the
// caller's context, so each attempt sees its own response even when
// several publishes share the client.
type recorder struct{ next http.RoundTripper }

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if ex, ok := req.Context().Value(exchangeKey{}).(*exchange); ok && resp != nil {
		ex.status, ex.header = resp.StatusCode, resp.Header
	}
	return resp, err
}
