package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/firstlook/firstlook/cmd/firstlook/internal/demossh"
	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// demoFiles are the demo's playbook and webhook: the captured PagerDuty
// incident.triggered delivery with its title naming the demo host.
//
//go:embed demo
var demoFiles embed.FS

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	dirFlag := fs.String("dir", "", "working `directory` (default: a new temporary directory, removed afterwards)")
	keep := fs.Bool("keep", false, "keep the working directory (config, keys, bundle, log) and print where it is")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	work := *dirFlag
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "firstlook-demo-"); err != nil {
			return err
		}
		if !*keep {
			// It holds a private key: nothing of the demo stays behind.
			defer os.RemoveAll(work)
		}
	}
	err := runDemo(ctx, work, stdout)
	if *keep || *dirFlag != "" {
		fmt.Fprintf(stdout, "kept:    %s (config, keys, bundle and log of this run)\n", work)
	} else {
		fmt.Fprintf(stdout, "removed: %s (firstlook demo -keep keeps it)\n", work)
	}
	return err
}

// runDemo is the whole path on this machine, without root or network: a
// throwaway bastion and host (SSH servers on 127.0.0.1 with keys made for
// the run, checked against a known_hosts file like anywhere else), serve
// with the embedded queue, a signed webhook, and the bundle it produces.
func runDemo(ctx context.Context, work string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	step := func(format string, args ...any) { fmt.Fprintf(stdout, "==> "+format+"\n", args...) }
	if err := os.MkdirAll(filepath.Join(work, "playbooks"), 0o700); err != nil {
		return err
	}
	write := func(name string, b []byte) error { return os.WriteFile(filepath.Join(work, name), b, 0o600) }

	// Keys for this run only.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := xssh.MarshalPrivateKey(priv, "firstlook demo")
	if err != nil {
		return err
	}
	if err := write("id_ed25519", pem.EncodeToMemory(block)); err != nil {
		return err
	}
	clientKey, err := xssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	host, err := demossh.Start(ctx, demossh.Options{Role: demossh.RoleHost, AuthorizedKey: clientKey})
	if err != nil {
		return err
	}
	defer host.Close()
	bastion, err := demossh.Start(ctx, demossh.Options{Role: demossh.RoleBastion, AuthorizedKey: clientKey, AllowForward: []string{host.Addr()}})
	if err != nil {
		return err
	}
	defer bastion.Close()
	step("bastion on %s, host demo-host on %s (reachable through the bastion only by configuration)", bastion.Addr(), host.Addr())
	if err := write("known_hosts", []byte(bastion.KnownHostsLine()+"\n"+host.KnownHostsLine()+"\n")); err != nil {
		return err
	}

	login := "firstlook"
	if u, err := user.Current(); err == nil {
		login = u.Username
	}
	bh, bp, _ := net.SplitHostPort(bastion.Addr())
	hh, hp, _ := net.SplitHostPort(host.Addr())
	inv := fmt.Sprintf("bastions:\n  - {name: demo-bastion, address: %s, port: %s, user: %s}\nhosts:\n  - {name: demo-host, address: %s, port: %s, user: %s, bastion: demo-bastion}\n", bh, bp, login, hh, hp, login)
	if err := write("inventory.yaml", []byte(inv)); err != nil {
		return err
	}
	pb, _ := demoFiles.ReadFile("demo/first-look.yaml")
	if err := write("playbooks/first-look.yaml", pb); err != nil {
		return err
	}
	secretBytes := make([]byte, 24)
	_, _ = rand.Read(secretBytes)
	webhookSecret := hex.EncodeToString(secretBytes)
	if err := write("webhook-secret", []byte(webhookSecret+"\n")); err != nil {
		return err
	}
	cfgYAML := `# Written by firstlook demo.
listen: 127.0.0.1:0
data_dir: data
pagerduty:
  webhook_secret_files: [webhook-secret]
inventory:
  file: inventory.yaml
ssh:
  known_hosts: [known_hosts]
  identity_files: [id_ed25519]
playbooks:
  paths: [playbooks]
runner:
  hints:
    title:
      - pattern: '\bon (?P<host>[a-z0-9.-]+)'
`
	if err := write("firstlook.yaml", []byte(cfgYAML)); err != nil {
		return err
	}
	cfg, err := LoadConfig(filepath.Join(work, "firstlook.yaml"))
	if err != nil {
		return err
	}

	logPath := filepath.Join(work, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	serveCtx, stopServe := context.WithCancel(ctx)
	defer stopServe()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- Serve(serveCtx, ServeOptions{Config: cfg, Log: newLogger(cfg, logFile), Ready: func(a string) { ready <- a }})
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-served:
		return fmt.Errorf("serve: %w (log: %s)", err, logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
	step("firstlook serve on http://%s (embedded queue, evidence in %s)", addr, cfg.Evidence.Dir.Path)

	body, _ := demoFiles.ReadFile("demo/incident.triggered.json")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/hooks/pagerduty", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-PagerDuty-Signature", pagerduty.Sign(body, webhookSecret))
	req.Header.Set("X-Webhook-Id", "demo-"+hex.EncodeToString(secretBytes[:4]))
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	step("sent a signed PagerDuty incident.triggered webhook: %s %s", resp.Status, bytes.TrimSpace(reply))
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook refused: %s", resp.Status)
	}

	store, err := dir.New(cfg.Evidence.Dir)
	if err != nil {
		return err
	}
	for {
		ms, _ := filepath.Glob(filepath.Join(cfg.Evidence.Dir.Path, "pagerduty", "*", "*", evidence.ManifestFile))
		if len(ms) > 0 {
			prefix, _ := filepath.Rel(cfg.Evidence.Dir.Path, filepath.Dir(ms[0]))
			b, err := evidence.Read(ctx, store, filepath.ToSlash(prefix))
			if err != nil {
				return err
			}
			step("bundle stored %s after the webhook", time.Since(sent).Round(time.Millisecond))
			fmt.Fprintln(stdout)
			fmt.Fprint(stdout, evidence.Markdown(evidence.Report{Bundle: b, Link: filepath.Dir(ms[0])}))
			fmt.Fprintf(stdout, "\nbundle:  %s\nconfig:  %s\nlog:     %s\n", filepath.Dir(ms[0]), filepath.Join(work, "firstlook.yaml"), logPath)
			stopServe()
			return <-served
		}
		select {
		case err := <-served:
			return fmt.Errorf("serve stopped: %v (log: %s)", err, logPath)
		case <-ctx.Done():
			return fmt.Errorf("no bundle within 2 minutes (log: %s)", logPath)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
