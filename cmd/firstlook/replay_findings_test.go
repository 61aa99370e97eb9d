package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
)

// replayBundle stores a disk-full run of web-1 for service "Checkout
// API" in a temp dir store, as the runner writes it, and returns the
// run's directory. Its filesystems output is real (testdata/replay,
// SOURCES.md); "old step" is a step the library playbook does not have.
func replayBundle(t *testing.T) string {
	t.Helper()
	out, err := os.ReadFile(filepath.Join("testdata", "replay", "disk-full.filesystems.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema:   evidence.ManifestSchema,
		RunID:    evidence.RunID(start, "web-1", "disk-full"),
		Incident: evidence.Incident{Source: "pagerduty", ID: "PABC123", Title: "disk full on web-1", Service: "Checkout API", Event: "incident.triggered"},
		Host:     evidence.Host{Name: "web-1", Address: "10.0.0.1:22", User: "u"},
		Playbook: evidence.Playbook{Name: "disk-full", SHA256: strings.Repeat("0", 64)},
		Status:   evidence.StatusOK, StartedAt: start, EndedAt: start.Add(2 * time.Second),
	}}
	for i, name := range []string{"filesystems", "old step"} {
		st := evidence.Step{Name: name, Command: "sh -s", StartedAt: start, DurationMS: 40}
		st.Stdout = b.SetOutput(evidence.StepFile(i, name, "stdout"), out, int64(len(out)))
		if i == 0 {
			st.Findings = []evidence.Finding{{Rule: "filesystem full", Severity: evidence.SeverityCrit, Message: "/ 30% full (as an older playbook said)"}}
		}
		b.Manifest.Steps = append(b.Manifest.Steps, st)
	}
	root := t.TempDir()
	s, err := dir.New(dir.Config{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	prefix, err := evidence.Write(context.Background(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, filepath.FromSlash(prefix))
}

// replayConfig writes a config with the library's disk-full and params
// for the service, and returns its path.
func replayConfig(t *testing.T, params string) string {
	t.Helper()
	t.Setenv("FL_TEST_SECRET", "x")
	t.Setenv("FL_TEST_TOKEN", "y")
	d := configDir(t)
	path := filepath.Join(d, "firstlook.yaml")
	writeFile(t, path, minimal+"  library: [disk-full]\n"+params)
	return path
}

func replayRun(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"replay"}, args...), &out, &errOut)
	return out.String() + errOut.String(), code
}

func wantAll(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("output lacks %q:\n%s", w, got)
		}
	}
}

// TestReplayFindingsBundle: a stored run re-evaluated with the service's
// overrides raises the finding the defaults do not, says which step the
// playbook lost, and prints the summary the note would carry.
func TestReplayFindingsBundle(t *testing.T) {
	bundle := replayBundle(t)
	cfg := replayConfig(t, "params:\n  Checkout API: {fs_warn_pct: \"25\"}\n")
	got, code := replayRun(t, "-config", cfg, "-bundle", bundle)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, got)
	}
	wantAll(t, got,
		`params: the playbook's defaults with the config's overrides for service "Checkout API"`,
		"note: playbook disk-full changed since the run (sha256 000000000000 then, ",
		"the run found:\n- CRIT / 30% full (as an older playbook said) (filesystems)\n",
		`note: step "old step" of the bundle is not in playbook disk-full any more`,
		`note: step "inodes" of playbook disk-full is not in the bundle`,
		"**firstlook: WARN web-1: / 30% full, 65 GiB free of 252 GiB**",
		"Findings:\n- WARN / 30% full, 65 GiB free of 252 GiB (filesystems)\n",
		"[ok] 1. filesystems",
		"/dev/vda",
	)
	if strings.Count(got, "WARN ") != 2 || strings.Count(got, "CRIT ") != 1 {
		t.Errorf("want the one finding in the headline and the list only:\n%s", got)
	}

	// -service picks another service's overrides.
	cfg = replayConfig(t, "params:\n  Payments: {fs_warn_pct: \"30\", fs_crit_pct: \"30\"}\n")
	got, code = replayRun(t, "-config", cfg, "-bundle", bundle, "-service", "Payments")
	wantAll(t, got, `overrides for service "Payments"`, "**firstlook: CRIT web-1: / 30% full, 65 GiB free of 252 GiB**")
	if code != 0 {
		t.Errorf("exit %d", code)
	}

	// The defaults (85%, 95%) find nothing in the same output.
	cfg = replayConfig(t, "")
	got, code = replayRun(t, "-config", cfg, "-bundle", bundle)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, got)
	}
	wantAll(t, got, `the config has no params for service "Checkout API"`, "**firstlook: disk-full on web-1: 2/2 steps ok**")
	if strings.Contains(got, "Findings:") {
		t.Errorf("findings with the default thresholds:\n%s", got)
	}
}

// TestReplayFindingsOutput: one step's saved stdout, with a playbook
// file and no config.
func TestReplayFindingsOutput(t *testing.T) {
	d := t.TempDir()
	pb := filepath.Join(d, "disk.yaml")
	writeFile(t, pb, `name: disk
params: {warn: "20"}
steps:
  - name: df
    run: df -hPT
    findings:
      - name: full
        pattern: '(?m)^\S+\s+\S+\s+(?P<size>\S+)\s+\S+\s+(?P<avail>\S+)\s+(?P<use>\d+)%\s+(?P<mount>/.*)$'
        value: use
        above: {warn: warn}
        message: "{{ .mount }} at {{ .use }}% (over {{ .threshold }}%)"
`)
	out, err := filepath.Abs(filepath.Join("testdata", "replay", "disk-full.filesystems.stdout"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(d) // no firstlook.yaml here: the playbook's defaults
	got, code := replayRun(t, "-playbook", pb, "-step", "df", "-output", out)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, got)
	}
	wantAll(t, got, "params: the playbook's defaults (no config)",
		"**firstlook: WARN disk-full.filesystems.stdout: / at 30% (over 20%)**",
		"- WARN / at 30% (over 20%) (df)")
}

// TestReplayFindingsErrors: an unknown playbook or step, a directory
// that is no bundle, and mixed modes fail with a clear error.
func TestReplayFindingsErrors(t *testing.T) {
	bundle := replayBundle(t)
	cfg := replayConfig(t, "")
	out := filepath.Join("testdata", "replay", "disk-full.filesystems.stdout")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-bundle", bundle, "-playbook", "disk-ful"}, `no playbook "disk-ful"; the config has disk-full, p; the library has `},
		{[]string{"-step", "nope", "-output", out, "-playbook", "disk-full"}, `playbook disk-full has no step "nope"; its steps are filesystems, inodes,`},
		{[]string{"-bundle", filepath.Dir(bundle)}, "has no manifest.json; give a run's directory"},
		{[]string{"-output", out, "-step", "filesystems"}, "a saved output needs -step NAME -output FILE -playbook"},
		{[]string{"-bundle", bundle, "-output", out}, "not both"},
		{[]string{"-playbook", "disk-full", "payload.json"}, "take no webhook file"},
	} {
		got, code := replayRun(t, append([]string{"-config", cfg}, tc.args...)...)
		if code == 0 || !strings.Contains(got, tc.want) {
			t.Errorf("%q: exit %d, want an error with %q:\n%s", tc.args, code, tc.want, got)
		}
	}
}

// replaySameFindings replays the bundle a real run of playbook left in
// the evidence directory: with the playbook and params unchanged, it
// finds what the run found, so the headline is the run's.
func replaySameFindings(t *testing.T, cfg, evidenceDir, playbook string) {
	t.Helper()
	ms, _ := filepath.Glob(filepath.Join(evidenceDir, "*", "*", "*-"+playbook, evidence.ManifestFile))
	if len(ms) != 1 {
		t.Fatalf("got %d bundles of %s, want 1", len(ms), playbook)
	}
	bundle := filepath.Dir(ms[0])
	s, err := dir.New(dir.Config{Path: filepath.Dir(bundle)})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := evidence.Read(context.Background(), s, filepath.Base(bundle))
	if err != nil {
		t.Fatal(err)
	}
	got, code := replayRun(t, "-config", cfg, "-bundle", bundle)
	want := "**firstlook: " + evidence.Headline(saved.Manifest) + "**"
	if code != 0 || !strings.Contains(got, want) {
		t.Errorf("replay of the %s run: exit %d, want %q:\n%s", playbook, code, want, got)
	}
	for _, f := range evidence.Findings(saved.Manifest) {
		if w := "- " + f.String() + " (" + f.Step + ")\n"; strings.Count(got, w) != 2 {
			t.Errorf("replay does not find %q as the run did:\n%s", w, got)
		}
	}
}
