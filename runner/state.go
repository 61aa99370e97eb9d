package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// State is the per-incident key-value state with compare-and-set, kept by
// runner/queue in a JetStream key-value bucket; its errors are queue's
// sentinels.
type State interface {
	// Get returns the value and its revision, or queue.ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// Create stores value under a new key, or fails with queue.ErrExists.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update replaces the value if the key is still at revision, or fails
	// with queue.ErrConflict.
	Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error)
	// Delete removes the key if it is still at revision (0: whatever it
	// is at), or fails with queue.ErrConflict.
	Delete(ctx context.Context, key string, revision uint64) error
}

// runState is what the runner records per incident × host × playbook.
type runState struct {
	// Status is "running" while a worker has the run, "done" once its
	// bundle is stored.
	Status string `json:"status"`
	// Job is the queue job (JobID) that owns or finished the run.
	Job string `json:"job"`
	// Since is when the status was set.
	Since time.Time `json:"since"`
	// Bundle is where the evidence is, once done.
	Bundle string `json:"bundle,omitempty"`
	// Outcome is the bundle's status, once done.
	Outcome string `json:"outcome,omitempty"`
	// Sinks records, per publisher, how far publishing the run got.
	Sinks map[string]sinkState `json:"sinks,omitempty"`
}

// claim is a worker's hold on one run.
type claim struct {
	key string
	rev uint64
}

// errDone means the run already finished: it is not run again.
var errDone = errors.New("run already done")

// claimRun takes the run for job, unless it is done. The caller holds the
// run's host × playbook lease, and every worker holds that lease while it
// has a run claimed: a "running" claim found here belongs to a worker that
// died or handed its job back, and is taken over.
func (r *Runner) claimRun(ctx context.Context, key, job string) (claim, runState, error) {
	mine := runState{Status: "running", Job: job, Since: r.now().UTC()}
	val, _ := json.Marshal(mine)
	for range 5 {
		raw, rev, err := r.state.Get(ctx, key)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			rev, err := r.state.Create(ctx, key, val)
			if errors.Is(err, queue.ErrExists) {
				continue // lost a race; look again
			}
			if err != nil {
				return claim{}, runState{}, fmt.Errorf("claim run %s: %w", key, err)
			}
			return claim{key: key, rev: rev}, runState{}, nil
		case err != nil:
			return claim{}, runState{}, fmt.Errorf("read run %s: %w", key, err)
		}
		var cur runState
		if err := json.Unmarshal(raw, &cur); err != nil {
			return claim{}, runState{}, fmt.Errorf("decode run %s: %w", key, err)
		}
		if cur.Status == "done" {
			return claim{}, cur, errDone
		}
		rev, err = r.state.Update(ctx, key, val, rev)
		if errors.Is(err, queue.ErrConflict) {
			continue
		}
		if err != nil {
			return claim{}, runState{}, fmt.Errorf("claim run %s: %w", key, err)
		}
		return claim{key: key, rev: rev}, cur, nil
	}
	return claim{}, runState{}, fmt.Errorf("claim run %s: too much contention", key)
}

// noteBundle records in the claim where the run's bundle is about to be
// stored, so that a redelivery after a crash finds and adopts it instead of
// running the playbook again.
func (r *Runner) noteBundle(ctx context.Context, c claim, job, prefix string) (claim, error) {
	val, _ := json.Marshal(runState{Status: "running", Job: job, Since: r.now().UTC(), Bundle: prefix})
	rev, err := r.state.Update(ctx, c.key, val, c.rev)
	if err != nil {
		return c, fmt.Errorf("record bundle of %s: %w", c.key, err)
	}
	return claim{key: c.key, rev: rev}, nil
}

// finishRun marks a claimed run done. A conflict means someone took the
// claim over (we were presumed dead); the bundle is stored either way, so
// the run counts as done for this job.
func (r *Runner) finishRun(ctx context.Context, c claim, job, bundle, outcome string) error {
	val, _ := json.Marshal(runState{Status: "done", Job: job, Since: r.now().UTC(), Bundle: bundle, Outcome: outcome})
	_, err := r.state.Update(ctx, c.key, val, c.rev)
	if errors.Is(err, queue.ErrConflict) {
		r.log.Warn("run was taken over while it ran; its bundle is stored", "key", c.key, "bundle", bundle)
		return nil
	}
	if err != nil {
		return fmt.Errorf("mark run %s done: %w", c.key, err)
	}
	return nil
}

// errHostBusy means another job's run holds the host × playbook lease:
// the job is handed back to the queue for a little while (Job.Defer), and
// the worker takes other work.
var errHostBusy = errors.New("host busy with another run of the playbook")

// leaseHost takes the host × playbook lease: at most one run of a playbook
// on a host at a time, across jobs and nodes (two alerts about one host
// must not stack the same diagnostics on it). It never waits: a lease held
// by anyone, this job's earlier attempt included, is errHostBusy. A dead
// holder's lease expires within the queue's lease TTL. The returned func
// releases it.
func (r *Runner) leaseHost(ctx context.Context, target, playbook, job string) (func(), error) {
	key := queue.Key("lock", target, playbook)
	l, err := r.leases.Acquire(ctx, key, job)
	if errors.Is(err, queue.ErrHeld) {
		return nil, fmt.Errorf("%w: %w", errHostBusy, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lease %s on %s: %w", playbook, target, err)
	}
	return func() {
		// Release even when the job's context has ended.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := l.Release(ctx); err != nil {
			r.log.Warn("release host lease; it expires on its own", "key", key, "err", err)
		}
	}, nil
}
