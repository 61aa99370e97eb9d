package library_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"mvdan.cc/sh/v3/syntax"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/playbooks/library"
)

// want is the library's content; a playbook added or removed changes the
// documentation too (docs/library.md).
var want = []string{"clock-sync", "containers", "cpu-saturation", "disk-full", "disk-io", "dns", "fd-exhaustion", "kernel-events", "linux-baseline", "memory-pressure", "network", "nginx", "systemd-unit", "tls-certs"}

func load(t *testing.T) *playbooks.Set {
	t.Helper()
	set, err := library.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return set
}

func TestLoad(t *testing.T) {
	set := load(t)
	var names []string
	for _, p := range set.All() {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, want) {
		t.Errorf("loaded playbooks: got %q, want %q", names, want)
	}
	if got := library.Names(); !slices.Equal(got, want) {
		t.Errorf("Names: got %q, want %q", got, want)
	}
	files, err := fs.Glob(library.FS(), "*")
	if err != nil || len(files) != len(want) {
		t.Errorf("FS: got %q, %v, want one file per playbook", files, err)
	}
	for _, p := range set.All() {
		t.Run(p.Name, func(t *testing.T) {
			if p.File != "library/"+p.Name+".yaml" {
				t.Errorf("file: got %q, want %q: one playbook per file, named after it", p.File, "library/"+p.Name+".yaml")
			}
			if p.Description == "" {
				t.Errorf("description: empty")
			}
			// Conservative matching: a library playbook never matches
			// every incident; its title pattern says which ones.
			if p.Match.Title == nil || p.Match.Title.MatchString("Error budget burn for checkout API") {
				t.Errorf("match.title: got %v, want a pattern that picks its incidents", p.Match.Title)
			}
			if p.Timeout > 2*time.Minute {
				t.Errorf("timeout: got %s, want at most 2m: a first look is quick", p.Timeout)
			}
			for _, s := range p.Steps {
				if s.Timeout > 90*time.Second {
					t.Errorf("step %q: timeout %s, want at most 90s", s.Name, s.Timeout)
				}
				if s.Sudo {
					t.Errorf("step %q: sudo: true fails on hosts without passwordless sudo; use the priv function (sudo -n where allowed)", s.Name)
				}
			}
		})
	}
}

func TestLoadNames(t *testing.T) {
	set, err := library.Load("nginx", "disk-full")
	if err != nil {
		t.Fatalf("Load(nginx, disk-full): %v", err)
	}
	var got []string
	for _, p := range set.All() {
		got = append(got, p.Name)
	}
	if want := []string{"disk-full", "nginx"}; !slices.Equal(got, want) {
		t.Errorf("Load(nginx, disk-full): got %q, want %q", got, want)
	}
	_, err = library.Load("disk-full", "apache")
	if err == nil || !strings.Contains(err.Error(), `no playbook "apache"`) || !strings.Contains(err.Error(), "linux-baseline") {
		t.Errorf("Load(apache): got %v, want an error naming it and listing the library", err)
	}
}

// TestReadOnly checks every command every library playbook sends, as it
// is sent (rendered with the default params).
func TestReadOnly(t *testing.T) {
	data := playbooks.NewData(hooks.Trigger{Event: "incident.triggered"}, playbooks.Host{Name: "web-1", Address: "10.0.0.1", User: "firstlook"}, nil)
	for _, p := range load(t).All() {
		for i, c := range p.Render(data) {
			if c.Err != nil {
				t.Errorf("%s: step %q: render: %v", p.Name, c.Step, c.Err)
				continue
			}
			if p.Steps[i].Kind == playbooks.Script && c.Line != "sh -s" {
				t.Errorf("%s: step %q: line %q, want sh -s", p.Name, c.Step, c.Line)
			}
			for _, pr := range readOnlyProblems(c.Line, syntax.LangBash) {
				t.Errorf("%s: step %q: command line: %s", p.Name, c.Step, pr)
			}
			if c.Stdin != nil {
				for _, pr := range readOnlyProblems(string(c.Stdin), syntax.LangPOSIX) {
					t.Errorf("%s: step %q: script: %s", p.Name, c.Step, pr)
				}
			}
		}
	}
}

// TestReadOnlyCheck makes sure the check refuses what it must, and lets
// through the read-only forms the library uses.
func TestReadOnlyCheck(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string // part of the first problem; "" for none
	}{
		{"rm -f /var/log/big.log", "rm: removes"},
		{"timeout 10 rm -rf /tmp/x", "rm: removes"},
		{"sudo -n mv a b", "mv: removes"},
		{"find /var/log -name '*.gz' -delete", "option -delete"},
		{"find /tmp -exec rm {} +", "option -exec"},
		{"kill -9 1234", "kill: signals"},
		{"systemctl restart nginx", `verb "restart"`},
		{"systemctl --no-pager stop nginx", `verb "stop"`},
		{"reboot", "reboot: stops"},
		{"echo x > /etc/motd", "redirection > writes a file"},
		{"echo x >> /var/log/x", "redirection >> writes a file"},
		{"exec 3>/tmp/held", "redirection > writes a file"},
		{"ps aux | tee /tmp/ps", "tee: writes"},
		{"dd if=/dev/zero of=/tmp/x bs=1M count=1", "dd: writes"},
		{"truncate -s 0 /var/log/syslog", "truncate: writes"},
		{"sed -i 's/a/b/' /etc/hosts", "option -i"},
		{"sed 's/a/b/w /tmp/out' /etc/hosts", "only s/"},
		{"chmod 777 /", "chmod: changes"},
		{"chown nobody /etc/shadow", "chown: changes"},
		{"apt-get install -y lsof", "apt-get: installs"},
		{"yum install lsof", "yum: installs"},
		{"docker restart web", `verb "restart"`},
		{"for rt in docker podman; do \"$rt\" rm -f web; done", `verb "rm"`},
		{"xargs -r docker kill", `verb "kill"`},
		{"awk 'BEGIN { system(\"reboot\") }'", "runs commands"},
		{"awk '{ print > \"/tmp/out\" }'", "print redirected"},
		{"awk 'BEGIN { printf \"%d\\n\", m > 0 ? 1 : 0 }'", "print redirected"},
		{"awk '{ print | \"sh\" }'", "print redirected"},
		{"sh -c 'rm -rf /'", "sh -c: rm: removes"},
		{"priv() { \"$@\"; }; priv rm /x", "rm: removes"},
		{"$cmd /x", "not literal"},
		{"ss -K dst 10.0.0.1", "option -K"},
		{"dmesg -C", "option -C"},
		{"journalctl --vacuum-size=100M", "option --vacuum-size=100M"},
		{"curl -X POST http://127.0.0.1/", "option -X"},
		{"curl -o /tmp/x http://127.0.0.1/", "option -o"},
		{"nginx -s reload", `argument "-s"`},
		{"sort -o /etc/passwd x", "option -o"},
		{"uniq in out", "output file"},
		{"hostname evil", `argument "evil"`},
		{"ip link set eth0 down", "only ip OBJECT show"},
		{"sysctl -w vm.drop_caches=3", "sysctl: changes"},
		{"shred /x", "shred: removes"},
		{"frobnicate --all", "frobnicate: not on the list"},

		{"uptime", ""},
		{"timeout 10 df -hPT 2>/dev/null | awk 'NR == 1 || $2 != \"tmpfs\"'", ""},
		{"priv() { \"$@\"; }; priv timeout 20 lsof -nP +L1 2>/dev/null", ""},
		{"systemctl status --no-pager -- nginx.service", ""},
		{"for rt in docker podman; do \"$rt\" ps -a; done", ""},
		{"awk 'BEGIN { printf \"%d\\n\", (m > 0 ? 1 : 0) }'", ""},
		{"sed -n 's/^PRETTY_NAME=//p' /etc/os-release", ""},
		{"echo x >&2; nginx -v 2>&1 >/dev/null", ""},
		{"find /proc/1/fd -type l -lname '*(deleted)' -printf '%p\\n'", ""},
		{"sh -c 'exec tail -c \"$2\" -- \"$1\"' f /var/log/syslog 100", ""},
		{"ip -br addr", ""},
	} {
		got := readOnlyProblems(tc.src, syntax.LangBash)
		switch {
		case tc.want == "" && len(got) > 0:
			t.Errorf("%s: got %q, want no problem", tc.src, got)
		case tc.want != "" && (len(got) == 0 || !strings.Contains(got[0], tc.want)):
			t.Errorf("%s: got %q, want a problem with %q", tc.src, got, tc.want)
		}
	}
}

// TestMatch runs realistic alert titles through the library's matching.
func TestMatch(t *testing.T) {
	set := load(t)
	for _, tc := range []struct {
		title string
		want  []string
	}{
		{"[FIRING:1] NodeFilesystemAlmostOutOfSpace (web-1:9100 /dev/sda1 ext4 /)", []string{"disk-full", "linux-baseline"}},
		{"Disk usage above 90% on db-3", []string{"disk-full"}},
		{"Low disk space on /var", []string{"disk-full"}},
		{"No space left on device: /var/lib/postgresql", []string{"disk-full"}},
		{"NodeFilesystemAlmostOutOfFiles", []string{"disk-full", "linux-baseline"}},
		{"NodeDiskIOSaturation", []string{"disk-io", "linux-baseline"}},
		{"High iowait on db-3", []string{"disk-io"}},
		{"INFO: task postgres blocked for more than 120 seconds", []string{"disk-io"}},
		{"High CPU on web-1", []string{"cpu-saturation"}},
		{"[FIRING:2] NodeCPUHighUsage", []string{"cpu-saturation", "linux-baseline"}},
		{"CPUThrottlingHigh payments", []string{"cpu-saturation"}},
		{"Load average above 8 for 10m", []string{"cpu-saturation", "linux-baseline"}},
		{"Memory usage above 95% on cache-1", []string{"memory-pressure"}},
		{"Swap usage high on cache-1", []string{"memory-pressure"}},
		{"OOM killer invoked on batch-2", []string{"memory-pressure"}},
		{"KubeContainerOOMKilled", []string{"containers", "memory-pressure"}},
		{"KubePodCrashLooping checkout-7d9f", []string{"containers"}},
		{"Docker container web restarting", []string{"containers"}},
		{"NodeNetworkReceiveErrs", []string{"linux-baseline", "network"}},
		{"Conntrack table 90% full on fw-1", []string{"network"}},
		{"TCP retransmits high on edge-1", []string{"network"}},
		{"Connection refused to payments-db", []string{"network"}},
		{"NodeSystemdServiceFailed (name=nginx.service)", []string{"linux-baseline", "nginx", "systemd-unit"}},
		{"payments-worker.service failed on app-3", []string{"systemd-unit"}},
		{"nginx 502 Bad Gateway on lb-2", []string{"nginx"}},
		{"HTTP 5xx rate above 5% for checkout", []string{"nginx"}},
		{"upstream timed out on lb-1", []string{"nginx"}},
		{"InstanceDown: web-1", []string{"linux-baseline"}},
		{"Host unreachable: db-2", []string{"linux-baseline"}},
		{"Upload latency high on api", []string{"linux-baseline"}},
		// Not about a host: no library playbook runs.
		{"Error budget burn for checkout API", nil},
		{"A little bump in the road", nil},
		{"Payment failed for order 500123", nil},
		{"Certificate expires in 7 days", []string{"tls-certs"}},
		{"NodeFileDescriptorLimit", []string{"fd-exhaustion", "linux-baseline"}},
		{"Too many open files in payments", []string{"fd-exhaustion"}},
		{"NodeClockSkewDetected", []string{"clock-sync", "linux-baseline"}},
		{"DNS resolution failing for api.internal", []string{"dns"}},
		{"EXT4-fs error: remounting read-only on db-1", []string{"kernel-events"}},
		{"watchdog: BUG: soft lockup - CPU#3 stuck for 22s", []string{"cpu-saturation", "kernel-events"}},
	} {
		var got []string
		for _, p := range set.Match(hooks.Trigger{Event: "incident.triggered", Incident: hooks.Incident{Title: tc.title}}) {
			got = append(got, p.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.title, got, tc.want)
		}
	}
	// Only new incidents: an acknowledgement runs nothing again.
	if got := set.Match(hooks.Trigger{Event: "incident.acknowledged", Incident: hooks.Incident{Title: "Disk full on web-1"}}); len(got) != 0 {
		t.Errorf("incident.acknowledged: got %d playbooks, want none", len(got))
	}
}

// TestSudoOnlyWhereOptedIn: no library step calls sudo itself, and $sudo
// is set only by the one guarded line, which reads the inventory's
// opt-in: on a host without it, nothing runs or probes sudo.
func TestSudoOnlyWhereOptedIn(t *testing.T) {
	const guard = `[ "$(id -u)" = 0 ] || [ 'false' != true ] || sudo="sudo -n"`
	data := playbooks.NewData(hooks.Trigger{Event: "incident.triggered"}, playbooks.Host{Name: "web-1", User: "firstlook"}, nil)
	guarded := 0
	for _, p := range load(t).All() {
		for i, c := range p.Render(data) {
			if c.Err != nil {
				t.Fatalf("%s: %v", p.Name, c.Err)
			}
			src := string(c.Stdin)
			if p.Steps[i].Kind != playbooks.Script {
				src = c.Line
			}
			f, err := syntax.NewParser().Parse(strings.NewReader(src), "")
			if err != nil {
				t.Fatalf("%s: step %q: %v", p.Name, c.Step, err)
			}
			syntax.Walk(f, func(n syntax.Node) bool {
				if ce, ok := n.(*syntax.CallExpr); ok && len(ce.Args) > 0 && ce.Args[0].Lit() == "sudo" {
					t.Errorf("%s: step %q: calls sudo directly; use $sudo, set where the inventory opted the host in", p.Name, c.Step)
				}
				return true
			})
			if n := strings.Count(src, `sudo="sudo -n"`); n != strings.Count(src, guard) {
				t.Errorf("%s: step %q: sets $sudo other than by %s", p.Name, c.Step, guard)
			}
			guarded += strings.Count(src, guard)
		}
	}
	if guarded < 5 {
		t.Errorf("%d guarded sudo lines in the library, want the steps that need root to have one", guarded)
	}
}
