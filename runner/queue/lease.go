package queue

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrHeld is wrapped by Acquire's error when another holder has the lease.
var ErrHeld = errors.New("queue: lease: held")

// Leases hands out exclusive, expiring claims on keys (a host × playbook,
// say), shared by every worker of every node. A lease is an entry in a
// bucket whose entries expire LeaseTTL after their last write: the holder
// rewrites it every LeaseTTL/3 (compare-and-set on the revision it wrote),
// so a live holder keeps it and a dead one (SIGKILL, a lost node, a
// partition) loses it within LeaseTTL. Leases are kept in memory on the
// servers: a lease never outlives the servers, and after a restart of the
// embedded server every former holder is gone anyway.
type Leases struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	log *slog.Logger
}

// leaseValue is what a lease entry holds.
type leaseValue struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

// Lease is one held lease. Its holder must Release it; until then it is
// kept alive in the background.
type Lease struct {
	l      *Leases
	key    string
	value  []byte
	stop   context.CancelFunc
	kept   chan struct{} // closed when the keep-alive loop has returned
	lost   chan struct{} // closed if the lease was lost
	mu     sync.Mutex
	rev    uint64
	isLost bool
}

// TTL is how long a lease outlives its holder's last renewal.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Acquire takes the lease on key for holder (a job id: it is reported to
// whoever finds the lease held), or fails at once with an error wrapping
// ErrHeld that names the current holder. It never waits for the lease.
func (l *Leases) Acquire(ctx context.Context, key, holder string) (*Lease, error) {
	val, _ := json.Marshal(leaseValue{Holder: holder, Since: time.Now().UTC()})
	rev, err := l.kv.Create(ctx, key, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		who := "another worker"
		if e, gerr := l.kv.Get(ctx, key); gerr == nil {
			var cur leaseValue
			if json.Unmarshal(e.Value(), &cur) == nil && cur.Holder != "" {
				who = fmt.Sprintf("%s since %s", cur.Holder, cur.Since.Format(time.RFC3339))
			}
		}
		return nil, fmt.Errorf("queue: lease %s: held by %s: %w", key, who, ErrHeld)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: lease %s: %w", key, err)
	}
	kctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ls := &Lease{l: l, key: key, value: val, stop: stop, kept: make(chan struct{}), lost: make(chan struct{}), rev: rev}
	go ls.keep(kctx)
	return ls, nil
}

// keep renews the lease every TTL/3 until stopped or lost. A renewal that
// finds another revision means the lease expired (this process stalled
// for longer than the TTL) and may be someone else's now.
func (ls *Lease) keep(ctx context.Context) {
	defer close(ls.kept)
	tick := time.NewTicker(ls.l.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ls.mu.Lock()
		rev := ls.rev
		ls.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, ls.l.ttl/3)
		nrev, err := ls.l.kv.Update(rctx, ls.key, ls.value, rev)
		cancel()
		switch {
		case err == nil:
			ls.mu.Lock()
			ls.rev = nrev
			ls.mu.Unlock()
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyExists):
			ls.l.log.Warn("queue: lease lost: it expired before it was renewed", "key", ls.key)
			ls.mu.Lock()
			ls.isLost = true
			ls.mu.Unlock()
			close(ls.lost)
			return
		default:
			// A server moment (leader election, reconnect): the next
			// tick tries again, well within the TTL.
			ls.l.log.Warn("queue: renew lease", "key", ls.key, "err", err)
		}
	}
}

// Lost is closed if the lease expired while held (its holder stalled past
// the TTL); another worker may have taken it since.
func (ls *Lease) Lost() <-chan struct{} { return ls.lost }

// Release stops renewing the lease and removes it, unless it was lost.
// It is idempotent.
func (ls *Lease) Release(ctx context.Context) error {
	ls.stop()
	<-ls.kept
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.isLost || ls.rev == 0 {
		return nil
	}
	rev := ls.rev
	ls.rev = 0
	err := ls.l.kv.Delete(ctx, ls.key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// A renewal that stop cut short may have been stored all the
		// same, at a revision this holder never learnt: the entry is
		// still this holder's if it holds this holder's value (its id
		// and the time it took the lease). Anything else is someone
		// else's lease now, and stays.
		err = nil
		if e, gerr := ls.l.kv.Get(ctx, ls.key); gerr == nil && bytes.Equal(e.Value(), ls.value) {
			err = ls.l.kv.Delete(ctx, ls.key, jetstream.LastRevision(e.Revision()))
		} else if gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound) {
			err = gerr
		}
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("queue: release lease %s: %w", ls.key, err)
	}
	return nil
}
