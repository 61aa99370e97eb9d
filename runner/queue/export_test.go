package queue

import "context"

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
