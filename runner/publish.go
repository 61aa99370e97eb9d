package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/runner/queue"
)

// sinkState is one sink's progress for one run, kept in the run's state.
type sinkState struct {
	// State is "pending" while a publish is under way (or was, when its
	// worker died), "done" once it landed, "failed" when it cannot.
	State string    `json:"state"`
	Job   string    `json:"job"`
	Since time.Time `json:"since"`
	Error string    `json:"error,omitempty"`
}

// staleSink is how long a pending publish of another job is left alone:
// longer than a publisher's own retries take.
const staleSink = 5 * time.Minute

// publish takes a stored run to every publisher that has not had it yet.
// It returns an error only for what may work on a later delivery.
func (r *Runner) publish(ctx context.Context, t hooks.Trigger, key, job string, b *evidence.Bundle, prefix string) error {
	if len(r.publishers) == 0 {
		return nil
	}
	link, err := r.store.Link(ctx, prefix+evidence.PageFile)
	if err != nil {
		return fmt.Errorf("link %s: %w", prefix, err)
	}
	rep := evidence.Report{Bundle: b, Link: link, Marker: b.Manifest.RunID}
	st := incidentState{state: r.state, source: t.Source, incident: t.Incident.ID}
	var errs []error
	for _, p := range r.publishers {
		if err := r.publishTo(ctx, p, key, job, rep, st); errors.Is(err, errKilled) {
			return err
		} else if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Sink(), err))
		}
	}
	return errors.Join(errs...)
}

// publishTo runs the exactly-once protocol for one sink: record pending,
// publish (again when an earlier attempt may have landed), record done.
func (r *Runner) publishTo(ctx context.Context, p evidence.Publisher, key, job string, rep evidence.Report, st evidence.IncidentState) error {
	sink := p.Sink()
	again := false
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return fmt.Errorf("record publish of %s: too much contention", key)
		}
		rs, rev, err := r.readRun(ctx, key)
		if err != nil {
			return err
		}
		cur := rs.Sinks[sink]
		switch cur.State {
		case "done", "failed":
			return nil
		case "pending":
			if cur.Job != job && r.now().Sub(cur.Since) < staleSink {
				r.log.Info("publish held by another job", "sink", sink, "key", key, "job", cur.Job)
				return nil
			}
			// Our own earlier attempt, or a dead job's: it may have
			// landed.
			again = true
		}
		if rs.Sinks == nil {
			rs.Sinks = map[string]sinkState{}
		}
		rs.Sinks[sink] = sinkState{State: "pending", Job: job, Since: r.now().UTC()}
		if _, err := r.writeRun(ctx, key, rs, rev); errors.Is(err, queue.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		break
	}
	if err := r.failpoint("publish:" + sink + ":before"); err != nil {
		return err
	}
	began := r.now()
	perr := p.Publish(ctx, rep, st, again)
	took := r.now().Sub(began)
	r.events.Published(sink, again, took, perr)
	if err := r.failpoint("publish:" + sink + ":after"); err != nil {
		return err
	}
	final := sinkState{State: "done", Job: job, Since: r.now().UTC()}
	switch {
	case perr == nil:
		// One line per publish that landed, and whether it took more
		// than one delivery of the job.
		r.log.Info("published", "sink", sink, "key", key, "again", again, "took", took.Round(time.Millisecond).String())
	case errors.Is(perr, evidence.ErrPermanent):
		// Retrying cannot help (a revoked token, a missing scope): say
		// so once and do not hold the job.
		final.State, final.Error = "failed", perr.Error()
		r.log.Error("publish failed for good", "sink", sink, "key", key, "err", perr)
	default:
		// Stays pending: the next delivery publishes again, looking for
		// the marker first.
		return perr
	}
	for range 5 {
		rs, rev, err := r.readRun(ctx, key)
		if err != nil {
			return err
		}
		rs.Sinks[sink] = final
		if _, err := r.writeRun(ctx, key, rs, rev); !errors.Is(err, queue.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("record publish of %s: too much contention", key)
}

func (r *Runner) readRun(ctx context.Context, key string) (runState, uint64, error) {
	raw, rev, err := r.state.Get(ctx, key)
	if err != nil {
		return runState{}, 0, fmt.Errorf("read run %s: %w", key, err)
	}
	var rs runState
	if err := json.Unmarshal(raw, &rs); err != nil {
		return runState{}, 0, fmt.Errorf("decode run %s: %w", key, err)
	}
	return rs, rev, nil
}

func (r *Runner) writeRun(ctx context.Context, key string, rs runState, rev uint64) (uint64, error) {
	val, _ := json.Marshal(rs)
	return r.state.Update(ctx, key, val, rev)
}

// unpublished reports whether some publisher has not had the run yet.
func (r *Runner) unpublished(rs runState) bool {
	for _, p := range r.publishers {
		switch rs.Sinks[p.Sink()].State {
		case "done", "failed":
		default:
			return true
		}
	}
	return false
}

// incidentState is evidence.IncidentState over the per-incident bucket.
type incidentState struct {
	state    State
	source   string
	incident string
}

func (s incidentState) key(name string) string {
	return queue.Key("incident", s.source, s.incident, name)
}

func (s incidentState) Get(ctx context.Context, name string) (string, error) {
	v, _, err := s.state.Get(ctx, s.key(name))
	if errors.Is(err, queue.ErrNotFound) {
		return "", nil
	}
	return string(v), err
}

func (s incidentState) Create(ctx context.Context, name, value string) error {
	_, err := s.state.Create(ctx, s.key(name), []byte(value))
	if errors.Is(err, queue.ErrExists) {
		return evidence.ErrStateExists
	}
	return err
}

// errKilled is what a failpoint returns to stop a job dead, as if its
// worker had been killed: no further state, no ack, no nak.
var errKilled = errors.New("killed at a failpoint")

func (r *Runner) failpoint(name string) error {
	if r.failpoints != nil && r.failpoints(name) {
		return fmt.Errorf("%s: %w", name, errKilled)
	}
	return nil
}
