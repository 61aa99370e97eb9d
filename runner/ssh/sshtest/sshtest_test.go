package sshtest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

func clientConfig(t *testing.T, n *sshtest.Net) *xssh.ClientConfig {
	t.Helper()
	b, err := os.ReadFile(n.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := xssh.ParsePrivateKey(b)
	if err != nil {
		t.Fatal(err)
	}
	check, err := knownhosts.New(n.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	return &xssh.ClientConfig{User: sshtest.User, Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)}, HostKeyCallback: check, Timeout: 5 * time.Second}
}

// hostClient connects to addr through the bastion client, as ssh -J does.
func hostClient(t *testing.T, bastion *xssh.Client, addr string, cfg *xssh.ClientConfig) *xssh.Client {
	t.Helper()
	conn, err := bastion.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s through the bastion: %v", addr, err)
	}
	c, chans, reqs, err := xssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	return xssh.NewClient(c, chans, reqs)
}

// hostname runs `hostname` on addr through the bastion client.
func hostname(t *testing.T, bastion *xssh.Client, addr string, cfg *xssh.ClientConfig) string {
	t.Helper()
	client := hostClient(t, bastion, addr, cfg)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("hostname")
	if err != nil {
		t.Fatalf("hostname on %s: %v", addr, err)
	}
	return strings.TrimSpace(string(out))
}

func directHandshake(addr string, cfg *xssh.ClientConfig) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	c, _, _, err := xssh.NewClientConn(conn, addr, cfg)
	if err == nil {
		c.Close()
	}
	return err
}

func TestNet(t *testing.T) {
	var namespaces []string
	t.Run("topology", func(t *testing.T) {
		n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1", "db-1", "cache-1"}})
		cfg := clientConfig(t, n)
		bastion, err := xssh.Dial("tcp", n.Bastion().Addr, cfg)
		if err != nil {
			t.Fatalf("dial bastion: %v", err)
		}
		defer bastion.Close()
		for _, h := range n.Hosts() {
			if got := hostname(t, bastion, h.Addr, cfg); got != h.Name {
				t.Errorf("hostname via %s: got %q, want %q", h.Addr, got, h.Name)
			}
			// No SSH to a host from the test's namespace. (The TCP
			// connect itself may succeed: packets without a route of
			// ours go out of the default route, where a proxy may
			// answer.)
			if h.Name == "web-1" { // each attempt may take its 1s timeout
				if err := directHandshake(h.Addr, cfg); err == nil {
					t.Errorf("direct SSH to %s: got a connection, want none (hosts are behind the bastion)", h.Addr)
				}
			}
			out, err := n.Exec(context.Background(), h.Name, "ip", "-4", "route")
			if err != nil || strings.Contains(string(out), "default") || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
				t.Errorf("routes on %s: got %q, %v, want only its link to the bastion", h.Name, out, err)
			}
		}
		ctx := context.Background()
		out, err := n.Exec(ctx, sshtest.BastionName, "cat", "/proc/sys/net/ipv4/ip_forward")
		if err != nil || strings.TrimSpace(string(out)) != "0" {
			t.Errorf("bastion ip_forward: got %q, %v, want 0", out, err)
		}
		// Hosts do not forward for clients.
		web := hostClient(t, bastion, n.Host("web-1").Addr, cfg)
		defer web.Close()
		if _, err := web.Dial("tcp", n.Host("db-1").Addr); err == nil {
			t.Errorf("forwarding through a host: got a connection, want a refusal")
		}
		entries, _ := os.ReadDir("/run/netns")
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "flst-") && strings.Contains(e.Name(), "-"+strconv.Itoa(os.Getpid())+"-") {
				namespaces = append(namespaces, e.Name())
			}
		}
		if len(namespaces) != 4 {
			t.Errorf("namespaces: got %q, want 4", namespaces)
		}
	})
	// After the subtest's cleanup nothing may be left.
	for _, ns := range namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s: still there after cleanup", ns)
		}
	}
}

func TestStopStartReplace(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"h"}})
	cfg := clientConfig(t, n)
	n.Stop(sshtest.BastionName)
	if c, err := xssh.Dial("tcp", n.Bastion().Addr, cfg); err == nil {
		c.Close()
		t.Fatalf("dial a stopped bastion: got a connection, want an error")
	}
	n.Start(sshtest.BastionName)
	c, err := xssh.Dial("tcp", n.Bastion().Addr, cfg)
	if err != nil {
		t.Fatalf("dial a restarted bastion: %v", err)
	}
	c.Close()
	n.ReplaceHostKey(sshtest.BastionName)
	if c, err := xssh.Dial("tcp", n.Bastion().Addr, cfg); err == nil {
		c.Close()
		t.Fatalf("dial a bastion with a new host key: got a connection, want a key mismatch")
	} else if !strings.Contains(err.Error(), "knownhosts: key mismatch") {
		t.Fatalf("dial a bastion with a new host key: got %v, want a key mismatch", err)
	}
}

// runOn runs cmd on addr through the bastion client and returns its
// combined output and error.
func runOn(t *testing.T, bastion *xssh.Client, addr string, cfg *xssh.ClientConfig, cmd string) (string, error) {
	t.Helper()
	client := hostClient(t, bastion, addr, cfg)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.CombinedOutput(cmd)
	return string(out), err
}

func TestHostState(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{
		Hosts:       []string{"full", "bare"},
		PrivateDirs: []string{"/var/log"},
		Hide:        map[string][]string{"bare": {"df", "ip", "no-such-command"}},
	})
	cfg := clientConfig(t, n)
	bastion, err := xssh.Dial("tcp", n.Bastion().Addr, cfg)
	if err != nil {
		t.Fatalf("dial bastion: %v", err)
	}
	defer bastion.Close()
	full, bare := n.Host("full"), n.Host("bare")

	marker := "sshtest-marker-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(filepath.Join(n.HostDir("full", "/var/log"), marker), []byte("only on full\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("private dirs", func(t *testing.T) {
		if out, err := runOn(t, bastion, full.Addr, cfg, "cat /var/log/"+marker); err != nil || out != "only on full\n" {
			t.Errorf("cat the marker on full: got %q, %v, want %q", out, err, "only on full\n")
		}
		if out, err := runOn(t, bastion, bare.Addr, cfg, "ls -A /var/log | wc -l"); err != nil || strings.TrimSpace(out) != "0" {
			t.Errorf("entries in bare's /var/log: got %q, %v, want 0 (its own, empty)", out, err)
		}
		if _, err := os.Stat("/var/log/" + marker); err == nil {
			t.Errorf("/var/log/%s: on this machine too, want only in full's private /var/log", marker)
		}
	})
	t.Run("hide", func(t *testing.T) {
		for _, tc := range []struct {
			ep   sshtest.Endpoint
			cmd  string
			want string
		}{
			{full, "command -v df >/dev/null && echo found || echo missing", "found\n"},
			{bare, "command -v df >/dev/null && echo found || echo missing", "missing\n"},
			{bare, "ls /usr/bin/df /bin/df /usr/sbin/ip /sbin/ip /usr/bin/ip 2>/dev/null | wc -l", "0\n"},
			{full, "command -v ip >/dev/null && echo found || echo missing", "found\n"},
			{bare, "PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH; command -v ip >/dev/null && echo found || echo missing", "missing\n"},
			// Everything else is still there, for bash and for sh.
			{bare, "echo 'command -v ps >/dev/null && uname -s' | sh -s", "Linux\n"},
		} {
			if out, err := runOn(t, bastion, tc.ep.Addr, cfg, tc.cmd); err != nil || out != tc.want {
				t.Errorf("%s: %q: got %q, %v, want %q", tc.ep.Name, tc.cmd, out, err, tc.want)
			}
		}
	})
	t.Run("spawn", func(t *testing.T) {
		p := n.Spawn("full", "sh", "-c", `hostname >/var/log/spawned; exec sleep 300`)
		var got string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if b, err := os.ReadFile(filepath.Join(n.HostDir("full", "/var/log"), "spawned")); err == nil && len(b) > 0 {
				got = string(b)
				break
			}
		}
		if got != "full\n" {
			t.Errorf("hostname the spawned process wrote to its /var/log: got %q, want %q", got, "full\n")
		}
		if out, err := runOn(t, bastion, full.Addr, cfg, "cat /proc/"+strconv.Itoa(p.PID)+"/comm"); err != nil || out != "sleep\n" {
			t.Errorf("the spawned process as seen on full: got %q, %v, want %q", out, err, "sleep\n")
		}
		listed := false
		for _, q := range n.Processes("full") {
			listed = listed || q.PID == p.PID
		}
		if !listed {
			t.Errorf("Processes(full): pid %d missing", p.PID)
		}
		n.Stop("full")
		if _, err := os.Stat("/proc/" + strconv.Itoa(p.PID)); err == nil {
			t.Errorf("pid %d: still running after Stop, want it killed with the host", p.PID)
		}
		n.Start("full")
	})
}

// Users log in unprivileged, sudo does what Sudoers allows and nothing
// else, and a Tmpfs is a filesystem of its own size on its host.
func TestUsersSudoTmpfs(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{
		Hosts:       []string{"host-1"},
		PrivateDirs: []string{"/var/log"},
		Tmpfs:       map[string]map[string]string{"host-1": {"/var/log/small": "4m"}},
		Users:       []string{"fl"},
		Sudoers:     map[string]string{"host-1": "fl ALL=(root) NOPASSWD: /usr/bin/id -u"},
	})
	if err := os.WriteFile(n.HostPath("host-1", "/var/log/small/x"), make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	bcfg := clientConfig(t, n)
	bastion, err := xssh.Dial("tcp", n.Bastion().Addr, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer bastion.Close()
	cfg := clientConfig(t, n)
	cfg.User = "fl"
	c := hostClient(t, bastion, n.Host("host-1").Addr, cfg)
	defer c.Close()
	for cmd, want := range map[string]string{
		"id -un; id -u":                   "fl\n61000\n",
		"sudo -n id -u":                   "0\n",
		"sudo -n id -un 2>&1 | head -n 1": "sudo: a password is required\n",
		"df -P /var/log/small | awk 'NR == 2 { print $2, $5 }'": "4096 75%\n",
	} {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.CombinedOutput(cmd)
		s.Close()
		if string(out) != want {
			t.Errorf("%s: got %q (%v), want %q", cmd, out, err, want)
		}
	}
}
