package library_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
//     logs with known 5xx, an application log directory and a big file
//     that a running process holds open after it was deleted; a CPU hog
//     runs on it.
//   - bare-1 lacks every optional tool (hidden, as if not installed), so
//     each playbook must degrade cleanly there: "<tool>: not installed",
//     a fallback to /proc or to the log files, exit 0. Its /var/log holds
//     a kern.log with an OOM kill and a syslog with an error.
//
// What web-1 shows for tools this machine may or may not have (lsof,
// docker, systemd) is checked either way; bare-1's answers are exact.

const (
	full = "web-1"
	bare = "bare-1"
	// testService is the test incidents' service; the runner's
	// per-service params point the playbooks at what the test controls.
	testService = "library-test"
	// autoService leaves disk-full's path to the playbook and gives du
	// one second.
	autoService = "library-auto"
)

// hidden are the commands bare-1 lacks: every tool a library playbook
// uses that a minimal host may not have.
var hidden = []string{
	"lsof", "ss", "ip", "docker", "podman", "crictl", "nginx", "curl", "journalctl", "systemctl",
	"dmesg", "vmstat", "free", "mpstat", "iostat", "pidstat", "conntrack",
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
}

type env struct {
	net    *sshtest.Net
	runner *runner.Runner
	// held is each host's process holding a deleted file open; hog the
	// CPU hog on web-1.
	held map[string]sshtest.Process
	hog  sshtest.Process
}

func newEnv(t *testing.T) *env {
	t.Helper()
	n := sshtest.New(t, sshtest.Options{
		Hosts:       []string{full, bare},
		PrivateDirs: []string{"/var/log"},
		Hide:        map[string][]string{bare: hidden},
	})
	e := &env{net: n, held: map[string]sshtest.Process{}}
	e.writeLogs(t)
	for _, h := range []string{full, bare} {
		e.held[h] = e.holdDeleted(t, h)
	}
	// The hog's $0 names it in ps.
	e.hog = n.Spawn(full, "sh", "-c", "while :; do :; done", "firstlook-cpu-hog")
	t.Cleanup(func() { syscall.Kill(e.hog.PID, syscall.SIGKILL) })

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
	inv, err := inventory.New(cfg)
	if err != nil {
		t.Fatalf("inventory: %v", err)
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
	e.runner, err = runner.New(runner.Options{
		Inventory: inv, Playbooks: set, Dialer: runner.SSH(d),
		Params: map[string]map[string]string{testService: params, autoService: {"du_seconds": "1"}},
	})
	if err != nil {
		t.Fatalf("runner.New: %v", err)
	}
	return e
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

	b := e.net.HostDir(bare, "/var/log")
	writeFile(t, filepath.Join(b, "kern.log"), "Nov 23 10:00:00 bare-1 kernel: [  123.456789] Out of memory: Killed process 4242 (java) total-vm:8123456kB, anon-rss:4012345kB\n")
	writeFile(t, filepath.Join(b, "syslog"), "Nov 23 10:00:01 bare-1 app[77]: ERROR payment backend unreachable\n")
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
func (e *env) run(ctx context.Context, service, playbook, title, host string) (*evidence.Bundle, error) {
	tr := hooks.Trigger{
		Source: "test", DeliveryID: playbook + "-" + host, Event: "incident.triggered",
		Incident: hooks.Incident{ID: "P" + playbook, Title: title, Service: hooks.Service{Name: service}},
		Hints:    hooks.Hints{Names: []string{host}},
	}
	for _, r := range e.runner.Plan(ctx, tr).Runs {
		if r.Playbook.Name == playbook && r.Target == host {
			if r.Err != nil {
				return nil, fmt.Errorf("plan %s on %s: %w", playbook, host, r.Err)
			}
			return e.runner.Execute(ctx, tr, r), nil
		}
	}
	return nil, fmt.Errorf("title %q: %s does not match, or does not target %s", title, playbook, host)
}

// expect is what one step must print on one host.
type expect struct {
	host, step string
	// want are substrings of stdout; wantAny, if set, are alternatives
	// of which one must be there (for what depends on this machine).
	want, wantAny []string
}

func TestIntegration(t *testing.T) {
	e := newEnv(t)
	webHeld := strconv.Itoa(e.held[full].PID)
	bareHeld := strconv.Itoa(e.held[bare].PID)
	systemd := isDir("/run/systemd/system")
	_, lsofErr := exec.LookPath("lsof")

	tests := []struct {
		playbook, title string
		// service is the incident's service, whose params apply;
		// default testService.
		service string
		expects []expect
		// failed names the steps expected to fail, per host, with their
		// exit code; every other step must succeed.
		failed map[string]map[string]int
	}{
		{
			playbook: "linux-baseline", title: "InstanceDown: host unreachable",
			expects: []expect{
				{host: full, step: "identity", want: []string{"host: web-1\n", "kernel: Linux", "uptime: "}},
				{host: bare, step: "identity", want: []string{"host: bare-1\n"}},
				{step: "load and pressure", want: []string{"cpus: ", "loadavg"}},
				{host: full, step: "memory", want: []string{"Mem:"}},
				{host: bare, step: "memory", want: []string{"free: not installed", "MemAvailable:"}},
				{step: "disks", want: []string{"Filesystem", "Use%", "IUse%", " /\n"}},
				{host: full, step: "top cpu", want: []string{"%CPU", "firstlook-cpu-hog"}},
				{step: "top memory", want: []string{"RSS", "sshd: "}},
				{host: bare, step: "kernel errors", want: []string{"source: /var/log/kern.log", "Killed process 4242 (java)"}},
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
				{step: "inodes", want: []string{"IUse%"}},
				{host: full, step: "biggest directories", want: []string{"du -x -d 1 /var/log", "\t/var/log/app\n", "\t/var/log/nginx\n"}},
				{host: bare, step: "biggest directories", want: []string{"du -x -d 1 /var/log", "\t/var/log\n"}},
				{host: full, step: "big log files", want: []string{"12582912\t/var/log/app/huge.log"}},
				{host: bare, step: "big log files", want: []string{"(none)"}},
				{host: full, step: "deleted but open", want: []string{"1073741824\t" + webHeld + "\tsleep\t/var/log/held-web-1.log (deleted)", "total: "}},
				{host: bare, step: "deleted but open", want: []string{"lsof: not installed; walking /proc/*/fd instead", "1073741824\t" + bareHeld + "\tsleep\t/var/log/held-bare-1.log (deleted)"}},
			},
		},
		{
			// No path: du sizes the fullest filesystem, for at most a
			// second, and says so when it is cut short.
			playbook: "disk-full", title: "Disk almost full", service: autoService,
			expects: []expect{
				{step: "biggest directories", want: []string{"fullest filesystem: /", "at most 1s"}, wantAny: []string{"(du stopped after 1s", "\t/\n"}},
			},
		},
		{
			playbook: "memory-pressure", title: "Memory usage above 95%",
			expects: []expect{
				{step: "memory", want: []string{"MemAvailable:", "Committed_AS:"}},
				{host: full, step: "memory", want: []string{"Mem:"}},
				{host: bare, step: "memory", want: []string{"free: not installed"}},
				{step: "pressure", want: []string{"oom_kill "}},
				{host: full, step: "pressure", want: []string{"si   so"}},
				{host: bare, step: "pressure", want: []string{"vmstat: not installed"}},
				{step: "top rss", want: []string{"RSS", "sshd: "}},
				{host: bare, step: "oom kills", want: []string{"OOM kills since boot: ", "source: /var/log/kern.log", "Out of memory: Killed process 4242 (java)"}},
				{host: full, step: "oom kills", want: []string{"OOM kills since boot: ", "source: "}},
				{step: "tmpfs", want: []string{"Filesystem"}},
			},
		},
		{
			playbook: "cpu-saturation", title: "[FIRING:1] NodeCPUHighUsage",
			expects: []expect{
				{step: "load vs cores", want: []string{"cores: ", "load per core: "}},
				{step: "cpu time split", want: []string{"over 2s: user ", "steal "}},
				{host: full, step: "run queue", want: []string{" r  b "}},
				{host: bare, step: "run queue", want: []string{"vmstat: not installed", "procs_running "}},
				{step: "running and blocked", want: []string{"WCHAN"}},
				{host: full, step: "top cpu", want: []string{"%CPU", "firstlook-cpu-hog"}},
				{host: bare, step: "per cpu", want: []string{"mpstat: not installed (sysstat)"}},
			},
		},
		{
			playbook: "disk-io", title: "NodeDiskIOSaturation",
			expects: []expect{
				{step: "pressure", want: []string{"Dirty:", "procs_blocked "}},
				{host: bare, step: "devices", want: []string{"iostat: not installed (sysstat); from /proc/diskstats"}},
				{step: "blocked tasks", want: []string{"WCHAN"}},
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
				{step: "interfaces", want: []string{"eth0 ", "errs"}},
				{host: full, step: "interfaces", want: []string{strings.TrimSuffix(e.net.Host(full).Addr, ":22") + "/30"}},
				{host: bare, step: "interfaces", want: []string{"ip: not installed"}},
				{step: "conntrack", wantAny: []string{"conntrack: not available", "conntrack: not installed", "conntrack -S"}},
			},
		},
		{
			playbook: "systemd-unit", title: "NodeSystemdServiceFailed",
			expects: []expect{
				{host: bare, step: "failed units", want: []string{"systemctl: not installed"}},
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
				{host: bare, step: "nginx", want: []string{"nginx: not installed", "processes: no nginx running", "curl: not installed (for stub_status)"}},
				{host: full, step: "error log", want: []string{"upstream timed out (110: Connection timed out)"}},
				{host: full, step: "upstream errors", want: []string{"2 upstream timed out\n", "1 connect() failed (111: Connection refused)", `2 upstream: "http://10.9.8.7:8080"`, `1 upstream: "http://10.9.8.9:8080"`}},
				{host: bare, step: "upstream errors", want: []string{"/var/log/nginx/error.log: no such file"}},
				{host: full, step: "recent 5xx", want: []string{"last 14 requests (23/Nov/2026:10:00:", "4 5xx (28.57%)", "status 502: 3", "status 500: 1", "3 502 /api/orders\n", "1 500 /api/pay\n"}},
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
	}
	if lsofErr == nil {
		tests[1].expects = append(tests[1].expects, expect{host: full, step: "deleted but open", want: []string{"source: lsof +L1"}})
	}

	// Every run at once, as a page with several matching playbooks
	// would: the suite takes as long as the slowest run. (Parallel
	// subtests would be held to GOMAXPROCS at a time.)
	type result struct {
		b   *evidence.Bundle
		err error
	}
	results := make([][2]result, len(tests))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i, tc := range tests {
		for k, host := range []string{full, bare} {
			wg.Go(func() {
				service := tc.service
				if service == "" {
					service = testService
				}
				b, err := e.run(ctx, service, tc.playbook, tc.title, host)
				results[i][k] = result{b, err}
			})
		}
	}
	wg.Wait()

	for i, tc := range tests {
		for k, host := range []string{full, bare} {
			name := tc.playbook
			if tc.service != "" {
				name += "," + tc.service
			}
			t.Run(name+"/"+host, func(t *testing.T) {
				b, err := results[i][k].b, results[i][k].err
				if err != nil {
					t.Fatal(err)
				}
				checkBundle(t, b, tc.failed[host])
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
				}
			})
		}
	}
}

// checkBundle checks what every run must be: it ran, each step ran to
// its end within its timeout, printed a bounded amount, and wrote nothing
// to stderr (a missing tool is a line of stdout, not a stack of errors),
// except the steps expected to fail, with their exit codes.
func checkBundle(t *testing.T, b *evidence.Bundle, failed map[string]int) {
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
		case s.Skipped || s.TimedOut || s.Error != "":
			t.Errorf("step %q: skipped %v, timed out %v, error %q; want it run to its end", s.Name, s.Skipped, s.TimedOut, s.Error)
		case wantFail && s.ExitCode != code:
			t.Errorf("step %q: exit %d, want %d", s.Name, s.ExitCode, code)
		case !wantFail && s.ExitCode != 0:
			t.Errorf("step %q: exit %d, want 0; stderr:\n%s", s.Name, s.ExitCode, b.Files[s.Stderr.File])
		case !wantFail && s.Stderr.Bytes != 0:
			t.Errorf("step %q: stderr: got %q, want nothing", s.Name, b.Files[s.Stderr.File])
		}
		if s.Stdout.Bytes > 256<<10 || s.Stdout.Kept != s.Stdout.Bytes {
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
