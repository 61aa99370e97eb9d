package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestValidateGolden")

// TestValidateGolden runs validate on every example (with the variables
// the README says to set) and on one broken file per case in
// testdata/validate, and compares what it prints, positions and carets
// included, with the .golden file beside it (go test -run
// TestValidateGolden -update rewrites them).
func TestValidateGolden(t *testing.T) {
	t.Setenv("PAGERDUTY_WEBHOOK_SECRET", "example-secret")
	t.Setenv("FL_GOLDEN_SECRET", "golden-secret")
	t.Setenv("SSH_AUTH_SOCK", "/run/agent.sock") // the examples use the agent
	os.Unsetenv("PAGERDUTY_API_TOKEN")           // the README calls it optional: a warning
	type tc struct {
		name     string
		args     []string
		wantCode int
	}
	cases := []tc{
		{"examples", []string{"validate", "-config", "../../examples/firstlook.yaml"}, 0},
		{"examples-playbooks", []string{"validate", "../../examples/playbooks"}, 0},
		{"demo", []string{"validate", "demo"}, 0},
		{"playbook-syntax", []string{"validate", "testdata/validate/files/playbook-syntax.yaml"}, 1},
	}
	configs, _ := filepath.Glob("testdata/validate/*.yaml")
	for _, c := range configs {
		name := strings.TrimSuffix(filepath.Base(c), ".yaml")
		code := 1
		if name == "unset-secret" {
			code = 0
		}
		cases = append(cases, tc{name, []string{"validate", "-config", c}, code})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), c.args, &out, &errOut)
			if code != c.wantCode {
				t.Errorf("exit %d, want %d", code, c.wantCode)
			}
			golden := filepath.Join("testdata", "validate", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (go test -run TestValidateGolden -update writes it)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("validate %v printed:\n%s\nwant (%s):\n%s%s", c.args, got, golden, want, errOut.String())
			}
		})
	}
}

// TestValidateReportsPositions: a bad playbook fails validate with exit 1
// and file:line:column; no arguments is a usage error.
func TestValidateReportsPositions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/bad.yaml", "name: bad\nsteps:\n  - name: s\n    comand: uptime\n")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"validate", dir}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "bad.yaml:4:5:") || !strings.Contains(out.String(), `"comand"`) {
		t.Fatalf("got exit %d, output %q", code, out.String())
	}
	code = run(context.Background(), []string{"validate"}, &out, &errOut)
	if code != 2 {
		t.Fatalf("validate without arguments: got exit %d, want 2", code)
	}
}
