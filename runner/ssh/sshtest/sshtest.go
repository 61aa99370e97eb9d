// Package sshtest builds a small network of real OpenSSH servers for
// integration tests, as net/http/httptest builds HTTP servers: one bastion
// reachable from the test, and hosts reachable only through the bastion.
//
// Each server is Debian's /usr/sbin/sshd with its own config, host keys and
// authorized_keys, running in its own Linux network namespace (and UTS
// namespace, so `hostname` over SSH names the host that answered):
//
//	test (root netns) ──veth── bastion netns ──veth── host-1 netns
//	                                         └─veth── host-2 netns
//
// The root namespace has a route to the bastion only, and the bastion does
// not forward IP packets, so a host can be reached only by SSH forwarding
// through the bastion's sshd. Everything is removed in t.Cleanup, also when
// the test fails midway; namespaces, interface names and subnets are unique
// per Net and per process, so packages may run in parallel.
//
// With Options.HopDelay the links add a fixed delay to every packet, as a
// WAN between the test, the bastion and the hosts would (delay.go).
//
// Hosts can differ as machines do (hoststate.go): Options.PrivateDirs gives
// each host its own /var/log (say) in a mount namespace of its own, which
// the test fills through HostDir; Options.Hide removes commands from a
// host, as if they were not installed; Spawn starts a process on a host,
// such as a daemon holding a file open; Options.Tmpfs mounts a small
// filesystem there to fill; Options.Users and Options.Sudoers add
// unprivileged users and their sudo rules.
//
// It needs root, /usr/sbin/sshd, ip (iproute2) and unshare (util-linux); see
// Require.
package sshtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sync/errgroup"
)

const (
	// BastionName is the bastion's Endpoint name and hostname.
	BastionName = "bastion"
	// User is the login user on every server. The servers run as root and
	// root can log in with a key only (PermitRootLogin prohibit-password).
	// Options.Users adds unprivileged users to the hosts, without changing
	// the machine's own users.
	User = "root"
	// EnvRequire, set to "1", turns Require's skips into failures, for CI
	// where the integration tests must run.
	EnvRequire = "FIRSTLOOK_REQUIRE_INTEGRATION"

	sshdPath     = "/usr/sbin/sshd"
	readyTimeout = 10 * time.Second
)

// Require skips the test, saying why, unless the harness can run: root,
// /usr/sbin/sshd, ip and unshare. With FIRSTLOOK_REQUIRE_INTEGRATION=1 it
// fails the test instead. New calls it.
func Require(t testing.TB) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "not running as root")
	}
	if _, err := os.Stat(sshdPath); err != nil {
		missing = append(missing, "no "+sshdPath+" (apt-get install openssh-server)")
	}
	for _, tool := range []string{"ip", "unshare", "hostname"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, "no "+tool+" in PATH")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "sshtest: cannot build an sshd network: " + strings.Join(missing, "; ")
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + " (" + EnvRequire + "=1)")
	}
	t.Skip(msg)
}

// Options configure New.
type Options struct {
	// Hosts names the hosts behind the bastion; default host-1, host-2.
	// Names are hostnames: lower-case letters, digits and '-'.
	Hosts []string
	// HostCertificates also gives every server host certificates signed
	// by a per-Net CA, and writes CAKnownHostsFile.
	HostCertificates bool
	// HopDelay is the one-way delay every link adds to each packet, in
	// each direction, as "tc qdisc add … netem delay" on both ends of a
	// link would: 10ms gives 20 ms of round-trip time between the test
	// and the bastion, and another 20 ms between the bastion and each
	// host. Zero (the default) links the namespaces with plain veth
	// pairs. See delay.go; it needs the go command and /dev/net/tun.
	HopDelay time.Duration
	// PrivateDirs are directories of this machine (absolute paths that
	// exist, such as /var/log) that each host sees as a directory of its
	// own, empty at first: the host's sshd runs in a mount namespace of
	// its own with a per-host directory bind-mounted over each. Tests put
	// files there through HostDir; the machine's directory is untouched.
	PrivateDirs []string
	// Hide maps a host name to commands (lsof, docker …) that are not
	// installed there: in the host's own mount namespace, a read-only
	// overlay with whiteouts over each of /usr/local/sbin, /usr/local/bin,
	// /usr/sbin, /usr/bin, /sbin and /bin that holds one removes them, so
	// no PATH and no absolute path finds them. Needs overlayfs.
	Hide map[string][]string
	// Tmpfs maps a host name to small filesystems to mount there: a
	// directory inside one of PrivateDirs (created if missing) → a tmpfs
	// size such as "8m". Fill them through HostPath; df on the host shows
	// them as they fill.
	Tmpfs map[string]map[string]string
	// Users are unprivileged login users on every host (not the
	// bastion), uids from FirstUID, each with a home of its own and the
	// IdentityFile key. They exist only in the hosts' mount namespaces,
	// through private copies of /etc/passwd, /etc/group, /etc/shadow and
	// /etc/hosts (so sudo resolves the hostname): the machine's files are
	// untouched.
	Users []string
	// Sudoers maps a host name to the content of its
	// /etc/sudoers.d/sshtest (a private /etc/sudoers.d, like the files
	// above), e.g. "fl ALL=(root) NOPASSWD: /usr/bin/lsof -nP +L1". It
	// needs Users and sudo installed.
	Sudoers map[string]string
}

// FirstUID is the uid of Options.Users[0]; the next users get the next
// uids.
const FirstUID = 61000

// Endpoint is how a client reaches one server.
type Endpoint struct {
	Name string // BastionName or the host's name; also its hostname
	Addr string // ip:22
	User string
}

// Process is a process running in a server's network namespace.
type Process struct {
	PID     int
	Cmdline string // arguments joined by spaces
}

// Net is a running bastion and its hosts.
type Net struct {
	// KnownHostsFile lists every server's host keys (Ed25519 and ECDSA)
	// under the address clients dial, as the keys were when New returned.
	KnownHostsFile string
	// CAKnownHostsFile holds one @cert-authority line for every server's
	// address; set with Options.HostCertificates.
	CAKnownHostsFile string
	// IdentityFile is an unencrypted Ed25519 private key authorized on
	// every server.
	IdentityFile string

	t       testing.TB
	dir     string
	slot    int
	ca      xssh.Signer // nil without HostCertificates
	bastion *node
	hosts   []*node
	delay   *delayLinks // nil without HopDelay

	cpuMu sync.Mutex
	cpu   *cpuAccount // nil until ServerCPU's first call

	// usersDir holds the Users' keys and homes, readable by them; empty
	// without Users.
	usersDir string
}

// node is one sshd in its namespace.
type node struct {
	name    string
	ns      string
	ip      string
	dir     string
	forward bool // the bastion allows TCP forwarding; hosts do not
	// mounts are made in the host's own mount namespace before its sshd
	// starts; none means it shares the machine's.
	mounts []mount
	// private maps each of Options.PrivateDirs to the host's own copy.
	private map[string]string

	mu      sync.Mutex
	cmd     *exec.Cmd       // the running sshd, nil when stopped
	done    chan struct{}   // closed when cmd has been waited for
	spawned []chan struct{} // closed when a Spawned process has been waited for
}

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

// New builds the network and starts every sshd; it returns when all
// accept connections. Failures are fatal to t.
func New(t testing.TB, opts Options) *Net {
	t.Helper()
	Require(t)
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = []string{"host-1", "host-2"}
	}
	if len(hosts) > maxHosts {
		t.Fatalf("sshtest: %d hosts, at most %d", len(hosts), maxHosts)
	}
	for i, h := range hosts {
		if !hostnameRE.MatchString(h) || h == BastionName || slices.Contains(hosts[:i], h) {
			t.Fatalf("sshtest: host name %q: want a unique hostname other than %q", h, BastionName)
		}
	}
	for h := range opts.Hide {
		if !slices.Contains(hosts, h) {
			t.Fatalf("sshtest: Hide names %q, which is not one of the hosts %q", h, hosts)
		}
	}
	for i, d := range opts.PrivateDirs {
		info, err := os.Stat(d)
		switch {
		case !filepath.IsAbs(d) || filepath.Clean(d) != d || d == "/":
			t.Fatalf("sshtest: private dir %q: want a clean absolute path other than /", d)
		case err != nil || !info.IsDir():
			t.Fatalf("sshtest: private dir %q: want an existing directory (sshtest creates nothing outside its temporary directory)", d)
		case slices.Contains(opts.PrivateDirs[:i], d):
			t.Fatalf("sshtest: private dir %q given twice", d)
		}
	}
	if len(opts.Hide) > 0 {
		requireOverlay(t)
	}
	for h, fss := range opts.Tmpfs {
		if !slices.Contains(hosts, h) {
			t.Fatalf("sshtest: Tmpfs names %q, which is not one of the hosts %q", h, hosts)
		}
		for d := range fss {
			if !slices.ContainsFunc(opts.PrivateDirs, func(p string) bool { return strings.HasPrefix(d, p+"/") }) || filepath.Clean(d) != d {
				t.Fatalf("sshtest: Tmpfs %s on %s: want a clean path inside one of PrivateDirs %q", d, h, opts.PrivateDirs)
			}
		}
	}
	for _, u := range opts.Users {
		if !hostnameRE.MatchString(u) || u == "root" {
			t.Fatalf("sshtest: user %q: want a lower-case name other than root", u)
		}
	}
	if len(opts.Sudoers) > 0 {
		if len(opts.Users) == 0 {
			t.Fatalf("sshtest: Sudoers without Users")
		}
		requireSudo(t)
	}
	if len(opts.PrivateDirs) > 0 || len(opts.Hide) > 0 {
		if _, err := exec.LookPath("mount"); err != nil {
			t.Fatalf("sshtest: PrivateDirs and Hide need mount (util-linux) in PATH")
		}
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // sshd's privilege separation directory
		t.Fatalf("sshtest: %v", err)
	}

	n := &Net{t: t, dir: t.TempDir()}
	slot, err := allocate()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	n.slot = slot
	// Registered before anything exists, so a failure half-way through
	// still removes what was made.
	t.Cleanup(n.cleanup)

	addr := subnet(slot)
	n.bastion = n.newNode(BastionName, nsName(slot, "b"), addr(2), true)
	for k, h := range hosts {
		nd := n.newNode(h, nsName(slot, fmt.Sprintf("h%d", k)), addr(4*k+6), false)
		if err := nd.prepare(opts.PrivateDirs, opts.Hide[h]); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		if err := nd.prepareTmpfs(opts.Tmpfs[h]); err != nil {
			t.Fatalf("sshtest: %v", err)
		}

		n.hosts = append(n.hosts, nd)
	}
	if opts.HopDelay != 0 {
		n.startDelay(opts.HopDelay)
	}
	if err := n.buildNetwork(addr); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if err := n.writeKeys(opts.HostCertificates); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if len(opts.Users) > 0 {
		for _, nd := range n.hosts {
			if err := n.prepareUsers(nd, opts.Users, opts.Sudoers[nd.name]); err != nil {
				t.Fatalf("sshtest: %v", err)
			}
		}
	}
	var g errgroup.Group
	for _, nd := range n.nodes() {
		g.Go(func() error { return n.start(nd) })
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return n
}

func (n *Net) newNode(name, ns, ip string, forward bool) *node {
	dir := filepath.Join(n.dir, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		n.t.Fatalf("sshtest: %v", err)
	}
	return &node{name: name, ns: ns, ip: ip, dir: dir, forward: forward}
}

func (n *Net) nodes() []*node { return append([]*node{n.bastion}, n.hosts...) }

func (n *Net) node(name string) *node {
	for _, nd := range n.nodes() {
		if nd.name == name {
			return nd
		}
	}
	n.t.Fatalf("sshtest: no server named %q", name)
	return nil
}

// Bastion returns the bastion's endpoint.
func (n *Net) Bastion() Endpoint { return n.bastion.endpoint() }

// Host returns the named host's endpoint.
func (n *Net) Host(name string) Endpoint {
	nd := n.node(name)
	if nd == n.bastion {
		n.t.Fatalf("sshtest: %q is the bastion", name)
	}
	return nd.endpoint()
}

// Hosts returns every host's endpoint, in Options.Hosts order.
func (n *Net) Hosts() []Endpoint {
	eps := make([]Endpoint, len(n.hosts))
	for i, nd := range n.hosts {
		eps[i] = nd.endpoint()
	}
	return eps
}

func (nd *node) endpoint() Endpoint {
	return Endpoint{Name: nd.name, Addr: nd.ip + ":22", User: User}
}

// Stop kills the named server's sshd and every process in its namespace,
// the sessions of connected clients included, as if the machine went
// down: connections are reset and new ones refused.
func (n *Net) Stop(name string) {
	n.t.Helper()
	if err := n.stop(n.node(name)); err != nil {
		n.t.Fatalf("sshtest: stop %s: %v", name, err)
	}
}

// Start starts the named server's sshd again after Stop and waits until
// it accepts connections.
func (n *Net) Start(name string) {
	n.t.Helper()
	if err := n.start(n.node(name)); err != nil {
		n.t.Fatalf("sshtest: %v", err)
	}
}

// ReplaceHostKey gives the named server new host keys (and certificates,
// with HostCertificates) and restarts it. KnownHostsFile is left as it
// was, so it no longer matches: the server looks rebuilt, or impersonated.
func (n *Net) ReplaceHostKey(name string) {
	n.t.Helper()
	nd := n.node(name)
	if err := n.stop(nd); err != nil {
		n.t.Fatalf("sshtest: replace host key of %s: %v", name, err)
	}
	if _, err := n.writeHostKeys(nd); err != nil {
		n.t.Fatalf("sshtest: replace host key of %s: %v", name, err)
	}
	if err := n.start(nd); err != nil {
		n.t.Fatalf("sshtest: %v", err)
	}
}

// Exec runs a command inside the named server's network namespace (not
// over SSH) and returns its combined output.
func (n *Net) Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	nd := n.node(name)
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", nd.ns}, args...)...).CombinedOutput()
}

// Processes lists the processes in the named server's network namespace
// other than its listening sshd: sshd's per-connection processes and what
// sessions started.
func (n *Net) Processes(name string) []Process {
	n.t.Helper()
	nd := n.node(name)
	pids, err := pidsInNetns(nd.ns)
	if err != nil {
		n.t.Fatalf("sshtest: processes of %s: %v", name, err)
	}
	listener := 0
	nd.mu.Lock()
	if nd.cmd != nil {
		listener = nd.cmd.Process.Pid
	}
	nd.mu.Unlock()
	var ps []Process
	for _, pid := range pids {
		if pid == listener {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // gone meanwhile
		}
		ps = append(ps, Process{PID: pid, Cmdline: strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))})
	}
	return ps
}

// writeKeys creates the client key, authorized_keys, every server's host
// keys and the known_hosts files.
func (n *Net) writeKeys(certs bool) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	n.IdentityFile = filepath.Join(n.dir, "id_ed25519")
	if err := writePrivateKey(n.IdentityFile, priv); err != nil {
		return err
	}
	client, err := xssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.dir, "authorized_keys"), xssh.MarshalAuthorizedKey(client.PublicKey()), 0o600); err != nil {
		return err
	}
	if certs {
		_, caPriv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		if n.ca, err = xssh.NewSignerFromKey(caPriv); err != nil {
			return err
		}
	}

	var known []string
	var addrs []string
	for _, nd := range n.nodes() {
		pubs, err := n.writeHostKeys(nd)
		if err != nil {
			return err
		}
		for _, p := range pubs {
			known = append(known, knownhosts.Line([]string{nd.ip + ":22"}, p))
		}
		addrs = append(addrs, nd.ip)
	}
	n.KnownHostsFile = filepath.Join(n.dir, "known_hosts")
	if err := os.WriteFile(n.KnownHostsFile, []byte(strings.Join(known, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	if n.ca != nil {
		n.CAKnownHostsFile = filepath.Join(n.dir, "known_hosts.ca")
		line := "@cert-authority " + strings.Join(addrs, ",") + " " + string(xssh.MarshalAuthorizedKey(n.ca.PublicKey()))
		if err := os.WriteFile(n.CAKnownHostsFile, []byte(line), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// writeHostKeys writes fresh Ed25519 and ECDSA host keys for nd (two
// types, so that a client must pick the one known_hosts holds) and, with a
// CA, their certificates; it returns the public keys.
func (n *Net) writeHostKeys(nd *node) ([]xssh.PublicKey, error) {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	var pubs []xssh.PublicKey
	for _, k := range []struct {
		file string
		priv any
	}{{"ssh_host_ed25519_key", edPriv}, {"ssh_host_ecdsa_key", ecPriv}} {
		path := filepath.Join(nd.dir, k.file)
		if err := writePrivateKey(path, k.priv); err != nil {
			return nil, err
		}
		signer, err := xssh.NewSignerFromKey(k.priv)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, signer.PublicKey())
		if n.ca == nil {
			continue
		}
		cert := &xssh.Certificate{
			Key:             signer.PublicKey(),
			CertType:        xssh.HostCert,
			KeyId:           nd.name,
			ValidPrincipals: []string{nd.ip, nd.name},
			ValidBefore:     xssh.CertTimeInfinity,
		}
		if err := cert.SignCert(rand.Reader, n.ca); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path+"-cert.pub", xssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
			return nil, err
		}
	}
	return pubs, nil
}

func writePrivateKey(path string, key any) error {
	block, err := xssh.MarshalPrivateKey(key, "")
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(block), 0o600)
}

// sshdConfig is the whole configuration of one server: nothing comes from
// /etc/ssh.
func (n *Net) sshdConfig(nd *node) string {
	forwarding := "no"
	if nd.forward {
		forwarding = "yes"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ListenAddress %s:22\n", nd.ip)
	for _, k := range []string{"ssh_host_ed25519_key", "ssh_host_ecdsa_key"} {
		fmt.Fprintf(&b, "HostKey %s\n", filepath.Join(nd.dir, k))
		if n.ca != nil {
			fmt.Fprintf(&b, "HostCertificate %s-cert.pub\n", filepath.Join(nd.dir, k))
		}
	}
	fmt.Fprintf(&b, "PidFile %s\n", filepath.Join(nd.dir, "sshd.pid"))
	if n.usersDir != "" {
		// Users read their keys as themselves: from a directory they
		// can reach.
		fmt.Fprintf(&b, "AuthorizedKeysFile %s %s\n", filepath.Join(n.dir, "authorized_keys"), filepath.Join(n.usersDir, "%u.keys"))
	} else {
		fmt.Fprintf(&b, "AuthorizedKeysFile %s\n", filepath.Join(n.dir, "authorized_keys"))
	}
	fmt.Fprintf(&b, "AllowTcpForwarding %s\n", forwarding)
	// Sessions get a home of their own: bash sources ~/.bashrc for
	// commands run by sshd, and the machine's root dotfiles (a pyenv
	// init, say) would make every command slow and the tests depend on
	// them.
	fmt.Fprintf(&b, "SetEnv HOME=%s\n", filepath.Join(nd.dir, "home"))
	b.WriteString(`PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
PrintMotd no
PrintLastLog no
UseDNS no
# Concurrency tests open many connections at once; the default 10:30:100
# starts dropping them at random.
MaxStartups 200
LogLevel VERBOSE
`)
	return b.String()
}

// start runs nd's sshd in nd's network namespace and a new UTS namespace
// named after it, and waits until it listens.
func (n *Net) start(nd *node) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		return fmt.Errorf("start %s: already running", nd.name)
	}
	if err := os.MkdirAll(filepath.Join(nd.dir, "home"), 0o700); err != nil {
		return err
	}
	cfg := filepath.Join(nd.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(n.sshdConfig(nd)), 0o600); err != nil {
		return err
	}
	logPath := filepath.Join(nd.dir, "sshd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// ip netns exec, unshare and sh all exec, so cmd's pid is sshd's.
	// With mounts, sshd gets a mount namespace of its own (unshare makes
	// its mounts private: nothing propagates back to the machine), where
	// they are made before sshd starts.
	args := []string{"netns", "exec", nd.ns, "unshare", "--uts"}
	if len(nd.mounts) > 0 {
		args = append(args, "--mount")
	}
	args = append(args, "sh", "-c", startScript, "sh", nd.name, sshdPath, cfg)
	for _, m := range nd.mounts {
		args = append(args, m.kind, m.src, m.dst)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", nd.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait() // owned: stop kills the process and waits for done
		close(done)
	}()
	nd.cmd, nd.done = cmd, done

	ready := []byte(fmt.Sprintf("Server listening on %s port 22.", nd.ip))
	deadline := time.Now().Add(readyTimeout)
	for {
		b, _ := os.ReadFile(logPath)
		if bytes.Contains(b, ready) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("start %s: sshd exited: %s", nd.name, b)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("start %s: sshd not listening after %s: %s", nd.name, readyTimeout, b)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stop kills every process in nd's namespace, the listening sshd first.
func (n *Net) stop(nd *node) error {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd != nil {
		nd.cmd.Process.Kill()
		select {
		case <-nd.done:
		case <-time.After(readyTimeout):
			return fmt.Errorf("sshd (pid %d) did not exit", nd.cmd.Process.Pid)
		}
		nd.cmd, nd.done = nil, nil
	}
	err := killNetns(nd.ns)
	for _, done := range nd.spawned {
		select {
		case <-done:
		case <-time.After(readyTimeout):
			err = errors.Join(err, errors.New("a spawned process did not exit"))
		}
	}
	nd.spawned = nil
	return err
}

// cleanup removes everything New made, whatever state it got to.
func (n *Net) cleanup() {
	var errs []error
	for _, nd := range n.nodes() {
		if nd == nil {
			continue
		}
		if n.t.Failed() {
			if b, err := os.ReadFile(filepath.Join(nd.dir, "sshd.log")); err == nil {
				n.t.Logf("sshtest: %s sshd log:\n%s", nd.name, tail(b, 4000))
			}
		}
		if err := n.stop(nd); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", nd.name, err))
		}
	}
	errs = append(errs, removeSlot(n.slot))
	if n.usersDir != "" {
		errs = append(errs, os.RemoveAll(n.usersDir))
	}
	if err := errors.Join(errs...); err != nil {
		n.t.Errorf("sshtest: cleanup: %v", err)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// run runs a command and includes its output in the error.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ipBatch runs ip commands, one per line, in namespace ns ("" for the
// root namespace), in one process.
func ipBatch(ns string, lines []string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s <<%q: %w: %s", strings.Join(args, " "), lines, err, bytes.TrimSpace(out))
	}
	return nil
}

// pidsInNetns lists the processes whose network namespace is ns.
func pidsInNetns(ns string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(filepath.Join(netnsDir, ns), &want); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || fmt.Sprint(pid) != e.Name() {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name(), "ns", "net"), &st) != nil {
			continue // exited, or a kernel thread
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killNetns SIGKILLs every process in ns until none is left.
func killNetns(ns string) error {
	for range 50 {
		pids, err := pidsInNetns(ns)
		if err != nil || len(pids) == 0 {
			return err
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pids, _ := pidsInNetns(ns)
	return fmt.Errorf("processes left in %s: %v", ns, pids)
}

// TimeoutScaleEnv names the environment variable that scales every test
// deadline taken through Timeout: a float, default 1. A loaded machine (CI
// on two shared cores) sets it above 1 rather than a test guessing.
const TimeoutScaleEnv = "FIRSTLOOK_TEST_TIMEOUT_SCALE"

// Timeout returns d scaled by FIRSTLOOK_TEST_TIMEOUT_SCALE. Tests take
// every deadline that a slow machine could miss (a connect timeout, a wait
// for something to happen) from here, with a generous d.
func Timeout(d time.Duration) time.Duration {
	s, err := strconv.ParseFloat(os.Getenv(TimeoutScaleEnv), 64)
	if err != nil || s <= 0 {
		return d
	}
	return time.Duration(float64(d) * s)
}
