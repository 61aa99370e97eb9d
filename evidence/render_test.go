package evidence_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/render")

var t0 = time.Date(2026, 11, 23, 3, 4, 5, 0, time.UTC)

// run builds a bundle the way the runner does.
func run(status evidence.Status, why string, steps ...stepSpec) evidence.Report {
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema: evidence.ManifestSchema, RunID: evidence.RunID(t0, "web-1", "linux-baseline"), FirstlookVersion: "v0.1.0",
		Incident: evidence.Incident{Source: "pagerduty", ID: "Q2CKYRLH85UNN4", Number: 37, Title: "High load on web-1 <prod> & more",
			URL: "https://acme.pagerduty.com/incidents/Q2CKYRLH85UNN4", Service: "Web (prod)", Event: "incident.triggered"},
		Host:     evidence.Host{Name: "web-1", Address: "10.20.1.11:22", User: "firstlook", Bastion: "bastion-prod"},
		Playbook: evidence.Playbook{Name: "linux-baseline", File: "library/linux-baseline.yaml", SHA256: "9f2c"},
		Status:   status, Error: why, StartedAt: t0, EndedAt: t0.Add(2345 * time.Millisecond),
		Steps: []evidence.Step{},
	}}
	for i, s := range steps {
		st := evidence.Step{Name: s.name, Command: s.cmd, ExitCode: s.exit, TimedOut: s.timedOut, Skipped: s.skipped, Error: s.err,
			StartedAt: t0.Add(time.Duration(i) * time.Second), DurationMS: s.ms, Redactions: s.redactions, Findings: s.findings}
		st.Stdout = b.SetOutput(evidence.StepFile(i, s.name, "stdout"), []byte(s.out), s.outBytes(len(s.out)))
		st.Stderr = b.SetOutput(evidence.StepFile(i, s.name, "stderr"), []byte(s.errOut), int64(len(s.errOut)))
		b.Manifest.Steps = append(b.Manifest.Steps, st)
	}
	return evidence.Report{Bundle: b, Link: "https://evidence.example.com/pagerduty/Q2CKYRLH85UNN4/run/manifest.json?X-Amz-Signature=abc", Marker: "fl-1"}
}

type stepSpec struct {
	name, cmd, out, errOut, err string
	exit                        int
	ms                          int64
	timedOut, skipped           bool
	total                       int64
	redactions                  int
	findings                    []evidence.Finding
}

func (s stepSpec) outBytes(kept int) int64 {
	if s.total > 0 {
		return s.total
	}
	return int64(kept)
}

var cases = map[string]evidence.Report{
	"ok": run(evidence.StatusOK, "",
		stepSpec{name: "load", cmd: "uptime", out: " 03:04:05 up 12 days,  2:03,  0 users,  load average: 7.91, 6.02, 4.80\n", ms: 23},
		stepSpec{name: "memory", cmd: "free -m", out: "\n               total        used        free\nMem:           15934       14021         412\nSwap:              0           0           0\n", ms: 11},
		stepSpec{name: "nginx config", cmd: "test -f /etc/nginx/nginx.conf", exit: 1, skipped: true},
	),
	"failed": run(evidence.StatusFailed, "",
		stepSpec{name: "load", cmd: "uptime", out: " 03:04:05 up 12 days, load average: 0.10, 0.20, 0.30\n", ms: 20},
		stepSpec{name: "disk", cmd: "df -h /data", exit: 1, errOut: "df: /data: Stale file handle\n", ms: 8},
		stepSpec{name: "journal", cmd: "journalctl -p err --since -15min --no-pager | tail -n 50", exit: -1, skipped: true, err: `not run: step "disk" failed (exit 1) and has no continue_on_error`},
		stepSpec{name: "slow", cmd: "sleep 300", exit: -1, timedOut: true, ms: 1000, err: "timed out after 1s"},
	),
	"truncated": run(evidence.StatusOK, "",
		stepSpec{name: "env", cmd: "env", out: "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key]\nHOME=/root\n", ms: 5, redactions: 1},
		stepSpec{name: "big log", cmd: "cat /var/log/syslog", out: strings.Repeat("Nov 23 03:00:00 web-1 app[42]: request handled in 3ms\n", 3) + "…", total: 3 << 20, ms: 410},
	),
	"findings": run(evidence.StatusOK, "",
		stepSpec{name: "filesystems", cmd: "df -hP", out: "Filesystem Size Used Avail Use% Mounted on\n/dev/vda1 40G 38G 1.2G 97% /\n/dev/vdb1 100G 88G 12G 88% /data\n", ms: 12,
			findings: []evidence.Finding{
				{Rule: "filesystem full", Severity: evidence.SeverityCrit, Message: "/ 97% full, 1.2 GiB free"},
				{Rule: "filesystem full", Severity: evidence.SeverityWarn, Message: "/data 88% full, 12 GiB free"},
			}},
		stepSpec{name: "biggest directories", cmd: "sh -s", out: "43008000\t/var/lib/docker\n", ms: 900,
			findings: []evidence.Finding{{Rule: "largest", Severity: evidence.SeverityInfo, Message: "largest /var/lib/docker 41 GiB"}}},
	),
	"not-started": run(evidence.StatusNotStarted, `connect: host key changed for bastion bastion-prod (192.0.2.10:22): possible man-in-the-middle, or the host was rebuilt; verify the new key and update known_hosts line 3`),
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "render", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./evidence -run TestRender -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it after review):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
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
