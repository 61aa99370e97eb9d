package evidence

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// Report is what publishers take to people: a run's redacted bundle and
// where its full evidence is.
type Report struct {
	// Bundle is the run's bundle, already redacted.
	Bundle *Bundle
	// Link opens the full evidence (the manifest): a presigned https URL
	// for S3, a file:// URL for a local directory.
	Link string
	// Marker identifies the run at every sink: publishers put it in what
	// they post (a note's last line, a Slack message's metadata) so that a
	// retry after a crash can find a post that already landed.
	Marker string
	// Fanout, when set, makes this the summary of one playbook across a
	// group of hosts; Bundle then holds only the summary's manifest
	// (FanoutManifest) and the renderers summarise the hosts' runs.
	Fanout *Fanout
}

// RunFinding is a finding and the step that raised it.
type RunFinding struct {
	Step string
	Finding
}

// String writes the finding as the summary lists it: "CRIT / 97% full,
// 1.2 GiB free".
func (f RunFinding) String() string {
	return strings.ToUpper(string(f.Severity)) + " " + f.Message
}

// Findings returns every finding of the run, most severe first, in step
// order within a severity.
func Findings(m Manifest) []RunFinding {
	var out []RunFinding
	for _, st := range m.Steps {
		for _, f := range st.Findings {
			out = append(out, RunFinding{Step: st.Name, Finding: f})
		}
	}
	slices.SortStableFunc(out, func(a, b RunFinding) int { return b.Severity.Rank() - a.Severity.Rank() })
	return out
}

// headlineRunes bounds a findings headline: it is a Slack header (150)
// and a notification's first line.
const headlineRunes = 150

// findingsHeadline is the run's worst finding, and as many of the next
// as fit: "CRIT web-3: / 97% full, 1.2 GiB free; largest /var/lib/docker
// 41 GiB". It is "" when the run found nothing.
func findingsHeadline(m Manifest) string {
	fs := Findings(m)
	if len(fs) == 0 {
		return ""
	}
	h := strings.ToUpper(string(fs[0].Severity)) + " " + m.Host.Name + ": " + fs[0].Message
	for _, f := range fs[1:min(len(fs), 3)] {
		next := h + "; " + f.Message
		if utf8.RuneCountInString(next) > headlineRunes {
			break
		}
		h = next
	}
	return h
}
