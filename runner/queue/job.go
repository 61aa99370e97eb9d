package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	retrypkg "github.com/firstlook/firstlook/evidence/retry"
	"github.com/firstlook/firstlook/hooks"
)

// pullWait bounds one pull request, so a request lost with a failed server
// is replaced within this time.
const pullWait = 30 * time.Second

// minPull is the shortest pull request worth sending.
const minPull = 20 * time.Millisecond

// ErrDone is returned when a job that was already acked, nak'ed or
// terminated is acknowledged again.
var ErrDone = errors.New("queue: job already acknowledged")

// ErrPoison is wrapped by a PoisonError.
var ErrPoison = errors.New("queue: poison message")

// PoisonError reports a stored message that is not a trigger. Next has
// terminated it (it will not be delivered again) and the worker should
// report the error and call Next again.
type PoisonError struct {
	// Sequence is the message's stream sequence.
	Sequence uint64
	// Err says what is wrong with it, and whether terminating it failed.
	Err error
}

func (e *PoisonError) Error() string {
	return fmt.Sprintf("queue: poison message %d terminated: %v", e.Sequence, e.Err)
}

// Unwrap returns ErrPoison and the cause.
func (e *PoisonError) Unwrap() []error { return []error{ErrPoison, e.Err} }

// Job is a leased trigger. The lease lasts AckWait; the worker extends it
// with InProgress and ends it with exactly one of Ack, Nak, Defer or Term.
// A job neither acked nor terminated is redelivered; after MaxDeliver
// attempts it is delivered once more, Exhausted, to be reported. Deliveries
// that ended in Defer are not attempts.
type Job struct {
	// Trigger is the stored trigger.
	Trigger hooks.Trigger
	// Sequence is the job's stream sequence, unique in the stream.
	Sequence uint64
	// Delivery counts deliveries of this job, this one included: 1 on the
	// first attempt.
	Delivery int
	// Deferred counts the earlier deliveries that ended in Defer.
	Deferred int
	// Stored is when the stream stored the job.
	Stored time.Time

	maxDeliver int
	nc         *nats.Conn
	seen       *deliveries
	reply      string // the JetStream ack subject of this delivery

	mu   sync.Mutex
	done bool
}

// Attempt counts the deliveries of this job that were attempts (not ended
// by Defer), this one included: 1 on the first attempt.
func (j *Job) Attempt() int { return j.Delivery - j.Deferred }

// Last reports whether this is the job's last attempt (Attempt reached
// MaxDeliver): if it fails, the worker should report the failure as
// evidence and Ack or Term the job rather than Nak it.
func (j *Job) Last() bool { return j.Attempt() >= j.maxDeliver }

// Exhausted reports an attempt past MaxDeliver: the last attempt ended
// without an Ack or a Term, because its worker died or nak'ed it. The worker
// must not run the job again; it should report that diagnostics could not
// run, and Ack or Term it, or the job keeps coming back.
func (j *Job) Exhausted() bool { return j.Attempt() > j.maxDeliver }

// JetStream's acknowledgement protocol
// (https://docs.nats.io/using-nats/developer/develop_jetstream/consumers#delivery-reliability).
var (
	ackAck      = []byte("+ACK")
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
	ackTerm     = []byte("+TERM")
)

// Ack reports the job done; it leaves the stream. Ack first records the
// job id as finished, so a re-sent delivery stays a duplicate for the
// duplicate window, then waits for the server's confirmation (a double
// ack): a nil error means the job will not be redelivered.
func (j *Job) Ack(ctx context.Context) error {
	if err := j.finish(ctx, "ack"); err != nil {
		return err
	}
	return j.ack(ctx, "ack", ackAck, true)
}

// finish records the job id as finished (see deliveries).
func (j *Job) finish(ctx context.Context, what string) error {
	if j.seen == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultOpTimeout)
		defer cancel()
	}
	if err := j.seen.finish(ctx, j.Trigger.JobID(), j.Sequence); err != nil {
		return fmt.Errorf("queue: %s job %d: %w", what, j.Sequence, err)
	}
	return nil
}

// Defer hands the job back for redelivery after delay without counting
// the delivery as an attempt: the job could not start yet (its host is
// busy with another run), which is no fault of the job's.
func (j *Job) Defer(ctx context.Context, delay time.Duration) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultOpTimeout)
		defer cancel()
	}
	if err := j.seen.deferred(ctx, j.Trigger.JobID()); err != nil {
		// Handed back all the same; the delivery counts as an attempt.
		_ = j.Nak(ctx, delay)
		return fmt.Errorf("queue: defer job %d: %w", j.Sequence, err)
	}
	return j.Nak(ctx, delay)
}

// Nak hands the job back for redelivery after delay (at once if delay is
// 0). It counts as a delivery towards MaxDeliver.
func (j *Job) Nak(ctx context.Context, delay time.Duration) error {
	body := ackNak
	if delay > 0 {
		body = fmt.Appendf(nil, `%s {"delay": %d}`, ackNak, delay.Nanoseconds())
	}
	return j.ack(ctx, "nak", body, true)
}

// InProgress extends the lease by AckWait: the worker's heartbeat. Call it
// well within AckWait (every AckWait/3, say) while the job runs.
func (j *Job) InProgress(ctx context.Context) error {
	return j.ack(ctx, "in-progress", ackProgress, false)
}

// Term ends the job without success: it leaves the stream and is not
// delivered again, and a re-sent delivery is a duplicate (see Ack).
func (j *Job) Term(ctx context.Context) error {
	if err := j.finish(ctx, "term"); err != nil {
		return err
	}
	return j.ack(ctx, "term", ackTerm, true)
}

// ack sends an acknowledgement and waits for the server's reply. The
// jetstream package confirms only +ACK (DoubleAck); the others it sends
// fire-and-forget, and a lost heartbeat or nak would go unnoticed, so all of
// them go through one request here. final marks the job done.
func (j *Job) ack(ctx context.Context, what string, body []byte, final bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.done {
		return fmt.Errorf("queue: %s job %d: %w", what, j.Sequence, ErrDone)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultOpTimeout)
		defer cancel()
	}
	if _, err := j.nc.RequestWithContext(ctx, j.reply, body); err != nil {
		return fmt.Errorf("queue: %s job %d: %w", what, j.Sequence, err)
	}
	if final {
		j.done = true
	}
	return nil
}

// Next leases the next job, waiting until there is one or ctx ends. Many
// workers, on many nodes, may call Next at once; JetStream gives each job
// to one of them at a time.
//
// A stored message that is not a trigger is terminated and reported as a
// *PoisonError; the caller should log it and call Next again. Next rides
// out a cluster's failover by retrying, and returns ErrClosed once the
// Queue is closed.
//
// A lease cancelled through ctx while a job is on its way to this worker
// delays that job by AckWait and counts as one of its deliveries.
func (q *Queue) Next(ctx context.Context) (*Job, error) {
	pol := retrypkg.Policy{Name: "queue: next", Initial: 50 * time.Millisecond, Max: 2 * time.Second}
	decide := func(err error) (bool, time.Duration) {
		return q.life.Err() == nil && retryableFetch(err), 0
	}
	for {
		if q.life.Err() != nil {
			return nil, ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var msg jetstream.Msg
		err := retrypkg.Do(ctx, pol, decide, func(ctx context.Context) (err error) {
			msg, err = q.fetch(ctx)
			return err
		})
		switch {
		case msg != nil:
			return q.job(ctx, msg)
		case q.life.Err() != nil || ctx.Err() != nil:
			continue // reported above
		case err != nil:
			if e, ok := errors.AsType[*retrypkg.Error](err); ok && e.Reason == retrypkg.Deadline {
				// ctx ends before the next pull could start.
				<-ctx.Done()
				continue
			}
			return nil, fmt.Errorf("queue: next: %w", retrypkg.Last(err))
		}
		// The pull request expired without a job; ask again.
	}
}

// fetch sends one pull request for one message and waits for it. The
// request expires on the server before the client stops waiting, so an
// expired wait never strands a job in a dead inbox.
func (q *Queue) fetch(ctx context.Context) (jetstream.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, pullWait)
	defer cancel()
	stop := context.AfterFunc(q.life, cancel)
	defer stop()
	if dl, _ := ctx.Deadline(); time.Until(dl) < minPull {
		// Too little time left for a pull to expire on the server before
		// the deadline: wait it out instead.
		<-ctx.Done()
		return nil, nil
	}
	batch, err := q.cons.Fetch(1, jetstream.FetchContext(ctx))
	if err != nil {
		return nil, err
	}
	if msg, ok := <-batch.Messages(); ok && msg != nil {
		return msg, nil
	}
	return nil, batch.Error()
}

// retryableFetch reports whether a failed pull may succeed if repeated:
// the consumer is changing leader, a server is shutting down, the client is
// reconnecting.
func retryableFetch(err error) bool {
	for _, e := range []error{
		nats.ErrTimeout, nats.ErrNoResponders, nats.ErrConnectionReconnecting,
		nats.ErrDisconnected, jetstream.ErrNoHeartbeat, jetstream.ErrNoMessages,
		jetstream.ErrConsumerLeadershipChanged, jetstream.ErrServerShutdown,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.Code == 503
}

// job turns a delivered message into a Job, terminating poison.
func (q *Queue) job(ctx context.Context, msg jetstream.Msg) (*Job, error) {
	j := &Job{maxDeliver: q.cfg.MaxDeliver, nc: q.nc, reply: msg.Reply()}
	md, err := msg.Metadata()
	if err != nil {
		// Without metadata there is no ack subject to speak of: not a
		// JetStream delivery. Nothing to terminate.
		return nil, fmt.Errorf("queue: next: %w", err)
	}
	j.Sequence = md.Sequence.Stream
	j.Delivery = int(md.NumDelivered)
	j.Stored = md.Timestamp
	perr := json.Unmarshal(msg.Data(), &j.Trigger)
	if perr == nil {
		perr = checkJobID(j.Trigger, j.Trigger.JobID())
	}
	if perr == nil {
		j.seen = q.seen
		if j.Delivery > 1 {
			// A failed read counts every delivery as an attempt: the job
			// may be reported exhausted early, never run without end.
			if n, _, err := q.seen.deferrals(ctx, j.Trigger.JobID()); err == nil {
				j.Deferred = min(n, j.Delivery-1)
			} else {
				q.cfg.Logger.Warn("queue: next: read deferrals", "job", j.Trigger.JobID(), "err", err)
			}
		}
		return j, nil
	}
	reason := fmt.Appendf(nil, "%s firstlook: not a trigger: %s", ackTerm, strconv.Quote(perr.Error()))
	if err := j.ack(ctx, "term", reason, true); err != nil {
		perr = errors.Join(perr, err)
	}
	return nil, &PoisonError{Sequence: j.Sequence, Err: perr}
}
