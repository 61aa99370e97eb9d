package playbooks

import (
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file is the playbook language: every key at every level, with its
// documentation, its JSON Schema and its decoder. decode.go has the
// machinery, schema.go turns these tables into the JSON Schema, and
// load.go checks what spans several keys.

const (
	namePattern  = `^[a-z0-9][a-z0-9_.-]*$`
	paramPattern = `^[A-Za-z_][A-Za-z0-9_]*$`
	maxNameLen   = 100
)

var (
	nameRE  = regexp.MustCompile(namePattern)
	paramRE = regexp.MustCompile(paramPattern)
)

// playbookDraft is a playbook being decoded, with the nodes the checks
// that span several keys report at.
type playbookDraft struct {
	pb      Playbook
	node    *yaml.Node
	entries map[string]entry
	steps   []*stepDraft
}

type stepDraft struct {
	step    Step
	where   string
	node    *yaml.Node
	entries map[string]entry
	kinds   []string // which of run, script, fetch were given
	// unknownKeys is set when the step had an unknown key.
	unknownKeys bool
	text        *yaml.Node // the value of the one given
	conds       []*yaml.Node
	findings    []*findingDraft
}

type findingDraft struct {
	rule    FindingRule
	where   string
	node    *yaml.Node
	entries map[string]entry
	// thresholdNodes are the values of above.<severity> and
	// below.<severity>, for errors about them.
	thresholdNodes map[string]*yaml.Node
}

type conditionDraft struct {
	cond Condition
}

var playbookKeys = []key[playbookDraft]{
	{
		name: "name",
		doc:  "Unique name of the playbook across the set: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.",
		schema: func() jsonObject {
			return jsonObject{"type": "string", "pattern": namePattern, "maxLength": maxNameLen}
		},
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			if s, ok := d.nonEmpty(where, v); ok {
				if !nameRE.MatchString(s) || len(s) > maxNameLen {
					d.fail(v, where, "%q is not a valid name; use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, e.g. %q", s, slug(s))
				}
				t.pb.Name = s
			}
		},
	},
	{
		name:   "description",
		doc:    "What the playbook looks at, for people.",
		schema: func() jsonObject { return jsonObject{"type": "string"} },
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			t.pb.Description, _ = d.str(where, v)
		},
	},
	{
		name:   "match",
		doc:    "Which triggers run the playbook. Every condition given must hold; several playbooks may match one incident and all run. Without match, the playbook runs on incident.triggered for any incident.",
		schema: func() jsonObject { return ref("match") },
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			decodeMapping(d, where, v, matchKeys, &t.pb.Match)
		},
	},
	{
		name:   "targets",
		doc:    "Which hosts the playbook runs on: \"incident\" (the default: the host(s) the incident names) or a mapping with one of hosts, group or selector.",
		schema: func() jsonObject { return ref("targets") },
		decode: decodeTargets,
	},
	{
		name:   "params",
		doc:    "Template parameters and their defaults, read as {{ .Params.name }}. Steps may override them; per-service overrides from the config win over both.",
		schema: paramsSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			t.pb.Params = d.params(where, v)
		},
	},
	{
		name:   "timeout",
		doc:    fmt.Sprintf("Timeout of the whole playbook on one host, e.g. 90s or 2m; default %s, at most %s.", fmtDuration(DefaultTimeout), fmtDuration(MaxTimeout)),
		schema: durationSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			if to, ok := d.duration(where, v, MaxTimeout); ok {
				t.pb.Timeout = to
			}
		},
	},
	{
		name:   "parallel",
		doc:    "Run the steps as concurrent sessions instead of one after the other. Parallel steps cannot use when or continue_on_error.",
		schema: func() jsonObject { return jsonObject{"type": "boolean"} },
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			t.pb.Parallel, _ = d.boolean(where, v)
		},
	},
	{
		name:   "steps",
		doc:    "The steps, at least one. Each has a name and exactly one of run, script or fetch.",
		schema: func() jsonObject { return jsonObject{"type": "array", "minItems": 1, "items": ref("step")} },
		decode: decodeSteps,
	},
	{
		name: "follow_ups",
		doc:  "Playbooks a responder may want to run next, by name: each run's Slack summary offers them as \"Run <playbook>\" buttons on the same host. They run only when pressed, by someone the /firstlook command allows to run.",
		schema: func() jsonObject {
			return jsonObject{"type": "array", "items": jsonObject{"type": "string", "pattern": namePattern, "maxLength": maxNameLen}}
		},
		decode: func(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
			names, ok := d.strList(where, v)
			if !ok {
				return
			}
			for i, n := range names {
				if !nameRE.MatchString(n) || len(n) > maxNameLen {
					d.fail(v, fmt.Sprintf("%s[%d]", where, i), "%q is not a playbook name", n)
				}
			}
			t.pb.FollowUps = names
		},
	},
}

var matchKeys = []key[Match]{
	{
		name:   "events",
		doc:    "Event types that run the playbook, e.g. [incident.triggered, incident.escalated]; default [" + DefaultEvent + "].",
		schema: stringListSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *Match) { t.Events, _ = d.strList(where, v) },
	},
	{
		name:   "services",
		doc:    "Service names or ids, compared exactly.",
		schema: stringListSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *Match) { t.Services, _ = d.strList(where, v) },
	},
	{
		name:   "urgency",
		doc:    "Incident urgencies, e.g. [high]; compared ignoring case.",
		schema: stringListSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *Match) { t.Urgency, _ = d.strList(where, v) },
	},
	{
		name:   "priority",
		doc:    "Incident priorities, e.g. [P1, P2]; compared ignoring case.",
		schema: stringListSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *Match) { t.Priority, _ = d.strList(where, v) },
	},
	{
		name:   "title",
		doc:    "Go regular expression (RE2 syntax) that must match somewhere in the incident title, e.g. \"(?i)disk|inode\".",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *Match) {
			s, ok := d.nonEmpty(where, v)
			if !ok {
				return
			}
			re, err := regexp.Compile(s)
			if err != nil {
				d.fail(v, where, "invalid regular expression: %v (Go RE2 syntax: https://pkg.go.dev/regexp/syntax)", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
				return
			}
			t.Title = re
		},
	},
	{
		name:   "labels",
		doc:    "Labels the trigger must carry, each with exactly this value.",
		schema: stringMapSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *Match) {
			m, ok := d.strMap(where, v)
			if ok && len(m) == 0 {
				d.fail(v, where, "an empty mapping matches anything; remove the key")
			}
			t.Labels = m
		},
	},
}

var targetKeys = []key[Targets]{
	{
		name:   "hosts",
		doc:    "\"incident\": the host(s) the incident names, resolved through the inventory.",
		schema: func() jsonObject { return jsonObject{"const": "incident"} },
		decode: func(d *decoder, where string, v *yaml.Node, t *Targets) {
			if s, ok := d.str(where, v); ok {
				if s != "incident" {
					d.fail(v, where, "only \"incident\" is supported; to name inventory hosts use group: <name> or selector: {label: value}")
				}
				t.Kind = TargetIncident
			}
		},
	},
	{
		name:   "group",
		doc:    "An inventory group: the playbook runs on its hosts.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *Targets) {
			if s, ok := d.nonEmpty(where, v); ok {
				t.Kind, t.Group = TargetGroup, s
			}
		},
	},
	{
		name:   "selector",
		doc:    "Inventory labels: the playbook runs on the inventory hosts that carry all of them.",
		schema: func() jsonObject { o := stringMapSchema(); o["minProperties"] = 1; return o },
		decode: func(d *decoder, where string, v *yaml.Node, t *Targets) {
			m, ok := d.strMap(where, v)
			if ok && len(m) == 0 {
				d.fail(v, where, "an empty selector would select every host; name at least one label")
			}
			t.Kind, t.Selector = TargetSelector, m
		},
	},
	{
		name:   "max_hosts",
		doc:    fmt.Sprintf("At most this many hosts per incident (default %d); the rest are reported as not run.", DefaultMaxHosts),
		schema: func() jsonObject { return jsonObject{"type": "integer", "minimum": 1, "maximum": 10000} },
		decode: func(d *decoder, where string, v *yaml.Node, t *Targets) {
			t.MaxHosts, _ = d.integer(where, v, 1, 10000)
		},
	},
	{
		name:   "concurrency",
		doc:    fmt.Sprintf("How many hosts are worked on at once (default %d).", DefaultConcurrency),
		schema: func() jsonObject { return jsonObject{"type": "integer", "minimum": 1, "maximum": 1000} },
		decode: func(d *decoder, where string, v *yaml.Node, t *Targets) {
			t.Concurrency, _ = d.integer(where, v, 1, 1000)
		},
	},
}

var stepKeys = []key[stepDraft]{
	{
		name:   "name",
		doc:    "Name of the step, unique in the playbook; when conditions refer to it.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1, "maxLength": maxNameLen} },
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) {
			t.step.Name, _ = d.oneLineName(where, v, "step")
		},
	},
	{
		name:   "run",
		doc:    "A command line for the host's login shell, e.g. `journalctl -u {{ .Params.unit }} -n 200`. Templated values are shell-quoted.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: stepText(Run),
	},
	{
		name:   "script",
		doc:    "A multi-line POSIX sh script, sent to `sh -s` on stdin. Templated values are shell-quoted.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: stepText(Script),
	},
	{
		name:   "fetch",
		doc:    "Absolute path of a remote file whose tail the step keeps as an artifact (at most max_bytes). The path is literal: no globs, ~ or $VARS.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: stepText(Fetch),
	},
	{
		name:   "timeout",
		doc:    fmt.Sprintf("Timeout of the step, e.g. 10s; default %s, at most the playbook's timeout.", fmtDuration(DefaultStepTimeout)),
		schema: durationSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) {
			if to, ok := d.duration(where, v, MaxTimeout); ok {
				t.step.Timeout = to
			}
		},
	},
	{
		name:   "sudo",
		doc:    "Run the step as root through `sudo -n` (never prompts; the host's sudoers must allow it without a password).",
		schema: func() jsonObject { return jsonObject{"type": "boolean"} },
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) { t.step.Sudo, _ = d.boolean(where, v) },
	},
	{
		name:   "max_output",
		doc:    "Cap on each captured stream (stdout, stderr) in bytes, e.g. 256KiB; default: the runner's. Not for fetch steps (use max_bytes).",
		schema: sizeSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) { t.step.MaxOutput, _ = d.size(where, v) },
	},
	{
		name:   "max_bytes",
		doc:    fmt.Sprintf("Fetch steps only: how much of the file's tail to keep, e.g. 512KiB; default %d MiB.", DefaultMaxBytes>>20),
		schema: sizeSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) { t.step.MaxBytes, _ = d.size(where, v) },
	},
	{
		name:   "continue_on_error",
		doc:    "Let later steps run when this one fails (default false: a failure skips the later steps that have no when).",
		schema: func() jsonObject { return jsonObject{"type": "boolean"} },
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) {
			t.step.ContinueOnError, _ = d.boolean(where, v)
		},
	},
	{
		name: "when",
		doc:  "Run the step only if a condition over earlier steps holds: {step: df, exit_code: [0]} or {step: df, failed: true}, or a list of such conditions that must all hold.",
		schema: func() jsonObject {
			return jsonObject{"oneOf": []any{ref("condition"), jsonObject{"type": "array", "minItems": 1, "items": ref("condition")}}}
		},
		decode: decodeWhen,
	},
	{
		name:   "params",
		doc:    "Template parameters of this step; they override the playbook's.",
		schema: paramsSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *stepDraft) { t.step.Params = d.params(where, v) },
	},
	{
		name:   "findings",
		doc:    "What the step's output says is wrong: rules evaluated by firstlook on the captured, redacted stdout after the step ran (never on the host). Each has a name, a pattern with named captures, a severity or thresholds on a value, and a message over the captures.",
		schema: func() jsonObject { return jsonObject{"type": "array", "minItems": 1, "items": ref("finding")} },
		decode: decodeFindings,
	},
}

var findingKeys = []key[findingDraft]{
	{
		name:   "name",
		doc:    "Name of the finding, unique in the step; when conditions and fan-out comparisons refer to it.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1, "maxLength": maxNameLen} },
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) {
			t.rule.Name, _ = d.oneLineName(where, v, "finding")
		},
	},
	{
		name:   "pattern",
		doc:    "Go regular expression (RE2) matched against the step's whole stdout; use (?m) so ^ and $ match at each line. Every match is a candidate finding; named captures (?P<name>...) are the values message and value read.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) {
			s, ok := d.nonEmpty(where, v)
			if !ok {
				return
			}
			re, err := regexp.Compile(s)
			if err != nil {
				d.fail(v, where, "invalid regular expression: %v (Go RE2 syntax: https://pkg.go.dev/regexp/syntax)", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
				return
			}
			t.rule.Pattern = re
		},
	},
	{
		name:   "severity",
		doc:    "info, warn or crit: every match is a finding of this severity. Give severity, or above/below with value.",
		schema: func() jsonObject { return jsonObject{"enum": []any{"info", "warn", "crit"}} },
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) {
			if s, ok := d.nonEmpty(where, v); ok {
				sev, ok := ParseSeverity(s)
				if !ok {
					d.fail(v, where, "unknown severity %q; use info, warn or crit", s)
				}
				t.rule.Severity = sev
			}
		},
	},
	{
		name:   "value",
		doc:    "The named capture compared with above or below, read as a number with an optional unit (97, 97%, 1.5G, 41GiB, 120ms); fan-out compares it across hosts.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) { t.rule.Value, _ = d.nonEmpty(where, v) },
	},
	{
		name:   "above",
		doc:    "Thresholds by severity, e.g. {warn: 85, crit: fs_crit_pct}: the finding has the highest severity whose threshold the value reaches (>=). A threshold is a number or the name of a param with a numeric default, which a service can override.",
		schema: thresholdSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) {
			t.rule.Above = d.thresholds(where, "above", v, t)
		},
	},
	{
		name:   "below",
		doc:    "Like above, for values that are bad when low (days left, free bytes): the finding has the highest severity whose threshold the value is at or under (<=).",
		schema: thresholdSchema,
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) {
			t.rule.Below = d.thresholds(where, "below", v, t)
		},
	},
	{
		name:   "message",
		doc:    "text/template over the named captures (and .threshold), checked at load time: \"{{ .mount }} {{ .use }}% full, {{ .avail }} free\". Functions: bytes (\"41G\" or 44040192 → \"41 GiB\"), kib (a count of KiB → \"41 GiB\").",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *findingDraft) {
			t.rule.Message, _ = d.nonEmpty(where, v)
		},
	},
}

func thresholdSchema() jsonObject {
	props := jsonObject{}
	for _, sev := range severityNames {
		props[sev] = jsonObject{
			"description": "Threshold of severity " + sev + ": a number, or the name of a param with a numeric default.",
			"oneOf":       []any{jsonObject{"type": "number"}, jsonObject{"type": "string", "pattern": paramPattern}},
		}
	}
	return jsonObject{"type": "object", "minProperties": 1, "properties": props, "additionalProperties": false}
}

func decodeFindings(d *decoder, where string, v *yaml.Node, t *stepDraft) {
	v = resolve(v)
	if v.Kind != yaml.SequenceNode {
		d.fail(v, where, "want a list of findings, got %s", kindName(v))
		return
	}
	if len(v.Content) == 0 {
		d.fail(v, where, "an empty list; give at least one finding or remove findings")
		return
	}
	for i, item := range v.Content {
		fd := &findingDraft{where: fmt.Sprintf("%s[%d]", where, i), node: resolve(item)}
		unknown := d.unknownKeys
		fd.entries = decodeMapping(d, fd.where, item, findingKeys, fd)
		if fd.entries == nil {
			continue
		}
		fd.rule.Pos = Pos{fd.node.Line, fd.node.Column}
		if d.unknownKeys == unknown {
			for _, k := range []string{"name", "pattern", "message"} {
				if _, ok := fd.entries[k]; !ok {
					d.fail(fd.node, fd.where, "missing %s: a finding needs name, pattern and message", k)
				}
			}
		}
		t.findings = append(t.findings, fd)
	}
}

// thresholds decodes {info|warn|crit: number or param name}.
func (d *decoder) thresholds(where, key string, v *yaml.Node, t *findingDraft) map[Severity]Threshold {
	v = resolve(v)
	if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
		d.fail(v, where, "want a mapping of severity to threshold, e.g. {warn: 85, crit: 95}, got %s", kindName(v))
		return nil
	}
	out := map[Severity]Threshold{}
	if t.thresholdNodes == nil {
		t.thresholdNodes = map[string]*yaml.Node{}
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := resolve(v.Content[i]), resolve(v.Content[i+1])
		sev, ok := ParseSeverity(k.Value)
		if k.Kind != yaml.ScalarNode || !ok {
			d.fail(k, where, "unknown severity %q; use info, warn or crit", k.Value)
			continue
		}
		if _, dup := out[sev]; dup {
			d.fail(k, where, "duplicate severity %q; remove one", k.Value)
			continue
		}
		t.thresholdNodes[key+"."+sev.String()] = val
		s, ok := d.str(join(where, k.Value), val)
		if !ok {
			continue
		}
		// Param names start with a letter or _, numbers never do.
		if paramRE.MatchString(s) {
			out[sev] = Threshold{Param: s}
		} else if n, ok := ParseNumber(s); ok {
			out[sev] = Threshold{Value: n}
		} else {
			d.fail(val, join(where, k.Value), "%q is neither a number nor a param name", s)
		}
	}
	return out
}

var conditionKeys = []key[conditionDraft]{
	{
		name:   "step",
		doc:    "Name of an earlier step.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *conditionDraft) { t.cond.Step, _ = d.nonEmpty(where, v) },
	},
	{
		name: "exit_code",
		doc:  "The condition holds if the step exited with this code or one of these codes (0-255).",
		schema: func() jsonObject {
			code := jsonObject{"type": "integer", "minimum": 0, "maximum": 255}
			return jsonObject{"oneOf": []any{code, jsonObject{"type": "array", "minItems": 1, "items": code}}}
		},
		decode: func(d *decoder, where string, v *yaml.Node, t *conditionDraft) {
			v = resolve(v)
			items := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				if len(v.Content) == 0 {
					d.fail(v, where, "an empty list never holds; list at least one exit code")
					return
				}
				items = v.Content
			}
			for _, item := range items {
				if n, ok := d.integer(where, item, 0, 255); ok {
					t.cond.ExitCodes = append(t.cond.ExitCodes, n)
				}
			}
		},
	},
	{
		name:   "failed",
		doc:    "true: the condition holds if the step failed (non-zero exit, timeout, error); false: if it exited 0.",
		schema: func() jsonObject { return jsonObject{"type": "boolean"} },
		decode: func(d *decoder, where string, v *yaml.Node, t *conditionDraft) {
			t.cond.Failed, _ = d.boolean(where, v)
		},
	},
	{
		name:   "finding",
		doc:    "The condition holds if the step raised this finding (one of its findings' names), at least at severity.",
		schema: func() jsonObject { return jsonObject{"type": "string", "minLength": 1} },
		decode: func(d *decoder, where string, v *yaml.Node, t *conditionDraft) {
			t.cond.Finding, _ = d.nonEmpty(where, v)
		},
	},
	{
		name:   "severity",
		doc:    "With finding: the least severity that counts (info, warn or crit); default info, any.",
		schema: func() jsonObject { return jsonObject{"enum": []any{"info", "warn", "crit"}} },
		decode: func(d *decoder, where string, v *yaml.Node, t *conditionDraft) {
			if s, ok := d.nonEmpty(where, v); ok {
				sev, ok := ParseSeverity(s)
				if !ok {
					d.fail(v, where, "unknown severity %q; use info, warn or crit", s)
				}
				t.cond.Severity = sev
			}
		},
	},
}

func decodeTargets(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
	v = resolve(v)
	t.pb.Targets.Kind = TargetIncident
	if v.Kind == yaml.ScalarNode && !isNull(v) {
		if v.Value != "incident" {
			d.fail(v, where, "unknown shorthand %q; write \"incident\", or a mapping such as {group: web} or {selector: {role: web}}", v.Value)
		}
		return
	}
	entries := decodeMapping(d, where, v, targetKeys, &t.pb.Targets)
	var kinds []string
	for _, k := range []string{"hosts", "group", "selector"} {
		if _, ok := entries[k]; ok {
			kinds = append(kinds, k)
		}
	}
	if len(kinds) > 1 {
		d.fail(entries[kinds[1]].key, where, "give one of hosts, group or selector, not %s", strings.Join(kinds, " and "))
	}
}

func decodeSteps(d *decoder, where string, v *yaml.Node, t *playbookDraft) {
	v = resolve(v)
	if v.Kind != yaml.SequenceNode {
		d.fail(v, where, "want a list of steps, got %s", kindName(v))
		return
	}
	if len(v.Content) == 0 {
		d.fail(v, where, "a playbook needs at least one step")
		return
	}
	for i, item := range v.Content {
		sd := &stepDraft{where: fmt.Sprintf("%s[%d]", where, i), node: resolve(item)}
		unknown := d.unknownKeys
		sd.entries = decodeMapping(d, sd.where, item, stepKeys, sd)
		sd.unknownKeys = d.unknownKeys > unknown
		sd.step.Pos = Pos{sd.node.Line, sd.node.Column}
		if sd.entries != nil {
			t.steps = append(t.steps, sd)
		}
	}
}

func stepText(kind StepKind) func(*decoder, string, *yaml.Node, *stepDraft) {
	return func(d *decoder, where string, v *yaml.Node, t *stepDraft) {
		t.kinds = append(t.kinds, kind.String())
		s, ok := d.nonEmpty(where, v)
		if !ok || len(t.kinds) > 1 {
			return
		}
		t.step.Kind, t.step.Source, t.text = kind, s, resolve(v)
	}
}

func decodeWhen(d *decoder, where string, v *yaml.Node, t *stepDraft) {
	v = resolve(v)
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		if len(v.Content) == 0 {
			d.fail(v, where, "an empty list; give at least one condition or remove when")
			return
		}
		items = v.Content
	}
	w := &When{}
	for i, item := range items {
		cw := where
		if v.Kind == yaml.SequenceNode {
			cw = fmt.Sprintf("%s[%d]", where, i)
		}
		var cd conditionDraft
		unknown := d.unknownKeys
		entries := decodeMapping(d, cw, item, conditionKeys, &cd)
		if entries == nil {
			continue
		}
		misspelt := d.unknownKeys > unknown // its error says what was meant
		stepEntry, hasStep := entries["step"]
		_, hasCode := entries["exit_code"]
		_, hasFailed := entries["failed"]
		_, hasFinding := entries["finding"]
		sevEntry, hasSeverity := entries["severity"]
		given := 0
		for _, b := range []bool{hasCode, hasFailed, hasFinding} {
			if b {
				given++
			}
		}
		switch {
		case !hasStep:
			if !misspelt {
				d.fail(resolve(item), cw, "needs step: the name of an earlier step")
			}
			continue
		case given > 1:
			d.fail(resolve(item), cw, "give exactly one of exit_code, failed or finding")
			continue
		case given == 0:
			if !misspelt {
				d.fail(resolve(item), cw, "give one of exit_code, failed or finding, e.g. {step: %s, exit_code: 0}", cd.cond.Step)
			}
			continue
		case hasSeverity && !hasFinding:
			d.fail(sevEntry.key, cw, "severity goes with finding: {step: %s, finding: <name>, severity: crit}", cd.cond.Step)
			continue
		}
		if hasFinding && cd.cond.Severity == 0 {
			cd.cond.Severity = Info
		}
		w.Conditions = append(w.Conditions, cd.cond)
		t.conds = append(t.conds, stepEntry.val)
	}
	t.step.When = w
}

// params decodes a params mapping: names usable as {{ .Params.name }}.
func (d *decoder) params(where string, v *yaml.Node) map[string]string {
	m, _ := d.strMap(where, v)
	v = resolve(v)
	if v.Kind == yaml.MappingNode {
		for i := 0; i < len(v.Content); i += 2 {
			k := resolve(v.Content[i])
			if k.Kind == yaml.ScalarNode && k.Value != "" && !paramRE.MatchString(k.Value) {
				d.fail(k, where, "%q is not a usable parameter name: templates read params as {{ .Params.name }}, so use letters, digits and _, e.g. %q", k.Value, identifier(k.Value))
				delete(m, k.Value)
			}
		}
	}
	return m
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// slug suggests a valid playbook name for s.
func slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-._")
	if out == "" {
		return "my-playbook"
	}
	return out
}

// identifier suggests a valid parameter name for s.
func identifier(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '_', i > 0 && r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// oneLineName decodes the name of a step or finding (what): non-empty, one
// line, at most maxNameLen characters.
func (d *decoder) oneLineName(where string, v *yaml.Node, what string) (string, bool) {
	s, ok := d.nonEmpty(where, v)
	if ok && (strings.ContainsFunc(s, isControl) || len(s) > maxNameLen) {
		d.fail(v, where, "a %s name must be one line of at most %d characters", what, maxNameLen)
	}
	return s, ok
}
