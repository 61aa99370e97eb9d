// Package yamlfile is how firstlook reads every YAML file it is given
// (playbooks, the configuration, the inventory), so that their errors read
// the same: "file:line:column: what is wrong; what to do", at the real
// position, all of them in one run, with the offending line and a caret
// under the column when shown to a person.
//
// It holds the mechanics only: positions (syntax errors included), unknown
// keys with "did you mean" and the valid keys, type errors naming the key
// path, ${ENV} expansion in values, and rendering. What a file means stays
// with its package. It lives under playbooks because playbooks is the
// lowest layer that reads YAML files: runner/inventory and cmd/firstlook
// may import it, and it imports nothing of firstlook's.
package yamlfile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Error is one problem at a position in a file. Line and Column are
// 1-based; zero means unknown (an unreadable file). A Warning does not
// stop anything; it says what will not work.
type Error struct {
	File    string
	Line    int
	Column  int
	Msg     string
	Warning bool
}

// Error formats e as "file:line:column: msg" (with "warning: " before a
// warning's msg), the form editors and CI annotations understand.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Excerpt is the line e points at, numbered, with a caret under its
// column, as task runners show it; "" when the position or the line is
// unknown. src is the file's content.
func (e *Error) Excerpt(src []byte) string {
	if e.Line < 1 {
		return ""
	}
	lines := strings.Split(string(src), "\n")
	if e.Line > len(lines) {
		return ""
	}
	text := strings.TrimRight(lines[e.Line-1], "\r")
	num := strconv.Itoa(e.Line)
	gutter := strings.Repeat(" ", len(num))
	var b strings.Builder
	fmt.Fprintf(&b, " %s | %s\n", num, strings.ReplaceAll(text, "\t", " "))
	if e.Column > 0 {
		fmt.Fprintf(&b, " %s | %s^\n", gutter, strings.Repeat(" ", e.Column-1))
	}
	return b.String()
}

// List is every problem found in a set of files; each prints on its own
// line.
type List []*Error

// Error joins the errors one per line.
func (l List) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the errors for errors.Is and errors.As.
func (l List) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Sort orders l by file and position.
func (l List) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// Errors is l without its warnings, or nil when only warnings remain.
func (l List) Errors() error {
	var out List
	for _, e := range l {
		if !e.Warning {
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Warnings is l's warnings.
func (l List) Warnings() List {
	var out List
	for _, e := range l {
		if e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// Suggest returns the candidate closest to s, or "" when none is close
// enough to be a likely typo.
func Suggest(s string, candidates []string) string {
	best, bestDist := "", 0
	ls := strings.ToLower(s)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == ls {
			return c
		}
		d := editDistance(ls, lc)
		limit := 2
		if len(c) <= 4 {
			limit = 1
		}
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// DidYouMean formats a suggestion for s among candidates ("; did you mean
// "x"?"), or "".
func DidYouMean(s string, candidates []string) string {
	if c := Suggest(s, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
