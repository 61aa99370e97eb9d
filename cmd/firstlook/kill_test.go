package main

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds firstlook once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "firstlook")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// daemon is `firstlook serve` as a separate process.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	log  string
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startDaemon(t *testing.T, bin, cfg, logFile string) *daemon {
	t.Helper()
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, _ := os.Pipe()
	cmd := exec.Command(bin, "serve", "-config", cfg)
	cmd.Stderr = pw
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	d := &daemon{cmd: cmd, log: logFile}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	found := make(chan string, 1)
	copied := make(chan struct{})
	t.Cleanup(func() { <-copied; f.Close() })
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			f.WriteString(line + "\n")
			if m := listening.FindStringSubmatch(line); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
	}()
	select {
	case d.addr = <-found:
	case <-time.After(30 * time.Second):
		b, _ := os.ReadFile(logFile)
		t.Fatalf("serve did not start listening within 30s:\n%s", b)
	}
	return d
}

func (d *daemon) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Wait()
}

// TestServeKilledAfter202: serve is SIGKILLed right after it answered
// 202; once restarted, the job still runs, and runs once.
func TestServeKilledAfter202(t *testing.T) {
	e := newEnv(t, "host-1")
	bin := buildBinary(t)
	// A fixed port: the restarted daemon must be where PagerDuty sends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("firstlook.yaml", strings.Replace(string(cfg), "listen: 127.0.0.1:0", "listen: "+addr, 1))
	logFile := filepath.Join(e.dir, "serve.log")

	d := startDaemon(t, bin, e.cfgPath, logFile)
	e.url = "http://" + d.addr
	e.send("INCCRASH", "crash on host-1")
	d.kill(t) // right after the 202: the job is stored, its run has not finished
	if n := len(e.bundles("INCCRASH")); n != 0 {
		t.Fatalf("got %d bundles before the restart; the playbook takes 3s, want 0", n)
	}

	d = startDaemon(t, bin, e.cfgPath, logFile)
	b := e.wait("INCCRASH", 1)[0]
	if got := stdout(b, 1); got != "host-1\n" || b.Manifest.Status != "ok" {
		t.Fatalf("got %q (%s), want host-1's output", got, b.Manifest.Status)
	}

	// Restart once more, and deliver the incident again under a new
	// webhook id: the finished run is not run a second time.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	d = startDaemon(t, bin, e.cfgPath, logFile)
	body, sig := e.webhook("INCCRASH", "crash on host-1")
	if code, _ := e.post(body, map[string]string{"X-PagerDuty-Signature": sig, "X-Webhook-Id": "wh-INC-CRASH-again"}); code != http.StatusAccepted {
		t.Fatalf("got %d, want 202", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !logContains(logFile, "run already done") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !logContains(logFile, "run already done") {
		t.Error("the second delivery was not recognised as done")
	}
	if n := len(e.bundles("INCCRASH")); n != 1 {
		t.Fatalf("got %d bundles, want exactly 1", n)
	}
	d.kill(t)
}

func logContains(path, s string) bool {
	b, _ := os.ReadFile(path)
	return strings.Contains(string(b), s)
}
