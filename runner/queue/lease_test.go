package queue_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// testDuplicateAfterFinish: a delivery whose job finished (acked, or
// terminated) is still a duplicate after the queue restarts, and makes no
// job; one still queued is too.
func testDuplicateAfterFinish(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	put(t, q, "done-1")
	put(t, q, "termed-1")
	put(t, q, "queued-1")
	for range 2 {
		j := next(t, q)
		switch j.Trigger.DeliveryID {
		case "done-1":
			ack(t, j)
		case "termed-1":
			if err := j.Term(testCtx(t, 10*time.Second)); err != nil {
				t.Fatalf("Term: %v", err)
			}
		default:
			t.Fatalf("got %s, want the jobs in order", j.Trigger.DeliveryID)
		}
	}
	if got := waitStats(t, q, storedIs(1)); got.Stored != 1 {
		t.Fatalf("Stats: got Stored %d, want 1", got.Stored)
	}
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	q = open(t, cfg)
	for _, id := range []string{"done-1", "termed-1", "queued-1"} {
		if dup, err := q.Put(testCtx(t, 30*time.Second), trigger(id)); err != nil || !dup {
			t.Errorf("Put(%s) after a restart: got (%v, %v), want (true, nil)", id, dup, err)
		}
	}
	if got := stats(t, q); got.Stored != 1 {
		t.Errorf("Stats after re-sends: got Stored %d, want 1 (no new job)", got.Stored)
	}
	// A new delivery id still makes a job.
	put(t, q, "done-2")
}

// testDeferIsNotAnAttempt: a job handed back with Defer comes back, as
// often as needed, without nearing its delivery limit.
func testDeferIsNotAnAttempt(t *testing.T, cfg queue.Config) {
	cfg.MaxDeliver = 2
	q := open(t, cfg)
	put(t, q, "busy-1")
	for i := range 4 {
		j := next(t, q)
		if j.Delivery != i+1 || j.Deferred != i || j.Attempt() != 1 || j.Last() || j.Exhausted() {
			t.Fatalf("delivery %d: got Delivery %d, Deferred %d, Attempt %d, Last %v, Exhausted %v; want %d, %d, 1, false, false",
				i+1, j.Delivery, j.Deferred, j.Attempt(), j.Last(), j.Exhausted(), i+1, i)
		}
		if err := j.Defer(testCtx(t, 10*time.Second), 50*time.Millisecond); err != nil {
			t.Fatalf("Defer: %v", err)
		}
	}
	// Failed attempts still count.
	j := next(t, q)
	if err := j.Nak(testCtx(t, 10*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	j = next(t, q)
	if j.Attempt() != 2 || !j.Last() || j.Exhausted() {
		t.Fatalf("got Attempt %d, Last %v, Exhausted %v; want 2, true, false", j.Attempt(), j.Last(), j.Exhausted())
	}
	if err := j.Nak(testCtx(t, 10*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if j = next(t, q); !j.Exhausted() {
		t.Fatalf("got Attempt %d, Exhausted false; want exhausted", j.Attempt())
	}
	ack(t, j)
}

// testLeases: a lease is exclusive, is kept alive past its TTL while held,
// expires within about the TTL once its holder stops renewing (as a killed
// process does), and is free again once released.
func testLeases(t *testing.T, cfg queue.Config) {
	cfg.LeaseTTL = 3 * time.Second
	q := open(t, cfg)
	ctx := testCtx(t, time.Minute)
	l := q.Leases()
	a, err := l.Acquire(ctx, "lock.web-1.disk", "job-a")
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if _, err := l.Acquire(ctx, "lock.web-1.disk", "job-b"); !errors.Is(err, queue.ErrHeld) || !strings.Contains(err.Error(), "job-a") {
		t.Fatalf("second Acquire: got %v, want ErrHeld naming job-a", err)
	}
	// Held two TTLs: renewed, still exclusive.
	time.Sleep(2 * cfg.LeaseTTL)
	if _, err := l.Acquire(ctx, "lock.web-1.disk", "job-b"); !errors.Is(err, queue.ErrHeld) {
		t.Fatalf("Acquire after 2 TTLs of a held lease: got %v, want ErrHeld", err)
	}
	select {
	case <-a.Lost():
		t.Fatal("a renewed lease was lost")
	default:
	}
	if err := a.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	b, err := l.Acquire(ctx, "lock.web-1.disk", "job-b")
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}

	// A holder that dies: the entry is simply no longer renewed.
	dead, err := l.Acquire(ctx, "lock.web-2.disk", "dead")
	if err != nil {
		t.Fatal(err)
	}
	queue.Abandon(dead)
	_ = b.Release(ctx)
	start := time.Now()
	for {
		c, err := l.Acquire(ctx, "lock.web-2.disk", "job-c")
		if err == nil {
			_ = c.Release(ctx)
			break
		}
		if !errors.Is(err, queue.ErrHeld) {
			t.Fatalf("Acquire: %v", err)
		}
		if time.Since(start) > 10*cfg.LeaseTTL {
			t.Fatalf("a dead holder's lease still held after %s (TTL %s)", time.Since(start), cfg.LeaseTTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a dead holder's lease expired after %s (TTL %s)", time.Since(start).Round(100*time.Millisecond), cfg.LeaseTTL)
}

// testFinishedElsewhere: a job another node finished, recorded only in the
// deliveries bucket (that node's server restarted, so no stream remembers
// the id), reaches this node's in-memory mirror through its watch, and a
// re-sent delivery of it is a duplicate without any bucket read.
func testFinishedElsewhere(t *testing.T, cfg queue.Config) {
	q := open(t, cfg)
	ctx := testCtx(t, time.Minute)
	id := trigger("elsewhere-1").JobID()
	waitFor(t, "the mirror of finished deliveries to replay the bucket", func() bool { return queue.MirrorReady(q) })
	if done, err := queue.Finished(ctx, q, id); err != nil || done {
		t.Fatalf("Finished before any node finished it: got (%v, %v), want (false, nil)", done, err)
	}
	if err := queue.RecordFinished(ctx, q, id); err != nil {
		t.Fatalf("RecordFinished: %v", err)
	}
	// Finished is asked without Put: a Put answered "not a duplicate"
	// would store the job and make the stream's own de-duplication answer
	// for the mirror from then on.
	waitFor(t, "the mirror to learn the other node's finished job", func() bool {
		done, err := queue.Finished(ctx, q, id)
		return err == nil && done && queue.MirrorReady(q)
	})
	if dup, err := q.Put(ctx, trigger("elsewhere-1")); err != nil || !dup {
		t.Errorf("Put of a job finished on another node: got (%v, %v), want (true, nil)", dup, err)
	}
	if got := stats(t, q); got.Stored != 0 {
		t.Errorf("Stats: got Stored %d, want 0 (no job for the re-send)", got.Stored)
	}

	// A reopened queue replays what the bucket holds.
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	q = open(t, cfg)
	waitFor(t, "the reopened mirror to replay the bucket", func() bool { return queue.MirrorReady(q) })
	if done, err := queue.Finished(ctx, q, id); err != nil || !done {
		t.Errorf("Finished after reopen: got (%v, %v), want (true, nil)", done, err)
	}
	if done, err := queue.Finished(ctx, q, trigger("elsewhere-2").JobID()); err != nil || done {
		t.Errorf("Finished of an unknown job after reopen: got (%v, %v), want (false, nil)", done, err)
	}
}

// waitFor waits for ok, up to a minute: a bound for a loaded machine, not
// a measurement.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
