// Package pdtest runs Prism (https://github.com/stoplightio/prism) over
// PagerDuty's official REST API spec (../testdata, see its SOURCES.md) for
// tests of every package that talks to PagerDuty, as a validating mock:
// every request is checked against the spec, and the answers are the
// spec's own examples. (Prism's proxy mode was tried for fixed answers:
// 5.16 forwards requests the spec rejects and reports no violations of
// the upstream's answers, so it proves nothing; tests that need fixed
// figures serve them from a handler of their own and send the same
// requests through Mock too.)
//
// Prism is at DefaultPrism or $FIRSTLOOK_PRISM; without it (or node) a
// test skips, and fails under FIRSTLOOK_REQUIRE_INTEGRATION=1.
package pdtest

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

// VndJSON is the media type go-pagerduty sends in every Accept header.
const VndJSON = "application/vnd.pagerduty+json;version=2"

// Spec is the path of the official spec, found from this file's place in
// the repository (tests run in their own package's directory).
func Spec() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "pagerduty-rest-openapiv3.json")
}

// Prism is a running Prism process.
type Prism struct {
	// URL is its base URL, the REST API endpoint for clients.
	URL string

	stop func()
	dir  string
}

// Close stops Prism and removes the derived spec.
func (p *Prism) Close() {
	if p == nil {
		return
	}
	if p.stop != nil {
		p.stop()
	}
	if p.dir != "" {
		os.RemoveAll(p.dir)
	}
}

// Mock starts `prism mock --errors` over the spec: a request the spec
// rejects gets an error status and an sl-violations header, never a
// mocked success.
func Mock() (*Prism, error) { return start("mock") }

// RequireIntegration skips, or fails under FIRSTLOOK_REQUIRE_INTEGRATION=1,
// when a real part of the test is missing.
func RequireIntegration(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("FIRSTLOOK_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration prerequisite missing: %v", err)
	}
	t.Skipf("integration prerequisite missing: %v", err)
}

// AcceptVND writes a copy of the spec at path in which every response that
// has an application/json body also offers it as VndJSON, into dir, and
// returns the copy's path. go-pagerduty always asks for VndJSON and Prism
// answers 406 to it, because the official spec declares only
// application/json bodies (testdata/SOURCES.md). Requests are validated
// exactly as the official spec says; only what Prism may answer with
// grows.
func AcceptVND(path, dir string) (string, error) {
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
				content[VndJSON] = j
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
	derived := filepath.Join(dir, "pagerduty-rest-openapiv3.prism-vnd-accept.json")
	return derived, os.WriteFile(derived, out, 0o644)
}

func start(mode string) (*Prism, error) {
	bin := os.Getenv("FIRSTLOOK_PRISM")
	if bin == "" {
		bin = DefaultPrism
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("prism: %w (npm install @stoplight/prism-cli@5.16.0, or set FIRSTLOOK_PRISM)", err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		return nil, fmt.Errorf("prism needs node: %w", err)
	}
	dir, err := os.MkdirTemp("", "firstlook-pd-spec-")
	if err != nil {
		return nil, err
	}
	spec, err := AcceptVND(Spec(), dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	// A free port can be taken by another test process between our close
	// and Prism's listen: try again on another.
	var errs []error
	for range 3 {
		args := []string{mode, "--errors", "-h", "127.0.0.1", "-p", "PORT", spec}
		url, stop, err := run(bin, args)
		if err == nil {
			return &Prism{URL: url, stop: stop, dir: dir}, nil
		}
		errs = append(errs, err)
	}
	os.RemoveAll(dir)
	return nil, errors.Join(errs...)
}

func run(bin string, args []string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	for i, a := range args {
		if a == "PORT" {
			args[i] = strconv.Itoa(port)
		}
	}
	out := &lockedBuffer{}
	cmd := exec.Command(bin, args...)
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
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return "", nil, fmt.Errorf("start prism: %w", err)
	}
	pgid := cmd.Process.Pid
	stop := func() {
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
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

// Check is an http.RoundTripper that records every exchange with Prism and
// what Prism's validation said of it (the sl-violations header).
type Check struct {
	Next http.RoundTripper

	mu   sync.Mutex
	seen []Exchange
}

// Exchange is one request and Prism's verdict.
type Exchange struct {
	Method, Path, Query string
	Status              int
	Violations          string
}

func (e Exchange) String() string { return fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status) }

// RoundTrip sends req and records the exchange.
func (c *Check) RoundTrip(req *http.Request) (*http.Response, error) {
	next := c.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if resp != nil {
		c.mu.Lock()
		c.seen = append(c.seen, Exchange{req.Method, req.URL.Path, req.URL.RawQuery, resp.StatusCode, resp.Header.Get("sl-violations")})
		c.mu.Unlock()
	}
	return resp, err
}

// Exchanges returns what was sent so far.
func (c *Check) Exchanges() []Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Exchange(nil), c.seen...)
}

// Valid fails the test for any exchange the spec rejected.
func (c *Check) Valid(t testing.TB) {
	t.Helper()
	for _, s := range c.Exchanges() {
		if s.Violations != "" {
			t.Errorf("%s: the PagerDuty spec rejects the exchange: %s", s, s.Violations)
		}
	}
}

// String returns everything written so far.
func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
