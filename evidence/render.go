package evidence

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// How much of a step's output a summary shows: enough to answer "what is
// going on" at a glance; the rest is one click away.
const (
	summaryLines     = 3
	summaryLineRunes = 160
)

// Headline is a run's outcome in one line: its worst finding when it has
// findings ("CRIT web-3: / 97% full, 1.2 GiB free; largest
// /var/lib/docker 41 GiB"), else "linux-baseline on web-1: 4/5 steps
// ok", or "...: diagnostics could not run".
func Headline(m Manifest) string {
	if h := findingsHeadline(m); h != "" {
		return h
	}
	return stepsHeadline(m)
}

// stepsHeadline: "linux-baseline on web-1: 4/5 steps ok".
func stepsHeadline(m Manifest) string {
	return fmt.Sprintf("%s on %s: %s", m.Playbook.Name, m.Host.Name, outcome(m))
}

// Markdown renders a run for the PagerDuty note and the terminal: the
// outcome, the link to the full evidence, each step with its result, exit
// code, duration and first meaningful lines, and how much was truncated or
// redacted. It reads well as plain text too (PagerDuty shows notes as
// text).
func Markdown(rep Report) string {
	if rep.Fanout != nil {
		return fanoutMarkdown(rep)
	}
	m := rep.Bundle.Manifest
	var sb strings.Builder
	fmt.Fprintf(&sb, "**firstlook: %s**", Headline(m))
	fs := Findings(m)
	if len(fs) > 0 {
		fmt.Fprintf(&sb, "\n%s", stepsHeadline(m))
	}
	if d := runDuration(m); d > 0 {
		fmt.Fprintf(&sb, " (%s)", d)
	}
	sb.WriteString("\n")
	if m.Incident.Note != "" {
		fmt.Fprintf(&sb, "%s\n", m.Incident.Note)
	}
	if m.Status == StatusNotStarted {
		fmt.Fprintf(&sb, "Why: %s\n", m.Error)
	}
	if rep.Link != "" {
		fmt.Fprintf(&sb, "Full evidence: %s\n", rep.Link)
	}
	if len(fs) > 0 {
		sb.WriteString("\nFindings:\n")
		for _, f := range fs {
			fmt.Fprintf(&sb, "- %s (%s)\n", f, f.Step)
		}
	}
	for i, st := range m.Steps {
		fmt.Fprintf(&sb, "\n%s %d. %s — %s\n", stepMark(st), i+1, st.Name, stepResult(st))
		for _, l := range stepLines(rep.Bundle, st) {
			fmt.Fprintf(&sb, "    %s\n", l)
		}
	}
	if foot := footnote(m); foot != "" {
		fmt.Fprintf(&sb, "\n%s\n", foot)
	}
	return sb.String()
}

// Text is the plain one-line fallback Slack shows in notifications.
func Text(rep Report) string {
	if rep.Fanout != nil {
		return "firstlook: " + fanoutHeadline(rep)
	}
	return "firstlook: " + Headline(rep.Bundle.Manifest)
}

func fanoutMarkdown(rep Report) string {
	f := rep.Fanout
	m := rep.Bundle.Manifest
	var sb strings.Builder
	fmt.Fprintf(&sb, "**firstlook: %s**", fanoutHeadline(rep))
	if d := runDuration(m); d > 0 {
		fmt.Fprintf(&sb, " (%s)", d)
	}
	sb.WriteString("\n")
	if len(f.Differences) > 0 {
		sb.WriteString("\nDiffers from the rest:\n")
		for _, d := range f.Differences {
			fmt.Fprintf(&sb, "- %s\n", d)
		}
	} else if len(f.Runs) >= 3 {
		sb.WriteString("\nNo host stands out from the rest.\n")
	}
	sb.WriteString("\nHosts:\n")
	for _, r := range f.Runs {
		fmt.Fprintf(&sb, "%s\n", fanoutHostLine(r))
		if r.Link != "" {
			fmt.Fprintf(&sb, "    %s\n", r.Link)
		}
	}
	return sb.String()
}

// FullOutput is every step's command and kept output as one text file: what
// the Slack thread carries for people who want all of it.
func FullOutput(rep Report) []byte {
	if rep.Fanout != nil {
		var out []byte
		for _, r := range rep.Fanout.Runs {
			out = append(out, FullOutput(Report{Bundle: r.Bundle})...)
			out = append(out, "\n"...)
		}
		return out
	}
	b := rep.Bundle
	m := b.Manifest
	var sb strings.Builder
	fmt.Fprintf(&sb, "firstlook %s\nincident: %s %s\nhost:     %s %s\nplaybook: %s (sha256 %s)\nstatus:   %s\n",
		m.RunID, m.Incident.ID, m.Incident.Title, m.Host.Name, m.Host.Address, m.Playbook.Name, m.Playbook.SHA256, m.Status)
	if m.Error != "" {
		fmt.Fprintf(&sb, "error:    %s\n", m.Error)
	}
	for _, f := range Findings(m) {
		fmt.Fprintf(&sb, "finding:  %s (%s)\n", f, f.Step)
	}
	for i, st := range m.Steps {
		fmt.Fprintf(&sb, "\n=== %d. %s: %s\n", i+1, st.Name, stepResult(st))
		fmt.Fprintf(&sb, "$ %s\n", st.Command)
		for _, s := range []struct {
			name string
			o    Output
		}{{"stdout", st.Stdout}, {"stderr", st.Stderr}} {
			body := b.Files[s.o.File]
			if len(body) == 0 {
				continue
			}
			fmt.Fprintf(&sb, "--- %s (%d bytes", s.name, s.o.Bytes)
			if s.o.Truncated {
				fmt.Fprintf(&sb, ", first %d kept", s.o.Kept)
			}
			sb.WriteString(") ---\n")
			sb.Write(body)
			if body[len(body)-1] != '\n' {
				sb.WriteString("\n")
			}
		}
	}
	return []byte(sb.String())
}

func runDuration(m Manifest) time.Duration {
	if m.EndedAt.IsZero() || m.StartedAt.IsZero() {
		return 0
	}
	return m.EndedAt.Sub(m.StartedAt).Round(time.Millisecond)
}

func stepMark(st Step) string {
	switch {
	case st.Skipped:
		return "[skip]"
	case st.OK():
		return "[ok]"
	}
	return "[FAILED]"
}

// stepResult says how a step ended: "exit 0, 23ms", "timed out after 1s",
// "not run: step \"disk\" failed", "skipped: its condition did not hold".
func stepResult(st Step) string {
	d := (time.Duration(st.DurationMS) * time.Millisecond).String()
	switch {
	case st.Skipped && st.Error == "":
		return "skipped: its condition did not hold"
	case st.Skipped:
		return st.Error
	case st.TimedOut:
		return "timed out after " + d
	case st.ExitCode < 0 && st.Error != "":
		return st.Error
	}
	r := fmt.Sprintf("exit %d, %s", st.ExitCode, d)
	if st.Stdout.Truncated || st.Stderr.Truncated {
		r += ", output truncated"
	}
	return r
}

// stepLines are the first meaningful lines of a step: its output, and its
// errors when it failed.
func stepLines(b *Bundle, st Step) []string {
	if st.Skipped {
		return nil
	}
	out := clipLines(FirstLines(b.Files[st.Stdout.File], summaryLines))
	if !st.OK() {
		for _, l := range clipLines(FirstLines(b.Files[st.Stderr.File], summaryLines)) {
			out = append(out, "stderr: "+l)
		}
	}
	return out
}

func clipLines(ls []string) []string {
	for i, l := range ls {
		ls[i] = clip(l, summaryLineRunes)
	}
	return ls
}

// footnote totals truncation and redaction across the run.
func footnote(m Manifest) string {
	var parts []string
	var streams int
	var kept, total int64
	redacted := 0
	for _, st := range m.Steps {
		for _, o := range []Output{st.Stdout, st.Stderr} {
			if o.Truncated {
				streams++
				kept += o.Kept
				total += o.Bytes
			}
		}
		redacted += st.Redactions
	}
	if streams > 0 {
		parts = append(parts, fmt.Sprintf("Output truncated in %d stream(s): %s of %s kept.", streams, size(kept), size(total)))
	}
	if redacted > 0 {
		parts = append(parts, fmt.Sprintf("%d secret(s) redacted.", redacted))
	}
	return strings.Join(parts, " ")
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// clip cuts s to at most n characters (runes), marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
