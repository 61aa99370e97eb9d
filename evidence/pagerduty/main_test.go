package pagerduty_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultPrism is where CI installs Prism
// (npm install --prefix /opt/prism @stoplight/prism-cli@5.16.0);
// FIRSTLOOK_PRISM overrides it.
const DefaultPrism = "/opt/prism/node_modules/.bin/prism"

// prism is one Prism mock serving PagerDuty's REST spec for the whole
// test binary: started by the first test that needs it, stopped by
// TestMain.
var prism struct {
	once sync.Once
	url  string
	stop func()
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if prism.stop != nil {
		prism.stop()
	}
	if derivedSpecDir != "" {
		os.RemoveAll(derivedSpecDir)
	}
	os.Exit(code)
}

// derivedSpecDir holds the spec that acceptVND wrote, removed by TestMain.
var derivedSpecDir string

// vndJSON is the media type go-pagerduty sends in every Accept header.
const vndJSON = "application/vnd.pagerduty+json;version=2"

// acceptVND writes a copy of the official spec in which every response
// that has an application/json body also offers it as vndJSON, and returns
// its path. go-pagerduty always asks for vndJSON and Prism answers 406 to
// it, because the official spec declares only application/json bodies
// (testdata/SOURCES.md). Requests are validated exactly as the official
// spec says; only what Prism may answer with grows.
func acceptVND(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("spec: %w", err)
	}
	var spec map[string]any
	if err := json.Unmarshal(raw, &spec); err != nil {
		return "", fmt.Errorf("spec %s: %w", path, err)
	}
	patch := func(resp any) {
		r, ok := resp.(map[string]any)
		if !ok {
			return
		}
		if content, ok := r["content"].(map[string]any); ok {
			if j, ok := content["application/json"]; ok {
				content[vndJSON] = j
			}
		}
	}
	paths, _ := spec["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			o, _ := op.(map[string]any)
			responses, _ := o["responses"].(map[string]any)
			for _, resp := range responses {
				patch(resp)
			}
		}
	}
	if comps, ok := spec["components"].(map[string]any); ok {
		responses, _ := comps["responses"].(map[string]any)
		for _, resp := range responses {
			patch(resp)
		}
	}
	out, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "firstlook-pd-spec-")
	if err != nil {
		return "", err
	}
	derivedSpecDir = dir
	derived := filepath.Join(dir, "pagerduty-rest-openapiv3.prism-vnd-accept.json")
	return derived, os.WriteFile(derived, out, 0o644)
}

// prismURL returns the base URL of the Prism mock, starting it on first
// use; without Prism the test skips, or fails under
// FIRSTLOOK_REQUIRE_INTEGRATION=1.
func prismURL(t *testing.T) string {
	t.Helper()
	prism.once.Do(func() {
		spec, err := acceptVND("testdata/pagerduty-rest-openapiv3.json")
		if err != nil {
			prism.err = err
			return
		}
		prism.url, prism.stop, prism.err = startPrism(spec)
	})
	if prism.err != nil {
		requireIntegration(t, prism.err)
	}
	return prism.url
}

// requireIntegration skips, or fails under FIRSTLOOK_REQUIRE_INTEGRATION=1,
// when a real part of the test is missing.
func requireIntegration(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("FIRSTLOOK_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration prerequisite missing: %v", err)
	}
	t.Skipf("integration prerequisite missing: %v", err)
}

func startPrism(spec string) (string, func(), error) {
	bin := os.Getenv("FIRSTLOOK_PRISM")
	if bin == "" {
		bin = DefaultPrism
	}
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("prism: %w (npm install @stoplight/prism-cli@5.16.0, or set FIRSTLOOK_PRISM)", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return "", nil, fmt.Errorf("prism needs node: %w", err)
	}
	if _, err := os.Stat(spec); err != nil {
		return "", nil, fmt.Errorf("spec: %w", err)
	}
	// A free port can be taken by another test process between our close
	// and Prism's listen: try again on another.
	var errs []error
	for range 3 {
		url, stop, err := runPrism(bin, spec)
		if err == nil {
			return url, stop, nil
		}
		errs = append(errs, err)
	}
	return "", nil, errors.Join(errs...)
}

func runPrism(bin, spec string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	out := &lockedBuffer{}
	// --errors: a request the spec rejects gets an error status and the
	// sl-violations header, never a mocked success.
	cmd := exec.Command(bin, "mock", "--errors", "-h", "127.0.0.1", "-p", strconv.Itoa(port), spec)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that stopping it stops whatever node
	// starts; and killed with the test binary should that die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// Pdeathsig fires when the thread that started the child exits:
		// keep this goroutine on its thread until Prism has exited.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return "", nil, fmt.Errorf("start prism: %w", err)
	}
	pgid := cmd.Process.Pid
	stop := func() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
	}

	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := &http.Client{Timeout: 2 * time.Second}
	// Prism parses the 5 MB spec before it listens: a few seconds.
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); {
		select {
		case <-exited:
			return "", nil, fmt.Errorf("prism exited before it was ready:\n%s", out.tail())
		default:
		}
		// Ready only once Prism itself says it listens on our port: a
		// server of another test that took the port between our close
		// and Prism's listen would answer the probe too (seen under
		// load, as 404s without a Content-Type).
		if !strings.Contains(out.String(), "Prism is listening on "+url) {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		if resp, err := c.Get(url + "/"); err == nil {
			resp.Body.Close()
			return url, stop, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop()
	return "", nil, fmt.Errorf("prism not ready after 90s:\n%s", out.tail())
}

// lockedBuffer collects a process's output for error messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.b.String()
	return s[max(0, len(s)-4000):]
}

// String returns everything written so far.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
