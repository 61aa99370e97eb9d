// Package retry is firstlook's one retry loop: every part that tries an
// operation again (the PagerDuty and Slack publishers, the spool's uploads,
// the queue's JetStream calls, the runner's lease, the SSH channel open)
// calls Do with a Policy saying how long to wait and when to stop, and a
// Decide saying whether a failure is worth another attempt. Deciding is
// the caller's: it knows its protocol (a 429, a JetStream leader election,
// sshd refusing a channel); the loop only waits, as Alertmanager separates
// notify.Retrier from its retry stage.
//
// The loop is github.com/cenkalti/backoff/v5's Retry: bounded by ctx and
// by Policy.MaxTries or Policy.MaxElapsed, a permanent failure ending it
// through backoff.Permanent. The waits are firstlook's own BackOff:
// exponential from Policy.Initial, capped by Policy.Max, with "equal
// jitter" (each wait drawn from its upper half, so that workers that
// failed together do not retry together, yet none hammers), or what the
// server asked for (Retry-After, ratelimit-reset), which Decide returns.
// backoff.RetryAfter is not used for those: it takes whole seconds
// (PagerDuty's ratelimit-reset has fractions), resets the backoff, and
// stands in for the operation's error when the tries run out.
//
// Do logs at its boundary only, and only with Policy.Log set: one line per
// retried attempt at most (fewer with Policy.LogEvery), and one when the
// operation succeeds after retries. Policy.OnRetry sees every retried
// attempt, for counting.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Decide says whether another attempt after err may succeed, and how long
// the other side asked to wait first (0: it did not say, the Policy's
// backoff applies). It is called for every failed attempt, never with nil.
type Decide func(err error) (retry bool, wait time.Duration)

// Always retries every error after the Policy's backoff: for loops that
// only ctx ends.
func Always(error) (bool, time.Duration) { return true, 0 }

// Policy is how one loop waits and when it stops.
type Policy struct {
	// Name says what is retried, in log lines ("spool: upload").
	Name string
	// Initial is the wait after the first failure; it doubles with each
	// failure.
	Initial time.Duration
	// Max caps a backoff wait.
	Max time.Duration
	// MaxTries caps the attempts; 0 leaves the loop to ctx and MaxElapsed.
	MaxTries int
	// MaxElapsed stops the loop when the next attempt would start later
	// than this after the first; 0 leaves it to ctx and MaxTries.
	MaxElapsed time.Duration
	// MaxWait is the longest wait the loop accepts, asked for by the
	// server or computed: a longer one ends the loop with an error that
	// says so, leaving the retry to whoever retries later (the queue's
	// redelivery). 0: no limit.
	MaxWait time.Duration
	// MaxWaitName names MaxWait in that error ("max_wait"), so an
	// operator knows which setting to change.
	MaxWaitName string
	// HintJitter is the most added at random to a wait the server asked
	// for, so that clients throttled together do not all return at the
	// moment the limit resets.
	HintJitter time.Duration
	// Log receives the loop's lines; nil logs nothing.
	Log *slog.Logger
	// LogEvery spaces the retry lines: at most one per LogEvery, counting
	// the ones left out (0: one per retried attempt).
	LogEvery time.Duration
	// OnRetry, when set, is told of each failed attempt that will be
	// retried (attempt is 1-based), before the wait: metrics count
	// retries with it. It is called on Do's goroutine and must not block.
	OnRetry func(attempt int, wait time.Duration, err error)
	// Sleep waits between attempts instead of a timer; tests set it to see
	// the waits without spending them. It returns ctx's error when ctx
	// ends first.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Wait is the wait after failed attempt n (1-based): hint plus up to
// HintJitter when the server asked for one, else the exponential backoff
// from Initial, capped at Max, drawn from its upper half.
func (p Policy) Wait(n int, hint time.Duration) time.Duration {
	if hint > 0 {
		if p.HintJitter > 0 {
			return hint + rand.N(p.HintJitter)
		}
		return hint
	}
	d := p.Max
	if n >= 1 && n < 32 {
		d = min(p.Initial<<(n-1), p.Max)
	}
	if d <= 0 {
		d = p.Max
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Reason is why Do gave up.
type Reason int

// Reasons Do gives up for.
const (
	// Permanent: Decide said another attempt cannot help.
	Permanent Reason = iota + 1
	// Exhausted: MaxTries attempts, or MaxElapsed, are spent.
	Exhausted
	// TooLong: the next wait is longer than MaxWait.
	TooLong
	// Deadline: ctx's deadline comes before the next attempt would.
	Deadline
	// Done: ctx ended.
	Done
)

// Error is Do's failure: why it stopped, after how many attempts, and the
// last attempt's error, which it wraps (and ctx's error, for Deadline and
// Done).
type Error struct {
	Reason   Reason
	Attempts int
	// Wait is the wait that was too long (TooLong, Deadline).
	Wait time.Duration
	// Err is the last attempt's error.
	Err error

	policy Policy
	ctxErr error
}

func (e *Error) Error() string {
	switch e.Reason {
	case Exhausted:
		return fmt.Sprintf("%d attempts: %v", e.Attempts, e.Err)
	case TooLong:
		name := e.policy.MaxWaitName
		if name == "" {
			name = "the longest wait"
		}
		return fmt.Sprintf("server asks to wait %s, longer than %s %s: %v", e.Wait, name, e.policy.MaxWait, e.Err)
	case Deadline:
		return fmt.Sprintf("%v before the next attempt in %s: %v", context.DeadlineExceeded, e.Wait.Round(time.Millisecond), e.Err)
	case Done:
		return fmt.Sprintf("%v: %v", e.ctxErr, e.Err)
	}
	return e.Err.Error()
}

// Unwrap returns the last attempt's error, and ctx's for Deadline and Done.
func (e *Error) Unwrap() []error {
	switch e.Reason {
	case Deadline:
		return []error{context.DeadlineExceeded, e.Err}
	case Done:
		return []error{e.ctxErr, e.Err}
	}
	return []error{e.Err}
}

// Last returns the last attempt's error when err is Do's, else err.
func Last(err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Err
	}
	return err
}

// IsPermanent reports whether Do stopped because Decide said so.
func IsPermanent(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Reason == Permanent
}

// Do calls op until it succeeds or the loop stops: Decide says no, the
// tries or the time run out, a wait is too long, or ctx ends. It returns
// nil or an *Error wrapping op's last error. op gets ctx.
func Do(ctx context.Context, p Policy, decide Decide, op func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := &loop{ctx: ctx, p: p, start: time.Now()}
	opts := []backoff.RetryOption{
		backoff.WithBackOff(l),
		backoff.WithMaxElapsedTime(p.MaxElapsed),
		backoff.WithNotify(l.notify),
	}
	if p.MaxTries > 0 {
		opts = append(opts, backoff.WithMaxTries(uint(p.MaxTries)))
	}
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		if l.tries > 0 && p.Sleep != nil {
			if serr := p.Sleep(ctx, l.wait); serr != nil {
				l.stop = &Error{Reason: Done, ctxErr: serr}
				return struct{}{}, backoff.Permanent(l.last)
			}
		}
		l.tries++
		err := op(ctx)
		l.last = err
		if err == nil {
			return struct{}{}, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			l.stop = &Error{Reason: Done, ctxErr: cerr}
			return struct{}{}, backoff.Permanent(err)
		}
		retry, hint := decide(err)
		if !retry {
			l.stop = &Error{Reason: Permanent}
			return struct{}{}, backoff.Permanent(err)
		}
		l.hint = hint
		return struct{}{}, err
	}, opts...)
	if err == nil {
		if l.tries > 1 && p.Log != nil {
			p.Log.Info(p.Name+": succeeded after retries", "attempts", l.tries, "took", time.Since(l.start).Round(time.Millisecond))
		}
		return nil
	}
	e := l.stop
	switch {
	case e != nil:
	case l.last == nil || ctx.Err() != nil:
		// backoff.Retry gave up waiting: ctx ended.
		e = &Error{Reason: Done, ctxErr: context.Cause(ctx)}
		if l.last == nil {
			return context.Cause(ctx)
		}
	default:
		// The tries or the time ran out.
		e = &Error{Reason: Exhausted}
	}
	e.Attempts, e.Err, e.policy = l.tries, l.last, p
	return e
}

// loop is one Do's state, and its backoff.BackOff.
type loop struct {
	ctx   context.Context
	p     Policy
	start time.Time
	tries int
	last  error
	hint  time.Duration
	wait  time.Duration
	stop  *Error

	logged     time.Time
	suppressed int
}

// Reset is called once, as the loop starts.
func (l *loop) Reset() {}

// NextBackOff is the wait after the failed attempt l.tries, or
// backoff.Stop when that wait is longer than the Policy or ctx allow.
func (l *loop) NextBackOff() time.Duration {
	if l.p.MaxWait > 0 && l.hint > l.p.MaxWait {
		l.stop = &Error{Reason: TooLong, Wait: l.hint}
		return backoff.Stop
	}
	l.wait = l.p.Wait(l.tries, l.hint)
	if l.p.MaxWait > 0 && l.wait > l.p.MaxWait {
		l.stop = &Error{Reason: TooLong, Wait: l.wait}
		return backoff.Stop
	}
	if dl, ok := l.ctx.Deadline(); ok && time.Until(dl) < l.wait {
		l.stop = &Error{Reason: Deadline, Wait: l.wait}
		return backoff.Stop
	}
	if l.p.Sleep != nil {
		// The next attempt sleeps first (see Do).
		return 0
	}
	return l.wait
}

// notify reports a retried attempt to OnRetry, and logs it, at most once
// per LogEvery.
func (l *loop) notify(err error, _ time.Duration) {
	if l.p.OnRetry != nil {
		l.p.OnRetry(l.tries, l.wait, err)
	}
	if l.p.Log == nil {
		return
	}
	now := time.Now()
	if l.p.LogEvery > 0 && !l.logged.IsZero() && now.Sub(l.logged) < l.p.LogEvery {
		l.suppressed++
		return
	}
	args := []any{"attempt", l.tries, "wait", l.wait.Round(time.Millisecond), "err", err}
	if l.suppressed > 0 {
		args = append(args, "not_logged", l.suppressed)
	}
	l.p.Log.Warn(l.p.Name+": failed; retrying", args...)
	l.logged, l.suppressed = now, 0
}
