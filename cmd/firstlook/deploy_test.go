package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The deployment recipes under examples/deploy are tested with the tools
// their users run: systemd-analyze (Debian's systemd package), promtool
// (Debian's prometheus package) and the Go toolchain for the image's
// static build. Without a tool the test skips, or fails under
// FIRSTLOOK_REQUIRE_INTEGRATION=1.

const deployDir = "../../examples/deploy"

// maxExposure is the systemd-analyze security exposure the unit must stay
// at or under (0 is best, 10 worst; under 2 is "OK"). The README states
// the measured score.
const maxExposure = 1.5

func requireTool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("integration prerequisite missing: %s (apt-get install %s)", name, pkg)
	if os.Getenv("FIRSTLOOK_REQUIRE_INTEGRATION") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func runTool(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestSystemdUnit: the unit passes systemd-analyze verify (with the
// binary it names present) and its security exposure stays low.
func TestSystemdUnit(t *testing.T) {
	sa := requireTool(t, "systemd-analyze", "systemd")
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "firstlook.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's program exists and is executable:
	// point it at this test binary (TestContainerStaticBuild builds the
	// real one).
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const installed = "/usr/local/bin/firstlook "
	if !bytes.Contains(unit, []byte("ExecStart="+installed)) {
		t.Fatalf("the unit's ExecStart does not run %s", installed)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "firstlook.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("ExecStart="+installed), []byte("ExecStart="+bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runTool(t, dir, sa, "verify", path); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=firstlook", "LoadCredential=ssh-key:", "ProtectSystem=strict",
		"NoNewPrivileges=yes", "PrivateTmp=yes", "RestrictAddressFamilies=", "SystemCallFilter=@system-service"} {
		if !bytes.Contains(unit, []byte("\n"+want)) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	out, err := runTool(t, dir, sa, "security", "--offline=true", "--no-pager", path)
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for firstlook\.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}
}

// TestSystemdConfigReadsCredentials: the unit's configuration reads every
// secret from $CREDENTIALS_DIRECTORY, as systemd provides it.
func TestSystemdConfigReadsCredentials(t *testing.T) {
	creds := t.TempDir()
	secrets := map[string]string{
		"pagerduty-webhook-secret": "whsec-from-credentials",
		"pagerduty-api-token":      "u+pdtokenfromcredentials",
		"slack-bot-token":          "xoxb-from-credentials",
		"ssh-key":                  "not read by LoadConfig",
	}
	for name, v := range secrets {
		writeFile(t, filepath.Join(creds, name), v+"\n")
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	// The config names inventory.yaml next to itself.
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(deployDir, "systemd", "firstlook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := os.ReadFile("../../examples/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "firstlook.yaml"), string(raw))
	writeFile(t, filepath.Join(dir, "inventory.yaml"), string(inv))
	cfg, err := LoadConfig(filepath.Join(dir, "firstlook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.PagerDuty.APIToken.Value(); got != secrets["pagerduty-api-token"] {
		t.Errorf("pagerduty api token: got %q", got)
	}
	if got := cfg.Slack.BotToken.Value(); got != secrets["slack-bot-token"] {
		t.Errorf("slack bot token: got %q", got)
	}
	if ws := cfg.webhookSecrets(); len(ws) != 1 || ws[0] != secrets["pagerduty-webhook-secret"] {
		t.Errorf("webhook secrets: got %d, want the one from the credentials directory", len(ws))
	}
	if len(cfg.SSH.IdentityFiles) != 1 || cfg.SSH.IdentityFiles[0] != filepath.Join(creds, "ssh-key") {
		t.Errorf("ssh identity files: got %v", cfg.SSH.IdentityFiles)
	}
}

// TestPrometheusRules: the alerting rules load, and their unit tests
// (each alert fires on its series) pass.
func TestPrometheusRules(t *testing.T) {
	pt := requireTool(t, "promtool", "prometheus")
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "firstlook.rules.yml"},
		{"test", "rules", "firstlook.rules.test.yml"},
	} {
		if out, err := runTool(t, dir, pt, args...); err != nil || !strings.Contains(out, "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestContainerStaticBuild builds the binary as the Dockerfile does and
// checks that it is static: no program interpreter and no shared
// libraries, so it runs on distroless/static. (No container engine here:
// the image itself is not built.)
func TestContainerStaticBuild(t *testing.T) {
	df, err := os.ReadFile(filepath.Join(deployDir, "container", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build .*) -o /out/firstlook ./cmd/firstlook$`).FindSubmatch(df)
	if m == nil {
		t.Fatal("the Dockerfile has no CGO_ENABLED=0 go build of ./cmd/firstlook")
	}
	for _, want := range []string{"USER 65532", "VOLUME [\"/var/lib/firstlook\"]", "FROM gcr.io/distroless/static"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("the Dockerfile lacks %s", want)
		}
	}
	bin := filepath.Join(t.TempDir(), "firstlook")
	// As the Dockerfile, less -trimpath: that changes every package's
	// cache key, and a cold build of everything takes minutes on a busy
	// CI machine; it does not change how the binary links.
	args := []string{"build", "-ldflags", "-s -w -X main.version=test-static", "-o", bin, "."}
	if !strings.Contains(string(m[1]), `-trimpath -ldflags "-s -w -X main.version=${VERSION}"`) {
		t.Fatalf("the Dockerfile's build command changed; update this test: %s", m[1])
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %s program header: it is not static", p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil && !errors.Is(err, elf.ErrNoSymbols) || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test-static") {
		t.Errorf("firstlook version: %v %s", err, out)
	}
}
