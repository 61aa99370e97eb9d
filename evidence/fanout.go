package evidence

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Fanout is one playbook run across a group of hosts, published as one
// summary that says which hosts differ from the rest.
type Fanout struct {
	// Target describes the hosts: "group web", "selector role=web".
	Target string
	// Runs are the hosts' runs, in host order.
	Runs []FanoutRun
	// Differences are the hosts that stand out, most telling first.
	Differences []Difference
}

// FanoutRun is one host's run in a fan-out.
type FanoutRun struct {
	Bundle *Bundle
	// Link opens the host's full evidence.
	Link string
}

// Difference is one way a host differs from its peers.
type Difference struct {
	Host string
	// Step is the step that differs; empty for the run as a whole.
	Step string
	// What says how: "97% where its peers show 38–42%".
	What string
}

func (d Difference) String() string {
	if d.Step == "" {
		return d.Host + ": " + d.What
	}
	return fmt.Sprintf("%s: %s: %s", d.Host, d.Step, d.What)
}

// A host's value differs from its peers' when it is further from their
// median than half the median, and than three times the values' median
// absolute deviation: far enough that ordinary spread (disk at 40% and
// 52%) is not news, near enough that 97% against 40%, or a load of 8
// against 1, is.
const (
	outlierShare = 0.5
	outlierMADs  = 3
)

// Compare finds the hosts that differ from the rest: a run that could not
// start or failed where most did not, a step whose exit code is not the
// most common one, a finding that most hosts do not have, and a named
// value (a finding rule's, recorded in Step.Values) far from its peers'.
// It needs at least three hosts to speak of "the rest"; with fewer it only
// reports runs that could not start or failed.
func Compare(runs []*Bundle) []Difference {
	var diffs []Difference
	n := len(runs)
	okRuns := 0
	for _, b := range runs {
		if b.Manifest.Status == StatusOK {
			okRuns++
		}
	}
	for _, b := range runs {
		m := b.Manifest
		switch m.Status {
		case StatusNotStarted:
			diffs = append(diffs, Difference{Host: m.Host.Name, What: "diagnostics could not run: " + m.Error})
		case StatusFailed:
			if okRuns*2 > n {
				var failed []string
				for _, st := range m.Steps {
					if !st.OK() && !st.Skipped {
						failed = append(failed, st.Name)
					}
				}
				diffs = append(diffs, Difference{Host: m.Host.Name, What: fmt.Sprintf("failed (%s) where %d of %d hosts passed", strings.Join(failed, ", "), okRuns, n)})
			}
		}
	}
	if n < 3 {
		return diffs
	}
	// Step by step, over the runs that have the step.
	type obs struct {
		host string
		st   Step
	}
	steps := map[string][]obs{}
	var order []string
	for _, b := range runs {
		for _, st := range b.Manifest.Steps {
			if st.Skipped {
				continue
			}
			if _, seen := steps[st.Name]; !seen {
				order = append(order, st.Name)
			}
			steps[st.Name] = append(steps[st.Name], obs{host: b.Manifest.Host.Name, st: st})
		}
	}
	for _, name := range order {
		obss := steps[name]
		if len(obss) < 3 {
			continue
		}
		// Exit codes: the most common one is "normal".
		counts := map[int]int{}
		for _, o := range obss {
			counts[o.st.ExitCode]++
		}
		common, best := 0, -1
		for code, c := range counts {
			if c > best || (c == best && code < common) {
				common, best = code, c
			}
		}
		if best*2 > len(obss) {
			for _, o := range obss {
				if o.st.ExitCode != common {
					diffs = append(diffs, Difference{Host: o.host, Step: name, What: fmt.Sprintf("exit %d where %d of %d hosts exit %d", o.st.ExitCode, best, len(obss), common)})
				}
			}
		}
		// Findings most hosts do not have: the worst of each rule.
		rules := map[string]bool{}
		var ruleOrder []string
		for _, o := range obss {
			for _, f := range o.st.Findings {
				if !rules[f.Rule] {
					rules[f.Rule] = true
					ruleOrder = append(ruleOrder, f.Rule)
				}
			}
			for _, r := range slices.Sorted(maps.Keys(o.st.Values)) {
				if !rules[r] {
					rules[r] = true
					ruleOrder = append(ruleOrder, r)
				}
			}
		}
		for _, rule := range ruleOrder {
			flagged := map[string]bool{}
			var with []obs
			for _, o := range obss {
				if i := slices.IndexFunc(o.st.Findings, func(f Finding) bool { return f.Rule == rule && f.Severity.Rank() >= SeverityWarn.Rank() }); i >= 0 {
					with = append(with, o)
				}
			}
			if len(with)*2 < len(obss) {
				for _, o := range with {
					f := o.st.Findings[slices.IndexFunc(o.st.Findings, func(f Finding) bool { return f.Rule == rule })]
					diffs = append(diffs, Difference{Host: o.host, Step: name, What: fmt.Sprintf("%s %s where %d of %d hosts have no %q finding", strings.ToUpper(string(f.Severity)), f.Message, len(obss)-len(with), len(obss), rule)})
					flagged[o.host] = true
				}
			}
			// The rule's value, far from the median of the others.
			var vals []float64
			for _, o := range obss {
				if v, ok := o.st.Values[rule]; ok {
					vals = append(vals, v)
				}
			}
			if len(vals) < 3 {
				continue
			}
			med := median(vals)
			dev := make([]float64, len(vals))
			for i, v := range vals {
				dev[i] = math.Abs(v - med)
			}
			limit := max(outlierShare*math.Abs(med), outlierMADs*median(dev))
			var peers []float64
			type outlier struct {
				host string
				v    float64
			}
			var out []outlier
			for _, o := range obss {
				v, ok := o.st.Values[rule]
				switch {
				case !ok:
				case math.Abs(v-med) > limit:
					out = append(out, outlier{o.host, v})
				default:
					peers = append(peers, v)
				}
			}
			if len(out)*2 >= len(vals) || len(peers) == 0 {
				continue // no majority to differ from
			}
			lo, hi := slices.Min(peers), slices.Max(peers)
			for _, o := range out {
				if flagged[o.host] {
					continue // its finding already says so
				}
				diffs = append(diffs, Difference{Host: o.host, Step: name, What: fmt.Sprintf("%s %s where its %d peers show %s", rule, num(o.v), len(peers), span(lo, hi))})
			}
		}
	}
	return diffs
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func span(lo, hi float64) string {
	if lo == hi {
		return num(lo)
	}
	return num(lo) + "–" + num(hi)
}

// FanoutManifest is the manifest a fan-out summary is published under:
// the incident and playbook of its runs, the target as its host, the
// earliest start and latest end, and failed when any run did not pass.
func FanoutManifest(f *Fanout) Manifest {
	var m Manifest
	for i, r := range f.Runs {
		rm := r.Bundle.Manifest
		if i == 0 {
			m = Manifest{Schema: ManifestSchema, FirstlookVersion: rm.FirstlookVersion, Incident: rm.Incident,
				Playbook: rm.Playbook, Status: StatusOK, StartedAt: rm.StartedAt, EndedAt: rm.EndedAt}
		}
		if rm.StartedAt.Before(m.StartedAt) {
			m.StartedAt = rm.StartedAt
		}
		if rm.EndedAt.After(m.EndedAt) {
			m.EndedAt = rm.EndedAt
		}
		if rm.Status != StatusOK {
			m.Status = StatusFailed
		}
	}
	m.Host = Host{Name: f.Target}
	m.RunID = RunID(m.StartedAt, f.Target, m.Playbook.Name)
	return m
}

// fanoutHeadline: "disk-full on group web: 20 hosts, 19 ok, 1 differs".
func fanoutHeadline(rep Report) string {
	f := rep.Fanout
	ok := 0
	for _, r := range f.Runs {
		if r.Bundle.Manifest.Status == StatusOK {
			ok++
		}
	}
	differ := map[string]bool{}
	for _, d := range f.Differences {
		differ[d.Host] = true
	}
	h := fmt.Sprintf("%s on %s: %d hosts, %d ok", rep.Bundle.Manifest.Playbook.Name, f.Target, len(f.Runs), ok)
	if len(differ) > 0 {
		h += fmt.Sprintf(", %d differ", len(differ))
	}
	// The worst finding of any host.
	worst := ""
	rank := 0
	for _, r := range f.Runs {
		if fs := Findings(r.Bundle.Manifest); len(fs) > 0 && fs[0].Severity.Rank() > rank && fs[0].Severity.Rank() >= SeverityWarn.Rank() {
			worst, rank = strings.ToUpper(string(fs[0].Severity))+" "+r.Bundle.Manifest.Host.Name+": "+fs[0].Message, fs[0].Severity.Rank()
		}
	}
	if worst != "" {
		h += "; " + worst
	}
	return h
}

func fanoutHostLine(r FanoutRun) string {
	m := r.Bundle.Manifest
	line := fmt.Sprintf("%s %s — %s", runMark(m), m.Host.Name, outcome(m))
	if fs := Findings(m); len(fs) > 0 {
		line += "; " + fs[0].String()
	}
	if d := runDuration(m); d > 0 {
		line += fmt.Sprintf(" (%s)", d.Round(time.Millisecond))
	}
	return line
}

func runMark(m Manifest) string {
	switch m.Status {
	case StatusOK:
		return "[ok]"
	case StatusNotStarted:
		return "[not run]"
	}
	return "[FAILED]"
}
