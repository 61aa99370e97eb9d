package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deliveries remembers, in a bucket whose entries live DuplicateWindow,
// the job ids of jobs that left the stream (acked or terminated), and how
// often a job was deferred. The stream's own de-duplication covers jobs
// still stored (queued or running), and survives restarts for them; it
// forgets a job's id once the job leaves a work-queue stream and the server
// restarts. This bucket is what makes a re-sent delivery of a finished job
// a duplicate for the whole window, across restarts and nodes.
//
// Put asks on every webhook whether its job finished, so the bucket's
// finished ids are mirrored in memory: a watch replays the bucket when the
// queue opens and then follows every node's writes, and finished answers
// from the mirror once the replay is done, from the bucket before that (or
// while the watch is down). A bucket read is a request to the stream's
// leader and back, and cost more than storing the job itself
// (BenchmarkPut). The mirror holds a 32-byte hash and a time per finished
// job in the window: about 100 bytes each, so a million finished jobs a
// day cost about 100 MB.
//
// A write by another node reaches the mirror a moment later (the watch is
// a push consumer). A re-send inside that moment is still caught, by the
// stream's de-duplication: the stream forgets finished ids only when its
// server restarts, and the restarted node's own mirror starts with a
// replay.
type deliveries struct {
	kv     jetstream.KeyValue
	window time.Duration
	log    *slog.Logger

	mu    sync.RWMutex
	ready bool                 // the watch has replayed the bucket and follows it
	done  map[digest]time.Time // finished job id → when it was recorded
}

type digest = [sha256.Size]byte

// donePrefix and deferPrefix start the bucket's two kinds of keys.
const (
	donePrefix  = "done."
	deferPrefix = "defer."
)

func newDeliveries(kv jetstream.KeyValue, window time.Duration, log *slog.Logger) *deliveries {
	return &deliveries{kv: kv, window: window, log: log, done: map[digest]time.Time{}}
}

// deliveryKey is a bucket key for a job id's digest: ids may be any bytes
// and up to maxJobIDLen long, keys may not, so the key is the id's SHA-256.
func deliveryKey(prefix string, sum digest) string {
	return prefix + hex.EncodeToString(sum[:])
}

// finished reports whether the job id left the stream within the window.
func (d *deliveries) finished(ctx context.Context, id string) (bool, error) {
	sum := sha256.Sum256([]byte(id))
	d.mu.RLock()
	ready := d.ready
	at, ok := d.done[sum]
	d.mu.RUnlock()
	if ready {
		return ok && time.Since(at) < d.window, nil
	}
	_, err := d.kv.Get(ctx, deliveryKey(donePrefix, sum))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up delivery: %w", err)
}

// finish records that the job id left the stream. The mirror learns it at
// once, without waiting for the watch, so this node's next Put of the id
// is a duplicate however far behind the watch is.
func (d *deliveries) finish(ctx context.Context, id string, seq uint64) error {
	sum := sha256.Sum256([]byte(id))
	if _, err := d.kv.Put(ctx, deliveryKey(donePrefix, sum), strconv.AppendUint(nil, seq, 10)); err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	d.remember(sum, time.Now())
	return nil
}

func (d *deliveries) remember(sum digest, at time.Time) {
	d.mu.Lock()
	if old, ok := d.done[sum]; !ok || at.After(old) {
		d.done[sum] = at
	}
	d.mu.Unlock()
}

func (d *deliveries) forget(sum digest) {
	d.mu.Lock()
	delete(d.done, sum)
	d.mu.Unlock()
}

func (d *deliveries) setReady(ready bool) {
	d.mu.Lock()
	d.ready = ready
	d.mu.Unlock()
}

// expire drops the ids recorded before the window, as the bucket does.
func (d *deliveries) expire(now time.Time) {
	d.mu.Lock()
	for sum, at := range d.done {
		if now.Sub(at) >= d.window {
			delete(d.done, sum)
		}
	}
	d.mu.Unlock()
}

// mirror keeps the in-memory copy of the finished ids until ctx ends,
// starting a new watch (with a replay) whenever one stops. While no watch
// has replayed the bucket, finished reads the bucket itself.
func (d *deliveries) mirror(ctx context.Context) {
	wait := time.Second
	for {
		err := d.follow(ctx)
		d.setReady(false)
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("queue: stopped following finished deliveries; each webhook is looked up in the bucket until the watch is back", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// follow watches the bucket's finished ids: the replay of what it holds,
// then every write, until the watch or ctx ends.
func (d *deliveries) follow(ctx context.Context) error {
	w, err := d.kv.Watch(ctx, donePrefix+"*")
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer func() {
		_ = w.Stop()
		// The watch's callback blocks on a full channel; what it still
		// holds is read and dropped until the unsubscribe closes it, so
		// that no delivery goroutine is left stuck (it would hold up the
		// connection's drain on Close).
		go func() {
			for range w.Updates() {
			}
		}()
	}()
	sweep := time.NewTicker(min(max(d.window/8, time.Second), time.Minute))
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-sweep.C:
			d.expire(now)
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				return errors.New("watch: updates closed")
			case e == nil: // the replay is done
				d.setReady(true)
				continue
			}
			hexSum, _ := strings.CutPrefix(e.Key(), donePrefix)
			var sum digest
			if n, err := hex.Decode(sum[:], []byte(hexSum)); err != nil || n != len(sum) {
				continue // not a key this package writes
			}
			if e.Operation() == jetstream.KeyValuePut {
				d.remember(sum, e.Created())
			} else {
				d.forget(sum)
			}
		}
	}
}

// deferrals returns how often the job was handed back with Defer.
func (d *deliveries) deferrals(ctx context.Context, id string) (n int, rev uint64, err error) {
	e, err := d.kv.Get(ctx, deliveryKey(deferPrefix, sha256.Sum256([]byte(id))))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return 0, 0, nil
	case err != nil:
		return 0, 0, fmt.Errorf("read deferrals: %w", err)
	}
	n, err = strconv.Atoi(string(e.Value()))
	if err != nil {
		return 0, 0, fmt.Errorf("read deferrals: %w", err)
	}
	return n, e.Revision(), nil
}

// deferred counts one more deferral of the job.
func (d *deliveries) deferred(ctx context.Context, id string) error {
	key := deliveryKey(deferPrefix, sha256.Sum256([]byte(id)))
	for range 5 {
		n, rev, err := d.deferrals(ctx, id)
		if err != nil {
			return err
		}
		val := strconv.AppendInt(nil, int64(n+1), 10)
		if rev == 0 {
			_, err = d.kv.Create(ctx, key, val)
		} else {
			_, err = d.kv.Update(ctx, key, val, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("count deferral: %w", err)
		}
	}
	return errors.New("count deferral: too much contention")
}
