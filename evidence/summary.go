package evidence

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Summary renders a run as plain text for a terminal: the outcome, where
// the full evidence is, and each step with its first lines of output.
func Summary(b *Bundle, link string) string {
	m := b.Manifest
	var sb strings.Builder
	fmt.Fprintf(&sb, "firstlook: %s on %s: %s", m.Playbook.Name, m.Host.Name, outcome(m))
	if !m.EndedAt.IsZero() {
		fmt.Fprintf(&sb, " in %s", m.EndedAt.Sub(m.StartedAt).Round(time.Millisecond))
	}
	sb.WriteString("\n")
	if m.Incident.ID != "" {
		fmt.Fprintf(&sb, "incident: %s %s", m.Incident.ID, m.Incident.Title)
		if m.Incident.URL != "" {
			fmt.Fprintf(&sb, " (%s)", m.Incident.URL)
		}
		sb.WriteString("\n")
	}
	if m.Error != "" {
		fmt.Fprintf(&sb, "diagnostics could not run: %s\n", m.Error)
	}
	if link != "" {
		fmt.Fprintf(&sb, "evidence: %s\n", link)
	}
	for _, st := range m.Steps {
		mark := "ok"
		if !st.OK() {
			mark = "FAILED"
		}
		fmt.Fprintf(&sb, "\n[%s] %s (exit %d, %s", mark, st.Name, st.ExitCode, (time.Duration(st.DurationMS) * time.Millisecond).String())
		if st.TimedOut {
			sb.WriteString(", timed out")
		}
		if st.Stdout.Truncated || st.Stderr.Truncated {
			sb.WriteString(", output truncated")
		}
		sb.WriteString(")\n")
		if st.Error != "" {
			fmt.Fprintf(&sb, "  error: %s\n", st.Error)
		}
		for _, l := range FirstLines(b.Files[st.Stdout.File], 5) {
			fmt.Fprintf(&sb, "  %s\n", l)
		}
		if !st.OK() {
			for _, l := range FirstLines(b.Files[st.Stderr.File], 3) {
				fmt.Fprintf(&sb, "  stderr: %s\n", l)
			}
		}
	}
	return sb.String()
}

func outcome(m Manifest) string {
	switch m.Status {
	case StatusNotStarted:
		return "could not run"
	case StatusOK:
		return fmt.Sprintf("ok, %d/%d steps ok", len(m.Steps), len(m.Steps))
	}
	ok := 0
	for _, st := range m.Steps {
		if st.OK() {
			ok++
		}
	}
	return fmt.Sprintf("failed, %d/%d steps ok", ok, len(m.Steps))
}

// FirstLines returns up to n non-blank lines of out, each at most 200
// characters, with invalid UTF-8 and control characters replaced so output
// cannot play tricks on a terminal.
func FirstLines(out []byte, n int) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if len(lines) == n {
			break
		}
		l = strings.TrimRight(sanitize(l), " \t\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		if utf8.RuneCountInString(l) > 200 {
			l = string([]rune(l)[:200]) + "…"
		}
		lines = append(lines, l)
	}
	return lines
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError:
			return '?'
		case r == '\t':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return '?'
		}
		return r
	}, s)
}
