package demossh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/firstlook/firstlook/cmd/firstlook/internal/demossh"
	firstssh "github.com/firstlook/firstlook/runner/ssh"
)

// demo is a bastion and a host on loopback, with the files a Dialer needs.
type demo struct {
	bastion, host *demossh.Server
	knownHosts    string // both servers
	identity      string // the authorized client key
	dir           string
}

func newKey(t *testing.T, dir, name string) (path string, pub xssh.PublicKey) {
	t.Helper()
	pk, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := xssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err = xssh.NewPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	return path, pub
}

func writeFile(t *testing.T, path string, lines ...string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startDemo(t *testing.T) *demo {
	t.Helper()
	d := &demo{dir: t.TempDir()}
	var pub xssh.PublicKey
	d.identity, pub = newKey(t, d.dir, "id_ed25519")
	ctx := context.Background()
	var err error
	d.host, err = demossh.Start(ctx, demossh.Options{Role: demossh.RoleHost, AuthorizedKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.host.Close() })
	d.bastion, err = demossh.Start(ctx, demossh.Options{Role: demossh.RoleBastion, AuthorizedKey: pub, AllowForward: []string{d.host.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.bastion.Close() })
	d.knownHosts = writeFile(t, filepath.Join(d.dir, "known_hosts"), d.bastion.KnownHostsLine(), d.host.KnownHostsLine())
	return d
}

func (d *demo) config() firstssh.Config {
	return firstssh.Config{KnownHosts: []string{d.knownHosts}, IdentityFiles: []string{d.identity}}
}

func (d *demo) target() firstssh.Target {
	return firstssh.Target{
		Name: "demo-host", Addr: d.host.Addr(), User: "demo",
		Bastion: &firstssh.Hop{Name: "demo-bastion", Addr: d.bastion.Addr(), User: "demo"},
	}
}

func newDialer(t *testing.T, cfg firstssh.Config) *firstssh.Dialer {
	t.Helper()
	dialer, err := firstssh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dialer.Close() })
	return dialer
}

func dial(t *testing.T, dialer *firstssh.Dialer, target firstssh.Target) *firstssh.Client {
	t.Helper()
	c, err := dialer.Dial(context.Background(), target)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRunThroughBastion(t *testing.T) {
	d := startDemo(t)
	c := dial(t, newDialer(t, d.config()), d.target())
	tests := []struct {
		name       string
		cmd        string
		stdin      string
		wantOut    string
		wantErr    string
		wantCode   int
		wantSignal string
	}{
		{name: "exit 0", cmd: "echo hello", wantOut: "hello\n"},
		{name: "exit 3 with stderr", cmd: "echo out; echo err >&2; exit 3", wantOut: "out\n", wantErr: "err\n", wantCode: 3},
		{name: "stdin script", cmd: "sh -s", stdin: "x=$((40+2))\necho \"$x\"\n", wantOut: "42\n"},
		{name: "stdin to cat", cmd: "cat", stdin: "line 1\nline 2\n", wantOut: "line 1\nline 2\n"},
		{name: "killed by signal", cmd: "kill -s KILL $$", wantCode: -1, wantSignal: "KILL"},
		{name: "leading comment", cmd: "# a comment\necho after", wantOut: "after\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := firstssh.RunOptions{}
			if tt.stdin != "" {
				opts.Stdin = strings.NewReader(tt.stdin)
			}
			res, err := c.Run(context.Background(), tt.cmd, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got := string(res.Stdout); got != tt.wantOut {
				t.Errorf("stdout: got %q, want %q", got, tt.wantOut)
			}
			if got := string(res.Stderr); got != tt.wantErr {
				t.Errorf("stderr: got %q, want %q", got, tt.wantErr)
			}
			if res.ExitCode != tt.wantCode || res.Signal != tt.wantSignal {
				t.Errorf("exit: got %d/%q, want %d/%q", res.ExitCode, res.Signal, tt.wantCode, tt.wantSignal)
			}
			if !strings.HasSuffix(res.Command, "\n"+tt.cmd) {
				t.Errorf("Command: got %q, want it to end with the command", res.Command)
			}
			if res.StdoutBytes != int64(len(tt.wantOut)) || res.StderrBytes != int64(len(tt.wantErr)) {
				t.Errorf("byte counts: got %d/%d, want %d/%d", res.StdoutBytes, res.StderrBytes, len(tt.wantOut), len(tt.wantErr))
			}
		})
	}
}

func TestDirect(t *testing.T) {
	d := startDemo(t)
	dialer := newDialer(t, d.config())
	c := dial(t, dialer, firstssh.Target{Name: "demo-host", Addr: d.host.Addr(), User: "demo"})
	res, err := c.Run(context.Background(), "echo direct", firstssh.RunOptions{})
	if err != nil || string(res.Stdout) != "direct\n" {
		t.Fatalf("Run: got %q, %v, want %q", res.Stdout, err, "direct\n")
	}
	if st := dialer.Stats(); st.BastionDials != 0 || st.HostDials != 1 {
		t.Errorf("Stats: got %+v, want no bastion dial and 1 host dial", st)
	}
}

func TestOutputCap(t *testing.T) {
	d := startDemo(t)
	c := dial(t, newDialer(t, d.config()), d.target())
	const mib = 1 << 20
	tests := []struct {
		name               string
		cmd                string
		wantOut, wantErr   int64 // total bytes
		truncOut, truncErr bool
		keptOut, keptErr   int
	}{
		{name: "stdout over, stderr under", cmd: "head -c 3145728 /dev/zero; head -c 2000 /dev/zero >&2",
			wantOut: 3 * mib, wantErr: 2000, truncOut: true, keptOut: mib, keptErr: 2000},
		{name: "stderr over, stdout under", cmd: "head -c 100 /dev/zero; head -c 3145728 /dev/zero >&2",
			wantOut: 100, wantErr: 3 * mib, truncErr: true, keptOut: 100, keptErr: mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Run(context.Background(), tt.cmd, firstssh.RunOptions{MaxOutput: mib})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(res.Stdout) != tt.keptOut || res.StdoutBytes != tt.wantOut || res.StdoutTruncated != tt.truncOut {
				t.Errorf("stdout: got kept %d total %d truncated %v, want %d %d %v", len(res.Stdout), res.StdoutBytes, res.StdoutTruncated, tt.keptOut, tt.wantOut, tt.truncOut)
			}
			if len(res.Stderr) != tt.keptErr || res.StderrBytes != tt.wantErr || res.StderrTruncated != tt.truncErr {
				t.Errorf("stderr: got kept %d total %d truncated %v, want %d %d %v", len(res.Stderr), res.StderrBytes, res.StderrTruncated, tt.keptErr, tt.wantErr, tt.truncErr)
			}
		})
	}
}

// processesWith lists local processes whose command line contains s.
func processesWith(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmdline, s) {
			found = append(found, e.Name()+": "+cmdline)
		}
	}
	return found
}

// waitGone polls until no process mentions s; the kill is asynchronous
// to the Run returning only by the time the kernel reaps.
func waitGone(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processesWith(t, s)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left running: got %q, want none", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTimeoutStopsCommand(t *testing.T) {
	d := startDemo(t)
	c := dial(t, newDialer(t, d.config()), d.target())
	for i, shape := range []string{"sleep %s", "sleep %s | cat", "sh -c 'sleep %s & wait'"} {
		t.Run(shape, func(t *testing.T) {
			marker := fmt.Sprintf("300.%d%d", os.Getpid(), i)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			res, err := c.Run(ctx, fmt.Sprintf(shape, marker), firstssh.RunOptions{})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !res.TimedOut {
				t.Errorf("TimedOut: got false, want true")
			}
			if res.ExitCode != -1 {
				t.Errorf("ExitCode: got %d, want -1", res.ExitCode)
			}
			waitGone(t, "sleep "+marker)
		})
	}
}

func TestHostKeyChecks(t *testing.T) {
	d := startDemo(t)
	_, otherKey := newKey(t, d.dir, "other")
	other := func(addr string) string { return knownhosts.Line([]string{addr}, otherKey) }
	tests := []struct {
		name    string
		lines   []string
		wantHop string
		want    error
	}{
		{"unknown bastion", []string{d.host.KnownHostsLine()}, firstssh.HopBastion, firstssh.ErrHostKeyUnknown},
		{"unknown host", []string{d.bastion.KnownHostsLine()}, firstssh.HopHost, firstssh.ErrHostKeyUnknown},
		{"changed bastion", []string{other(d.bastion.Addr()), d.host.KnownHostsLine()}, firstssh.HopBastion, firstssh.ErrHostKeyChanged},
		{"changed host", []string{d.bastion.KnownHostsLine(), other(d.host.Addr())}, firstssh.HopHost, firstssh.ErrHostKeyChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := d.config()
			cfg.KnownHosts = []string{writeFile(t, filepath.Join(t.TempDir(), "known_hosts"), tt.lines...)}
			_, err := newDialer(t, cfg).Dial(context.Background(), d.target())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Dial: got %v, want %v", err, tt.want)
			}
			var hk *firstssh.HostKeyError
			if !errors.As(err, &hk) || hk.Hop != tt.wantHop {
				t.Fatalf("Dial: got %#v, want a HostKeyError on the %s", err, tt.wantHop)
			}
			if !strings.Contains(err.Error(), "SHA256:") {
				t.Errorf("message: got %q, want the presented fingerprint", err)
			}
		})
	}
}

func TestForwardRefused(t *testing.T) {
	d := startDemo(t)
	other, err := demossh.Start(context.Background(), demossh.Options{Role: demossh.RoleHost, AuthorizedKey: d.host.HostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	target := d.target()
	target.Addr = other.Addr() // not in the bastion's allow-list
	_, err = newDialer(t, d.config()).Dial(context.Background(), target)
	var hop *firstssh.HopError
	if !errors.As(err, &hop) || hop.Hop != firstssh.HopHost || !errors.Is(err, firstssh.ErrHostUnreachable) {
		t.Fatalf("Dial: got %v, want a HopError on the host that is ErrHostUnreachable", err)
	}
	if want := "via bastion demo-bastion"; !strings.Contains(err.Error(), want) {
		t.Errorf("message: got %q, want it to contain %q", err, want)
	}
}

func TestAuthFailed(t *testing.T) {
	d := startDemo(t)
	cfg := d.config()
	wrong, _ := newKey(t, d.dir, "wrong")
	cfg.IdentityFiles = []string{wrong}
	_, err := newDialer(t, cfg).Dial(context.Background(), d.target())
	if !errors.Is(err, firstssh.ErrAuthFailed) || errors.Is(err, firstssh.ErrBastionUnreachable) {
		t.Fatalf("Dial: got %v, want ErrAuthFailed and not ErrBastionUnreachable", err)
	}
	if want := "bastion demo-bastion (" + d.bastion.Addr() + "): auth failed for user demo"; !strings.Contains(err.Error(), want) {
		t.Errorf("message: got %q, want it to contain %q", err, want)
	}
}

func TestBastionPooled(t *testing.T) {
	d := startDemo(t)
	dialer := newDialer(t, d.config())
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialer.Dial(context.Background(), d.target())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			res, err := c.Run(context.Background(), "echo ok", firstssh.RunOptions{})
			if err != nil || string(res.Stdout) != "ok\n" {
				errs <- fmt.Errorf("Run: got %q, %v", res.Stdout, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := dialer.Stats()
	if st.BastionDials != 1 || st.BastionReuses != n-1 || st.HostDials != n {
		t.Errorf("Stats: got %+v, want 1 bastion dial, %d reuses, %d host dials", st, n-1, n)
	}
}

func TestBastionDown(t *testing.T) {
	d := startDemo(t)
	dialer := newDialer(t, d.config())
	c := dial(t, dialer, d.target())
	d.bastion.Close()
	// The pooled connection died with the bastion: the next Dial finds
	// out, drops it, redials once, and fails naming the bastion.
	_, err := dialer.Dial(context.Background(), d.target())
	var hop *firstssh.HopError
	if !errors.Is(err, firstssh.ErrBastionUnreachable) || !errors.As(err, &hop) || hop.Name != "demo-bastion" {
		t.Fatalf("Dial: got %v, want ErrBastionUnreachable naming demo-bastion", err)
	}
	if _, err := c.Run(context.Background(), "true", firstssh.RunOptions{}); err == nil {
		t.Errorf("Run on a client through the dead bastion: got nil error, want one")
	}
}

func TestMaxSessionsPerBastion(t *testing.T) {
	d := startDemo(t)
	cfg := d.config()
	cfg.MaxSessionsPerBastion = 2
	dialer := newDialer(t, cfg)
	c := dial(t, dialer, d.target())
	dir := t.TempDir()
	// Each command registers itself in dir, reports how many are
	// registered, lingers, and leaves.
	cmd := fmt.Sprintf("f=%s/$$; touch \"$f\"; ls %s | wc -l; sleep 0.3; rm \"$f\"", dir, dir)
	const n = 6
	var wg sync.WaitGroup
	counts := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Run(context.Background(), cmd, firstssh.RunOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			counts <- strings.TrimSpace(string(res.Stdout))
		}()
	}
	wg.Wait()
	close(counts)
	for got := range counts {
		if n, err := strconv.Atoi(got); err != nil || n > 2 {
			t.Errorf("concurrent commands seen: got %q, want at most 2", got)
		}
	}
	if st := dialer.Stats(); st.SessionWaits == 0 {
		t.Errorf("SessionWaits: got 0, want > 0 with %d Runs and 2 slots", n)
	}
}

func TestServerRefusesOtherChannels(t *testing.T) {
	d := startDemo(t)
	signer := loadSigner(t, d.identity)
	cfg := &xssh.ClientConfig{User: "demo", Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, HostKeyCallback: xssh.FixedHostKey(d.bastion.HostKey())}
	bc, err := xssh.Dial("tcp", d.bastion.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	if _, err := bc.NewSession(); err == nil {
		t.Errorf("session on the bastion: got nil error, want a rejection")
	}
	cfg.HostKeyCallback = xssh.FixedHostKey(d.host.HostKey())
	hc, err := xssh.Dial("tcp", d.host.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if _, err := hc.Dial("tcp", d.bastion.Addr()); err == nil {
		t.Errorf("direct-tcpip on the host: got nil error, want a rejection")
	}
}

func loadSigner(t *testing.T, path string) xssh.Signer {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := xssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
