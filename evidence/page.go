package evidence

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"path"
	"strings"
	"time"
)

// PageFile is the name of a bundle's HTML page inside its prefix: the
// "Full evidence" link opens it. It is written with the step outputs,
// before the manifest.
const PageFile = "index.html"

// GroupPrefix is where the page of a fan-out's summary lives:
// <source>/<incident id>/group-<playbook>/. It depends only on the
// incident and the playbook (one summary per incident × playbook, as in
// the runner's state), so that each host's page, written before the
// summary exists, can link to it.
func GroupPrefix(m Manifest) string {
	return path.Join(keyPart(m.Incident.Source), keyPart(m.Incident.ID), "group-"+keyPart(m.Playbook.Name)) + "/"
}

// foldLines is how many lines of a stream a page shows open; longer
// output is folded in a <details> element.
const foldLines = 40

//go:embed page.html.tmpl
var pageTemplate string

// page is parsed once; html/template escapes every value for where it
// lands (text, attribute, URL), so alert text and command output, which
// are hostile, come out inert.
var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"size": size,
}).Parse(pageTemplate))

// pageView is what the template reads.
type pageView struct {
	Title    string
	M        Manifest
	Duration string
	// GroupLink is the relative link from a host's page to its group's.
	GroupLink string
	Steps     []pageStep
	Footnote  string
	Group     *pageGroup
}

type pageStep struct {
	N        int
	S        Step
	Mark     string
	Class    string
	Result   string
	Duration string
	Streams  []pageStream
}

type pageStream struct {
	Name   string
	O      Output
	Text   string
	Lines  int
	Folded bool
}

type pageGroup struct {
	Target      string
	Differences []Difference
	Hosts       []pageHost
}

type pageHost struct {
	Name, Link, Mark, Class, Outcome, Duration string
	Differs                                    bool
}

// Page renders a run's bundle as one self-contained HTML page: no
// external assets, no script. It shows the incident, host, playbook and
// its hash, and each step with its command (a script step's script too),
// exit code, duration and output, long output folded, truncation and
// redaction marked.
func Page(b *Bundle) ([]byte, error) {
	m := b.Manifest
	v := pageView{Title: "firstlook: " + Headline(m), M: m, Footnote: footnote(m)}
	if d := runDuration(m); d > 0 {
		v.Duration = d.String()
	}
	if m.Group != "" {
		v.GroupLink = "../" + path.Base(GroupPrefix(m)) + "/" + PageFile
	}
	for i, st := range m.Steps {
		ps := pageStep{N: i + 1, S: st, Result: stepResult(st),
			Duration: (time.Duration(st.DurationMS) * time.Millisecond).String()}
		switch {
		case st.Skipped:
			ps.Mark, ps.Class = "skipped", "skip"
		case st.OK():
			ps.Mark, ps.Class = "ok", "ok"
		default:
			ps.Mark, ps.Class = "FAILED", "fail"
		}
		for _, s := range []struct {
			name string
			o    Output
		}{{"stdout", st.Stdout}, {"stderr", st.Stderr}} {
			body := b.Files[s.o.File]
			if len(body) == 0 && s.o.Bytes == 0 {
				continue
			}
			n := bytes.Count(body, []byte("\n"))
			if len(body) > 0 && body[len(body)-1] != '\n' {
				n++
			}
			ps.Streams = append(ps.Streams, pageStream{Name: s.name, O: s.o, Text: string(body), Lines: n, Folded: n > foldLines})
		}
		v.Steps = append(v.Steps, ps)
	}
	return render(v)
}

// FanoutPage renders a fan-out's summary: which hosts differ from the
// rest and why, and every host's outcome with a link to its page. link
// gives the link to a host's page (relative, or presigned for a store
// whose objects are private).
func FanoutPage(rep Report, link func(FanoutRun) string) ([]byte, error) {
	f := rep.Fanout
	if f == nil {
		return nil, fmt.Errorf("render fan-out page: report is not a fan-out")
	}
	m := rep.Bundle.Manifest
	v := pageView{Title: "firstlook: " + fanoutHeadline(rep), M: m}
	if d := runDuration(m); d > 0 {
		v.Duration = d.String()
	}
	differ := map[string]bool{}
	for _, d := range f.Differences {
		differ[d.Host] = true
	}
	g := &pageGroup{Target: f.Target, Differences: f.Differences}
	for _, r := range f.Runs {
		rm := r.Bundle.Manifest
		h := pageHost{Name: rm.Host.Name, Link: link(r), Outcome: outcome(rm), Differs: differ[rm.Host.Name]}
		switch rm.Status {
		case StatusOK:
			h.Mark, h.Class = "ok", "ok"
		case StatusNotStarted:
			h.Mark, h.Class = "not run", "fail"
		default:
			h.Mark, h.Class = "FAILED", "fail"
		}
		if d := runDuration(rm); d > 0 {
			h.Duration = d.String()
		}
		g.Hosts = append(g.Hosts, h)
	}
	v.Group = g
	return render(v)
}

// HostPageLink is the relative link from a group's page to one host's
// page: both live under the incident's prefix.
func HostPageLink(m Manifest) string {
	return "../" + path.Base(strings.TrimSuffix(Prefix(m), "/")) + "/" + PageFile
}

func render(v pageView) ([]byte, error) {
	var buf bytes.Buffer
	if err := page.Execute(&buf, v); err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	return buf.Bytes(), nil
}
