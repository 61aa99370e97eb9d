package runner

import (
	"context"

	"github.com/firstlook/firstlook/evidence"
)

// Publisher takes a run's summary where responders read it: the PagerDuty
// incident, the incident's Slack channel.
//
// Publishing is at least once underneath and exactly once in effect. The
// runner records in the per-incident state, per run and per sink, that a
// publish is about to happen and that it happened. When it finds an
// attempt recorded but not its success (the worker died in between), it
// calls Publish again with again set: the publisher must then look for
// Report.Marker at the sink and post only if the earlier attempt did not
// land.
type Publisher interface {
	// Sink names the publisher in the per-incident state ("pagerduty",
	// "slack"); it must not change between versions.
	Sink() string
	// Publish posts rep. A returned error is retried later (the job is
	// delivered again) unless errors.Is(err, ErrPermanent).
	Publish(ctx context.Context, rep evidence.Report, st IncidentState, again bool) error
}

// IncidentState is per-incident key-value state a publisher may keep, such
// as the incident's Slack channel id. Runs of one incident may publish
// concurrently (several hosts, several playbooks), so Create is
// compare-and-set: it fails with ErrStateExists when another run got there
// first.
type IncidentState interface {
	// Get returns the value under name, or "" when there is none.
	Get(ctx context.Context, name string) (string, error)
	// Create stores value under name unless name is set.
	Create(ctx context.Context, name, value string) error
}
