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
	// Bytes is how many bytes the stream produced in all.
	Bytes int64 `json:"bytes"`
	// Kept is how many of them are in File (at most the cap).
	Kept int64 `json:"kept"`
	// Truncated is true when Bytes > Kept.
	Truncated bool `json:"truncated"`
	// SHA256 is the hex digest of File's content.
	SHA256 string `json:"sha256,omitempty"`
}
