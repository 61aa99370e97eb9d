package library_test

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks/library"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// The library on real hosts: OpenSSH servers in network namespaces behind
// a bastion (sshtest), reached by the real runner. Two hosts, made to
// differ as machines do:
//
//   - web-1 has this machine's tools and its own /var/log holding nginx
//     logs with known 5xx, an application log directory, a nearly full
//     small filesystem, a certificate that expires in 5 days, and a big
//     file that a running process holds open after it was deleted; a CPU
//     hog, a memory hog and a process near its file-descriptor limit run
//     on it.
//   - bare-1 lacks every optional tool (hidden, as if not installed), so
//     each playbook must degrade cleanly there: "<tool>: not installed",
//     a fallback to /proc or to the log files, exit 0. Its /var/log holds
//     a kern.log with an OOM kill and a syslog with an error.
//
// What web-1 shows for tools this machine may or may not have (lsof,
// docker, systemd) is checked either way; bare-1's answers are exact.
// Each playbook's findings are checked as well as its output.
//
// The hosts have no systemd (PID 1 is not theirs), so a unit in a restart
// loop is tested on captured `systemctl show` output (TestFindingsOnOutput).
//
// The library also runs as fl, a user with no privilege: once with the
// inventory's sudo off (fl's sudo rule on web-1 must then go unused) and
// once with it on, where sudo -n runs exactly the commands docs/library.md
// lists for sudoers.

const (
	full = "web-1"
	bare = "bare-1"
	// testService is the test incidents' service; the runner's
	// per-service params point the playbooks at what the test controls.
	testService = "library-test"
	// autoService leaves disk-full's path to the playbook and gives du
	// one second.
	autoService = "library-auto"
	// user is the unprivileged login user.
	user = "fl"
	// hogBytes is the memory hog's RSS.
	hogBytes = 200 << 20
)

// hidden are the commands bare-1 lacks: every tool a library playbook
// uses that a minimal host may not have.
var hidden = []string{
	"lsof", "ss", "ip", "docker", "podman", "crictl", "nginx", "curl", "journalctl", "systemctl",
	"dmesg", "vmstat", "free", "mpstat", "iostat", "pidstat", "conntrack", "chronyc", "ntpq", "timedatectl",
}

// params are the per-service overrides: lists long enough to hold every
// process (so the hog's place does not depend on the machine's load),
// du on the private /var/log, and a unit that exists nowhere.
var params = map[string]string{
	"lines":      "400",
	"path":       "/var/log",
	"depth":      "1",
	"unit":       "firstlook-test-absent.service",
	"status_url": "http://127.0.0.1:9/nginx_status",
	"paths":      "/var/log/certs/expiring.pem /var/log/certs/missing.pem",
	"names":      "localhost firstlook-test.invalid",
	// Every process's CPU over a second is a finding: the hog's is, even
	// on a loaded machine.
	"proc_cpu_info_pct": "1",
}

type env struct {
	net *sshtest.Net
	// runner logs in as root; asUser as fl with the inventory's sudo
	// off, asSudoer as fl with it on.
	runner, asUser, asSudoer *runner.Runner
	// held is each host's process holding a deleted file open; hog the
	// CPU hog on web-1, memHog the memory hog, fdHog the process near its
	// descriptor limit.
	held               map[string]sshtest.Process
	hog, memHog, fdHog sshtest.Process
}

// sudoers is what docs/library.md tells sites to allow the firstlook user,
// with this machine's paths.
func sudoers(t *testing.T) string {
	t.Helper()
	path := func(tool string) string {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return p
	}
	return fmt.Sprintf("Cmnd_Alias FIRSTLOOK = %s -nP +L1, %s -T, %s -T *, %s -x -k -d *\n%s ALL=(root) NOPASSWD: FIRSTLOOK",
		path("lsof"), path("dmesg"), path("dmesg"), path("du"), user)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	n := sshtest.New(t, sshtest.Options{
		Hosts:       []string{full, bare},
		PrivateDirs: []string{"/var/log"},
		Hide:        map[string][]string{bare: hidden},
		Tmpfs:       map[string]map[string]string{full: {"/var/log/small": "8m"}},
		Users:       []string{user},
		Sudoers:     map[string]string{full: sudoers(t)},
	})
	e := &env{net: n, held: map[string]sshtest.Process{}}
	e.writeLogs(t)
	for _, h := range []string{full, bare} {
		e.held[h] = e.holdDeleted(t, h)
	}
	// A nearly full filesystem: 7.8 of 8 MiB.
	if err := os.WriteFile(n.HostPath(full, "/var/log/small/fill"), make([]byte, 7800<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	// The hog's $0 names it in ps.
	e.hog = n.Spawn(full, "sh", "-c", "while :; do :; done", "firstlook-cpu-hog")
	t.Cleanup(func() { syscall.Kill(e.hog.PID, syscall.SIGKILL) })
	// dd holds its 200 MiB buffer while sleep does not read the pipe.
	e.memHog = n.Spawn(full, "sh", "-c", fmt.Sprintf("dd if=/dev/zero bs=%d count=1 2>/dev/null | sleep 600", hogBytes))
	t.Cleanup(func() { syscall.Kill(e.memHog.PID, syscall.SIGKILL) })
	e.memHog = waitFor(t, "the memory hog", func() (sshtest.Process, bool) {
		for _, p := range n.Processes(full) {
			if strings.HasPrefix(p.Cmdline, "dd if=/dev/zero") && rss(p.PID) >= hogBytes*9/10 {
				return p, true
			}
		}
		return sshtest.Process{}, false
	})
	t.Cleanup(func() { syscall.Kill(e.memHog.PID, syscall.SIGKILL) })
	// 230 descriptors (and stdin, stdout, stderr) under a limit of 256.
	e.fdHog = n.Spawn(full, "bash", "-c", "ulimit -n 256; for i in $(seq 230); do exec {fd}</dev/null; done; exec sleep 600")
	t.Cleanup(func() { syscall.Kill(e.fdHog.PID, syscall.SIGKILL) })
	waitFor(t, "the descriptor hog", func() (struct{}, bool) {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", e.fdHog.PID))
		return struct{}{}, len(fds) >= 233
	})

	b := n.Bastion()
	bhost, bport := splitAddr(t, b.Addr)
	cfg := inventory.Config{
		Defaults: inventory.Defaults{User: sshtest.User, Bastion: b.Name},
		Bastions: []inventory.BastionConfig{{Name: b.Name, Address: bhost, Port: bport, User: b.User}},
	}
	for _, h := range n.Hosts() {
		addr, port := splitAddr(t, h.Addr)
		cfg.Hosts = append(cfg.Hosts, inventory.HostConfig{Name: h.Name, Address: addr, Port: port})
	}
	d, err := ssh.New(ssh.Config{KnownHosts: []string{n.KnownHostsFile}, IdentityFiles: []string{n.IdentityFile}})
	if err != nil {
		t.Fatalf("ssh.New: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	set, err := library.Load()
	if err != nil {
		t.Fatalf("library.Load: %v", err)
	}
	// The memory hog's share of memory, halved, is the threshold of an
	// info finding: the hog raises one whatever this machine's memory.
	hogParams := maps.Clone(params)
	hogParams["rss_info_pct"] = strconv.FormatFloat(100*float64(hogBytes)/float64(memTotal(t))/2, 'f', 3, 64)
	newRunner := func(cfg inventory.Config) *runner.Runner {
		inv, err := inventory.New(cfg)
		if err != nil {
			t.Fatalf("inventory: %v", err)
		}
		r, err := runner.New(runner.Options{
			Inventory: inv, Playbooks: set, Dialer: runner.SSH(d),
			Params: map[string]map[string]string{testService: hogParams, autoService: {"du_seconds": "1"}},
		})
		if err != nil {
			t.Fatalf("runner.New: %v", err)
		}
		return r
	}
	e.runner = newRunner(cfg)
	cfg.Defaults.User = user
	e.asUser = newRunner(cfg)
	cfg.Defaults.Sudo = true
	e.asSudoer = newRunner(cfg)
	return e
}

// waitFor polls cond for up to 30 s (a loaded machine is slow to start
// processes) and returns its value.
func waitFor[T any](t *testing.T, what string, cond func() (T, bool)) T {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, ok := cond(); ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not ready after 30s", what)
		}
	}
}

// rss is a process's resident memory in bytes.
func rss(pid int) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func memTotal(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kb int64
	fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
	if kb == 0 {
		t.Fatalf("no MemTotal in /proc/meminfo")
	}
	return kb << 10
}

func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sparse makes a file of size bytes that uses no disk.
func sparse(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

// writeLogs gives each host's /var/log known content.
func (e *env) writeLogs(t *testing.T) {
	web := e.net.HostDir(full, "/var/log")
	var access strings.Builder
	line := func(status int, path string) {
		fmt.Fprintf(&access, "203.0.113.7 - - [23/Nov/2026:10:00:%02d +0000] \"GET %s HTTP/1.1\" %d 512 \"-\" \"curl/8.0\"\n", access.Len()%60, path, status)
	}
	for range 10 {
		line(200, "/")
	}
	for range 3 {
		line(502, "/api/orders?id=7")
	}
	line(500, "/api/pay")
	writeFile(t, filepath.Join(web, "nginx/access.log"), access.String())
	writeFile(t, filepath.Join(web, "nginx/error.log"), ""+
		`2026/11/23 10:00:01 [error] 12#12: *1 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 203.0.113.7, server: _, request: "GET /api/orders HTTP/1.1", upstream: "http://10.9.8.7:8080/api/orders", host: "web-1"`+"\n"+
		`2026/11/23 10:00:02 [error] 12#12: *2 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 203.0.113.7, server: _, request: "GET /api/orders HTTP/1.1", upstream: "http://10.9.8.7:8080/api/orders", host: "web-1"`+"\n"+
		`2026/11/23 10:00:03 [error] 12#12: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 203.0.113.7, server: _, request: "GET /api/pay HTTP/1.1", upstream: "http://10.9.8.9:8080/api/pay", host: "web-1"`+"\n")
	// A directory du must rank first, and a log find must list.
	writeFile(t, filepath.Join(web, "app/chunk"), strings.Repeat("x", 2<<20))
	sparse(t, filepath.Join(web, "app/huge.log"), 12<<20)
	writeFile(t, filepath.Join(web, "certs/expiring.pem"), certificate(t, "shop.example.com", 5*24*time.Hour+time.Hour))

	b := e.net.HostDir(bare, "/var/log")
	writeFile(t, filepath.Join(b, "kern.log"), ""+
		"Nov 23 10:00:00 bare-1 kernel: [  123.456789] Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:4012345kB\n"+
		"Nov 23 10:01:00 bare-1 kernel: [  183.000001] watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [kworker/1:2:311]\n"+
		"Nov 23 10:02:00 bare-1 kernel: [  243.000002] INFO: task postgres:2211 blocked for more than 120 seconds.\n"+
		"Nov 23 10:03:00 bare-1 kernel: [  303.000003] blk_update_request: I/O error, dev sdb, sector 123456 op 0x0:(READ)\n"+
		"Nov 23 10:03:01 bare-1 kernel: [  303.100004] EXT4-fs error (device sdb1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0\n"+
		"Nov 23 10:03:02 bare-1 kernel: [  303.200005] EXT4-fs (sdb1): Remounting filesystem read-only\n"+
		"Nov 23 10:04:00 bare-1 kernel: [  363.000006] nf_conntrack: nf_conntrack: table full, dropping packet\n"+
		"Nov 23 10:05:00 bare-1 kernel: [  423.000007] mce: [Hardware Error]: Machine check events logged\n"+
		"Nov 23 10:06:00 bare-1 kernel: [  483.000008] usb 1-1: new high-speed USB device number 2 using xhci_hcd\n")
	writeFile(t, filepath.Join(b, "syslog"), "Nov 23 10:00:01 bare-1 app[77]: ERROR payment backend unreachable\n")
}

// certificate is a self-signed PEM certificate for name that expires in
// d.
func certificate(t *testing.T, name string, d time.Duration) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(d),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// holdDeleted starts a process on host that opens a 1 GiB (sparse) file
// in its /var/log, and deletes the file once it is open: the space df
// counts and du cannot find.
func (e *env) holdDeleted(t *testing.T, host string) sshtest.Process {
	t.Helper()
	name := "held-" + host + ".log"
	path := filepath.Join(e.net.HostDir(host, "/var/log"), name)
	sparse(t, path, 1<<30)
	p := e.net.Spawn(host, "sh", "-c", `exec 3<"/var/log/$1" && exec sleep 600`, "sh", name)
	t.Cleanup(func() { syscall.Kill(p.PID, syscall.SIGKILL) })
	fd := fmt.Sprintf("/proc/%d/fd/3", p.PID)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if target, err := os.Readlink(fd); err == nil && strings.HasSuffix(target, name) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the holder (pid %d) did not open %s", host, p.PID, name)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	return p
}

// run executes the named library playbook on host through the runner's
// own planning: the title matches it, the hint names the host.
func (e *env) run(ctx context.Context, r *runner.Runner, service, playbook, title, host string) (*evidence.Bundle, error) {
	tr := hooks.Trigger{
		Source: "test", DeliveryID: playbook + "-" + host, Event: "incident.triggered",
		Incident: hooks.Incident{ID: "P" + playbook, Title: title, Service: hooks.Service{Name: service}},
		Hints:    hooks.Hints{Names: []string{host}},
	}
	for _, run := range r.Plan(ctx, tr).Runs {
		if run.Playbook.Name == playbook && run.Target == host {
			if run.Err != nil {
				return nil, fmt.Errorf("plan %s on %s: %w", playbook, host, run.Err)
			}
			return r.Execute(ctx, tr, run), nil
		}
	}
	return nil, fmt.Errorf("title %q: %s does not match, or does not target %s", title, playbook, host)
}

// expect is what one step must print on one host, and find.
type expect struct {
	host, step string
	// want are substrings of stdout; wantAny, if set, are alternatives
	// of which one must be there (for what depends on this machine).
	want, wantAny []string
	// first is the start of stdout's first line.
	first string
	// findings are substrings of the step's findings, each "SEV message"
	// (evidence.RunFinding.String); noFindings forbids any.
	findings   []string
	noFindings bool
	// crowded names a rule whose findings other processes of this
	// machine (hosts share its processes; another run of this test holds
	// deleted files too) may crowd out, five per rule: a wanted finding
	// of it that is missing is excused when five findings rank above it.
	crowded string
}

type testCase struct {
	playbook, title string
	// service is the incident's service, whose params apply; default
	// testService.
	service string
	// as selects the runner: "" root, "user" fl without sudo, "sudoer"
	// fl with the inventory's sudo on.
	as string
	// hosts default to both.
	hosts []string
	// skipped names the steps whose when does not hold, per host.
	skipped map[string][]string
	expects []expect
	// failed names the steps expected to fail, per host, with their
	// exit code; every other step must succeed.
	failed map[string]map[string]int
}

func TestIntegration(t *testing.T) {
	e := newEnv(t)
	webHeld := strconv.Itoa(e.held[full].PID)
	bareHeld := strconv.Itoa(e.held[bare].PID)
	systemd := isDir("/run/systemd/system")
	_, lsofErr := exec.LookPath("lsof")
	restricted, _ := os.ReadFile("/proc/sys/kernel/dmesg_restrict")
	dmesgRestricted := strings.TrimSpace(string(restricted)) == "1"
	fdHog := strconv.Itoa(e.fdHog.PID)

	tests := []testCase{
		{
			playbook: "linux-baseline", title: "InstanceDown: host unreachable",
			skipped: map[string][]string{bare: {"what fills it"}},
			expects: []expect{
				{host: full, step: "identity", want: []string{"host: web-1\n", "kernel: Linux", "uptime: ", "as: root (uid 0)"}},
				{host: bare, step: "identity", want: []string{"host: bare-1\n"}},
				{step: "load and pressure", want: []string{"load per core: ", "loadavg"}},
				{host: full, step: "memory", want: []string{"available: ", "Mem:"}},
				{host: bare, step: "memory", want: []string{"free: not installed", "MemAvailable:"}},
				{step: "disks", want: []string{"Filesystem", "Use%", " /\n"}},
				{host: full, step: "disks", findings: []string{"CRIT /var/log/small 9", "% full, "}},
				// when: {step: disks, finding: filesystem full, severity: crit}
				{host: full, step: "what fills it", want: []string{"du -x -a -d 1 /var/log/small (the fullest filesystem)"}, findings: []string{"INFO largest /var/log/small/fill 7.6 MiB"}},
				{step: "inodes", want: []string{"IUse%"}},
				{host: full, step: "top cpu now", want: []string{"CPU per process over 1s", "firstlook-cpu-hog"}},
				{step: "top memory", want: []string{"RSS", "sshd: "}},
				{host: bare, step: "kernel errors", want: []string{"source: /var/log/kern.log", "Killed process 4242 (java)", "soft lockup"},
					findings: []string{"WARN kernel: ", "Killed process 4242 (java)", "soft lockup - CPU#1 stuck for 23s"}},
				{host: bare, step: "journal errors", want: []string{"journalctl: not installed", "source: /var/log/syslog", "ERROR payment backend unreachable"}},
				{host: full, step: "journal errors", wantAny: []string{"source: journalctl", "journalctl: not installed"}},
				{host: bare, step: "failed units", want: []string{"systemctl: not installed"}},
				{host: full, step: "failed units", wantAny: []string{"systemd: not running", "failed units: "}},
			},
		},
		{
			playbook: "disk-full", title: "[FIRING:1] NodeFilesystemAlmostOutOfSpace",
			expects: []expect{
				{step: "filesystems", want: []string{"Filesystem", "Use%", " /\n"}},
				{host: full, step: "filesystems", want: []string{"/var/log/small\n"}, findings: []string{"CRIT /var/log/small 9", "% full, ", " free of 8.0 MiB"}},
				{step: "inodes", want: []string{"IUse%"}},
				{host: full, step: "biggest directories", want: []string{"du -x -d 1 /var/log", "\t/var/log/app\n", "\t/var/log/nginx\n"},
					findings: []string{"INFO largest /var/log/app 2.0 MiB"}},
				{host: bare, step: "biggest directories", want: []string{"du -x -d 1 /var/log", "\t/var/log\n"}},
				{host: full, step: "big log files", want: []string{"12582912\t/var/log/app/huge.log"}},
				{host: bare, step: "big log files", want: []string{"(none)"}},
				{host: full, step: "deleted but open", want: []string{"1073741824\t" + webHeld + "\tsleep\t/var/log/held-web-1.log (deleted)", "total: "},
					findings: []string{"WARN sleep (pid " + webHeld + ") holds 1.0 GiB of deleted /var/log/held-web-1.log (deleted)"}, crowded: "deleted file held open"},
				{host: bare, step: "deleted but open", want: []string{"lsof: not installed; walking /proc/*/fd instead", "1073741824\t" + bareHeld + "\tsleep\t/var/log/held-bare-1.log (deleted)"},
					findings: []string{"WARN sleep (pid " + bareHeld + ") holds 1.0 GiB"}, crowded: "deleted file held open"},
			},
		},
		{
			// No path: du sizes the fullest filesystem, for at most a
			// second, and says so when it is cut short.
			playbook: "disk-full", title: "Disk almost full", service: autoService,
			expects: []expect{
				{step: "biggest directories", want: []string{"at most 1s"}, wantAny: []string{"partial: du stopped after 1s", "\t/\n"}},
			},
		},
		{
			playbook: "memory-pressure", title: "Memory usage above 95%",
			expects: []expect{
				{step: "memory", want: []string{"available: ", "MemAvailable:", "Committed_AS:"}},
				{host: full, step: "memory", want: []string{"Mem:"}},
				{host: bare, step: "memory", want: []string{"free: not installed"}},
				{step: "pressure", want: []string{"oom_kill "}},
				{host: full, step: "pressure", want: []string{"si   so"}},
				{host: bare, step: "pressure", want: []string{"vmstat: not installed"}},
				{step: "top rss", want: []string{"RSS", "sshd: "}},
				{host: full, step: "top rss", want: []string{"dd if=/dev/zero"}, crowded: "memory hog",
					findings: []string{"INFO dd if=/dev/zero bs=209715200 count=1 (pid " + strconv.Itoa(e.memHog.PID) + ", root) holds 20"}},
				{step: "cgroups", wantAny: []string{"cgroups: none with a memory limit", "cgroups with a memory limit"}},
				{host: bare, step: "oom kills", want: []string{"OOM kills since boot: ", "source: /var/log/kern.log", "Out of memory: Killed process 4242 (java)"},
					findings: []string{"WARN the OOM killer killed java (pid 4242)"}},
				{host: full, step: "oom kills", want: []string{"OOM kills since boot: ", "source: "}},
				{step: "tmpfs", want: []string{"Filesystem"}},
			},
		},
		{
			playbook: "cpu-saturation", title: "[FIRING:1] NodeCPUHighUsage",
			expects: []expect{
				{step: "load vs cores", first: "load per core: ", want: []string{"loadavg: "}},
				{step: "cpu time split", want: []string{"over 2s: user ", "steal "}},
				{host: full, step: "top cpu now", want: []string{"firstlook-cpu-hog"}, crowded: "busy process",
					findings: []string{"sh -c while :; do :; done firstlook-cpu-hog (pid " + strconv.Itoa(e.hog.PID) + ", root) used "}},
				{step: "cgroup throttling", wantAny: []string{"throttled", "(none throttled)", "cgroups: no cpu.stat"}},
				{host: full, step: "run queue", want: []string{" r  b "}},
				{host: bare, step: "run queue", want: []string{"vmstat: not installed", "procs_running "}},
				{step: "running and blocked", want: []string{"WCHAN"}},
				{host: full, step: "top cpu lifetime", want: []string{"%CPU", "firstlook-cpu-hog"}},
				{host: bare, step: "per cpu", want: []string{"mpstat: not installed (sysstat)", "cpu0 "}},
			},
		},
		{
			playbook: "disk-io", title: "NodeDiskIOSaturation",
			expects: []expect{
				{step: "pressure", want: []string{"Dirty:", "procs_blocked "}},
				{host: bare, step: "devices", want: []string{"iostat: not installed (sysstat); from /proc/diskstats"}},
				{step: "blocked tasks", want: []string{"tasks in uninterruptible sleep (D): ", "WCHAN"}},
				{host: bare, step: "top io", want: []string{"pidstat: not installed", "total_bytes\tread_bytes\tpid\tcommand"}},
			},
		},
		{
			playbook: "network", title: "NodeNetworkReceiveErrs",
			expects: []expect{
				{step: "sockets", want: []string{"TCP: inuse", "LISTEN"}},
				{host: full, step: "sockets", wantAny: []string{"TCP sockets by state:\n", "ss: not installed"}},
				{host: bare, step: "sockets", want: []string{"ss: not installed; TCP sockets by state from /proc/net/tcp"}},
				{host: full, step: "listen queues", want: []string{"Recv-Q", e.net.Host(full).Addr}},
				{host: bare, step: "listen queues", want: []string{"ss: not installed", "LISTEN " + e.net.Host(bare).Addr + " rx_queue 0"}},
				{step: "tcp counters", want: []string{"since boot", "ListenOverflows", "RetransSegs"}},
				{step: "interfaces", want: []string{"per interface over 2s", "Mbit/s", "eth0 ", "errs"}},
				{host: full, step: "interfaces", want: []string{strings.TrimSuffix(e.net.Host(full).Addr, ":22") + "/30"}},
				{host: bare, step: "interfaces", want: []string{"ip: not installed"}},
				{step: "conntrack", wantAny: []string{"conntrack: not available", "conntrack: not installed", "conntrack -S"}},
			},
		},
		{
			playbook: "systemd-unit", title: "NodeSystemdServiceFailed",
			expects: []expect{
				{host: bare, step: "failed units", want: []string{"systemctl: not installed"}, findings: []string{"INFO cannot read: systemctl: not installed"}},
				{host: bare, step: "unit status", want: []string{"systemctl: not installed"}},
				{host: bare, step: "unit journal", want: []string{"journalctl: not installed"}},
				{host: bare, step: "restarts", want: []string{"journalctl: not installed"}},
				{host: full, step: "failed units", want: []string{map[bool]string{true: "failed units: ", false: "systemd: not running"}[systemd]}},
				{host: full, step: "unit status", want: []string{map[bool]string{true: "firstlook-test-absent.service", false: "systemd: not running"}[systemd]}},
				{host: full, step: "unit journal", wantAny: []string{"journalctl -u firstlook-test-absent.service --since -1h", "journalctl: not installed"}},
				{host: full, step: "restarts", wantAny: []string{"in the last 24h: 0 automatic restarts", "journalctl: not installed"}},
			},
		},
		{
			playbook: "nginx", title: "nginx 502 Bad Gateway",
			expects: []expect{
				{step: "nginx", wantAny: []string{"nginx: not installed", "nginx version: "}},
				{host: full, step: "nginx", wantAny: []string{"stub_status at http://127.0.0.1:9/nginx_status:\nnot reachable: ", "curl: not installed"}},
				{host: bare, step: "nginx", want: []string{"nginx: not installed", "processes: no nginx running", "curl: not installed (for stub_status)"},
					findings: []string{"WARN no nginx process is running"}},
				{host: full, step: "error log", want: []string{"upstream timed out (110: Connection timed out)"}},
				{host: full, step: "upstream errors", want: []string{"2 upstream timed out\n", "1 connect() failed (111: Connection refused)", `2 upstream: "http://10.9.8.7:8080"`, `1 upstream: "http://10.9.8.9:8080"`},
					findings: []string{"WARN 3 upstream errors in the error log's last 5000 lines", "INFO most upstream errors: http://10.9.8.7:8080 (2)"}},
				{host: bare, step: "upstream errors", want: []string{"/var/log/nginx/error.log: no such file"}},
				{host: full, step: "recent 5xx", want: []string{"last 14 requests (23/Nov/2026:10:00:", "4 5xx (28.57%)", "status 502: 3", "status 500: 1", "3 502 /api/orders\n", "1 500 /api/pay\n"},
					findings: []string{"CRIT 28.57% of the last 14 requests failed with 5xx (4)", "INFO most 5xx: 502 /api/orders (3)"}},
				{host: bare, step: "recent 5xx", want: []string{"/var/log/nginx/access.log: no such file"}},
			},
			// A host without nginx's logs: the fetch says so and fails,
			// the other steps still run.
			failed: map[string]map[string]int{bare: {"error log": 66}},
		},
		{
			playbook: "containers", title: "KubePodCrashLooping",
			expects: []expect{
				{host: bare, step: "runtimes", want: []string{"docker: not installed\npodman: not installed\ncrictl: not installed\n"}},
				{host: bare, step: "containers", want: []string{"containers: no reachable runtime (docker, podman or crictl)"}},
				{host: bare, step: "recent events", want: []string{"events: no reachable docker or podman"}},
				{host: full, step: "runtimes", wantAny: []string{"docker: not installed", "docker: installed, but not reachable", "docker: running"}},
			},
		},
		{
			playbook: "fd-exhaustion", title: "[FIRING:1] NodeFileDescriptorLimit",
			expects: []expect{
				{host: full, step: "processes", want: []string{" of 256 fds (", "pid " + fdHog + ": sleep 600"},
					findings: []string{"WARN sleep 600 (pid " + fdHog + ") has 23", " of its 256 file descriptors open (9"}, crowded: "process near its fd limit"},
				{step: "system", want: []string{"file handles: ", "fs.nr_open"}},
			},
		},
		{
			playbook: "kernel-events", title: "EXT4-fs error on /data",
			expects: []expect{
				{host: bare, step: "kernel log", first: "source: /var/log/kern.log",
					findings: []string{
						"CRIT CPU lockup: ", "soft lockup - CPU#1 stuck for 23s",
						"WARN hung task: ", "task postgres:2211 blocked for more than 120 seconds",
						"CRIT I/O error: ", "blk_update_request: I/O error, dev sdb",
						"CRIT filesystem error: ", "EXT4-fs error (device sdb1)",
						"CRIT remounted read-only: ",
						"WARN conntrack full, packets dropped: ",
						"CRIT hardware error: ", "Machine check events logged",
						"WARN the OOM killer killed java (pid 4242)",
					}},
				{step: "read-only mounts", want: []string{"disk filesystems mounted: "}},
			},
		},
		{
			playbook: "clock-sync", title: "NodeClockSkewDetected",
			expects: []expect{
				{host: bare, step: "time sync", want: []string{"time: "}, findings: []string{"WARN clock not synchronised: no time sync client found"}},
				{host: full, step: "time sync", wantAny: []string{"source: chronyc", "source: ntpq", "source: timedatectl", "not synchronised: no time sync client found"}},
			},
		},
		{
			playbook: "tls-certs", title: "Certificate expires soon for shop", hosts: []string{full},
			expects: []expect{
				{step: "certificates", want: []string{"certificate /var/log/certs/expiring.pem expires in 5 days", "subject: CN = shop.example.com"},
					findings: []string{"CRIT certificate /var/log/certs/expiring.pem expires in 5 days (", "subject CN = shop.example.com", "WARN certificate file /var/log/certs/missing.pem does not exist"}},
			},
		},
		{
			playbook: "dns", title: "DNS resolution failing", hosts: []string{full},
			expects: []expect{
				{step: "resolve", want: []string{"resolves: localhost in "}, findings: []string{"CRIT firstlook-test.invalid does not resolve"}},
				{step: "resolvers", want: []string{"nameservers: "}},
			},
		},

		// As fl, with the inventory's sudo off: fl may sudo lsof, dmesg
		// and du on web-1, and nothing may use it. Each step says what
		// it could not read in its first line.
		{
			playbook: "disk-full", title: "Disk full", as: "user", hosts: []string{full},
			expects: []expect{
				{step: "deleted but open", first: "partial: as fl without sudo, only fl's open files are seen",
					findings: []string{"INFO partial: as fl without sudo"}},
				{step: "filesystems", findings: []string{"CRIT /var/log/small"}},
			},
		},
		{
			playbook: "kernel-events", title: "kernel soft lockup", as: "user",
			expects: []expect{
				{host: bare, step: "kernel log", first: "source: /var/log/kern.log", findings: []string{"CRIT CPU lockup: "}},
				{host: full, step: "kernel log", first: map[bool]string{true: "cannot read: the kernel log is not readable by fl", false: "source: dmesg"}[dmesgRestricted]},
			},
		},
		{
			playbook: "fd-exhaustion", title: "too many open files", as: "user", hosts: []string{full},
			expects: []expect{
				{step: "processes", first: "partial: as fl, only fl's processes' descriptors are readable", findings: []string{"INFO partial: as fl"}},
			},
		},
		{
			playbook: "linux-baseline", title: "InstanceDown", as: "user",
			skipped: map[string][]string{bare: {"what fills it"}},
			expects: []expect{
				{step: "identity", want: []string{"as: fl (uid 61000)"}},
				{host: full, step: "kernel errors", first: map[bool]string{true: "cannot read: the kernel log is not readable by fl", false: "source: dmesg"}[dmesgRestricted]},
			},
		},
		{
			playbook: "cpu-saturation", title: "NodeCPUHighUsage", as: "user", hosts: []string{full},
			expects: []expect{
				{step: "running and blocked", first: "partial: as fl, the wait channel (WCHAN) of other users' tasks shows as -"},
			},
		},
		{
			playbook: "systemd-unit", title: "NodeSystemdServiceFailed", as: "user", hosts: []string{full},
			expects: []expect{
				{step: "unit journal", wantAny: []string{"cannot read: the journal shows fl only its own messages", "journalctl: not installed"}},
				{step: "restarts", wantAny: []string{"cannot read: the journal shows fl only its own messages, so restarts are not counted", "journalctl: not installed"}},
			},
		},
		{
			playbook: "disk-io", title: "NodeDiskIOSaturation", as: "user", hosts: []string{full},
			expects: []expect{
				{step: "top io", first: "partial: as fl, only its own processes' I/O is readable"},
			},
		},

		// As fl with the inventory's sudo on: sudo -n runs the commands
		// docs/library.md lists, and the steps see what root sees.
		{
			playbook: "disk-full", title: "Disk full", as: "sudoer", hosts: []string{full},
			expects: []expect{
				{step: "deleted but open", first: "source: lsof +L1",
					want:     []string{"1073741824\t" + webHeld + "\tsleep\t/var/log/held-web-1.log (deleted)"},
					findings: []string{"WARN sleep (pid " + webHeld + ") holds 1.0 GiB"}, crowded: "deleted file held open"},
				{step: "biggest directories", first: "du -x -d 1 /var/log", findings: []string{"INFO largest /var/log/app 2.0 MiB"}},
			},
		},
		{
			playbook: "kernel-events", title: "kernel soft lockup", as: "sudoer", hosts: []string{full},
			expects: []expect{
				{step: "kernel log", first: "source: dmesg"},
			},
		},
	}
	if lsofErr == nil {
		tests[1].expects = append(tests[1].expects, expect{host: full, step: "deleted but open", first: "source: lsof +L1"})
	}

	// Every run at once, as a page with several matching playbooks
	// would: the suite takes as long as the slowest run. (Parallel
	// subtests would be held to GOMAXPROCS at a time.)
	type result struct {
		b   *evidence.Bundle
		err error
	}
	runners := map[string]*runner.Runner{"": e.runner, "user": e.asUser, "sudoer": e.asSudoer}
	results := make([]map[string]result, len(tests))
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i, tc := range tests {
		results[i] = map[string]result{}
		hosts := tc.hosts
		if hosts == nil {
			hosts = []string{full, bare}
		}
		for _, host := range hosts {
			wg.Go(func() {
				b, err := e.run(ctx, runners[tc.as], cmp.Or(tc.service, testService), tc.playbook, tc.title, host)
				mu.Lock()
				results[i][host] = result{b, err}
				mu.Unlock()
			})
		}
	}
	wg.Wait()

	for i, tc := range tests {
		for _, host := range []string{full, bare} {
			res, ok := results[i][host]
			if !ok {
				continue
			}
			name := tc.playbook
			if tc.service != "" {
				name += "," + tc.service
			}
			if tc.as != "" {
				name += ",as-" + tc.as
			}
			t.Run(name+"/"+host, func(t *testing.T) {
				b, err := res.b, res.err
				if err != nil {
					t.Fatal(err)
				}
				checkBundle(t, b, tc.failed[host], tc.skipped[host])
				for _, x := range tc.expects {
					if x.host != "" && x.host != host {
						continue
					}
					out := stdout(t, b, x.step)
					for _, w := range x.want {
						if !strings.Contains(out, w) {
							t.Errorf("step %q: stdout lacks %q; got:\n%s", x.step, w, out)
						}
					}
					if len(x.wantAny) > 0 && !containsAny(out, x.wantAny) {
						t.Errorf("step %q: stdout has none of %q; got:\n%s", x.step, x.wantAny, out)
					}
					if x.first != "" && !strings.HasPrefix(out, x.first) {
						t.Errorf("step %q: first line does not start with %q; got:\n%s", x.step, x.first, out)
					}
					checkFindings(t, b, x)
				}
			})
		}
	}
}

// checkFindings checks a step's findings against x.findings.
func checkFindings(t *testing.T, b *evidence.Bundle, x expect) {
	t.Helper()
	var st evidence.Step
	for _, s := range b.Manifest.Steps {
		if s.Name == x.step {
			st = s
		}
	}
	var all []string
	for _, f := range st.Findings {
		all = append(all, evidence.RunFinding{Step: st.Name, Finding: f}.String())
	}
	if x.noFindings && len(all) > 0 {
		t.Errorf("step %q: findings %q, want none", x.step, all)
	}
	for _, w := range x.findings {
		if containsAny(strings.Join(all, "\n"), []string{w}) {
			continue
		}
		if x.crowded != "" {
			n := 0
			for _, f := range st.Findings {
				if f.Rule == x.crowded {
					n++
				}
			}
			if n >= 5 {
				t.Logf("step %q: %q is not among the findings, crowded out by five others of this machine: %q", x.step, w, all)
				continue
			}
		}
		t.Errorf("step %q: no finding has %q; findings:\n%s\nstdout:\n%s", x.step, w, strings.Join(all, "\n"), b.Files[st.Stdout.File])
	}
}

func checkBundle(t *testing.T, b *evidence.Bundle, failed map[string]int, skipped []string) {
	t.Helper()
	m := b.Manifest
	wantStatus := evidence.StatusOK
	if len(failed) > 0 {
		wantStatus = evidence.StatusFailed
	}
	if m.Status != wantStatus {
		t.Errorf("status: got %q (%s), want %q", m.Status, m.Error, wantStatus)
	}
	for _, s := range m.Steps {
		code, wantFail := failed[s.Name]
		switch {
		case slices.Contains(skipped, s.Name):
			if !s.Skipped || s.Error != "" {
				t.Errorf("step %q: skipped %v, error %q; want skipped by its when", s.Name, s.Skipped, s.Error)
			}
		case s.Skipped || s.TimedOut || s.Error != "":
			t.Errorf("step %q: skipped %v, timed out %v, error %q; want it run to its end", s.Name, s.Skipped, s.TimedOut, s.Error)
		case wantFail && s.ExitCode != code:
			t.Errorf("step %q: exit %d, want %d", s.Name, s.ExitCode, code)
		case !wantFail && s.ExitCode != 0:
			t.Errorf("step %q: exit %d, want 0; stderr:\n%s", s.Name, s.ExitCode, b.Files[s.Stderr.File])
		case !wantFail && s.Stderr.Bytes != 0:
			t.Errorf("step %q: stderr: got %q, want nothing", s.Name, b.Files[s.Stderr.File])
		}
		// Kept may differ from Bytes by redaction (other processes' command
		// lines in ps), not by truncation.
		if s.Stdout.Bytes > 256<<10 || s.Stdout.Truncated {
			t.Errorf("step %q: %d bytes of stdout (%d kept), want a bounded output well under the cap", s.Name, s.Stdout.Bytes, s.Stdout.Kept)
		}
	}
	if t.Failed() {
		for _, s := range m.Steps {
			t.Logf("step %q (exit %d):\n%s", s.Name, s.ExitCode, b.Files[s.Stdout.File])
		}
	}
}

func stdout(t *testing.T, b *evidence.Bundle, step string) string {
	t.Helper()
	for _, s := range b.Manifest.Steps {
		if s.Name == step {
			return string(b.Files[s.Stdout.File])
		}
	}
	t.Fatalf("no step %q in the bundle", step)
	return ""
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func isDir(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.IsDir()
}
