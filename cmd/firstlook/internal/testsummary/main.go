// Command testsummary reads `go test -json` on stdin and prints what plain
// `go test` would: the output of failing tests as they fail, then every
// package's result line. Before those result lines, so that go test's own
// closing lines stay last, it names the tests that skipped, grouped by
// the reason they gave, and the command that would run them (`make test`
// runs it; see the Makefile).
//
// It exits 1 if any test or package failed, 2 if it could not read its
// input, 0 otherwise.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type testKey struct{ pkg, test string }

// skipReason finds the message a skipping test logged: "    file_test.go:12: why".
var skipReason = regexp.MustCompile(`^\s+[^\s:]+\.go:\d+: (.*)$`)

func main() {
	var progress io.Writer = io.Discard
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		// A person at a terminal sees packages finish as they do.
		progress = os.Stderr
	}
	failed, err := summarize(os.Stdin, os.Stdout, progress, os.Geteuid() == 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testsummary:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// summarize copies the interesting part of the event stream in to out and
// reports whether anything failed. Package result lines also go to
// progress as they come.
func summarize(in io.Reader, out, progress io.Writer, root bool) (bool, error) {
	var (
		failed  bool
		buf     = map[testKey][]string{}
		skips   = map[string][]string{} // reason → tests
		reasons []string
		results []string // package-level lines, printed last
	)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event: a build error printed by go itself.
			results = append(results, string(line)+"\n")
			continue
		}
		k := testKey{e.Package, e.Test}
		switch {
		case e.Action == "output" && e.Test == "":
			// "PASS" alone is what -v prints; plain go test does not.
			if e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "=== ") {
				results = append(results, e.Output)
				fmt.Fprint(progress, e.Output)
			}
		case e.Action == "output":
			buf[k] = append(buf[k], e.Output)
		case e.Action == "fail" && e.Test != "":
			failed = true
			for _, l := range buf[k] {
				if !strings.HasPrefix(l, "=== ") {
					fmt.Fprint(out, l)
				}
			}
			delete(buf, k)
		case e.Action == "skip" && e.Test != "":
			reason := "no reason given"
			for _, l := range buf[k] {
				if m := skipReason.FindStringSubmatch(strings.TrimRight(l, "\n")); m != nil {
					reason = m[1]
				}
			}
			if skips[reason] == nil {
				reasons = append(reasons, reason)
			}
			skips[reason] = append(skips[reason], shortPkg(e.Package)+"."+e.Test)
			delete(buf, k)
		case e.Action == "pass" && e.Test != "":
			delete(buf, k)
		case e.Action == "fail":
			failed = true
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	if len(reasons) > 0 {
		n := 0
		for _, r := range reasons {
			n += len(skips[r])
		}
		fmt.Fprintf(out, "\n%d tests skipped:\n", n)
		for _, r := range reasons {
			tests := dropSubtests(skips[r])
			fmt.Fprintf(out, "  %s\n    %s\n", r, strings.Join(tests, ", "))
		}
		if root {
			fmt.Fprintln(out, "To run them: install what the reasons above name, then run make test again.")
		} else {
			fmt.Fprintln(out, "To run them: sudo make test   (as root, make test also installs the Debian packages they need)")
		}
		fmt.Fprintln(out)
	}
	for _, l := range results {
		fmt.Fprint(out, l)
	}
	return failed, nil
}

// dropSubtests lists a test once when it and its subtests skipped for the
// same reason.
func dropSubtests(tests []string) []string {
	var out []string
	for _, t := range tests {
		parent, _, sub := strings.Cut(t, "/")
		if sub && slices.Contains(tests, parent) {
			continue
		}
		out = append(out, t)
	}
	return out
}

// shortPkg drops the module path.
func shortPkg(p string) string {
	return strings.TrimPrefix(p, "github.com/firstlook/firstlook/")
}
