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
	// Failed, when ExitCodes is empty, holds if the step failed (true: a
	// non-zero exit, a timeout, an error) or succeeded (false: exit 0).
	Failed bool
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

// Eval reports whether the condition holds; see When.Eval.
func (c Condition) Eval(exitCodes map[string]int) bool {
	code, ran := exitCodes[c.Step]
	if !ran {
		return false
	}
	if len(c.ExitCodes) > 0 {
		return slices.Contains(c.ExitCodes, code)
	}
	return (code != 0) == c.Failed
}

// String describes the condition as a playbook would write it.
func (c Condition) String() string {
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
	if p.Parallel {
		return true, ""
	}
	s := &p.Steps[i]
	if s.When != nil {
		for _, c := range s.When.Conditions {
			if !c.Eval(exitCodes) {
				if code, ran := exitCodes[c.Step]; ran {
					return false, fmt.Sprintf("when %s does not hold: step %q exited %d", c, c.Step, code)
				}
				return false, fmt.Sprintf("when %s does not hold: step %q did not run", c, c.Step)
			}
		}
		return true, ""
	}
	for _, prev := range p.Steps[:i] {
		code, ran := exitCodes[prev.Name]
		if ran && code != 0 && !prev.ContinueOnError {
			return false, fmt.Sprintf("step %q failed (exit %d) and has no continue_on_error", prev.Name, code)
		}
	}
	return true, ""
}
