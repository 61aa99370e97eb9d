package queue

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
)

// deliveries remembers, in a bucket whose entries live DuplicateWindow,
// the job ids of jobs that left the stream (acked or terminated), and how
// often a job was deferred. The stream's own de-duplication covers jobs
// still stored (queued or running), and survives restarts for them; it
// forgets a job's id once the job leaves a work-queue stream and the server
// restarts. This bucket is what makes a re-sent delivery of a finished job
// a duplicate for the whole window, across restarts and nodes.
type deliveries struct {
	kv jetstream.KeyValue
}

// deliveryKey is a bucket key for a job id: ids may be any bytes and up to
// maxJobIDLen long, keys may not, so the key is the id's SHA-256.
func deliveryKey(kind, id string) string {
	sum := sha256.Sum256([]byte(id))
	return kind + "." + hex.EncodeToString(sum[:])
}

// finished reports whether the job id left the stream within the window.
func (d *deliveries) finished(ctx context.Context, id string) (bool, error) {
	_, err := d.kv.Get(ctx, deliveryKey("done", id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up delivery: %w", err)
}

// finish records that the job id left the stream.
func (d *deliveries) finish(ctx context.Context, id string, seq uint64) error {
	if _, err := d.kv.Put(ctx, deliveryKey("done", id), strconv.AppendUint(nil, seq, 10)); err != nil {
		return fmt.Errorf("record delivery: %w", err)
	}
	return nil
}

// deferrals returns how often the job was handed back with Defer.
func (d *deliveries) deferrals(ctx context.Context, id string) (n int, rev uint64, err error) {
	e, err := d.kv.Get(ctx, deliveryKey("defer", id))
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
	key := deliveryKey("defer", id)
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
