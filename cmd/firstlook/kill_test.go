package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// built is the firstlook binary the process tests share: building it
// takes most of a minute on a loaded machine.
var built struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildBinary builds firstlook once per test binary run; TestMain removes
// it.
func buildBinary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "firstlook-bin-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "firstlook")
		cmd := exec.Command("go", "build", "-o", built.bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// TestMain removes the shared binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// daemon is `firstlook serve` as a separate process.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	log  string
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

func startDaemon(t testing.TB, bin, cfg, logFile string) *daemon {
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

func (d *daemon) kill(t testing.TB) {
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

// TestServeKilledDuringRuns is crash recovery end to end, with real
// processes: 200 incidents on 10 hosts, serve SIGKILLed at three points
// drawn from a fixed seed while runs are in flight, restarted on the same
// data directory each time. Every incident must end with exactly one
// bundle; a run may start a second time only if it was in flight at a
// kill; after each restart new runs must start within ack_wait plus slack
// (the dead process's host × playbook leases must not hold the node up);
// and after all that, a re-sent delivery is a duplicate that makes no job.
func TestServeKilledDuringRuns(t *testing.T) {
	const (
		incidents = 200
		hosts     = 10
		ackWait   = 5 * time.Second
	)
	f := newFleet(t, fleetOptions{Hosts: hosts, Step: "sleep 0.2", Queue: "  ack_wait: 5s\n  lease_ttl: 3s"})
	bin := buildBinary(t)
	logFile := filepath.Join(f.dir, "serve.log")
	c := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()

	d := startDaemon(t, bin, f.cfgPath, logFile)
	delivery := func(i int) string { return fmt.Sprintf("wh-kill-%03d", i) }
	incident := func(i int) string { return fmt.Sprintf("PKILL%03d", i) }
	for i := range incidents {
		body, sig := f.webhook(incident(i), fmt.Sprintf("kill on host-%d", i%hosts))
		code, reply, err := f.post(c, body, sig, delivery(i))
		if err != nil || code != http.StatusAccepted || reply.Status != "queued" {
			t.Fatalf("webhook %d: got %d %+v %v, want 202 queued", i, code, reply, err)
		}
	}

	// Three kill points, each a number of finished incidents.
	rng := rand.New(rand.NewPCG(10, 2026))
	points := []int{20 + rng.IntN(40), 80 + rng.IntN(40), 140 + rng.IntN(40)}
	inFlight := map[string]int{} // incident → kills it was in flight at
	var recovery []time.Duration
	for _, p := range points {
		if !waitFor(2*time.Minute, func() bool { return len(f.bundled()) >= p }) {
			t.Fatalf("only %d of %d incidents done before kill point %d:\n%s", len(f.bundled()), incidents, p, tail(logFile))
		}
		d.kill(t)
		done := f.bundled()
		startedAt, lines := f.started()
		n := 0
		for id := range startedAt {
			if done[id] == 0 {
				inFlight[id]++
				n++
			}
		}
		t.Logf("killed at %d bundles, %d runs in flight", len(done), n)

		restart := time.Now()
		d = startDaemon(t, bin, f.cfgPath, logFile)
		if !waitFor(ackWait+30*time.Second, func() bool { _, l := f.started(); return l > lines }) {
			t.Fatalf("no run started within %s of the restart:\n%s", ackWait+30*time.Second, tail(logFile))
		}
		recovery = append(recovery, time.Since(restart))
	}
	if !waitFor(2*time.Minute, func() bool { return len(f.bundled()) == incidents }) {
		t.Fatalf("%d of %d incidents have a bundle:\n%s", len(f.bundled()), incidents, tail(logFile))
	}
	t.Logf("restart to first new run: %v; all %d bundled %s after the first webhook", recovery, incidents, time.Since(start).Round(time.Second))
	for _, r := range recovery {
		if slack := sshtest.Timeout(10 * time.Second); r > ackWait+slack {
			t.Errorf("a run started %s after a restart, want within ack_wait (%s) plus %s", r, ackWait, slack)
		}
	}

	// Wait out stragglers that might still store a second bundle, then
	// check every incident.
	time.Sleep(2 * time.Second)
	done := f.bundled()
	startedAt, _ := f.started()
	again, wasInFlight := 0, 0
	for i := range incidents {
		id := incident(i)
		if done[id] != 1 {
			t.Errorf("incident %s: %d bundles, want exactly 1", id, done[id])
		}
		if startedAt[id] < 1 || startedAt[id] > 1+inFlight[id] {
			t.Errorf("incident %s: started %d times, in flight at %d kills; want 1, plus at most one per kill it was in flight at", id, startedAt[id], inFlight[id])
		}
		if startedAt[id] > 1 {
			again++
		}
		if inFlight[id] > 0 {
			wasInFlight++
		}
	}
	if wasInFlight == 0 {
		t.Error("no run was in flight at any kill: the kills tested nothing")
	}
	t.Logf("%d runs were in flight at a kill, %d of them started again", wasInFlight, again)

	// Every job was acked: a restart, then the same deliveries again are
	// duplicates, and nothing runs.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}
	d = startDaemon(t, bin, f.cfgPath, logFile)
	_, before := f.started()
	for i := 0; i < incidents; i += 10 {
		body, sig := f.webhook(incident(i), fmt.Sprintf("kill on host-%d", i%hosts))
		code, reply, err := f.post(c, body, sig, delivery(i))
		if err != nil || code != http.StatusAccepted || reply.Status != "duplicate" {
			t.Errorf("re-sent delivery %s after a restart: got %d %+v %v, want 202 duplicate", delivery(i), code, reply, err)
		}
	}
	time.Sleep(2 * time.Second)
	if _, after := f.started(); after != before {
		t.Errorf("re-sent deliveries started %d runs, want 0", after-before)
	}
	d.kill(t)
}

// tail is the end of a log file, for failure messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
