package runner

import (
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
)

// Events is told what the runner decides and does, at the boundaries where
// it happens: metrics and the audit log are built on it. Calls come from
// several workers at once; an implementation must be safe for concurrent
// use and must not block.
type Events interface {
	// RunStarted: a run begins executing on its host.
	RunStarted(t hooks.Trigger, run Run)
	// RunRefused: a planned run does not execute: reason says why
	// ("already done", "held by another job", "not started: ...").
	RunRefused(t hooks.Trigger, run Run, reason string)
	// RunStored: a run's bundle is stored, redacted.
	RunStored(t hooks.Trigger, b *evidence.Bundle)
	// JobDone: a job left the worker: "acked", "retried", "requeued"
	// (shutdown), "dropped" (exhausted), "killed" (tests).
	JobDone(t hooks.Trigger, outcome string)
	// Published: one Publish call to sink ended; again is set when it
	// repeats an attempt that may have landed, err is its result.
	Published(sink string, again bool, took time.Duration, err error)
}

// Run outcomes of RunRefused, for metrics that count by reason.
const (
	RefusedDone       = "already done"
	RefusedBusy       = "held by another job"
	RefusedNotStarted = "not started"
)

// nopEvents is Events when Options.Events is nil.
type nopEvents struct{}

func (nopEvents) RunStarted(hooks.Trigger, Run)                {}
func (nopEvents) RunRefused(hooks.Trigger, Run, string)        {}
func (nopEvents) RunStored(hooks.Trigger, *evidence.Bundle)    {}
func (nopEvents) JobDone(hooks.Trigger, string)                {}
func (nopEvents) Published(string, bool, time.Duration, error) {}
