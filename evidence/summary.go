package evidence

import "time"

// The sink-neutral pieces of a run's summary. Markdown and Text are built
// from them here; a sink that renders its own payload (evidence/slack's
// Block Kit, evidence/webhook's JSON) builds from the same pieces, so that
// every sink says the same thing.

// Outcome is how a run's steps went: "4/5 steps ok, 1 failed", or
// "diagnostics could not run".
func Outcome(m Manifest) string { return outcome(m) }

// StepsHeadline is a run's outcome without its findings:
// "linux-baseline on web-1: 4/5 steps ok".
func StepsHeadline(m Manifest) string { return stepsHeadline(m) }

// FanoutHeadline is a group run's outcome: "disk-full on group web: 20
// hosts, 19 ok, 1 differs", and the worst finding of any host. rep.Fanout
// must be set.
func FanoutHeadline(rep Report) string { return fanoutHeadline(rep) }

// RunDuration is how long a run took, or 0 when it did not start or end.
func RunDuration(m Manifest) time.Duration { return runDuration(m) }

// StepResult says how a step ended: "exit 0, 23ms", "timed out after 1s",
// "not run: step \"disk\" failed", "skipped: its condition did not hold".
func StepResult(st Step) string { return stepResult(st) }

// StepLines are the first meaningful lines of a step's output (and of its
// errors when it failed), each cut to a summary line's length.
func StepLines(b *Bundle, st Step) []string { return stepLines(b, st) }

// Footnote totals truncation and redaction across a run ("Output truncated
// in 1 stream(s): 3.0 KiB of 3.0 MiB kept. 1 secret(s) redacted."), or "".
func Footnote(m Manifest) string { return footnote(m) }

// Clip cuts s to at most n characters (runes), marking the cut with "…".
func Clip(s string, n int) string { return clip(s, n) }
