package pagerduty

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// markerPrefix starts a note's last line; the run's marker follows. It
// reads as a footnote to people and is what a retried publish looks for.
const markerPrefix = "firstlook run "

// cutNotice replaces the end of a summary cut to fit the note.
const cutNotice = "\n… (cut to fit PagerDuty's note limit: the full evidence is linked above)"

// note returns the note's content: body, a blank line and the marker line,
// in at most max bytes. A longer body is cut on a character boundary and
// says so; the marker line is never cut. Invalid UTF-8 in body is replaced
// first, so the JSON encoder cannot grow the note past max.
func note(body, marker string, max int) (string, error) {
	if marker == "" || strings.ContainsAny(marker, "\r\n") || marker != strings.TrimSpace(marker) {
		return "", fmt.Errorf("marker %q is not one non-blank line", marker)
	}
	last := markerPrefix + marker
	if len(last) > max {
		return "", fmt.Errorf("marker line is %d bytes, more than max_note %d", len(last), max)
	}
	body = strings.TrimRight(strings.ToValidUTF8(body, "\uFFFD"), " \t\r\n")
	const sep = "\n\n"
	switch {
	case body == "":
		return last, nil
	case len(body)+len(sep)+len(last) <= max:
		return body + sep + last, nil
	}
	n := max - len(last) - len(sep) - len(cutNotice)
	if n <= 0 {
		return last, nil
	}
	for n > 0 && !utf8.RuneStart(body[n]) {
		n--
	}
	return strings.TrimRight(body[:n], " \t\r\n") + cutNotice + sep + last, nil
}

// hasMarker reports whether a note's last non-blank line is marker's line.
// Only the last line counts: command output quoted higher up in a note
// cannot pass for a marker.
func hasMarker(content, marker string) bool {
	content = strings.TrimRight(content, " \t\r\n")
	last := content[strings.LastIndexByte(content, '\n')+1:]
	return strings.TrimSpace(last) == markerPrefix+marker
}
