// Package queue keeps firstlook's jobs and per-incident state on NATS
// JetStream: a work-queue stream that intakes publish triggers to and every
// node's workers lease from through one durable pull consumer, and a
// key-value bucket for per-incident state with compare-and-set.
//
// The server runs embedded in-process by default (file storage under the
// data directory, no TCP port unless asked), or the queue connects to an
// external NATS cluster; the embedded servers of several nodes can also
// cluster. Nothing above this package knows which.
//
// JetStream provides the guarantees the design needs without home-made
// machinery: Put returns only after the stream has stored the trigger (on
// disk, or on a quorum of the cluster), publish de-duplication by message id
// turns a redelivered webhook into no second job while its job is stored,
// and a bucket of finished jobs' ids (entries expiring after the duplicate
// window) once it is not; ack-wait redelivery and a cap on attempts recover
// from crashed workers; the buckets' revisions give compare-and-set; and a
// bucket whose entries expire a few seconds after their holder stops
// renewing them gives leases that die with their holder.
package queue

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	retrypkg "github.com/firstlook/firstlook/evidence/retry"
	"github.com/firstlook/firstlook/hooks"
)

// ErrClosed is returned by a Queue's methods after Close.
var ErrClosed = errors.New("queue: closed")

// kvStreamPrefix prefixes a bucket's name to name its stream.
const kvStreamPrefix = "KV_"

// Limits on a trigger's job id, which travels as a NATS header value.
const maxJobIDLen = 512

// defaultOpTimeout bounds Put and the job acknowledgements when the caller's
// context has no deadline, so a lost server cannot hang a caller forever.
const defaultOpTimeout = 10 * time.Second

// Queue is a JetStream work queue of hooks.Triggers plus a key-value bucket
// of per-incident state. It is safe for concurrent use.
type Queue struct {
	cfg   Config
	nc    *nats.Conn
	js    jetstream.JetStream
	srv   *server.Server // nil with an external server
	strm  jetstream.Stream
	cons  jetstream.Consumer
	state *State
	// leases are the workers' host × playbook claims; seen remembers
	// finished jobs' ids for the duplicate window.
	leases *Leases
	seen   *deliveries

	// Built once: Put runs on the webhook hot path.
	subject string
	stream  []string // value of the Nats-Expected-Stream header

	// life is cancelled by Close, which stops Next.
	life      context.Context
	stop      context.CancelFunc
	bg        sync.WaitGroup // the deliveries mirror, stopped by life
	closed    chan struct{}  // closed by the client's ClosedHandler
	closeOnce sync.Once
	closeErr  error
}

var _ hooks.Queue = (*Queue)(nil)

// Open starts the embedded server, or connects to the external one, and
// creates or updates the stream, the consumer and the bucket. Reopening the
// same embedded directory finds the same jobs and state. Open waits, within
// ctx, for a cluster that is still electing its leaders.
func Open(ctx context.Context, cfg Config) (*Queue, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("queue: config: %w", err)
	}
	cfg = cfg.withDefaults()

	var password string
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("queue: read password_file: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}

	q := &Queue{
		cfg:     cfg,
		subject: cfg.Subject,
		stream:  []string{cfg.Stream},
		closed:  make(chan struct{}),
	}
	q.life, q.stop = context.WithCancel(context.Background())

	opts := []nats.Option{
		nats.Name("firstlook"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DrainTimeout(5 * time.Second),
		nats.ClosedHandler(func(*nats.Conn) { close(q.closed) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			cfg.Logger.Warn("nats client error", "err", err)
		}),
	}
	url := cfg.URL
	if url == "" {
		srv, user, pass, err := startEmbedded(cfg, password)
		if err != nil {
			q.stop()
			return nil, fmt.Errorf("queue: %w", err)
		}
		q.srv = srv
		opts = append(opts, nats.InProcessServer(srv))
		if user != "" {
			opts = append(opts, nats.UserInfo(user, pass))
		}
	} else {
		if cfg.User != "" {
			opts = append(opts, nats.UserInfo(cfg.User, password))
		}
		if cfg.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		}
		if cfg.TLS.enabled() {
			tc, err := cfg.TLS.config()
			if err != nil {
				q.stop()
				return nil, fmt.Errorf("queue: tls: %w", err)
			}
			opts = append(opts, nats.Secure(tc))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		q.shutdownServer()
		q.stop()
		// The error names the server, never the credentials.
		return nil, fmt.Errorf("queue: connect: %w", err)
	}
	q.nc = nc
	if q.cfg.Replicas == 0 {
		q.cfg.Replicas = 1
		if nc.ConnectedClusterName() != "" {
			q.cfg.Replicas = 3
		}
	}
	if err := q.ensure(ctx); err != nil {
		_ = q.Close()
		return nil, err
	}
	return q, nil
}

func (t TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca_file %s: no PEM certificates", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// ensure creates or updates the stream, the consumer and the bucket,
// retrying while a cluster forms or elects leaders.
func (q *Queue) ensure(ctx context.Context) error {
	// Put publishes asynchronously and waits on each job's own PubAck:
	// the acks share one reply subscription instead of a request/reply
	// round per job, which cut Put's cost by a fifth (BenchmarkPut). The
	// timeout drops a pending ack that will never come (a server that died
	// mid-publish); without it, enough of those would stall every Put.
	js, err := jetstream.New(q.nc, jetstream.WithPublishAsyncTimeout(defaultOpTimeout))
	if err != nil {
		return fmt.Errorf("queue: jetstream: %w", err)
	}
	q.js = js
	c := q.cfg
	if q.srv != nil && !c.Embedded.Cluster.enabled() {
		// A clustered server learns its streams from its peers, later.
		if err := q.checkRecovered(ctx); err != nil {
			return err
		}
	}
	steps := []struct {
		what string
		do   func(context.Context) error
	}{
		{"stream " + c.Stream, func(ctx context.Context) (err error) {
			q.strm, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
				Name:        c.Stream,
				Description: "firstlook jobs: one per webhook delivery",
				Subjects:    []string{c.Subject},
				// A job leaves the stream when a worker acks (or terms) it.
				Retention:  jetstream.WorkQueuePolicy,
				Storage:    jetstream.FileStorage,
				Replicas:   c.Replicas,
				Duplicates: c.DuplicateWindow,
			})
			return err
		}},
		{"consumer " + c.Consumer, func(ctx context.Context) (err error) {
			q.cons, err = js.CreateOrUpdateConsumer(ctx, c.Stream, jetstream.ConsumerConfig{
				Durable:     c.Consumer,
				Description: "firstlook workers",
				AckPolicy:   jetstream.AckExplicitPolicy,
				AckWait:     c.AckWait,
				// No cap here: a job deferred because its host was busy
				// (Job.Defer) is delivered again without that counting
				// as an attempt, so Job counts attempts itself and
				// reports a job past MaxDeliver as Exhausted.
				MaxDeliver: -1,
			})
			return err
		}},
		{"bucket " + c.KVBucket, func(ctx context.Context) error {
			kv, err := q.bucket(ctx, jetstream.KeyValueConfig{
				Bucket:      c.KVBucket,
				Description: "firstlook per-incident state",
				History:     1,
				TTL:         c.StateTTL,
				Storage:     jetstream.FileStorage,
				Replicas:    c.Replicas,
			})
			if err != nil {
				return err
			}
			q.state = &State{kv: kv}
			return nil
		}},
		{"bucket " + c.LeaseBucket, func(ctx context.Context) error {
			kv, err := q.bucket(ctx, jetstream.KeyValueConfig{
				Bucket:      c.LeaseBucket,
				Description: "firstlook leases: host × playbook claims kept alive by their holders",
				History:     1,
				TTL:         c.LeaseTTL,
				// Leases need not survive the servers: their holders
				// do not either.
				Storage:  jetstream.MemoryStorage,
				Replicas: c.Replicas,
			})
			if err != nil {
				return err
			}
			q.leases = &Leases{kv: kv, ttl: c.LeaseTTL, log: c.Logger}
			return nil
		}},
		{"bucket " + c.DeliveryBucket, func(ctx context.Context) error {
			kv, err := q.bucket(ctx, jetstream.KeyValueConfig{
				Bucket:      c.DeliveryBucket,
				Description: "firstlook deliveries: ids of finished jobs, for de-duplication",
				History:     1,
				TTL:         c.DuplicateWindow,
				Storage:     jetstream.FileStorage,
				Replicas:    c.Replicas,
			})
			if err != nil {
				return err
			}
			q.seen = newDeliveries(kv, c.DuplicateWindow, c.Logger)
			return nil
		}},
	}
	for _, s := range steps {
		if err := retry(ctx, q.cfg, s.what, s.do); err != nil {
			return fmt.Errorf("queue: create %s: %w", s.what, err)
		}
	}
	q.bg.Go(func() { q.seen.mirror(q.life) })
	return nil
}

// checkRecovered refuses an embedded store whose streams are on disk but
// were not loaded: encrypted with another key, or encrypted while no key
// is configured. Creating them anew would answer webhooks with an empty
// queue over the unreadable one.
func (q *Queue) checkRecovered(ctx context.Context) error {
	c := q.cfg
	streams := filepath.Join(c.Embedded.Dir, "jetstream", "$G", "streams")
	for _, name := range []string{c.Stream, kvStreamPrefix + c.KVBucket, kvStreamPrefix + c.DeliveryBucket} {
		if _, err := os.Stat(filepath.Join(streams, name)); err != nil {
			continue // not created yet
		}
		err := retry(ctx, c, "stream "+name, func(ctx context.Context) error {
			_, err := q.js.Stream(ctx, name)
			if errors.Is(err, jetstream.ErrStreamNotFound) {
				return &jetstream.APIError{Code: 400, Description: "not loaded"}
			}
			return err
		})
		if err != nil {
			hint := "embedded.key_file is not set, and the store may be encrypted"
			if c.Embedded.KeyFile != "" {
				hint = "the store may be encrypted with another key than embedded.key_file's"
			}
			return fmt.Errorf("queue: the store in %s has stream %s, but the server could not load it (%s; see the server's errors in the log): %w", c.Embedded.Dir, name, hint, err)
		}
	}
	return nil
}

// bucket creates or updates a key-value bucket whose reads go to its
// stream's leader. The jetstream package makes every bucket allow direct
// gets, which any replica answers, followers included: a Get right after
// another node's Create can then miss it. Buckets are read to decide what
// to write, so reads go to the stream leader.
func (q *Queue) bucket(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if _, err := q.js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
		return nil, err
	}
	strm, err := q.js.Stream(ctx, kvStreamPrefix+cfg.Bucket)
	if err != nil {
		return nil, err
	}
	if sc := strm.CachedInfo().Config; sc.AllowDirect {
		sc.AllowDirect = false
		if _, err := q.js.UpdateStream(ctx, sc); err != nil {
			return nil, err
		}
	}
	kv, err := q.js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return nil, err
	}
	// The handle reads the way the stream allowed when it was made. Nodes
	// opening together race: another node's CreateOrUpdateKeyValue turns
	// direct gets back on for a moment, and a handle made in that moment
	// sends every read to a subject nobody serves once they are off again
	// ("no responders", for good: TestEmbeddedCluster failed so). A read
	// of a key that is never written tells; the caller's retry makes a
	// new handle.
	if _, err := kv.Get(ctx, "firstlook-probe"); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("read bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// retry calls do until it succeeds, fails for good, or ctx ends. A cluster
// that is still forming answers "temporarily unavailable" or "no suitable
// peers" for a while; a bad request (a stream whose retention cannot change,
// say) will not get better.
func retry(ctx context.Context, cfg Config, what string, do func(context.Context) error) error {
	// A server without a meta leader yet drops API requests unanswered, so
	// the first attempts time out quickly; later ones leave time for a
	// slow placement.
	timeout := 2 * time.Second
	pol := retrypkg.Policy{
		Name: "queue: create " + what, Initial: 100 * time.Millisecond, Max: 2 * time.Second,
		Log: cfg.Logger, LogEvery: 5 * time.Second,
	}
	err := retrypkg.Do(ctx, pol, func(err error) (bool, time.Duration) {
		var apiErr *jetstream.APIError
		return !(errors.As(err, &apiErr) && apiErr.Code == 400 && apiErr.ErrorCode != 10005), 0
	}, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		timeout = min(2*timeout, 10*time.Second)
		return do(actx)
	})
	if retrypkg.IsPermanent(err) {
		return retrypkg.Last(err)
	}
	return err
}

// Close drains the connection, so in-flight publishes and acks finish, and
// shuts the embedded server down. Jobs leased and not acked are redelivered
// after AckWait. Close is idempotent.
func (q *Queue) Close() error {
	q.closeOnce.Do(func() {
		q.stop()
		q.bg.Wait()
		if q.nc != nil {
			if err := q.nc.Drain(); err != nil {
				q.nc.Close()
			}
			select {
			case <-q.closed:
			case <-time.After(10 * time.Second):
				q.nc.Close()
				q.closeErr = errors.New("queue: close: drain timed out")
			}
		}
		q.shutdownServer()
	})
	return q.closeErr
}

func (q *Queue) shutdownServer() {
	if q.srv != nil {
		q.srv.Shutdown()
		q.srv.WaitForShutdown()
	}
}

// Put stores t as a job and returns once JetStream has acknowledged it:
// written to the store's file (or to a quorum of the cluster). A trigger
// whose job id (t.JobID()) was seen within DuplicateWindow is not stored
// again: Put returns duplicate true, whether that job is still queued,
// running or finished, across restarts and across the nodes of a cluster.
// Queued and running jobs are recognised by the stream's de-duplication
// (the job id is the message id); finished ones by the deliveries bucket,
// which Ack and Term write before the job leaves the stream.
//
// Put retries a stream without a leader (a cluster electing one) until ctx
// ends; retries are safe because of the message id. Without a deadline on
// ctx, Put gives up after 10 s.
func (q *Queue) Put(ctx context.Context, t hooks.Trigger) (duplicate bool, err error) {
	id := t.JobID()
	if err := checkJobID(t, id); err != nil {
		return false, fmt.Errorf("queue: put: %w", err)
	}
	data, err := json.Marshal(t)
	if err != nil {
		return false, fmt.Errorf("queue: put %s: %w", id, err)
	}
	msg := &nats.Msg{
		Subject: q.subject,
		Data:    data,
		Header: nats.Header{
			jetstream.MsgIDHeader: []string{id},
			// A subject bound to some other stream by mistake fails loudly
			// instead of queueing jobs nobody consumes.
			jetstream.ExpectedStreamHeader: q.stream,
		},
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultOpTimeout)
		defer cancel()
	}
	if done, err := q.seen.finished(ctx, id); err != nil {
		// Storing it again is safe (runs are idempotent through State);
		// refusing a webhook because of a lookup is not.
		q.cfg.Logger.Warn("queue: put: could not check the delivery against finished jobs; queueing it", "job", id, "err", err)
	} else if done {
		return true, nil
	}
	// The first attempt is made outside the retry loop, whose timers and
	// bookkeeping were a tenth of Put's CPU and a sixth of its allocations
	// (BenchmarkIntake's profile); a stream nearly always has a leader.
	ack, err := q.publish(ctx, msg)
	if err != nil && retryablePublish(err) && ctx.Err() == nil {
		pol := retrypkg.Policy{Name: "queue: put " + id, Initial: 50 * time.Millisecond, Max: time.Second}
		err = retrypkg.Do(ctx, pol, func(err error) (bool, time.Duration) { return retryablePublish(err), 0 },
			func(ctx context.Context) (err error) {
				ack, err = q.publish(ctx, msg)
				return err
			})
	}
	if err != nil {
		if q.life.Err() != nil {
			err = ErrClosed
		}
		return false, fmt.Errorf("queue: put %s: %w", id, retrypkg.Last(err))
	}
	return ack.Duplicate, nil
}

// errDuplicateInProcess is JetStream's JSStreamDuplicateMessageConflict: a
// clustered stream refuses a message whose id another publish is still
// replicating.
const errDuplicateInProcess = 10158

// retryablePublish reports whether a publish failed because the stream has
// no leader right now (a cluster's election, a reconnect), or because the
// same job id is being stored by a concurrent Put: once that settles, the
// retry is stored or reported as a duplicate.
func retryablePublish(err error) bool {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.Code == 503 || apiErr.ErrorCode == errDuplicateInProcess)
}

// checkJobID rejects triggers whose job id cannot identify them: an empty
// source or delivery id would make every such webhook a duplicate of the
// first, and control characters cannot travel in a NATS header.
func checkJobID(t hooks.Trigger, id string) error {
	if t.Source == "" || t.DeliveryID == "" {
		return errors.New("trigger without source or delivery id")
	}
	if len(id) > maxJobIDLen {
		return fmt.Errorf("job id longer than %d bytes", maxJobIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("job id %q has control characters", id)
		}
	}
	return nil
}

// State returns the per-incident state bucket.
func (q *Queue) State() *State { return q.state }

// Leases returns the workers' leases.
func (q *Queue) Leases() *Leases { return q.leases }

// Stats counts the queue's jobs, for tests, benchmarks and metrics.
type Stats struct {
	// Stored is how many jobs the stream holds: waiting or leased. A job
	// leaves when it is acked or terminated.
	Stored uint64
	// Pending is how many stored jobs have not been delivered yet.
	Pending uint64
	// InFlight is how many delivered jobs await an ack.
	InFlight uint64
	// Redelivered is how many in-flight jobs were delivered more than once.
	Redelivered uint64
	// Delivered counts deliveries, redeliveries included, since the
	// consumer was created.
	Delivered uint64
	// Waiting is how many workers wait for a job.
	Waiting uint64
	// Oldest is when the oldest stored job was stored; zero when the
	// queue is empty.
	Oldest time.Time
}

// Stats reads the stream's and the consumer's counters.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	si, err := q.strm.Info(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	ci, err := q.cons.Info(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	return Stats{
		Stored:      si.State.Msgs,
		Pending:     ci.NumPending,
		InFlight:    uint64(ci.NumAckPending),
		Redelivered: uint64(ci.NumRedelivered),
		Delivered:   ci.Delivered.Consumer,
		Waiting:     uint64(ci.NumWaiting),
		Oldest:      oldest(si.State.Msgs, si.State.FirstTime),
	}, nil
}

func oldest(msgs uint64, first time.Time) time.Time {
	if msgs == 0 {
		return time.Time{}
	}
	return first
}

// publish stores msg and returns its PubAck, or ctx's error. A message
// whose wait was abandoned may still be stored; its id makes the sender's
// retry a duplicate.
func (q *Queue) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	f, err := q.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, err
	}
	select {
	case ack := <-f.Ok():
		return ack, nil
	case err := <-f.Err():
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
