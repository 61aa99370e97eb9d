package playbooks

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// When is a step's condition over the exit codes of earlier steps. All of
// its conditions must hold.
type When struct {
	Conditions []Condition
}

// Condition is one test of an earlier step's exit code. It holds only if
// that step ran: a skipped step satisfies no condition.
type Condition struct {
	// Step names an earlier step of the same playbook.
	Step string
	// ExitCodes, when not empty, holds if the step exited with one of
	// them.
	ExitCodes []int
	// Failed, when ExitCodes is empty and Finding is not set, holds if
	// the step failed (true: a non-zero exit, a timeout, an error) or
	// succeeded (false: exit 0).
	Failed bool
	// Finding, when set, holds if the step raised the finding of that
	// name at Severity or worse.
	Finding  string
	Severity Severity
}

// Result is how a step that ran ended, as when conditions see it.
type Result struct {
	// ExitCode is -1 when the step ended without an exit status.
	ExitCode int
	// Findings are the step's findings (Playbook.Findings).
	Findings []Finding
}

// Eval reports whether every condition holds. exitCodes holds the exit code
// of each step that ran, by name; a step that ended without an exit status
// (timeout, signal, lost connection, could not be rendered) is recorded as
// -1, like evidence.Step.ExitCode. A nil When always holds.
func (w *When) Eval(exitCodes map[string]int) bool {
	if w == nil {
		return true
	}
	for _, c := range w.Conditions {
		if !c.Eval(exitCodes) {
			return false
		}
	}
	return true
}

// Eval reports whether the condition holds; see When.Eval. A finding
// condition never holds here: use Holds, which sees findings.
func (c Condition) Eval(exitCodes map[string]int) bool {
	code, ran := exitCodes[c.Step]
	if !ran {
		return false
	}
	return c.Holds(Result{ExitCode: code})
}

// Holds reports whether the condition holds for its step's result.
func (c Condition) Holds(r Result) bool {
	switch {
	case c.Finding != "":
		return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Rule == c.Finding && f.Severity >= c.Severity })
	case len(c.ExitCodes) > 0:
		return slices.Contains(c.ExitCodes, r.ExitCode)
	}
	return (r.ExitCode != 0) == c.Failed
}

// String describes the condition as a playbook would write it.
func (c Condition) String() string {
	if c.Finding != "" {
		return fmt.Sprintf("{step: %q, finding: %q, severity: %s}", c.Step, c.Finding, c.Severity)
	}
	if len(c.ExitCodes) > 0 {
		codes := make([]string, len(c.ExitCodes))
		for i, n := range c.ExitCodes {
			codes[i] = strconv.Itoa(n)
		}
		return fmt.Sprintf("{step: %q, exit_code: [%s]}", c.Step, strings.Join(codes, ", "))
	}
	return fmt.Sprintf("{step: %q, failed: %t}", c.Step, c.Failed)
}

// ShouldRun reports whether step i runs, given the exit codes of the steps
// that ran before it (see When.Eval), and if not, why. It is the one place
// the sequencing rules live, so that `firstlook run` and the workers agree:
//
//   - a step with a when runs if and only if its condition holds, even
//     after an earlier step failed: that is how a step says "run this when
//     that failed";
//   - otherwise a step runs unless an earlier step that ran failed without
//     continue_on_error.
//
// Steps of a parallel playbook always run.
func (p *Playbook) ShouldRun(i int, exitCodes map[string]int) (bool, string) {
	results := make(map[string]Result, len(exitCodes))
	for k, v := range exitCodes {
		results[k] = Result{ExitCode: v}
	}
	return p.Decide(i, results)
}

// Decide is ShouldRun with the results of the steps that ran, findings
// included, so that a when can test an earlier step's finding.
func (p *Playbook) Decide(i int, results map[string]Result) (bool, string) {
	if p.Parallel {
		return true, ""
	}
	s := &p.Steps[i]
	if s.When != nil {
		for _, c := range s.When.Conditions {
			r, ran := results[c.Step]
			switch {
			case !ran:
				return false, fmt.Sprintf("when %s does not hold: step %q did not run", c, c.Step)
			case c.Holds(r):
			case c.Finding != "":
				return false, fmt.Sprintf("when %s does not hold: step %q raised no such finding", c, c.Step)
			default:
				return false, fmt.Sprintf("when %s does not hold: step %q exited %d", c, c.Step, r.ExitCode)
			}
		}
		return true, ""
	}
	for _, prev := range p.Steps[:i] {
		r, ran := results[prev.Name]
		if ran && r.ExitCode != 0 && !prev.ContinueOnError {
			return false, fmt.Sprintf("step %q failed (exit %d) and has no continue_on_error", prev.Name, r.ExitCode)
		}
	}
	return true, ""
}
