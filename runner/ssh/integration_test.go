package ssh_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/firstlook/firstlook/runner/ssh"
	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// These tests run against real OpenSSH servers built by sshtest; they skip
// without root (see sshtest.Require).

func fileConfig(n *sshtest.Net) ssh.Config {
	return ssh.Config{KnownHosts: []string{n.KnownHostsFile}, IdentityFiles: []string{n.IdentityFile}}
}

func bastionHop(n *sshtest.Net) *ssh.Hop {
	b := n.Bastion()
	return &ssh.Hop{Name: b.Name, Addr: b.Addr, User: b.User}
}

func target(n *sshtest.Net, host string) ssh.Target {
	h := n.Host(host)
	return ssh.Target{Name: h.Name, Addr: h.Addr, User: h.User, Bastion: bastionHop(n)}
}

func newDialer(t *testing.T, cfg ssh.Config) *ssh.Dialer {
	t.Helper()
	d, err := ssh.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func dial(t *testing.T, d *ssh.Dialer, tg ssh.Target) *ssh.Client {
	t.Helper()
	c, err := d.Dial(context.Background(), tg)
	if err != nil {
		t.Fatalf("Dial %s: %v", tg.Name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func run(t *testing.T, c *ssh.Client, cmd string) ssh.Result {
	t.Helper()
	res, err := c.Run(context.Background(), cmd, ssh.RunOptions{})
	if err != nil {
		t.Fatalf("Run %q: %v", cmd, err)
	}
	return res
}

// filterKnownHosts writes a known_hosts file with the lines of n's for
// which keep is true.
func filterKnownHosts(t *testing.T, n *sshtest.Net, keep func(line string) bool) string {
	t.Helper()
	b, err := os.ReadFile(n.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		if keep(sc.Text()) {
			kept = append(kept, sc.Text())
		}
	}
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func TestIntegrationRunOnHosts(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1", "web-2"}})
	d := newDialer(t, fileConfig(n))
	tests := []struct {
		host     string
		exit     int
		wantCode int
	}{
		{"web-1", 0, 0},
		{"web-2", 7, 7},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			c := dial(t, d, target(n, tt.host))
			res := run(t, c, fmt.Sprintf("hostname; echo to-stderr >&2; exit %d", tt.exit))
			if got := strings.TrimSpace(string(res.Stdout)); got != tt.host {
				t.Errorf("hostname: got %q, want %q", got, tt.host)
			}
			if got := string(res.Stderr); got != "to-stderr\n" {
				t.Errorf("stderr: got %q, want %q", got, "to-stderr\n")
			}
			if res.ExitCode != tt.wantCode || res.TimedOut || res.Signal != "" {
				t.Errorf("exit: got code %d signal %q timed out %v, want %d", res.ExitCode, res.Signal, res.TimedOut, tt.wantCode)
			}
		})
	}
	if st := d.Stats(); st.BastionDials != 1 || st.HostDials != 2 {
		t.Errorf("Stats: got %+v, want 1 bastion dial for 2 host dials", st)
	}
}

func TestIntegrationBastionReuseAndRedial(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	d := newDialer(t, fileConfig(n))
	tg := target(n, "web-1")

	// Concurrent first dials share one bastion dial.
	const concurrent = 8
	var wg sync.WaitGroup
	errs := make(chan error, concurrent)
	for range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := d.Dial(context.Background(), tg)
			if err != nil {
				errs <- err
				return
			}
			c.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Dial: %v", err)
	}
	// Sequential dials reuse it.
	const sequential = 5
	for range sequential {
		c := dial(t, d, tg)
		run(t, c, "true")
		c.Close()
	}
	st := d.Stats()
	if st.BastionDials != 1 || st.BastionReuses != concurrent+sequential-1 || st.BastionConns != 1 {
		t.Fatalf("Stats after %d dials: got %+v, want 1 bastion dial and %d reuses", concurrent+sequential, st, concurrent+sequential-1)
	}

	// The bastion restarts: the pooled connection is dead; the next Dial
	// drops it and dials again.
	n.Stop(sshtest.BastionName)
	n.Start(sshtest.BastionName)
	c := dial(t, d, tg)
	if got := strings.TrimSpace(string(run(t, c, "hostname").Stdout)); got != "web-1" {
		t.Errorf("hostname after bastion restart: got %q, want web-1", got)
	}
	if st := d.Stats(); st.BastionDials != 2 || st.BastionDrops != 1 {
		t.Errorf("Stats after restart: got %+v, want 2 bastion dials, 1 drop", st)
	}
}

func TestIntegrationKeepaliveDropsHungBastion(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	cfg := fileConfig(n)
	// The connect timeout also bounds a keepalive's reply: long enough
	// for a loaded machine's first dial, and the drop is awaited as long.
	cfg.KeepaliveInterval, cfg.ConnectTimeout = 100*time.Millisecond, sshtest.Timeout(5*time.Second)
	d := newDialer(t, cfg)
	c := dial(t, d, target(n, "web-1"))
	c.Close()
	// Freeze the bastion's per-connection sshd: the TCP connection stays
	// up but nothing answers, as behind a dead NAT. (Stop, in cleanup,
	// kills stopped processes too.)
	for _, p := range n.Processes(sshtest.BastionName) {
		syscall.Kill(p.PID, syscall.SIGSTOP)
	}
	deadline := time.Now().Add(cfg.ConnectTimeout + sshtest.Timeout(30*time.Second))
	for d.Stats().BastionDrops == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Stats: got %+v, want the hung bastion connection dropped by a failed keepalive", d.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c = dial(t, d, target(n, "web-1"))
	if got := strings.TrimSpace(string(run(t, c, "hostname").Stdout)); got != "web-1" {
		t.Errorf("hostname after redial: got %q, want web-1", got)
	}
	if st := d.Stats(); st.BastionDials != 2 || st.BastionConns != 1 {
		t.Errorf("Stats: got %+v, want 2 bastion dials and 1 pooled connection", st)
	}
}

func TestIntegrationHostKeys(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	bastionIP, hostIP := hostOf(n.Bastion().Addr), hostOf(n.Host("web-1").Addr)
	tg := target(n, "web-1")

	// Files are tried before keys are replaced below.
	tests := []struct {
		name    string
		keep    func(line string) bool
		wantErr error // nil: the dial succeeds
		wantHop string
		wantMsg string
	}{
		{name: "all keys", keep: func(string) bool { return true }},
		// The servers hold Ed25519 and ECDSA keys; x/crypto's default
		// preference (ECDSA first) would make each file look changed.
		{name: "ed25519 only", keep: func(l string) bool { return strings.Contains(l, " ssh-ed25519 ") }},
		{name: "ecdsa only", keep: func(l string) bool { return strings.Contains(l, " ecdsa-") }},
		{name: "unknown bastion", keep: func(l string) bool { return !strings.HasPrefix(l, bastionIP+" ") },
			wantErr: ssh.ErrHostKeyUnknown, wantHop: ssh.HopBastion, wantMsg: "ssh-keyscan"},
		{name: "unknown host", keep: func(l string) bool { return !strings.HasPrefix(l, hostIP+" ") },
			wantErr: ssh.ErrHostKeyUnknown, wantHop: ssh.HopHost, wantMsg: "run it on bastion bastion"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fileConfig(n)
			cfg.KnownHosts = []string{filterKnownHosts(t, n, tt.keep)}
			c, err := newDialer(t, cfg).Dial(context.Background(), tg)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Dial: got %v, want success", err)
				}
				c.Close()
				return
			}
			checkHostKeyError(t, err, tt.wantErr, tt.wantHop, tt.wantMsg)
		})
	}

	// Rebuilt (or impersonated) servers: known_hosts no longer matches.
	n.ReplaceHostKey("web-1")
	_, err := newDialer(t, fileConfig(n)).Dial(context.Background(), tg)
	checkHostKeyError(t, err, ssh.ErrHostKeyChanged, ssh.HopHost, "possible man-in-the-middle")
	n.ReplaceHostKey(sshtest.BastionName)
	_, err = newDialer(t, fileConfig(n)).Dial(context.Background(), tg)
	checkHostKeyError(t, err, ssh.ErrHostKeyChanged, ssh.HopBastion, "update known_hosts line")
}

func checkHostKeyError(t *testing.T, err, want error, hop, msg string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("Dial: got %v, want %v", err, want)
	}
	var hk *ssh.HostKeyError
	if !errors.As(err, &hk) || hk.Hop != hop || !strings.HasPrefix(hk.Presented, "SHA256:") {
		t.Fatalf("Dial: got %#v, want a HostKeyError on the %s with the presented fingerprint", err, hop)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("message: got %q, want it to contain %q", err, msg)
	}
}

func TestIntegrationCertAuthority(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}, HostCertificates: true})
	cfg := fileConfig(n)
	cfg.KnownHosts = []string{n.CAKnownHostsFile}
	c := dial(t, newDialer(t, cfg), target(n, "web-1"))
	if got := strings.TrimSpace(string(run(t, c, "hostname").Stdout)); got != "web-1" {
		t.Errorf("hostname: got %q, want web-1", got)
	}
	// Servers with certificates still work with plain known_hosts lines.
	c = dial(t, newDialer(t, fileConfig(n)), target(n, "web-1"))
	run(t, c, "true")
}

func TestIntegrationBastionDown(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	d := newDialer(t, fileConfig(n))
	n.Stop(sshtest.BastionName)
	_, err := d.Dial(context.Background(), target(n, "web-1"))
	var hop *ssh.HopError
	if !errors.Is(err, ssh.ErrBastionUnreachable) || !errors.As(err, &hop) || hop.Hop != ssh.HopBastion || hop.Name != sshtest.BastionName {
		t.Fatalf("Dial: got %v, want ErrBastionUnreachable as a HopError naming the bastion", err)
	}
	want := fmt.Sprintf("bastion bastion (%s): dial: connection refused", n.Bastion().Addr)
	if got := err.Error(); got != want {
		t.Errorf("message: got %q, want %q", got, want)
	}
}

func TestIntegrationHostUnreachable(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	tg := target(n, "web-1")
	tg.Addr = hostOf(tg.Addr) + ":2222" // nothing listens there
	_, err := newDialer(t, fileConfig(n)).Dial(context.Background(), tg)
	if !errors.Is(err, ssh.ErrHostUnreachable) || errors.Is(err, ssh.ErrBastionUnreachable) {
		t.Fatalf("Dial: got %v, want ErrHostUnreachable only", err)
	}
	if want := "host web-1 (" + tg.Addr + ") via bastion bastion: dial: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message: got %q, want it to start with %q", err, want)
	}
}

func TestIntegrationAuth(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	raw, err := os.ReadFile(n.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := xssh.ParseRawPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("agent", func(t *testing.T) {
		keyring := agent.NewKeyring()
		if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
			t.Fatal(err)
		}
		t.Setenv("SSH_AUTH_SOCK", serveAgent(t, keyring))
		c := dial(t, newDialer(t, ssh.Config{KnownHosts: []string{n.KnownHostsFile}, Agent: true}), target(n, "web-1"))
		if got := strings.TrimSpace(string(run(t, c, "hostname").Stdout)); got != "web-1" {
			t.Errorf("hostname: got %q, want web-1", got)
		}
	})
	t.Run("empty agent", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", serveAgent(t, agent.NewKeyring()))
		_, err := newDialer(t, ssh.Config{KnownHosts: []string{n.KnownHostsFile}, Agent: true}).Dial(context.Background(), target(n, "web-1"))
		if !errors.Is(err, ssh.ErrAuthFailed) || !strings.Contains(err.Error(), "agent holds no keys") {
			t.Fatalf("Dial: got %v, want ErrAuthFailed saying the agent is empty", err)
		}
	})
	t.Run("wrong key file", func(t *testing.T) {
		cfg := fileConfig(n)
		cfg.IdentityFiles = []string{writeKey(t, "")} // a key n does not authorize
		_, err := newDialer(t, cfg).Dial(context.Background(), target(n, "web-1"))
		want := fmt.Sprintf("bastion bastion (%s): auth failed for user root: ", n.Bastion().Addr)
		if !errors.Is(err, ssh.ErrAuthFailed) || !strings.HasPrefix(fmt.Sprint(err), want) {
			t.Fatalf("Dial: got %v, want ErrAuthFailed starting %q", err, want)
		}
	})
}

// serveAgent serves keyring on a unix socket in a temporary directory
// until the test ends, and returns the socket's path.
func serveAgent(t *testing.T, keyring agent.Agent) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				agent.ServeAgent(keyring, conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return sock
}

// leftovers lists processes in host's namespace other than sshd's own.
func leftovers(n *sshtest.Net, host string) []string {
	var left []string
	for _, p := range n.Processes(host) {
		if !strings.HasPrefix(p.Cmdline, "sshd:") {
			left = append(left, fmt.Sprintf("%d %s", p.PID, p.Cmdline))
		}
	}
	return left
}

func TestIntegrationTimeout(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	c := dial(t, newDialer(t, fileConfig(n)), target(n, "web-1"))
	tests := []struct{ name, cmd string }{
		{"sleep", "sleep 300"},
		{"pipeline", "sleep 300 | cat"},
		{"background job", "sleep 300 & sleep 301; wait"},
		{"ignores TERM", "trap '' TERM; sleep 300; sleep 300"},
		{"stdin script", "sh -s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := ssh.RunOptions{}
			if tt.name == "stdin script" {
				opts.Stdin = strings.NewReader("echo started\nsleep 300\n")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			res, err := c.Run(ctx, tt.cmd, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !res.TimedOut || res.ExitCode != -1 {
				t.Errorf("Result: got TimedOut %v, ExitCode %d, want true and -1", res.TimedOut, res.ExitCode)
			}
			if tt.name == "stdin script" && string(res.Stdout) != "started\n" {
				t.Errorf("stdout: got %q, want %q", res.Stdout, "started\n")
			}
			// Killed processes are reaped asynchronously; give it a moment.
			deadline := time.Now().Add(5 * time.Second)
			for left := leftovers(n, "web-1"); len(left) > 0; left = leftovers(n, "web-1") {
				if time.Now().After(deadline) {
					t.Fatalf("processes on web-1 after the timeout: got %q, want none", left)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	// The connection is still usable.
	if got := strings.TrimSpace(string(run(t, c, "hostname").Stdout)); got != "web-1" {
		t.Errorf("hostname after timeouts: got %q, want web-1", got)
	}
}

func TestIntegrationOutputCap(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	c := dial(t, newDialer(t, fileConfig(n)), target(n, "web-1"))
	const mib = 1 << 20
	tests := []struct {
		name               string
		cmd                string
		totalOut, totalErr int64
	}{
		{"stdout over", "head -c 3145728 /dev/urandom; head -c 1000 /dev/zero >&2", 3 * mib, 1000},
		{"stderr over", "head -c 1000 /dev/zero; head -c 3145728 /dev/urandom >&2", 1000, 3 * mib},
		{"both over", "head -c 2097152 /dev/zero; head -c 3145728 /dev/zero >&2", 2 * mib, 3 * mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, c, tt.cmd) // the dialer default max_output, 1 MiB
			check := func(stream string, kept []byte, total int64, truncated bool, wantTotal int64) {
				wantKept, wantTrunc := min(wantTotal, mib), wantTotal > mib
				if int64(len(kept)) != wantKept || total != wantTotal || truncated != wantTrunc {
					t.Errorf("%s: got kept %d, total %d, truncated %v; want %d, %d, %v", stream, len(kept), total, truncated, wantKept, wantTotal, wantTrunc)
				}
			}
			check("stdout", res.Stdout, res.StdoutBytes, res.StdoutTruncated, tt.totalOut)
			check("stderr", res.Stderr, res.StderrBytes, res.StderrTruncated, tt.totalErr)
			if res.ExitCode != 0 {
				t.Errorf("ExitCode: got %d, want 0", res.ExitCode)
			}
		})
	}
}

func TestIntegrationStdinScript(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	c := dial(t, newDialer(t, fileConfig(n)), target(n, "web-1"))
	script := "set -eu\nname=$(hostname)\necho \"on $name\"\necho oops >&2\nexit 4\n"
	res, err := c.Run(context.Background(), "sh -s", ssh.RunOptions{Stdin: strings.NewReader(script)})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if string(res.Stdout) != "on web-1\n" || string(res.Stderr) != "oops\n" || res.ExitCode != 4 {
		t.Errorf("Result: got stdout %q stderr %q code %d, want %q %q 4", res.Stdout, res.Stderr, res.ExitCode, "on web-1\n", "oops\n")
	}
	if !strings.HasSuffix(res.Command, "\nsh -s") {
		t.Errorf("Command: got %q, want the preamble then %q", res.Command, "sh -s")
	}
}

func TestIntegrationConcurrentRuns(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1"}})
	c := dial(t, newDialer(t, fileConfig(n)), target(n, "web-1"))
	// More than sshd's default MaxSessions (10) on one connection.
	const runs = 16
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Run(context.Background(), fmt.Sprintf("sleep 0.2; echo %d; exit %d", i, i), ssh.RunOptions{})
			if err != nil {
				t.Errorf("Run %d: %v", i, err)
				return
			}
			if got := strings.TrimSpace(string(res.Stdout)); got != strconv.Itoa(i) || res.ExitCode != i {
				t.Errorf("Run %d: got %q exit %d, want %d", i, got, res.ExitCode, i)
			}
		}()
	}
	wg.Wait()
}

func TestIntegrationMaxSessionsPerBastion(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1", "web-2"}})
	cfg := fileConfig(n)
	cfg.MaxSessionsPerBastion = 2
	d := newDialer(t, cfg)
	clients := []*ssh.Client{dial(t, d, target(n, "web-1")), dial(t, d, target(n, "web-2"))}
	// The namespaces share the file system: each command registers in
	// dir, counts the registered, lingers and leaves.
	dir := t.TempDir()
	cmd := fmt.Sprintf("f=%s/$(hostname).$$; touch \"$f\"; ls %s | wc -l; sleep 0.3; rm \"$f\"", dir, dir)
	const perHost = 4
	var wg sync.WaitGroup
	for _, c := range clients {
		for range perHost {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := c.Run(context.Background(), cmd, ssh.RunOptions{})
				if err != nil {
					t.Errorf("Run: %v", err)
					return
				}
				if got, err := strconv.Atoi(strings.TrimSpace(string(res.Stdout))); err != nil || got > 2 {
					t.Errorf("concurrent commands behind the bastion: got %q, want at most 2", res.Stdout)
				}
			}()
		}
	}
	wg.Wait()
	if st := d.Stats(); st.SessionWaits == 0 {
		t.Errorf("SessionWaits: got 0, want > 0 for %d Runs with 2 slots", 2*perHost)
	}
}
