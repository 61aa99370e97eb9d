// Package evidencetest builds the sample reports that the renderers'
// golden tests share: evidence's Markdown and text tests and
// evidence/slack's Block Kit tests render the same runs, so that the
// goldens of both describe one set of cases.
package evidencetest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
)

// T0 is when every sample run starts.
var T0 = time.Date(2026, 11, 23, 3, 4, 5, 0, time.UTC)

// Step describes one step of a sample run.
type Step struct {
	Name, Cmd, Out, ErrOut, Err string
	Exit                        int
	MS                          int64
	TimedOut, Skipped           bool
	// Total is the size of the whole stdout when Out is only its kept
	// part; zero means Out is all of it.
	Total      int64
	Redactions int
	Findings   []evidence.Finding
}

func (s Step) outBytes(kept int) int64 {
	if s.Total > 0 {
		return s.Total
	}
	return int64(kept)
}

// Run builds a report of one run of linux-baseline on web-1 for a
// PagerDuty incident, the way the runner builds its bundle.
func Run(status evidence.Status, why string, steps ...Step) evidence.Report {
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema: evidence.ManifestSchema, RunID: evidence.RunID(T0, "web-1", "linux-baseline"), FirstlookVersion: "v0.1.0",
		Incident: evidence.Incident{Source: "pagerduty", ID: "Q2CKYRLH85UNN4", Number: 37, Title: "High load on web-1 <prod> & more",
			URL: "https://acme.pagerduty.com/incidents/Q2CKYRLH85UNN4", Service: "Web (prod)", Event: "incident.triggered"},
		Host:     evidence.Host{Name: "web-1", Address: "10.20.1.11:22", User: "firstlook", Bastion: "bastion-prod"},
		Playbook: evidence.Playbook{Name: "linux-baseline", File: "library/linux-baseline.yaml", SHA256: "9f2c"},
		Status:   status, Error: why, StartedAt: T0, EndedAt: T0.Add(2345 * time.Millisecond),
		Steps: []evidence.Step{},
	}}
	for i, s := range steps {
		st := evidence.Step{Name: s.Name, Command: s.Cmd, ExitCode: s.Exit, TimedOut: s.TimedOut, Skipped: s.Skipped, Error: s.Err,
			StartedAt: T0.Add(time.Duration(i) * time.Second), DurationMS: s.MS, Redactions: s.Redactions, Findings: s.Findings}
		st.Stdout = b.SetOutput(evidence.StepFile(i, s.Name, "stdout"), []byte(s.Out), s.outBytes(len(s.Out)))
		st.Stderr = b.SetOutput(evidence.StepFile(i, s.Name, "stderr"), []byte(s.ErrOut), int64(len(s.ErrOut)))
		b.Manifest.Steps = append(b.Manifest.Steps, st)
	}
	return evidence.Report{Bundle: b, Link: "https://evidence.example.com/pagerduty/Q2CKYRLH85UNN4/run/manifest.json?X-Amz-Signature=abc", Marker: "fl-1"}
}

// Cases returns the sample reports by name (ok, failed, truncated,
// findings, not-started), newly built on each call.
func Cases() map[string]evidence.Report {
	return map[string]evidence.Report{
		"ok": Run(evidence.StatusOK, "",
			Step{Name: "load", Cmd: "uptime", Out: " 03:04:05 up 12 days,  2:03,  0 users,  load average: 7.91, 6.02, 4.80\n", MS: 23},
			Step{Name: "memory", Cmd: "free -m", Out: "\n               total        used        free\nMem:           15934       14021         412\nSwap:              0           0           0\n", MS: 11},
			Step{Name: "nginx config", Cmd: "test -f /etc/nginx/nginx.conf", Exit: 1, Skipped: true},
		),
		"failed": Run(evidence.StatusFailed, "",
			Step{Name: "load", Cmd: "uptime", Out: " 03:04:05 up 12 days, load average: 0.10, 0.20, 0.30\n", MS: 20},
			Step{Name: "disk", Cmd: "df -h /data", Exit: 1, ErrOut: "df: /data: Stale file handle\n", MS: 8},
			Step{Name: "journal", Cmd: "journalctl -p err --since -15min --no-pager | tail -n 50", Exit: -1, Skipped: true, Err: `not run: step "disk" failed (exit 1) and has no continue_on_error`},
			Step{Name: "slow", Cmd: "sleep 300", Exit: -1, TimedOut: true, MS: 1000, Err: "timed out after 1s"},
		),
		"truncated": Run(evidence.StatusOK, "",
			Step{Name: "env", Cmd: "env", Out: "AWS_ACCESS_KEY_ID=[REDACTED:aws-access-key]\nHOME=/root\n", MS: 5, Redactions: 1},
			Step{Name: "big log", Cmd: "cat /var/log/syslog", Out: strings.Repeat("Nov 23 03:00:00 web-1 app[42]: request handled in 3ms\n", 3) + "…", Total: 3 << 20, MS: 410},
		),
		"findings": Run(evidence.StatusOK, "",
			Step{Name: "filesystems", Cmd: "df -hP", Out: "Filesystem Size Used Avail Use% Mounted on\n/dev/vda1 40G 38G 1.2G 97% /\n/dev/vdb1 100G 88G 12G 88% /data\n", MS: 12,
				Findings: []evidence.Finding{
					{Rule: "filesystem full", Severity: evidence.SeverityCrit, Message: "/ 97% full, 1.2 GiB free"},
					{Rule: "filesystem full", Severity: evidence.SeverityWarn, Message: "/data 88% full, 12 GiB free"},
				}},
			Step{Name: "biggest directories", Cmd: "sh -s", Out: "43008000\t/var/lib/docker\n", MS: 900,
				Findings: []evidence.Finding{{Rule: "largest", Severity: evidence.SeverityInfo, Message: "largest /var/lib/docker 41 GiB"}}},
		),
		"not-started": Run(evidence.StatusNotStarted, `connect: host key changed for bastion bastion-prod (192.0.2.10:22): possible man-in-the-middle, or the host was rebuilt; verify the new key and update known_hosts line 3`),
	}
}

// Host is one host's run of a two-step disk playbook (df, inodes) whose
// root filesystem is dfUse percent full; the inodes step exits with exit.
func Host(name string, dfUse int, exit int, status evidence.Status, why string) *evidence.Bundle {
	rep := Run(status, why,
		Step{Name: "df", Cmd: "df -h", Out: fmt.Sprintf("Filesystem Size Used Avail Use%% Mounted on\n/dev/vda1 100G %dG 1G %d%% /\ntmpfs 1G 0 1G 0%% /dev/shm\n", dfUse, dfUse), MS: 10},
		Step{Name: "inodes", Cmd: "df -i", Exit: exit, Out: "IUse% 3%\n", MS: 5},
	)
	if status == evidence.StatusNotStarted {
		rep.Bundle.Manifest.Steps = nil
	} else {
		// What the df step's finding rule records: its value always, a
		// finding at 95% and more.
		df := &rep.Bundle.Manifest.Steps[0]
		df.Values = map[string]float64{"filesystem full": float64(dfUse)}
		if dfUse >= 95 {
			v := float64(dfUse)
			df.Findings = []evidence.Finding{{Rule: "filesystem full", Severity: evidence.SeverityCrit, Message: fmt.Sprintf("/ %d%% full, 1 GiB free", dfUse), Value: &v}}
		}
	}
	rep.Bundle.Manifest.Host = evidence.Host{Name: name, Address: name + ":22"}
	return rep.Bundle
}

// Fanout is the sample fan-out report: linux-baseline on group web, four
// hosts that ran (web-3's disk 97% full) and one that could not connect.
func Fanout() evidence.Report {
	f := &evidence.Fanout{Target: "group web"}
	for i, use := range []int{41, 38, 97, 42} {
		b := Host(fmt.Sprintf("web-%d", i+1), use, 0, evidence.StatusOK, "")
		b.Manifest.EndedAt = b.Manifest.StartedAt.Add(time.Duration(i+1) * 300 * time.Millisecond)
		f.Runs = append(f.Runs, evidence.FanoutRun{Bundle: b, Link: fmt.Sprintf("https://evidence.example.com/web-%d/manifest.json", i+1)})
	}
	f.Runs = append(f.Runs, evidence.FanoutRun{Bundle: Host("web-5", 0, 0, evidence.StatusNotStarted, `connect: host key changed for host web-5`)})
	var bs []*evidence.Bundle
	for _, r := range f.Runs {
		bs = append(bs, r.Bundle)
	}
	f.Differences = evidence.Compare(bs)
	m := evidence.FanoutManifest(f)
	return evidence.Report{Bundle: &evidence.Bundle{Manifest: m}, Fanout: f, Marker: "fanout-1"}
}

// Golden compares got with the golden file testdata/render/name of the
// package under test, or rewrites that file when update is set.
func Golden(t *testing.T, update bool, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "render", name)
	if update {
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
