package evidence

import (
	"context"
	"errors"
)

// Publisher takes a run's summary where responders read it: the PagerDuty
// incident, the incident's Slack channel, a webhook. Implementations are
// sibling packages (evidence/pagerduty, evidence/slack, evidence/webhook);
// the runner calls them, and every one passes the contract suite in
// evidence/sinktest.
//
// Publishing is at least once underneath and exactly once in effect. The
// runner records in the per-incident state, per run and per sink, that a
// publish is about to happen and that it happened. When it finds an
// attempt recorded but not its success (the worker died in between), it
// calls Publish again with again set: the publisher must then look for
// Report.Marker at the sink and post only if the earlier attempt did not
// land. A publisher whose sink cannot be searched says so in its doc and
// carries the marker for the receiver to deduplicate on.
type Publisher interface {
	// Sink names the publisher in the per-incident state ("pagerduty",
	// "slack"); it must not change between versions.
	Sink() string
	// Publish posts rep. A returned error is retried later (the job is
	// delivered again) unless errors.Is(err, ErrPermanent).
	Publish(ctx context.Context, rep Report, st IncidentState, again bool) error
}

// IncidentState is per-incident key-value state a publisher may keep, such
// as the incident's Slack channel id; the runner provides it. Runs of one
// incident may publish concurrently (several hosts, several playbooks), so
// Create is compare-and-set: it fails with ErrStateExists when another run
// got there first.
type IncidentState interface {
	// Get returns the value under name, or "" when there is none.
	Get(ctx context.Context, name string) (string, error)
	// Create stores value under name unless name is set.
	Create(ctx context.Context, name, value string) error
}

var (
	// ErrPermanent is wrapped by a Publish error that retrying cannot fix
	// (a revoked token, a missing scope, a channel the bot may not post
	// in, a report that cannot become a message): the runner records the
	// sink as failed and the job goes on. Every other error is retryable.
	ErrPermanent = errors.New("permanent")
	// ErrStateExists is IncidentState.Create's error for a name already
	// set.
	ErrStateExists = errors.New("incident state exists")
)
