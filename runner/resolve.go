package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/runner/queue"
)

// resolution records that an incident (or the alert behind it) resolved:
// a run of it that has not started by then does not start.
type resolution struct {
	// At is when the resolve was received; runs of triggers received
	// before it do not start, those received after it (the alert fired
	// again) do.
	At       time.Time `json:"at"`
	Event    string    `json:"event"`
	Delivery string    `json:"delivery"`
}

// resolvedKey is where t's resolution is kept: per source and alert (or
// incident, when the source names no alert).
func resolvedKey(t hooks.Trigger) string {
	return queue.Key("resolved", t.Source, cmp.Or(t.Alert, t.Incident.ID))
}

// Resolutions records resolved incidents in the per-incident state for
// the intake (a hooks.Resolver); the runner reads them before each run.
func Resolutions(state State) hooks.Resolver { return resolutions{state} }

type resolutions struct{ state State }

// Resolve records t's resolution, keeping the latest when two arrive.
func (s resolutions) Resolve(ctx context.Context, t hooks.Trigger) error {
	key := resolvedKey(t)
	val, _ := json.Marshal(resolution{At: t.ReceivedAt, Event: t.Event, Delivery: t.DeliveryID})
	for range 5 {
		raw, rev, err := s.state.Get(ctx, key)
		if errors.Is(err, queue.ErrNotFound) {
			if _, err := s.state.Create(ctx, key, val); errors.Is(err, queue.ErrExists) {
				continue
			} else if err != nil {
				return fmt.Errorf("record resolve %s: %w", key, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read resolve %s: %w", key, err)
		}
		var cur resolution
		if json.Unmarshal(raw, &cur) == nil && !cur.At.Before(t.ReceivedAt) {
			return nil
		}
		if _, err := s.state.Update(ctx, key, val, rev); errors.Is(err, queue.ErrConflict) {
			continue
		} else if err != nil {
			return fmt.Errorf("record resolve %s: %w", key, err)
		}
		return nil
	}
	return fmt.Errorf("record resolve %s: too much contention", key)
}

// ResolvedError is why a run did not start: its incident resolved first.
type ResolvedError struct {
	At    time.Time
	Event string
}

func (e *ResolvedError) Error() string {
	return fmt.Sprintf("the incident resolved (%s at %s) before diagnostics ran; nothing was run on the host", e.Event, e.At.Format(time.RFC3339))
}

// resolvedFirst returns a *ResolvedError when t's incident resolved after
// t was received, nil when it did not, or the error reading the state.
func (r *Runner) resolvedFirst(ctx context.Context, t hooks.Trigger) error {
	raw, _, err := r.state.Get(ctx, resolvedKey(t))
	if errors.Is(err, queue.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read resolve of %s: %w", t.Incident.ID, err)
	}
	var res resolution
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decode resolve of %s: %w", t.Incident.ID, err)
	}
	if res.At.Before(t.ReceivedAt) {
		return nil
	}
	return &ResolvedError{At: res.At, Event: res.Event}
}

// runScope is the incident as the run state knows it: the incident, or
// for a request to run again, that request (so the runs start anew).
func runScope(t hooks.Trigger) string {
	if t.Again {
		return t.Incident.ID + "/again/" + t.DeliveryID
	}
	return t.Incident.ID
}
