package queue

import (
	"context"
	"crypto/sha256"
)

// PublishRaw publishes data as a job without any checks, as a buggy or
// hostile publisher on the same subject would: for the poison tests.
func PublishRaw(ctx context.Context, q *Queue, data []byte) error {
	_, err := q.js.Publish(ctx, q.subject, data)
	return err
}

// Replicas is the replication Open settled on.
func Replicas(q *Queue) int { return q.cfg.Replicas }

// Abandon stops renewing l without releasing it, as a killed holder does.
func Abandon(l *Lease) {
	l.stop()
	<-l.kept
}

// MirrorReady reports whether Put answers finished jobs from the in-memory
// mirror of the deliveries bucket (its watch has replayed the bucket).
func MirrorReady(q *Queue) bool {
	q.seen.mu.RLock()
	defer q.seen.mu.RUnlock()
	return q.seen.ready
}

// Finished is the check Put makes before storing a trigger with job id id.
func Finished(ctx context.Context, q *Queue, id string) (bool, error) {
	return q.seen.finished(ctx, id)
}

// RecordFinished writes job id id into the deliveries bucket as another
// node's Ack does: this node's mirror learns it only through its watch.
func RecordFinished(ctx context.Context, q *Queue, id string) error {
	_, err := q.seen.kv.Put(ctx, deliveryKey(donePrefix, sha256.Sum256([]byte(id))), []byte("0"))
	return err
}
