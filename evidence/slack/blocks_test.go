package slack_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
)

// The Block Kit goldens, moved here from evidence with the renderer; the
// runs are built as evidence's render tests build them (the same cases).

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

func TestBlocks(t *testing.T) {
	for name, rep := range cases {
		t.Run(name, func(t *testing.T) {
			blocks, err := json.MarshalIndent(goslack.Blocks{BlockSet: slack.Blocks(rep)}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".blocks.json", append(blocks, '\n'))
		})
	}
}

// TestBlocksLimits (evidence's TestSlackLimits, moved with the renderer): whatever the run, the blocks stay within Slack's limits.
func TestBlocksLimits(t *testing.T) {
	var steps []stepSpec
	for range 80 {
		steps = append(steps, stepSpec{name: strings.Repeat("n", 300), cmd: "x", out: strings.Repeat("é", 10000) + "\n" + strings.Repeat("```", 500), ms: 1})
	}
	rep := run(evidence.StatusOK, "", steps...)
	rep.Bundle.Manifest.Host.Name = strings.Repeat("h", 400)
	blocks := slack.Blocks(rep)
	if len(blocks) > slack.MaxBlocks {
		t.Fatalf("got %d blocks, want at most %d", len(blocks), slack.MaxBlocks)
	}
	raw, _ := json.Marshal(goslack.Blocks{BlockSet: blocks})
	var decoded []map[string]any
	_ = json.Unmarshal(raw, &decoded)
	for i, bl := range decoded {
		if txt, ok := bl["text"].(map[string]any); ok {
			s := txt["text"].(string)
			limit := slack.MaxTextObject
			if bl["type"] == "header" {
				limit = slack.MaxHeaderText
			}
			if n := utf8.RuneCountInString(s); n > limit || !utf8.ValidString(s) {
				t.Errorf("block %d (%s): %d characters, limit %d", i, bl["type"], n, limit)
			}
		}
	}
	if last := decoded[len(decoded)-1]; !strings.Contains(string(raw), "more steps") {
		t.Errorf("steps beyond the budget were not folded; last block %v", last)
	}
}

// host is one host's run of a two-step disk playbook.
func host(name string, dfUse int, exit int, status evidence.Status, why string) *evidence.Bundle {
	rep := run(status, why,
		stepSpec{name: "df", cmd: "df -h", out: fmt.Sprintf("Filesystem Size Used Avail Use%% Mounted on\n/dev/vda1 100G %dG 1G %d%% /\ntmpfs 1G 0 1G 0%% /dev/shm\n", dfUse, dfUse), ms: 10},
		stepSpec{name: "inodes", cmd: "df -i", exit: exit, out: "IUse% 3%\n", ms: 5},
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

// TestBlocksFanout is the Block Kit half of evidence's TestRenderFanout,
// moved here with the renderer.
func TestBlocksFanout(t *testing.T) {
	f := &evidence.Fanout{Target: "group web"}
	for i, use := range []int{41, 38, 97, 42} {
		b := host(fmt.Sprintf("web-%d", i+1), use, 0, evidence.StatusOK, "")
		b.Manifest.EndedAt = b.Manifest.StartedAt.Add(time.Duration(i+1) * 300 * time.Millisecond)
		f.Runs = append(f.Runs, evidence.FanoutRun{Bundle: b, Link: fmt.Sprintf("https://evidence.example.com/web-%d/manifest.json", i+1)})
	}
	f.Runs = append(f.Runs, evidence.FanoutRun{Bundle: host("web-5", 0, 0, evidence.StatusNotStarted, `connect: host key changed for host web-5`)})
	var bs []*evidence.Bundle
	for _, r := range f.Runs {
		bs = append(bs, r.Bundle)
	}
	f.Differences = evidence.Compare(bs)
	m := evidence.FanoutManifest(f)
	rep := evidence.Report{Bundle: &evidence.Bundle{Manifest: m}, Fanout: f, Marker: "fanout-1"}
	blocks, _ := json.MarshalIndent(goslack.Blocks{BlockSet: slack.Blocks(rep)}, "", "  ")
	golden(t, "fanout.blocks.json", append(blocks, '\n'))
}
