package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `firstlook demo` as make demo does: no root, no network
// beyond loopback.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	dir := t.TempDir()
	if err := runDemo(context.Background(), dir, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"202 Accepted",
		"firstlook: first-look on demo-host: 5/5 steps ok",
		"firstlook was paged for High load on demo-host on demo-host",
		"bundle:  " + dir,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	kh, _ := os.ReadFile(filepath.Join(dir, "known_hosts"))
	if n := strings.Count(string(kh), "ssh-ed25519"); n != 2 {
		t.Errorf("known_hosts has %d keys, want the bastion's and the host's", n)
	}
}

// TestRunCommand: `firstlook run` on a real host behind the bastion prints
// the evidence and exits by the run's outcome.
func TestRunCommand(t *testing.T) {
	e := newEnv(t, "host-1")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"run", "-config", e.cfgPath, "-host", "host-1", "-playbook", "whoami"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"firstlook: whoami on host-1: 2/2 steps ok", "── hostname ── $ hostname\nhost-1\n", "Full evidence: file://"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if ms, _ := filepath.Glob(filepath.Join(e.evidence, "cli", "*", "*", "manifest.json")); len(ms) != 1 {
		t.Errorf("got %d stored bundles, want 1", len(ms))
	}

	out.Reset()
	code = run(context.Background(), []string{"run", "-config", e.cfgPath, "-host", "host-1", "-playbook", "slow", "-summary"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String(), "[FAILED] 1. sleep — timed out after") {
		t.Errorf("failing run: exit %d\n%s", code, out.String())
	}
	out.Reset()
	errOut.Reset()
	code = run(context.Background(), []string{"run", "-config", e.cfgPath, "-host", "web-9", "-playbook", "whoami"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), `host "web-9": not in the inventory`) {
		t.Errorf("unknown host: exit %d, stderr %q", code, errOut.String())
	}
	// A library playbook runs by name without being configured.
	out.Reset()
	code = run(context.Background(), []string{"run", "-config", e.cfgPath, "-host", "host-1", "-playbook", "linux-baseline", "-summary"}, &out, &errOut)
	// Its headline is its worst finding, if any; the steps' outcome follows.
	if code != 0 || !strings.Contains(out.String(), "linux-baseline on host-1: ") {
		t.Errorf("library playbook: exit %d\n%s", code, out.String())
	}
	replaySameFindings(t, e.cfgPath, e.evidence, "linux-baseline")
	code = run(context.Background(), []string{"run", "-config", e.cfgPath, "-host", "host-1"}, &out, &errOut)
	if code != 2 {
		t.Errorf("missing -playbook: got exit %d, want 2", code)
	}
}

// TestDemoCleansUp: the demo removes its temporary directory (it holds a
// private key) unless -keep, and says where it is when kept.
func TestDemoCleansUp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, keep := range []bool{false, true} {
		var out, errOut bytes.Buffer
		args := []string{}
		if keep {
			args = append(args, "-keep")
		}
		if err := demoCmd(context.Background(), args, &out, &errOut); err != nil {
			t.Fatalf("demo %v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		left, _ := filepath.Glob(filepath.Join(tmp, "firstlook-demo-*"))
		switch {
		case !keep && (len(left) != 0 || !strings.Contains(out.String(), "removed: ")):
			t.Errorf("demo left %v behind:\n%s", left, out.String())
		case keep && (len(left) != 1 || !strings.Contains(out.String(), "kept:    "+left[0])):
			t.Errorf("demo -keep: got %v\n%s", left, out.String())
		case keep:
			if _, err := os.Stat(filepath.Join(left[0], "id_ed25519")); err != nil {
				t.Errorf("kept directory lacks the key: %v", err)
			}
		}
	}
}
