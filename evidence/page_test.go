package evidence_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
)

// hostile is alert text and output that try to run script in the page.
const hostile = `<script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">`

// pageBundle is a run with what a reader must be able to see: a failed
// step, a truncated and long (folded) step, a redacted secret, a script
// step, and hostile text in the title and the output.
func pageBundle(t *testing.T) *evidence.Bundle {
	t.Helper()
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema: evidence.ManifestSchema, RunID: evidence.RunID(start, "web-1", "linux-baseline"), FirstlookVersion: "v1.2.3",
		Incident: evidence.Incident{Source: "pagerduty", ID: "Q2CKYRLH85UNN4", Number: 1234,
			Title: "CPU high on web-1 " + hostile, URL: "javascript:alert(1)", Service: "Web (prod)",
			Event: "incident.triggered", Delivery: "0c3a8e2f-delivery"},
		Host:      evidence.Host{Name: "web-1", Address: "10.0.0.5:22", User: "firstlook", Bastion: "bastion-1"},
		Playbook:  evidence.Playbook{Name: "linux-baseline", File: "playbooks/linux.yaml", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
		Status:    evidence.StatusFailed,
		StartedAt: start, EndedAt: start.Add(2345 * time.Millisecond),
		Group: "group web",
	}}
	var long strings.Builder
	for i := range 120 {
		fmt.Fprintf(&long, "line %03d of the journal\n", i+1)
	}
	steps := []struct {
		st             evidence.Step
		stdout, stderr string
		total          int64
	}{
		{st: evidence.Step{Name: "load", Command: "uptime", ExitCode: 0, DurationMS: 23},
			stdout: " 03:00:01 up 12 days,  load average: 7.91, 6.20, 5.10\n"},
		{st: evidence.Step{Name: "disk", Command: "df -hP /var", ExitCode: 2, DurationMS: 41,
			Findings: []evidence.Finding{{Rule: "full", Severity: "critical", Message: "/var is 97% full " + hostile}}},
			stdout: "output " + hostile + "\n", stderr: "df: /var: No such file or directory\n"},
		{st: evidence.Step{Name: "journal", Command: "journalctl -n 5000 --no-pager", ExitCode: 0, DurationMS: 1200},
			stdout: long.String(), total: 1 << 20},
		{st: evidence.Step{Name: "env", Command: "sh -s", Script: "set -eu\ncat /etc/app.env\n", ExitCode: 0, DurationMS: 8},
			stdout: "DB_PASSWORD=hunter2hunter2\nREGION=eu-west-1\n"},
	}
	for i, s := range steps {
		st := s.st
		st.StartedAt = start
		total := s.total
		if total == 0 {
			total = int64(len(s.stdout))
		}
		st.Stdout = b.SetOutput(evidence.StepFile(i, st.Name, "stdout"), []byte(s.stdout), total)
		st.Stderr = b.SetOutput(evidence.StepFile(i, st.Name, "stderr"), []byte(s.stderr), int64(len(s.stderr)))
		b.Manifest.Steps = append(b.Manifest.Steps, st)
	}
	red, err := evidence.NewRedactor(evidence.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	red.RedactBundle(b)
	if b.Manifest.Steps[3].Redactions != 1 {
		t.Fatalf("got %d redactions in the env step, want 1", b.Manifest.Steps[3].Redactions)
	}
	return b
}

func TestPageEscapesAndMarks(t *testing.T) {
	page, err := evidence.Page(pageBundle(t))
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, bad := range []string{"<script", "<img", "javascript:", "hunter2", "<link", "@import"} {
		if strings.Contains(strings.ToLower(html), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	for _, want := range []string{
		"&lt;script&gt;", // escaped, not dropped
		"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b", // playbook hash
		"$ df -hP /var", "exit code 2", "FAILED",
		"<strong>critical</strong> /var is 97% full &lt;script&gt;",
		"set -eu\ncat /etc/app.env", // a script step's script
		"[REDACTED:password]", "1 secret(s) redacted",
		"stdout truncated: the step wrote 1.0 MiB",
		"<details><summary>stdout: 120 lines",
		`href="../group-linux-baseline/index.html"`,
		"before redaction", "after redaction",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestFanoutPage(t *testing.T) {
	var runs []evidence.FanoutRun
	var bundles []*evidence.Bundle
	for i, pct := range []int{41, 97, 39} {
		start := time.Date(2026, 11, 23, 3, 0, i, 0, time.UTC)
		host := fmt.Sprintf("web-%d", i+1)
		b := &evidence.Bundle{Manifest: evidence.Manifest{RunID: evidence.RunID(start, host, "disk"),
			Incident: evidence.Incident{Source: "pagerduty", ID: "P1", Title: "disk"},
			Host:     evidence.Host{Name: host}, Playbook: evidence.Playbook{Name: "disk"},
			Status: evidence.StatusOK, StartedAt: start, EndedAt: start.Add(time.Second), Group: "group web"}}
		out := fmt.Sprintf("/var %d%%\n", pct)
		// Fan-out compares the values of the steps' finding rules.
		b.Manifest.Steps = []evidence.Step{{Name: "df", Command: "df", Stdout: b.SetOutput("steps/01-df.stdout", []byte(out), int64(len(out))),
			Values: map[string]float64{"use": float64(pct)}}}
		runs = append(runs, evidence.FanoutRun{Bundle: b})
		bundles = append(bundles, b)
	}
	f := &evidence.Fanout{Target: "group web", Runs: runs, Differences: evidence.Compare(bundles)}
	rep := evidence.Report{Bundle: &evidence.Bundle{Manifest: evidence.FanoutManifest(f)}, Fanout: f}
	page, err := evidence.FanoutPage(rep, func(r evidence.FanoutRun) string { return evidence.HostPageLink(r.Bundle.Manifest) })
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	for _, want := range []string{
		"disk on group web: 3 hosts, 3 ok, 1 differ",
		"<strong>web-2</strong> — step df: use 97 where its 2 peers show 39–41",
		`<a href="../20261123T030001.000Z-web-2-disk/index.html">web-2</a>`,
		`<tr class="differs">`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("fan-out page lacks %q\n%s", want, html)
		}
	}
}

// TestPageInChromium opens a stored bundle's page in a real headless
// Chromium: a screenshot for people (kept in $FIRSTLOOK_ARTIFACTS, or
// the test's temporary directory), and the rendered DOM for the test,
// which checks that a reader sees what they need and that no hostile
// text ran.
func TestPageInChromium(t *testing.T) {
	browser, err := chromium()
	if err != nil {
		if os.Getenv("FIRSTLOOK_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("integration prerequisite missing: %v", err)
		}
		t.Skipf("integration prerequisite missing: %v", err)
	}
	ctx := context.Background()
	store, err := dir.New(dir.Config{Path: filepath.Join(t.TempDir(), "evidence")})
	if err != nil {
		t.Fatal(err)
	}
	b := pageBundle(t)
	prefix, err := evidence.Write(ctx, store, b)
	if err != nil {
		t.Fatal(err)
	}
	link, err := store.Link(ctx, prefix+evidence.PageFile)
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("FIRSTLOOK_ARTIFACTS")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "evidence-page.png")
	if _, err := runChromium(t, browser, "--screenshot="+shot, "--window-size=1280,1600", link); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10<<10 {
		t.Fatalf("screenshot %s: %v (size %v), want a picture of the page", shot, err, st)
	}
	t.Logf("screenshot: %s", shot)

	dom, err := runChromium(t, browser, "--dump-dom", link)
	if err != nil {
		t.Fatal(err)
	}
	text := string(dom)
	if strings.Contains(text, "pwned") && !strings.Contains(text, `&lt;script&gt;document.title="pwned"`) {
		t.Errorf("hostile text was not kept as text:\n%s", text)
	}
	if strings.Contains(text, "<title>pwned</title>") || strings.Contains(strings.ToLower(text), "<script") || strings.Contains(text, "<img") {
		t.Errorf("hostile text became markup or ran:\n%s", text)
	}
	for _, want := range []string{
		"<title>firstlook: ", "/var is 97% full",
		"Q2CKYRLH85UNN4", "web-1", "linux-baseline", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"2. disk", "exit code 2", "FAILED", "df: /var: No such file or directory",
		"stdout truncated", "[REDACTED:password]", "secret(s) redacted",
		"cat /etc/app.env", "line 120 of the journal",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
	if strings.Contains(text, "hunter2") {
		t.Error("the rendered page shows the secret")
	}
}

func chromium() (string, error) {
	for _, name := range []string{os.Getenv("FIRSTLOOK_CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium on PATH (apt-get install chromium, or set FIRSTLOOK_CHROMIUM)")
}

// runChromium runs one headless Chromium with a fresh profile and nothing
// that reaches the network on its own.
func runChromium(t *testing.T, browser string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("chromium %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), nil
}
