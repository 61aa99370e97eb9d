// Package playbooks is the YAML language SREs write to tell firstlook what
// to run when an incident fires: the schema, a loader whose errors carry
// file:line:column and say what to do, the matcher that picks playbooks for
// a hooks.Trigger, safe templating, and a JSON Schema for editors.
//
// Alert text is attacker-controlled. It may select a playbook, never write
// a command: every value a template interpolates is shell-quoted, templates
// may only name a field, and each run command and script is parsed as shell
// at load time so that a template in a place where quoting would not hold
// (inside quotes, here-documents, arithmetic, the command name, the
// arguments of eval or sh -c, …) is a load error, not an incident.
//
// The language is documented in docs/playbooks.md.
package playbooks

import (
	"regexp"
	"time"
)

// Defaults and limits of the language. They are part of the documented
// language (docs/playbooks.md) and of the JSON Schema.
const (
	// DefaultTimeout bounds a whole playbook run on one host.
	DefaultTimeout = 5 * time.Minute
	// MaxTimeout is the longest playbook timeout accepted: firstlook is
	// for the first look, and a run holds a worker.
	MaxTimeout = time.Hour
	// DefaultStepTimeout bounds one step.
	DefaultStepTimeout = 30 * time.Second
	// DefaultMaxBytes is how much of a fetched file's tail a fetch step
	// keeps.
	DefaultMaxBytes = 1 << 20
	// MaxSize is the largest max_bytes or max_output accepted: a bundle is
	// held in memory and posted to chat.
	MaxSize = 64 << 20
	// DefaultMaxHosts caps how many hosts one playbook runs on per
	// incident.
	DefaultMaxHosts = 10
	// DefaultConcurrency is how many of those hosts are worked on at once.
	DefaultConcurrency = 5
	// DefaultEvent is the event a playbook matches when match.events is
	// not given.
	DefaultEvent = "incident.triggered"
	// MaxLine is the longest command line Render produces. Linux refuses a
	// single exec argument longer than MAX_ARG_STRLEN (32 pages, 128 KiB),
	// and sshd hands the line to the login shell as one: `$SHELL -c line`.
	MaxLine = 128<<10 - 1
)

// Playbook is one loaded, validated playbook file.
type Playbook struct {
	// Name is unique in a Set and matches [a-z0-9][a-z0-9_.-]*.
	Name        string
	Description string
	// File is the path the playbook was loaded from, as given to Load (or
	// the path within the fs.FS for LoadFS).
	File string
	// SHA256 is the hex digest of the file's bytes, so evidence names the
	// exact playbook that ran.
	SHA256 string
	// Pos is where the playbook's mapping starts in File.
	Pos     Pos
	Match   Match
	Targets Targets
	// Params are the playbook-level template parameters and their
	// defaults. Step params override them, and Data.Params (per-service
	// overrides from the config) override both.
	Params map[string]string
	// Timeout bounds the whole run on one host.
	Timeout time.Duration
	// Parallel runs the steps as concurrent sessions instead of one after
	// the other. Parallel playbooks have no when or continue_on_error.
	Parallel bool
	Steps    []Step
}

// Pos is a 1-based position in a playbook file.
type Pos struct {
	Line, Column int
}

// StepKind says what a step does.
type StepKind int

// The kinds of step.
const (
	// Run sends a command line to the host's login shell.
	Run StepKind = iota + 1
	// Script sends a multi-line script to `sh -s` on stdin.
	Script
	// Fetch keeps the tail of a remote file as an artifact.
	Fetch
)

// String returns the YAML key of the kind: "run", "script" or "fetch".
func (k StepKind) String() string {
	switch k {
	case Run:
		return "run"
	case Script:
		return "script"
	case Fetch:
		return "fetch"
	}
	return "unknown"
}

// Step is one step of a playbook.
type Step struct {
	// Name is unique in the playbook; when conditions refer to it.
	Name string
	Kind StepKind
	// Source is the step's run command, script or fetch path as written,
	// before templating.
	Source  string
	Timeout time.Duration
	// Sudo runs the step through `sudo -n` (never prompting).
	Sudo bool
	// MaxOutput caps each captured stream in bytes; 0 means the runner's
	// default. For fetch steps it equals MaxBytes.
	MaxOutput int64
	// MaxBytes is how much of the file's tail a fetch step keeps.
	MaxBytes int64
	// ContinueOnError lets later steps run after this one fails.
	ContinueOnError bool
	// When, if not nil, is the condition over earlier steps' exit codes
	// under which the step runs.
	When *When
	// Params are the step's own template parameters; they override the
	// playbook's.
	Params map[string]string
	// Findings are what the step's output can say is wrong, evaluated by
	// the runner on the captured, redacted stdout (Playbook.Findings).
	Findings []FindingRule
	// Pos is where the step's mapping starts in the playbook's file.
	Pos Pos

	tmpl *stepTemplate
}

// Match is the conditions a trigger must meet for a playbook to run. Every
// condition given must hold; an empty condition holds for any trigger.
type Match struct {
	// Events are event types; a playbook without match.events matches
	// DefaultEvent only.
	Events []string
	// Services are service names or ids, compared exactly.
	Services []string
	// Urgency and Priority are compared ignoring case.
	Urgency  []string
	Priority []string
	// Title, if not nil, must match somewhere in the incident title.
	Title *regexp.Regexp
	// Labels must all be present on the trigger with exactly these values.
	Labels map[string]string
}

// TargetKind says how a playbook's hosts are chosen.
type TargetKind int

// The kinds of target.
const (
	// TargetIncident is the host(s) the incident names.
	TargetIncident TargetKind = iota + 1
	// TargetGroup is an inventory group.
	TargetGroup
	// TargetSelector is the inventory hosts carrying all the given labels.
	TargetSelector
)

// String returns the YAML key of the kind.
func (k TargetKind) String() string {
	switch k {
	case TargetIncident:
		return "hosts"
	case TargetGroup:
		return "group"
	case TargetSelector:
		return "selector"
	}
	return "unknown"
}

// Targets says which hosts a playbook runs on. The runner resolves it
// against the inventory; only inventory hosts are ever reached.
type Targets struct {
	Kind TargetKind
	// Group is the inventory group for TargetGroup.
	Group string
	// Selector is the inventory labels for TargetSelector.
	Selector map[string]string
	// MaxHosts caps the hosts the playbook runs on; the runner reports the
	// rest as not run rather than silently dropping them.
	MaxHosts int
	// Concurrency is how many hosts are worked on at once.
	Concurrency int
}
