package playbooks

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// A step's findings answer "what is wrong" from its output. They are
// evaluated in Go, by the runner, on the captured and redacted stdout
// after the step ran: never on the host, and never with the host's tools.

// Severity ranks a finding. The zero value is no finding.
type Severity int

// The severities, least severe first.
const (
	Info Severity = iota + 1
	Warn
	Crit
)

var severityNames = []string{"info", "warn", "crit"}

// String returns the severity as a playbook writes it: "info", "warn" or
// "crit".
func (s Severity) String() string {
	if s >= Info && s <= Crit {
		return severityNames[s-1]
	}
	return "none"
}

// ParseSeverity reads "info", "warn" or "crit" (any case).
func ParseSeverity(s string) (Severity, bool) {
	i := slices.Index(severityNames, strings.ToLower(s))
	return Severity(i + 1), i >= 0
}

// maxFindingsPerRule caps how many findings one rule raises on one host:
// the most severe (then the most extreme) are kept.
const maxFindingsPerRule = 5

// maxMatches caps how many matches of a rule's pattern are looked at.
const maxMatches = 10000

// FindingRule is one finding a step declares: a pattern over its output,
// and either a fixed severity or thresholds on a named value.
type FindingRule struct {
	// Name is unique in the step; when conditions and fan-out
	// comparisons refer to it.
	Name string
	// Pattern is matched against the whole stdout (use (?m) for ^ and $
	// per line); each match is a candidate finding, its named captures
	// the values the message reads.
	Pattern *regexp.Regexp
	// Severity, when set, is the severity of every match.
	Severity Severity
	// Value names the capture compared with the thresholds; it is parsed
	// as a number with an optional unit (97, 97%, 1.5G, 41GiB, 120ms).
	Value string
	// Above holds a severity when the value is at least the threshold;
	// Below when it is at most. Thresholds are numbers or the names of
	// params, so a service can override them.
	Above, Below map[Severity]Threshold
	// Message is a text/template over the captures (and .threshold),
	// e.g. "{{ .mount }} {{ .use }}% full, {{ .avail }} free".
	Message string
	// Pos is where the rule's mapping starts in the playbook's file.
	Pos Pos

	tmpl *template.Template
}

// Threshold is a number, or the name of the param that holds it.
type Threshold struct {
	Param string
	Value float64
}

func (t Threshold) String() string {
	if t.Param != "" {
		return t.Param
	}
	return formatNumber(t.Value)
}

func (t Threshold) resolve(params map[string]string) (float64, error) {
	if t.Param == "" {
		return t.Value, nil
	}
	v, ok := ParseNumber(params[t.Param])
	if !ok {
		return 0, fmt.Errorf("threshold %s = %q is not a number", t.Param, params[t.Param])
	}
	return v, nil
}

// Finding is what a rule found in one step's output on one host.
type Finding struct {
	// Rule is the rule's name.
	Rule     string
	Severity Severity
	// Message is the rule's message rendered over the match.
	Message string
	// Value is the compared value, when the rule has one.
	Value    float64
	HasValue bool
}

// Measure is the most extreme value a rule with a value saw in one
// step's output, finding or not: what fan-out compares across hosts.
type Measure struct {
	Rule  string
	Value float64
}

// Findings evaluates step i's finding rules on its (redacted) stdout,
// with the per-service param overrides (as for Render). It returns the
// findings, most severe first, and each valued rule's most extreme value.
func (p *Playbook) Findings(i int, stdout []byte, overrides map[string]string) ([]Finding, []Measure) {
	s := &p.Steps[i]
	if len(s.Findings) == 0 {
		return nil, nil
	}
	params := p.stepParams(i, overrides)
	var out []Finding
	var measures []Measure
	for k := range s.Findings {
		f, m, ok := s.Findings[k].eval(stdout, params)
		out = append(out, f...)
		if ok {
			measures = append(measures, m)
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return cmp.Compare(b.Severity, a.Severity) })
	return out, measures
}

// stepParams are step i's params: the playbook's, the step's, and the
// overrides of declared names.
func (p *Playbook) stepParams(i int, overrides map[string]string) map[string]string {
	s := &p.Steps[i]
	params := make(map[string]string, len(p.Params)+len(s.Params))
	maps.Copy(params, p.Params)
	maps.Copy(params, s.Params)
	for k, v := range overrides {
		if _, declared := params[k]; declared {
			params[k] = v
		}
	}
	return params
}

func (r *FindingRule) eval(stdout []byte, params map[string]string) ([]Finding, Measure, bool) {
	type level struct {
		sev Severity
		at  float64
	}
	var levels []level
	below := len(r.Below) > 0
	var errs []Finding
	thresholds := r.Above
	if below {
		thresholds = r.Below
	}
	for sev, t := range thresholds {
		v, err := t.resolve(params)
		if err != nil {
			errs = append(errs, Finding{Rule: r.Name, Severity: Warn, Message: fmt.Sprintf("%s: %v; fix the params", r.Name, err)})
			continue
		}
		levels = append(levels, level{sev, v})
	}
	if len(errs) > 0 {
		return errs, Measure{}, false
	}
	slices.SortFunc(levels, func(a, b level) int { return cmp.Compare(b.sev, a.sev) })

	names := r.Pattern.SubexpNames()
	var found []Finding
	measure, measured := Measure{Rule: r.Name}, false
	for _, m := range r.Pattern.FindAllSubmatch(stdout, maxMatches) {
		caps := make(map[string]string, len(names))
		for j, n := range names {
			if n != "" {
				caps[n] = string(m[j])
			}
		}
		f := Finding{Rule: r.Name, Severity: r.Severity}
		if r.Value != "" {
			v, ok := ParseNumber(caps[r.Value])
			if !ok {
				continue // a header line, or "-": not a measurement
			}
			f.Value, f.HasValue = v, true
			if !measured || (below && v < measure.Value) || (!below && v > measure.Value) {
				measure.Value, measured = v, true
			}
			for _, l := range levels {
				if (below && v <= l.at) || (!below && v >= l.at) {
					f.Severity = l.sev
					caps["threshold"] = formatNumber(l.at)
					break
				}
			}
		}
		if f.Severity == 0 {
			continue
		}
		f.Message = r.render(caps)
		found = append(found, f)
	}
	slices.SortStableFunc(found, func(a, b Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 || !a.HasValue {
			return c
		}
		if below {
			return cmp.Compare(a.Value, b.Value)
		}
		return cmp.Compare(b.Value, a.Value)
	})
	if len(found) > maxFindingsPerRule {
		found = found[:maxFindingsPerRule]
	}
	return found, measure, measured
}

func (r *FindingRule) render(caps map[string]string) string {
	var b strings.Builder
	if err := r.tmpl.Execute(&b, caps); err != nil {
		return fmt.Sprintf("%s (message: %v)", r.Name, err)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// findingFuncs are the functions a finding's message may call, besides
// text/template's own.
var findingFuncs = template.FuncMap{
	// bytes writes a number of bytes (or "41G", "1.2GiB") for people:
	// "41 GiB".
	"bytes": func(s string) string {
		v, ok := ParseNumber(s)
		if !ok {
			return s
		}
		return HumanBytes(v)
	},
	// kib is bytes for a count of KiB (du -k, df -k).
	"kib": func(s string) string {
		v, ok := ParseNumber(s)
		if !ok {
			return s
		}
		return HumanBytes(v * 1024)
	},
}

// HumanBytes writes n bytes with a binary unit: "41 GiB", "1.2 GiB",
// "512 B".
func HumanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for math.Abs(n) >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 || math.Abs(n) >= 10 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

var numberRE = regexp.MustCompile(`^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ%]*)\s*$`)

// ParseNumber reads a number as tools print it: 97, 97%, 0.75, 1.5G,
// 41GiB, 512K, 10MB, 120ms, 3s. Size units are binary whether written K,
// KiB or KB (df -h and du -h mean 1024); time units are seconds; % and
// other units are dropped.
func ParseNumber(s string) (float64, bool) {
	m := numberRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	unit := strings.ToLower(m[2])
	switch unit {
	case "ms":
		return v / 1000, true
	case "us", "µs":
		return v / 1e6, true
	case "s", "sec", "secs":
		return v, true
	case "m", "min", "mins":
		if m[2] == "M" { // df -h: mebibytes
			return v * (1 << 20), true
		}
		return v * 60, true
	case "h":
		return v * 3600, true
	case "d", "days", "day":
		return v * 86400, true
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	if i := strings.Index("kmgtpe", unit); len(unit) == 1 && i >= 0 {
		return v * math.Pow(1024, float64(i+1)), true
	}
	return v, true
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// compileFinding checks a decoded rule: its pattern's captures, its
// thresholds' params, its message. The errors are at the rule's keys.
func (d *decoder) compileFinding(where string, fd *findingDraft, declared func(string) (string, bool), params []string) {
	r := &fd.rule
	if r.Pattern == nil {
		return
	}
	names := map[string]bool{}
	for _, n := range r.Pattern.SubexpNames() {
		if n != "" {
			names[n] = true
		}
	}
	if names["threshold"] {
		d.fail(fd.entries["pattern"].val, where+".pattern", "the capture name \"threshold\" is reserved for the threshold a value crossed; rename the capture")
	}
	captures := slices.Sorted(maps.Keys(names))
	_, hasSev := fd.entries["severity"]
	_, hasAbove := fd.entries["above"]
	_, hasBelow := fd.entries["below"]
	given := 0
	for _, b := range []bool{hasSev, hasAbove, hasBelow} {
		if b {
			given++
		}
	}
	switch {
	case given == 0:
		d.fail(fd.node, where, "give severity (every match is a finding) or above/below (thresholds on value), e.g. severity: warn")
	case given > 1:
		d.fail(fd.node, where, "give exactly one of severity, above or below")
	}
	if e, ok := fd.entries["value"]; ok && !names[r.Value] {
		d.fail(e.val, where+".value", "%q is not a named capture of the pattern%s the pattern captures: %s", r.Value, orSemicolon(didYouMean(r.Value, captures)), listOrNone(captures))
	}
	if given == 1 && (hasAbove || hasBelow) && r.Value == "" {
		d.fail(fd.node, where, "above and below compare a value: add value: <a named capture of the pattern>")
	}
	for _, t := range []struct {
		key string
		m   map[Severity]Threshold
	}{{"above", r.Above}, {"below", r.Below}} {
		for sev, th := range t.m {
			if th.Param == "" {
				continue
			}
			at := fd.thresholdNodes[t.key+"."+sev.String()]
			def, ok := declared(th.Param)
			switch {
			case !ok:
				d.fail(at, where+"."+t.key+"."+sev.String(), "unknown param %q%s declare it under params with a numeric default, or write a number", th.Param, orSemicolon(didYouMean(th.Param, params)))
			case !isNumber(def):
				d.fail(at, where+"."+t.key+"."+sev.String(), "param %q has the default %q, which is not a number", th.Param, def)
			}
		}
	}
	// The message: parsed, and run once over every capture, so that a
	// name the pattern does not capture is a load error, not a 3 a.m.
	// surprise.
	msgNode := fd.entries["message"].val
	if msgNode == nil {
		return
	}
	t, err := template.New(r.Name).Funcs(findingFuncs).Option("missingkey=error").Parse(r.Message)
	if err != nil {
		d.fail(msgNode, where+".message", "invalid template: %s", templateErr(err))
		return
	}
	sample := map[string]string{}
	for n := range names {
		sample[n] = "1"
	}
	if r.Value != "" {
		sample["threshold"] = "1"
	}
	var b strings.Builder
	if err := t.Execute(&b, sample); err != nil {
		msg := templateErr(err)
		if strings.Contains(msg, "map has no entry for key") {
			msg += "; the pattern captures: " + listOrNone(captures)
			if r.Value != "" {
				msg += " (and .threshold)"
			}
		}
		d.fail(msgNode, where+".message", "%s", msg)
		return
	}
	r.tmpl = t
}

func templateErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": executing "); i >= 0 {
		if j := strings.LastIndex(s, ": "); j > i {
			s = s[j+2:]
		}
	}
	return strings.TrimPrefix(s, "template: ")
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "(nothing; name captures with (?P<name>...))"
	}
	return strings.Join(l, ", ")
}

func isNumber(s string) bool {
	_, ok := ParseNumber(s)
	return ok
}
