package retry_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/retry"
)

// sleeps records the waits a loop asks for without spending them.
type sleeps struct {
	mu   sync.Mutex
	d    []time.Duration
	then func()
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	then := s.then
	s.mu.Unlock()
	if then != nil {
		then()
	}
	return ctx.Err()
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

var errBusy = errors.New("busy")

// failing fails its first n calls with err.
func failing(n int, err error) (op func(context.Context) error, calls *int) {
	calls = new(int)
	return func(context.Context) error {
		*calls++
		if *calls <= n {
			return err
		}
		return nil
	}, calls
}

// TestWait is the PagerDuty publisher's schedule (moved here from
// evidence/pagerduty with the loop): doubling from Initial, capped by Max,
// half of it random; a server's hint with up to HintJitter added.
func TestWait(t *testing.T) {
	p := retry.Policy{Initial: time.Second, Max: 10 * time.Second, HintJitter: time.Second}
	tests := []struct {
		n        int
		hint     time.Duration
		min, max time.Duration
	}{
		{1, 0, 500 * time.Millisecond, time.Second},
		{2, 0, time.Second, 2 * time.Second},
		{3, 0, 2 * time.Second, 4 * time.Second},
		{4, 0, 4 * time.Second, 8 * time.Second},
		{5, 0, 5 * time.Second, 10 * time.Second},
		{60, 0, 5 * time.Second, 10 * time.Second},
		{1, 7 * time.Second, 7 * time.Second, 8 * time.Second},
	}
	for _, tt := range tests {
		for range 200 {
			if got := p.Wait(tt.n, tt.hint); got < tt.min || got > tt.max {
				t.Fatalf("Wait(%d, %s) = %s, want within [%s, %s]", tt.n, tt.hint, got, tt.min, tt.max)
			}
		}
	}
}

// TestBackoff is the Slack publisher's schedule (moved here from
// evidence/slack with the loop): 1s, 2s, 4s… capped at 30s, each jittered
// down by up to half; its Retry-After waits are exact.
func TestBackoff(t *testing.T) {
	p := retry.Policy{Initial: time.Second, Max: 30 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		for range 50 {
			if d := p.Wait(attempt, 0); d < want/2 || d > want {
				t.Errorf("Wait(%d) = %s, want between %s and %s", attempt, d, want/2, want)
			}
		}
	}
	if d := p.Wait(1, 7*time.Second); d != 7*time.Second {
		t.Errorf("Wait with a hint and no HintJitter = %s, want 7s", d)
	}
}

func TestDo(t *testing.T) {
	hint := func(d time.Duration) retry.Decide {
		return func(error) (bool, time.Duration) { return true, d }
	}
	never := func(error) (bool, time.Duration) { return false, 0 }
	tests := []struct {
		name      string
		policy    retry.Policy
		decide    retry.Decide
		fails     int
		wantCalls int
		wantWaits int
		wantErr   string // "" for success
		reason    retry.Reason
	}{
		{"first try", retry.Policy{MaxTries: 3}, retry.Always, 0, 1, 0, "", 0},
		{"after retries", retry.Policy{Initial: time.Second, Max: time.Minute, MaxTries: 5}, retry.Always, 2, 3, 2, "", 0},
		{"permanent: no retry", retry.Policy{MaxTries: 5}, never, 9, 1, 0, "busy", retry.Permanent},
		{"tries capped", retry.Policy{Initial: time.Second, Max: time.Minute, MaxTries: 3}, retry.Always, 9, 3, 2, "3 attempts: busy", retry.Exhausted},
		{"hint beyond max wait", retry.Policy{MaxTries: 5, MaxWait: time.Minute, MaxWaitName: "max_wait"}, hint(2 * time.Minute), 9, 1, 0, "longer than max_wait 1m0s: busy", retry.TooLong},
		{"hint within max wait", retry.Policy{MaxTries: 5, MaxWait: time.Minute}, hint(7 * time.Second), 1, 2, 1, "", 0},
		{"unbounded tries", retry.Policy{Initial: time.Millisecond, Max: time.Second}, retry.Always, 40, 41, 40, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sl := &sleeps{}
			tt.policy.Sleep = sl.sleep
			op, calls := failing(tt.fails, errBusy)
			err := retry.Do(context.Background(), tt.policy, tt.decide, op)
			if *calls != tt.wantCalls {
				t.Errorf("got %d calls, want %d", *calls, tt.wantCalls)
			}
			if got := len(sl.got()); got != tt.wantWaits {
				t.Errorf("got %d waits %v, want %d", got, sl.got(), tt.wantWaits)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, errBusy) {
				t.Errorf("got %v, want it to wrap the last error", err)
			}
			if e, ok := errors.AsType[*retry.Error](err); !ok || e.Reason != tt.reason || e.Attempts != tt.wantCalls {
				t.Errorf("got %#v, want reason %d after %d attempts", err, tt.reason, tt.wantCalls)
			}
			if got := retry.IsPermanent(err); got != (tt.reason == retry.Permanent) {
				t.Errorf("IsPermanent = %v", got)
			}
		})
	}
}

func TestDoHintWaits(t *testing.T) {
	sl := &sleeps{}
	p := retry.Policy{Initial: time.Second, Max: time.Minute, MaxTries: 5, Sleep: sl.sleep}
	n := 0
	decide := func(error) (bool, time.Duration) {
		n++
		if n == 1 {
			return true, 7 * time.Second
		}
		return true, 0
	}
	op, _ := failing(2, errBusy)
	if err := retry.Do(context.Background(), p, decide, op); err != nil {
		t.Fatal(err)
	}
	got := sl.got()
	// The server's 7s, then the second failure's backoff: 2s, half random.
	if len(got) != 2 || got[0] != 7*time.Second || got[1] < time.Second || got[1] > 2*time.Second {
		t.Errorf("got waits %v, want [7s, 1s..2s]", got)
	}
}

func TestDoContext(t *testing.T) {
	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sl := &sleeps{then: cancel}
		op, calls := failing(9, errBusy)
		err := retry.Do(ctx, retry.Policy{Initial: time.Second, Max: time.Minute, Sleep: sl.sleep}, retry.Always, op)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBusy) || *calls != 1 {
			t.Errorf("got %v after %d calls, want context.Canceled and the last error after 1", err, *calls)
		}
	})
	t.Run("cancelled on a real timer", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := retry.Do(ctx, retry.Policy{Initial: time.Hour, Max: time.Hour}, retry.Always, func(context.Context) error {
			calls++
			time.AfterFunc(10*time.Millisecond, cancel)
			return errBusy
		})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBusy) || calls != 1 {
			t.Errorf("got %v after %d calls, want context.Canceled and the last error after 1", err, calls)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		op, calls := failing(0, nil)
		if err := retry.Do(ctx, retry.Policy{}, retry.Always, op); !errors.Is(err, context.Canceled) || *calls != 0 {
			t.Errorf("got %v after %d calls, want context.Canceled and no call", err, *calls)
		}
	})
	t.Run("deadline before the next attempt", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		sl := &sleeps{}
		op, calls := failing(9, errBusy)
		err := retry.Do(ctx, retry.Policy{Initial: 2 * time.Hour, Max: 2 * time.Hour, Sleep: sl.sleep}, retry.Always, op)
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errBusy) || *calls != 1 || len(sl.got()) != 0 {
			t.Errorf("got %v after %d calls and waits %v, want DeadlineExceeded at once", err, *calls, sl.got())
		}
	})
}

// TestDoLogs: one line per retried attempt, with the wait as a duration,
// and one on success after retries; nothing for a first-try success.
func TestDoLogs(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	p := retry.Policy{Name: "thing", Initial: time.Second, Max: time.Second, Log: log, Sleep: (&sleeps{}).sleep}
	op, _ := failing(2, errBusy)
	if err := retry.Do(context.Background(), p, retry.Always, op); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if got := strings.Count(out, "thing: failed; retrying"); got != 2 {
		t.Errorf("got %d retry lines, want 2:\n%s", got, out)
	}
	if got := strings.Count(out, "thing: succeeded after retries"); got != 1 || !strings.Contains(out, "attempts=3") {
		t.Errorf("got %d success lines, want 1 with attempts=3:\n%s", got, out)
	}
	if strings.Count(out, "wait=") != 2 || strings.Contains(out, "wait=0") {
		t.Errorf("retry lines lack the wait:\n%s", out)
	}
	buf.Reset()
	op, _ = failing(0, nil)
	if err := retry.Do(context.Background(), p, retry.Always, op); err != nil || buf.Len() != 0 {
		t.Errorf("first-try success: got %v and log %q, want nil and nothing", err, buf.String())
	}
	buf.Reset()
	p.LogEvery = time.Hour
	op, _ = failing(5, errBusy)
	if err := retry.Do(context.Background(), p, retry.Always, op); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "failed; retrying"); got != 1 {
		t.Errorf("LogEvery: got %d retry lines, want 1:\n%s", got, buf.String())
	}
}

// TestDoOnRetry: the observer sees each retried attempt, with its wait and
// error, and not the last failure of a loop that gives up.
func TestDoOnRetry(t *testing.T) {
	type seen struct {
		attempt int
		wait    time.Duration
		err     error
	}
	var got []seen
	observe := func(attempt int, wait time.Duration, err error) { got = append(got, seen{attempt, wait, err}) }

	sl := &sleeps{}
	p := retry.Policy{Initial: time.Second, Max: time.Minute, MaxTries: 5, OnRetry: observe, Sleep: sl.sleep}
	n := 0
	decide := func(error) (bool, time.Duration) {
		n++
		if n == 1 {
			return true, 7 * time.Second
		}
		return true, 0
	}
	op, _ := failing(2, errBusy)
	if err := retry.Do(context.Background(), p, decide, op); err != nil {
		t.Fatal(err)
	}
	waits := sl.got()
	if len(got) != 2 || len(waits) != 2 ||
		got[0] != (seen{1, 7 * time.Second, errBusy}) || got[1] != (seen{2, waits[1], errBusy}) {
		t.Errorf("succeeding after 2 failures: observer saw %v (waits %v), want attempts 1 (7s) and 2, both busy", got, waits)
	}

	got = nil
	p.MaxTries = 3
	op, calls := failing(10, errBusy)
	if err := retry.Do(context.Background(), p, retry.Always, op); err == nil || *calls != 3 {
		t.Fatalf("got %v after %d calls, want the tries exhausted after 3", err, *calls)
	}
	if len(got) != 2 || got[0].attempt != 1 || got[1].attempt != 2 {
		t.Errorf("giving up after 3: observer saw %v, want attempts 1 and 2", got)
	}

	got = nil
	op, _ = failing(10, errBusy)
	never := func(error) (bool, time.Duration) { return false, 0 }
	if err := retry.Do(context.Background(), p, never, op); !retry.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent failure", err)
	}
	if len(got) != 0 {
		t.Errorf("a permanent failure: observer saw %v, want nothing", got)
	}
}
