package evidence_test

import (
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/evidencetest"
)

var host = evidencetest.Host

func TestCompare(t *testing.T) {
	ok := evidence.StatusOK
	tests := []struct {
		name string
		runs []*evidence.Bundle
		want []string
	}{
		{"one disk far above its peers", []*evidence.Bundle{host("web-1", 41, 0, ok, ""), host("web-2", 38, 0, ok, ""), host("web-3", 97, 0, ok, ""), host("web-4", 42, 0, ok, "")},
			[]string{`web-3: df: CRIT / 97% full, 1 GiB free where 3 of 4 hosts have no "filesystem full" finding`}},
		{"one value far from its peers, no finding", []*evidence.Bundle{host("web-1", 11, 0, ok, ""), host("web-2", 9, 0, ok, ""), host("web-3", 80, 0, ok, ""), host("web-4", 10, 0, ok, "")},
			[]string{"web-3: df: filesystem full 80 where its 3 peers show 9–11"}},
		{"ordinary spread", []*evidence.Bundle{host("web-1", 40, 0, ok, ""), host("web-2", 52, 0, ok, ""), host("web-3", 61, 0, ok, "")}, nil},
		{"odd exit code", []*evidence.Bundle{host("web-1", 40, 0, ok, ""), host("web-2", 40, 0, ok, ""), host("web-3", 40, 2, evidence.StatusFailed, "")},
			[]string{"web-3: failed (inodes) where 2 of 3 hosts passed", "web-3: inodes: exit 2 where 2 of 3 hosts exit 0"}},
		{"could not run", []*evidence.Bundle{host("web-1", 40, 0, ok, ""), host("web-9", 0, 0, evidence.StatusNotStarted, "connect: dial: connection refused")},
			[]string{"web-9: diagnostics could not run: connect: dial: connection refused"}},
		{"two hosts: no majority for figures", []*evidence.Bundle{host("web-1", 10, 0, ok, ""), host("web-2", 99, 0, ok, "")}, nil},
		{"half are high: nothing to differ from", []*evidence.Bundle{host("a", 95, 0, ok, ""), host("b", 96, 0, ok, ""), host("c", 20, 0, ok, ""), host("d", 21, 0, ok, "")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range evidence.Compare(tc.runs) {
				got = append(got, d.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestRenderFanout(t *testing.T) {
	rep := evidencetest.Fanout()
	m := rep.Bundle.Manifest
	if m.Status != evidence.StatusFailed || m.Host.Name != "group web" || m.Incident.ID != "Q2CKYRLH85UNN4" {
		t.Errorf("got manifest %+v", m)
	}
	golden(t, "fanout.md", []byte(evidence.Markdown(rep)))
	if txt := evidence.Text(rep); txt != "firstlook: linux-baseline on group web: 5 hosts, 4 ok, 2 differ; CRIT web-3: / 97% full, 1 GiB free" {
		t.Errorf("got %q", txt)
	}
}
