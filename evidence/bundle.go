// Package evidence owns what a run leaves behind: the Bundle (a manifest and
// one file per step's output), how it is laid out in a Store, and how it is
// summarised for people.
package evidence

import (
	"time"
)

// ManifestSchema is the version of the manifest.json layout.
const ManifestSchema = 1

// Status says how a run ended.
type Status string

const (
	// StatusOK: every step ran and exited 0.
	StatusOK Status = "ok"
	// StatusFailed: the run happened but at least one step failed, timed out
	// or was cut off.
	StatusFailed Status = "failed"
	// StatusNotStarted: the run could not start (unknown host, bastion down,
	// host-key mismatch, …); Manifest.Error says why.
	StatusNotStarted Status = "not_started"
)

// Bundle is one run's evidence: the manifest and the step outputs it names.
type Bundle struct {
	Manifest Manifest
	// Files holds each output file's content by the name the manifest uses.
	Files map[string][]byte
}

// Manifest is manifest.json: everything needed to know what ran, where,
// and what came back, without trusting anything else in the bundle.
type Manifest struct {
	Schema           int       `json:"schema"`
	RunID            string    `json:"run_id"`
	FirstlookVersion string    `json:"firstlook_version"`
	Incident         Incident  `json:"incident"`
	Host             Host      `json:"host"`
	Playbook         Playbook  `json:"playbook"`
	Status           Status    `json:"status"`
	Error            string    `json:"error,omitempty"`
	StartedAt        time.Time `json:"started_at"`
	EndedAt          time.Time `json:"ended_at"`
	Steps            []Step    `json:"steps"`
	// Group names the hosts this run was one of ("group web",
	// "selector role=web"); empty for a single-host run. The run's page
	// links to the group's (GroupPrefix).
	Group string `json:"group,omitempty"`
}

// Incident identifies the incident the run was for.
type Incident struct {
	Source   string `json:"source"`
	ID       string `json:"id"`
	Number   int    `json:"number,omitempty"`
	Title    string `json:"title"`
	URL      string `json:"url,omitempty"`
	Service  string `json:"service,omitempty"`
	Event    string `json:"event"`
	Delivery string `json:"delivery_id,omitempty"`
	// Note is what the alert source said the run must report: who asked
	// for it again, alerts the sender left out.
	Note string `json:"note,omitempty"`
}

// Host is the host the run targeted, as the inventory describes it, or as
// the incident named it when the inventory did not know it.
type Host struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	User    string `json:"user,omitempty"`
	Bastion string `json:"bastion,omitempty"`
}

// Playbook identifies the playbook exactly: SHA256 is of the file's bytes.
type Playbook struct {
	Name   string `json:"name"`
	File   string `json:"file,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
}

// Step is one step as it ran.
type Step struct {
	Name string `json:"name"`
	// Command is the command line exactly as sent to the host.
	Command string `json:"command"`
	// Script is a script step's rendered script, sent on the command's
	// stdin (Command is then only the interpreter, "sh -s"), redacted
	// like the output.
	Script string `json:"script,omitempty"`
	// ExitCode is the remote exit status; -1 when there was none (timeout,
	// killed by a signal, connection lost).
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
	// Skipped is true when the step did not run: its condition did not
	// hold, or an earlier step failed (Error says which).
	Skipped   bool      `json:"skipped,omitempty"`
	Error     string    `json:"error,omitempty"`
	StartedAt time.Time `json:"started_at"`
	// DurationMS is the step's wall time in milliseconds.
	DurationMS int64  `json:"duration_ms"`
	Stdout     Output `json:"stdout"`
	Stderr     Output `json:"stderr"`
	// Redactions counts the secrets replaced in this step's output,
	// command and error before anything was stored or sent.
	Redactions int `json:"redactions"`
	// Findings are what the step's finding rules found in its redacted
	// stdout, most severe first.
	Findings []Finding `json:"findings,omitempty"`
	// Values are, by finding rule, the most extreme value the rule saw,
	// finding or not: what a fan-out compares across hosts.
	Values map[string]float64 `json:"values,omitempty"`
}

// Severity ranks a finding: info, warn or crit.
type Severity string

// The severities.
const (
	SeverityInfo Severity = "info"
	SeverityWarn Severity = "warn"
	SeverityCrit Severity = "crit"
)

// Rank orders severities: 0 for an unknown one, then info, warn, crit.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityWarn:
		return 2
	case SeverityCrit:
		return 3
	}
	return 0
}

// Finding is one answer a step's output gave: "/ 97% full, 1.2 GiB free".
type Finding struct {
	// Rule is the name of the playbook's finding rule.
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`
	// Value is the number the rule compared with its thresholds.
	Value *float64 `json:"value,omitempty"`
}

// OK reports whether the step ran to completion and exited 0, or was
// skipped because its condition did not hold.
func (s Step) OK() bool {
	if s.Skipped {
		return s.Error == ""
	}
	return s.ExitCode == 0 && !s.TimedOut && s.Error == ""
}

// Output describes one captured stream.
type Output struct {
	// File is the bundle file holding the kept bytes; empty when the
	// stream was empty.
	File string `json:"file,omitempty"`
	// Bytes is how many bytes the stream produced in all, counted before
	// redaction.
	Bytes int64 `json:"bytes"`
	// Kept is the size of File: the bytes kept (at most the cap), counted
	// after redaction, so it may differ from the kept part of Bytes when
	// a secret was replaced.
	Kept int64 `json:"kept"`
	// Truncated is true when Bytes > Kept.
	Truncated bool `json:"truncated"`
	// SHA256 is the hex digest of File's content.
	SHA256 string `json:"sha256,omitempty"`
}
