package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/firstlook/firstlook/cmd/firstlook/internal/demossh"
	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
)

// fleet is a data directory and configuration for `firstlook serve` over a
// bastion and hosts that are demo SSH servers in this process (the
// `firstlook demo` ones: real SSH on 127.0.0.1, host keys checked, no root
// or sshd needed), for the tests and benchmarks that run serve as a
// separate process and kill it.
type fleet struct {
	tb       testing.TB
	dir      string
	cfgPath  string
	evidence string
	secret   string
	url      string
	// starts is the file every run of the "kill" playbook appends its
	// incident id to when it starts on a host.
	starts string
}

// fleetOptions shape a fleet.
type fleetOptions struct {
	// Hosts is how many hosts (host-0, host-1…).
	Hosts int
	// Playbook is the step run on each host, after the start is recorded.
	Step string
	// Queue is extra YAML under queue: (indented by two spaces).
	Queue string
	// Workers is runner.workers (0: the default).
	Workers int
}

func newFleet(tb testing.TB, o fleetOptions) *fleet {
	tb.Helper()
	f := &fleet{tb: tb, dir: tb.TempDir(), secret: "fleet-webhook-secret-0123456789"}
	f.evidence = filepath.Join(f.dir, "data", "evidence")
	f.starts = filepath.Join(f.dir, "starts")
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := xssh.MarshalPrivateKey(priv, "fleet")
	if err != nil {
		tb.Fatal(err)
	}
	f.write("id_ed25519", string(pem.EncodeToMemory(block)))
	clientKey, _ := xssh.NewPublicKey(pub)
	login := "firstlook"
	if u, err := user.Current(); err == nil {
		login = u.Username
	}
	var known, hostsYAML strings.Builder
	var addrs []string
	for i := range o.Hosts {
		// The inventory wants an address per host: 127.0.0.0/8 has plenty.
		h, err := demossh.Start(ctx, demossh.Options{Role: demossh.RoleHost, AuthorizedKey: clientKey, Addr: fmt.Sprintf("127.0.%d.%d:0", i/250, 2+i%250)})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { h.Close() })
		addrs = append(addrs, h.Addr())
		fmt.Fprintln(&known, h.KnownHostsLine())
		a, p, _ := net.SplitHostPort(h.Addr())
		fmt.Fprintf(&hostsYAML, "  - {name: host-%d, address: %s, port: %s, user: %s, bastion: bastion}\n", i, a, p, login)
	}
	b, err := demossh.Start(ctx, demossh.Options{Role: demossh.RoleBastion, AuthorizedKey: clientKey, AllowForward: addrs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	fmt.Fprintln(&known, b.KnownHostsLine())
	ba, bp, _ := net.SplitHostPort(b.Addr())
	f.write("known_hosts", known.String())
	f.write("inventory.yaml", fmt.Sprintf("bastions:\n  - {name: bastion, address: %s, port: %s, user: %s}\nhosts:\n%s", ba, bp, login, hostsYAML.String()))
	f.write("secret.txt", f.secret+"\n")
	if err := os.MkdirAll(filepath.Join(f.dir, "playbooks"), 0o700); err != nil {
		tb.Fatal(err)
	}
	f.write("playbooks/kill.yaml", fmt.Sprintf(`name: kill
description: Records that it started, then works a little.
match:
  title: '^kill on '
timeout: 60s
steps:
  - name: start
    run: echo {{ .Incident.ID }} >> %s
  - name: work
    run: %s
`, f.starts, o.Step))

	// A fixed port: a restarted serve must be where the webhooks go.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f.url = "http://" + addr
	workers := ""
	if o.Workers > 0 {
		workers = fmt.Sprintf("  workers: %d\n", o.Workers)
	}
	f.write("firstlook.yaml", fmt.Sprintf(`listen: %s
data_dir: data
pagerduty:
  webhook_secret_files: [secret.txt]
queue:
%s
inventory:
  file: inventory.yaml
ssh:
  known_hosts: [known_hosts]
  identity_files: [id_ed25519]
playbooks:
  paths: [playbooks]
runner:
%s  heartbeat: 1s
  grace: 5s
  hints:
    title:
      - pattern: '\bon (?P<host>[a-z0-9-]+)'
`, addr, o.Queue, workers))
	f.cfgPath = filepath.Join(f.dir, "firstlook.yaml")
	return f
}

func (f *fleet) write(name, content string) {
	f.tb.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(content), 0o600); err != nil {
		f.tb.Fatal(err)
	}
}

// webhook is the captured incident.triggered delivery for incident id with
// the given title, signed.
func (f *fleet) webhook(id, title string) (body []byte, sig string) {
	var doc map[string]any
	if err := json.Unmarshal(hookstest.Fixture(f.tb, "pagerduty-v3", "incident.triggered.json"), &doc); err != nil {
		f.tb.Fatal(err)
	}
	data := doc["event"].(map[string]any)["data"].(map[string]any)
	data["id"], data["title"] = id, title
	body, _ = json.Marshal(doc)
	return body, hookstest.Sign(body, f.secret)
}

// post sends a signed webhook with a delivery id and returns the answer.
func (f *fleet) post(c *http.Client, body []byte, sig, delivery string) (int, hooks.Reply, error) {
	req, _ := http.NewRequest(http.MethodPost, f.url+"/hooks/pagerduty", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-PagerDuty-Signature", sig)
	req.Header.Set("X-Webhook-Id", delivery)
	resp, err := c.Do(req)
	if err != nil {
		return 0, hooks.Reply{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var reply hooks.Reply
	_ = json.Unmarshal(raw, &reply)
	return resp.StatusCode, reply, nil
}

// bundled returns the incidents with a complete bundle (its manifest is
// written last), counting each incident's bundles.
func (f *fleet) bundled() map[string]int {
	ms, _ := filepath.Glob(filepath.Join(f.evidence, "pagerduty", "*", "*", evidence.ManifestFile))
	out := map[string]int{}
	for _, m := range ms {
		out[filepath.Base(filepath.Dir(filepath.Dir(m)))]++
	}
	return out
}

// started returns how many times each incident's run started on a host.
func (f *fleet) started() (map[string]int, int) {
	b, _ := os.ReadFile(f.starts)
	out := map[string]int{}
	lines := 0
	for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			out[l]++
			lines++
		}
	}
	return out, lines
}

// waitFor polls cond every 20 ms until it holds or d passed.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
