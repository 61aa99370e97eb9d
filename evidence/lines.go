package evidence

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

func outcome(m Manifest) string {
	if m.Status == StatusNotStarted {
		return "diagnostics could not run"
	}
	ok, failed := 0, 0
	for _, st := range m.Steps {
		switch {
		case st.Skipped:
		case st.OK():
			ok++
		default:
			failed++
		}
	}
	s := fmt.Sprintf("%d/%d steps ok", ok, len(m.Steps))
	if failed > 0 {
		s += fmt.Sprintf(", %d failed", failed)
	}
	return s
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
