package evidence_test

import (
	"flag"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/evidencetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/render")

var cases = evidencetest.Cases()

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	evidencetest.Golden(t, *update, name, got)
}

func TestRender(t *testing.T) {
	for name, rep := range cases {
		t.Run(name, func(t *testing.T) {
			golden(t, name+".md", []byte(evidence.Markdown(rep)))
			golden(t, name+".txt", evidence.FullOutput(rep))
		})
	}
}

func TestHeadline(t *testing.T) {
	m := cases["findings"].Bundle.Manifest
	if got, want := evidence.Headline(m), "CRIT web-1: / 97% full, 1.2 GiB free; /data 88% full, 12 GiB free; largest /var/lib/docker 41 GiB"; got != want {
		t.Errorf("Headline = %q, want %q", got, want)
	}
	if got, want := evidence.Text(cases["findings"]), "firstlook: CRIT web-1: / 97% full, 1.2 GiB free; /data 88% full, 12 GiB free; largest /var/lib/docker 41 GiB"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
	if got, want := evidence.Headline(cases["ok"].Bundle.Manifest), "linux-baseline on web-1: 2/3 steps ok"; got != want {
		t.Errorf("without findings: Headline = %q, want %q", got, want)
	}
}
