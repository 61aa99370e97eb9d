package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestExamplesValidate keeps examples/ (what the README points people at)
// and the demo's playbook loadable.
func TestExamplesValidate(t *testing.T) {
	t.Setenv("PAGERDUTY_WEBHOOK_SECRET", "example-secret")
	t.Setenv("PAGERDUTY_API_TOKEN", "example-token")
	for _, args := range [][]string{
		{"validate", "-config", "../../examples/firstlook.yaml"},
		{"validate", "demo"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "ok") {
			t.Errorf("%v: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
	}
}

// TestValidateReportsPositions: a bad playbook fails validate with exit 1
// and file:line:column.
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
