package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// runContract runs the queue's contract over one kind of server. config
// returns a configuration of its own for each call (its own embedded
// directory, or its own stream, consumer and bucket on a shared cluster);
// opening it twice reaches the same jobs and state.
func runContract(t *testing.T, config func(t *testing.T) queue.Config) {
	tests := []struct {
		name string
		run  func(t *testing.T, cfg queue.Config)
	}{
		{"PutThenLease", testPutThenLease},
		{"Duplicate", testDuplicate},
		{"ConcurrentDuplicates", testConcurrentDuplicates},
		{"RedeliveryAfterAckWait", testRedelivery},
		{"InProgressExtendsLease", testInProgress},
		{"MaxDeliver", testMaxDeliver},
		{"Poison", testPoison},
		{"WorkersExclusive", testWorkersExclusive},
		{"StateCAS", testStateCAS},
		{"StateConcurrentCAS", testStateConcurrentCAS},
		{"StateKeys", testStateKeys},
		{"Reopen", testReopen},
		{"DuplicateAfterFinish", testDuplicateAfterFinish},
		{"FinishedElsewhere", testFinishedElsewhere},
		{"DeferIsNotAnAttempt", testDeferIsNotAnAttempt},
		{"Leases", testLeases},
		{"Closed", testClosed},
		{"NextHonoursContext", testNextContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, config(t)) })
	}
}

func open(t *testing.T, cfg queue.Config) *queue.Queue {
	t.Helper()
	q, err := queue.Open(testCtx(t, 2*time.Minute), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = q.Close() })
	return q
}

func put(t *testing.T, q *queue.Queue, id string) {
	t.Helper()
	dup, err := q.Put(testCtx(t, 30*time.Second), trigger(id))
	if err != nil {
		t.Fatalf("Put(%s): %v", id, err)
	}
	if dup {
		t.Fatalf("Put(%s): got duplicate true, want false", id)
	}
}

func next(t *testing.T, q *queue.Queue) *queue.Job {
	t.Helper()
	j, err := q.Next(testCtx(t, 30*time.Second))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return j
}

func ack(t *testing.T, j *queue.Job) {
	t.Helper()
	if err := j.Ack(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("Ack job %d: %v", j.Sequence, err)
	}
}

// expectNoJob asserts that no job is leased within d.
func expectNoJob(t *testing.T, q *queue.Queue, d time.Duration) {
	t.Helper()
	j, err := q.Next(testCtx(t, d))
	if err == nil {
		t.Fatalf("Next: got job %d (%s, delivery %d), want none", j.Sequence, j.Trigger.JobID(), j.Delivery)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next: got error %v, want context.DeadlineExceeded", err)
	}
}

func stats(t *testing.T, q *queue.Queue) queue.Stats {
	t.Helper()
	s, err := q.Stats(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return s
}

// waitStats waits until the counters satisfy ok and returns them, or the
// last ones read after 10 s. A clustered stream removes an acked job after
// the ack has been replicated, a moment after Ack returns.
func waitStats(t *testing.T, q *queue.Queue, ok func(queue.Stats) bool) queue.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := stats(t, q)
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storedIs(n uint64) func(queue.Stats) bool {
	return func(s queue.Stats) bool { return s.Stored == n }
}

func testPutThenLease(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	want := trigger("lease-1")
	put(t, q, "lease-1")
	if got := waitStats(t, q, func(s queue.Stats) bool { return s.Pending == 1 }); got.Stored != 1 || got.Pending != 1 {
		t.Fatalf("Stats after Put: got %+v, want Stored 1, Pending 1", got)
	}
	j := next(t, q)
	if !reflect.DeepEqual(j.Trigger, want) {
		t.Errorf("leased trigger:\ngot  %+v\nwant %+v", j.Trigger, want)
	}
	if j.Delivery != 1 || j.Last() || j.Sequence == 0 || j.Stored.IsZero() {
		t.Errorf("got Delivery %d, Last %v, Sequence %d, Stored %v; want 1, false, >0, set", j.Delivery, j.Last(), j.Sequence, j.Stored)
	}
	if got := stats(t, q); got.InFlight != 1 || got.Pending != 0 {
		t.Errorf("Stats while leased: got %+v, want InFlight 1, Pending 0", got)
	}
	ack(t, j)
	if err := j.Ack(testCtx(t, 5*time.Second)); !errors.Is(err, queue.ErrDone) {
		t.Errorf("second Ack: got %v, want ErrDone", err)
	}
	if got := waitStats(t, q, storedIs(0)); got.Stored != 0 || got.InFlight != 0 {
		t.Errorf("Stats after Ack: got %+v, want nothing stored or in flight", got)
	}
}

func testDuplicate(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	ctx := testCtx(t, time.Minute)
	put(t, q, "dup-1")
	dup, err := q.Put(ctx, trigger("dup-1"))
	if err != nil || !dup {
		t.Fatalf("second Put: got (%v, %v), want (true, nil)", dup, err)
	}
	if got := stats(t, q); got.Stored != 1 {
		t.Fatalf("Stats: got Stored %d, want 1", got.Stored)
	}
	j := next(t, q)
	ack(t, j)
	// PagerDuty retries a delivery it thinks failed minutes later, by which
	// time the job may be done and gone from the work queue: still a
	// duplicate.
	dup, err = q.Put(ctx, trigger("dup-1"))
	if err != nil || !dup {
		t.Fatalf("Put after Ack: got (%v, %v), want (true, nil)", dup, err)
	}
	expectNoJob(t, q, 1500*time.Millisecond)
	// A different delivery of the same incident is a new job.
	other := trigger("dup-1")
	other.DeliveryID = "dup-2"
	if dup, err := q.Put(ctx, other); err != nil || dup {
		t.Fatalf("Put of another delivery: got (%v, %v), want (false, nil)", dup, err)
	}
	if got := next(t, q); got.Trigger.DeliveryID != "dup-2" {
		t.Fatalf("got delivery %s, want dup-2", got.Trigger.DeliveryID)
	}
}

func testConcurrentDuplicates(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	ctx := testCtx(t, time.Minute)
	const n = 16
	var fresh, dups atomic.Int32
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			dup, err := q.Put(ctx, trigger("storm"))
			switch {
			case err != nil:
				t.Errorf("Put: %v", err)
			case dup:
				dups.Add(1)
			default:
				fresh.Add(1)
			}
		})
	}
	wg.Wait()
	if fresh.Load() != 1 || dups.Load() != n-1 {
		t.Fatalf("got %d stored and %d duplicates, want 1 and %d", fresh.Load(), dups.Load(), n-1)
	}
	if got := stats(t, q); got.Stored != 1 {
		t.Fatalf("Stats: got Stored %d, want 1", got.Stored)
	}
}

func testRedelivery(t *testing.T, cfg queue.Config) {
	cfg.AckWait = time.Second
	q := open(t, cfg)
	put(t, q, "crash-1")
	first := next(t, q)
	// The worker "crashes": no ack, no heartbeat.
	second := next(t, q)
	if second.Sequence != first.Sequence || second.Trigger.JobID() != first.Trigger.JobID() {
		t.Fatalf("redelivered job %d (%s), want %d (%s)", second.Sequence, second.Trigger.JobID(), first.Sequence, first.Trigger.JobID())
	}
	if first.Delivery != 1 || second.Delivery != 2 {
		t.Fatalf("got deliveries %d then %d, want 1 then 2", first.Delivery, second.Delivery)
	}
	if got := stats(t, q); got.Redelivered != 1 {
		t.Errorf("Stats: got Redelivered %d, want 1", got.Redelivered)
	}
	ack(t, second)
}

func testInProgress(t *testing.T, cfg queue.Config) {
	cfg.AckWait = 2 * time.Second
	q := open(t, cfg)
	put(t, q, "slow-1")
	j := next(t, q)

	// Heartbeat at AckWait/5 for twice AckWait while another worker waits:
	// without the heartbeats it would get the job after 2 s.
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(400 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if err := j.InProgress(testCtx(t, 5*time.Second)); err != nil {
					t.Errorf("InProgress: %v", err)
				}
			}
		}
	})
	expectNoJob(t, q, 4*time.Second)
	close(done)
	wg.Wait()
	ack(t, j)
	if err := j.InProgress(testCtx(t, 5*time.Second)); !errors.Is(err, queue.ErrDone) {
		t.Errorf("InProgress after Ack: got %v, want ErrDone", err)
	}
	if got := waitStats(t, q, storedIs(0)); got.Stored != 0 {
		t.Errorf("Stats: got Stored %d, want 0", got.Stored)
	}
}

func testMaxDeliver(t *testing.T, cfg queue.Config) {
	cfg.MaxDeliver = 3
	cfg.AckWait = time.Second
	q := open(t, cfg)
	put(t, q, "flaky-1")
	put(t, q, "flaky-2")
	for _, id := range []string{"flaky-1", "flaky-2"} {
		for want := 1; want <= 3; want++ {
			j := next(t, q)
			if j.Trigger.DeliveryID != id || j.Delivery != want || j.Last() != (want == 3) || j.Exhausted() {
				t.Fatalf("got %s: Delivery %d, Last %v, Exhausted %v; want %s: %d, %v, false",
					j.Trigger.DeliveryID, j.Delivery, j.Last(), j.Exhausted(), id, want, want == 3)
			}
			switch {
			case want < 3:
				if err := j.Nak(testCtx(t, 5*time.Second), 0); err != nil {
					t.Fatalf("Nak: %v", err)
				}
			case id == "flaky-1":
				// The last attempt failed too: the runner reports and
				// terms it.
				if err := j.Term(testCtx(t, 5*time.Second)); err != nil {
					t.Fatalf("Term: %v", err)
				}
			default:
				// The worker dies on the last attempt: no ack at all.
			}
		}
	}
	// The job whose last attempt died comes back once more, to be reported.
	j := next(t, q)
	if j.Trigger.DeliveryID != "flaky-2" || j.Delivery != 4 || !j.Exhausted() || !j.Last() {
		t.Fatalf("got %s: Delivery %d, Exhausted %v, Last %v; want flaky-2: 4, true, true",
			j.Trigger.DeliveryID, j.Delivery, j.Exhausted(), j.Last())
	}
	if err := j.Term(testCtx(t, 5*time.Second)); err != nil {
		t.Fatalf("Term: %v", err)
	}
	expectNoJob(t, q, 1500*time.Millisecond)
	if got := waitStats(t, q, storedIs(0)); got.Stored != 0 {
		t.Errorf("Stats after Term: got Stored %d, want 0", got.Stored)
	}
}

func testPoison(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	ctx := testCtx(t, time.Minute)
	for _, data := range []string{"not json", `{"source":"pagerduty"}`, `[1,2]`} {
		if err := queue.PublishRaw(ctx, q, []byte(data)); err != nil {
			t.Fatalf("PublishRaw: %v", err)
		}
	}
	put(t, q, "after-poison")
	for i := range 3 {
		j, err := q.Next(testCtx(t, 30*time.Second))
		var pe *queue.PoisonError
		if !errors.As(err, &pe) || !errors.Is(err, queue.ErrPoison) || pe.Sequence == 0 {
			t.Fatalf("Next #%d: got (%v, %v), want a *PoisonError", i, j, err)
		}
	}
	j := next(t, q)
	if j.Trigger.DeliveryID != "after-poison" {
		t.Fatalf("got %s, want after-poison", j.Trigger.DeliveryID)
	}
	ack(t, j)
	if got := waitStats(t, q, storedIs(0)); got.Stored != 0 {
		t.Errorf("Stats: got Stored %d, want 0 (poison terminated)", got.Stored)
	}
}

func testWorkersExclusive(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	const jobs, workers = 40, 6
	for i := range jobs {
		put(t, q, fmt.Sprintf("w-%02d", i))
	}
	// Every worker holds what it leases until all jobs are out, so a job
	// handed to two workers at once would show up twice.
	ctx := testCtx(t, time.Minute)
	var mu sync.Mutex
	leased := map[uint64]*queue.Job{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				n := len(leased)
				mu.Unlock()
				if n >= jobs {
					return
				}
				j, err := q.Next(testCtx(t, 2*time.Second))
				if errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					t.Errorf("Next: %v", err)
					return
				}
				mu.Lock()
				if prev, ok := leased[j.Sequence]; ok {
					t.Errorf("job %d (%s) leased twice: deliveries %d and %d", j.Sequence, j.Trigger.JobID(), prev.Delivery, j.Delivery)
				}
				leased[j.Sequence] = j
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(leased) != jobs {
		t.Fatalf("got %d jobs leased, want %d", len(leased), jobs)
	}
	for _, j := range leased {
		if err := j.Ack(ctx); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	if got := waitStats(t, q, storedIs(0)); got.Stored != 0 {
		t.Errorf("Stats: got Stored %d, want 0", got.Stored)
	}
}

func testStateCAS(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	s := q.State()
	ctx := testCtx(t, time.Minute)
	key := queue.Key("Q1ABC", "web-1.example.com", "linux baseline")

	if _, _, err := s.Get(ctx, key); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Get of a new key: got %v, want ErrNotFound", err)
	}
	rev1, err := s.Create(ctx, key, []byte("claimed"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.Create(ctx, key, []byte("again")); !errors.Is(err, queue.ErrExists) {
		t.Fatalf("second Create: got %v, want ErrExists", err)
	}
	v, rev, err := s.Get(ctx, key)
	if err != nil || string(v) != "claimed" || rev != rev1 {
		t.Fatalf("Get: got (%q, %d, %v), want (claimed, %d, nil)", v, rev, err, rev1)
	}
	rev2, err := s.Update(ctx, key, []byte("noted"), rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("Update: got (%d, %v), want a revision above %d", rev2, err, rev1)
	}
	if _, err := s.Update(ctx, key, []byte("stale"), rev1); !errors.Is(err, queue.ErrConflict) {
		t.Fatalf("Update with a stale revision: got %v, want ErrConflict", err)
	}
	if err := s.Delete(ctx, key, rev1); !errors.Is(err, queue.ErrConflict) {
		t.Fatalf("Delete with a stale revision: got %v, want ErrConflict", err)
	}
	if v, _, _ := s.Get(ctx, key); string(v) != "noted" {
		t.Fatalf("after failed writes: got %q, want noted", v)
	}
	if err := s.Delete(ctx, key, rev2); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, _, err := s.Get(ctx, key); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Get after Delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, key, []byte("zombie"), rev2); !errors.Is(err, queue.ErrConflict) {
		t.Fatalf("Update after Delete: got %v, want ErrConflict", err)
	}
	if _, err := s.Create(ctx, key, []byte("reclaimed")); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	if err := s.Delete(ctx, key, 0); err != nil {
		t.Fatalf("unconditional Delete: %v", err)
	}
	if _, err := s.Create(ctx, "bad key", nil); err == nil {
		t.Fatalf("Create with an invalid key: got nil error")
	}
}

func testStateConcurrentCAS(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	s := q.State()
	ctx := testCtx(t, 2*time.Minute)
	key := queue.Key("counter")
	if _, err := s.Create(ctx, key, []byte("0")); err != nil {
		t.Fatalf("Create: %v", err)
	}
	// Read-modify-write from several workers: CAS must lose no increment.
	const workers, each = 6, 10
	var conflicts atomic.Int32
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				for {
					v, rev, err := s.Get(ctx, key)
					if err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					var n int
					_ = json.Unmarshal(v, &n)
					_, err = s.Update(ctx, key, fmt.Appendf(nil, "%d", n+1), rev)
					if errors.Is(err, queue.ErrConflict) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						t.Errorf("Update: %v", err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	v, _, err := s.Get(ctx, key)
	if err != nil || string(v) != fmt.Sprint(workers*each) {
		t.Fatalf("counter: got (%q, %v), want %d (%d conflicts retried)", v, err, workers*each, conflicts.Load())
	}
}

func testReopen(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	ctx := testCtx(t, time.Minute)
	for i := range 3 {
		put(t, q, fmt.Sprintf("keep-%d", i))
	}
	key := queue.Key("Q1KEEP", "slack")
	rev, err := q.State().Create(ctx, key, []byte("C0123"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	// A leased, unacked job survives too.
	leased := next(t, q)
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	cfg.AckWait = time.Second // the reopened consumer takes the new lease
	q = open(t, cfg)
	// The duplicate window covers the stored jobs across the restart.
	if dup, err := q.Put(ctx, trigger("keep-0")); err != nil || !dup {
		t.Errorf("Put of a stored job after reopen: got (%v, %v), want (true, nil)", dup, err)
	}
	got := map[string]int{}
	for range 3 {
		j := next(t, q)
		got[j.Trigger.DeliveryID] = j.Delivery
		ack(t, j)
	}
	want := map[string]int{"keep-0": 1, "keep-1": 1, "keep-2": 1}
	want[leased.Trigger.DeliveryID] = 2
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after reopen got jobs %v, want %v", got, want)
	}
	v, r, err := q.State().Get(ctx, key)
	if err != nil || string(v) != "C0123" || r != rev {
		t.Errorf("after reopen Get: got (%q, %d, %v), want (C0123, %d, nil)", v, r, err, rev)
	}
}

func testClosed(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	put(t, q, "before-close")
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := q.Put(testCtx(t, 5*time.Second), trigger("after-close")); err == nil {
		t.Errorf("Put after Close: got nil error")
	}
	if _, err := q.Next(testCtx(t, 5*time.Second)); !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Next after Close: got %v, want ErrClosed", err)
	}
}

func testNextContext(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := q.Next(ctx)
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Next: got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after its context was cancelled")
	}

	// Close stops a waiting Next too.
	go func() {
		_, err := q.Next(context.Background())
		errc <- err
	}()
	time.Sleep(200 * time.Millisecond)
	_ = q.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("Next: got %v, want ErrClosed", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Next did not return after Close")
	}
}

func testStateKeys(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	s := q.State()
	ctx := testCtx(t, time.Minute)
	for _, k := range []string{
		queue.Key("run", "pagerduty", "Q1", "web-1", "disk"),
		queue.Key("run", "pagerduty", "Q2", "web-2", "disk"),
		queue.Key("run", "slack", "run-1", "web-1", "disk", "trigger.1"),
		queue.Key("incident", "pagerduty", "Q1", "slack_channel"),
	} {
		if _, err := s.Create(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	gone := queue.Key("run", "pagerduty", "Q3", "web-1", "disk")
	if _, err := s.Create(ctx, gone, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, gone, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		filters []string
		want    int
	}{
		{[]string{"run.>"}, 3},
		{[]string{"run.*.*." + queue.Key("web-1") + ".*", "run.*.*." + queue.Key("web-1") + ".*.*"}, 2},
		{[]string{"incident.*.*.slack_channel"}, 1},
		{[]string{"nothing.>"}, 0},
	}
	for _, tt := range tests {
		got, err := s.Keys(ctx, tt.filters...)
		if err != nil {
			t.Fatalf("Keys %v: %v", tt.filters, err)
		}
		if len(got) != tt.want {
			t.Errorf("Keys %v: got %v, want %d keys", tt.filters, got, tt.want)
		}
	}
}
