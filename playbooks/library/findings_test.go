package library_test

import (
	"strings"
	"testing"

	"github.com/firstlook/firstlook/playbooks"
)

// TestFindingsOnOutput evaluates findings on captured output of states the
// test hosts cannot be put in: a systemd unit in a restart loop (the hosts
// do not run systemd), cgroup limits, a saturated link, a busy disk, a
// skewed clock. The output is what the steps print on such hosts.
func TestFindingsOnOutput(t *testing.T) {
	set := load(t)
	for _, tc := range []struct {
		playbook, step, out string
		want                []string // "SEV message", in order
	}{
		{"systemd-unit", "unit status", `Id=payments.service
Description=Payments API
LoadState=loaded
ActiveState=failed
SubState=failed
Result=exit-code
NRestarts=12
MainPID=0
ExecMainStatus=1

× payments.service - Payments API
     Loaded: loaded (/etc/systemd/system/payments.service; enabled)
     Active: failed (Result: exit-code) since Fri 2026-12-04 03:01:02 UTC; 5s ago
(systemctl status exit 3: 3 inactive or failed, 4 no such unit)
`, []string{"crit payments.service failed (exit-code)", "crit payments.service restarted 12 times (systemd NRestarts): a restart loop"}},
		{"systemd-unit", "unit status", "Id=web.service\nLoadState=loaded\nActiveState=activating\nSubState=auto-restart\nResult=exit-code\nNRestarts=4\n",
			[]string{"warn web.service restarted 4 times (systemd NRestarts): a restart loop"}},
		{"systemd-unit", "unit status", "Id=absent.service\nLoadState=not-found\nActiveState=inactive\nResult=success\nNRestarts=0\n",
			[]string{"warn absent.service: no such unit on this host; check params.unit"}},
		{"systemd-unit", "restarts", "in the last 24h: 37 automatic restarts, 38 exits of the main process\n",
			[]string{"crit 37 automatic restarts in 24h (38 exits of the main process): a restart loop"}},
		{"systemd-unit", "failed units", "failed units: 2\npayments.service loaded failed failed Payments API\n",
			[]string{"warn 2 systemd units failed"}},
		{"cpu-saturation", "cgroup throttling", "cgroups throttled by their CPU quota, most first (share of periods throttled since the cgroup began):\nthrottled 62.5% of 4000 periods (812.3s) /sys/fs/cgroup/system.slice/payments.service\nthrottled 3.0% of 100 periods (0.2s) /sys/fs/cgroup/user.slice\n",
			[]string{"crit cgroup /sys/fs/cgroup/system.slice/payments.service throttled in 62.5% of its CPU periods (812.3s in all)"}},
		{"cpu-saturation", "cpu time split", "over 2s: user 20.0%  nice 0.0%  system 5.0%  idle 40.0%  iowait 5.0%  irq 0.0%  softirq 0.0%  steal 30.0%\n",
			[]string{"crit the hypervisor stole 30.0% of CPU time over 2s"}},
		{"memory-pressure", "cgroups", "cgroups with a memory limit, fullest first:\ncgroup at 99.1% of its memory limit (1015 of 1024 MiB, oom_kill 3) /sys/fs/cgroup/system.slice/java.service\n",
			[]string{"crit cgroup /sys/fs/cgroup/system.slice/java.service at 99.1% of its memory limit (1015 of 1024 MiB; 3 OOM kills)"}},
		{"memory-pressure", "memory", "available: 3.2% of memory (512 of 16000 MiB)\nswap used: 75.0% (1536 of 2048 MiB)\n",
			[]string{"crit only 3.2% of memory available (512 of 16000 MiB)", "warn swap 75.0% used (1536 of 2048 MiB)"}},
		{"disk-io", "devices", "iostat -dxyz 2 1 (...):\nDevice r/s ... %util\nnvme0n1 12.0 ...\nnvme0n1      util  99.2%  r_await   12.0 ms  w_await  640.5 ms\n",
			[]string{"crit nvme0n1 busy 99.2% of the time (reads wait 12.0 ms, writes 640.5 ms)", "crit nvme0n1: writes wait 640.5 ms each (99.2% busy)"}},
		{"network", "interfaces", "per interface over 2s (rate; share of link speed; errors and drops in 2s):\neth0             rx    950.00 Mbit/s  95.0%  tx     10.00 Mbit/s   1.0% of 1000 Mbit/s  errors+drops 12\n",
			[]string{"crit eth0 receives 950.00 Mbit/s, 95.0% of its 1000 Mbit/s link", "warn eth0: 12 errors and drops in 2s"}},
		{"network", "listen queues", "listening TCP sockets (...):\nState Recv-Q Send-Q Local-Address:Port Peer-Address:Port\nLISTEN 511 511 0.0.0.0:443 0.0.0.0:*\nqueue: 0.0.0.0:443 511 of 511 (100%)\n",
			[]string{"crit 0.0.0.0:443: 511 connections wait for accept() of a backlog of 511 (100%): the server is not accepting fast enough"}},
		{"network", "conntrack", "conntrack: 262000 of 262144 entries (99.9%)\n",
			[]string{"crit conntrack table 99.9% full (262000 of 262144): new connections are dropped when it fills"}},
		{"network", "tcp counters", "growing: ListenOverflows +42 in 3s\ncounter since boot in 3s\n",
			[]string{"warn TCP ListenOverflows grew by 42 in 3s (connections dropped: full accept queue or socket memory)"}},
		{"clock-sync", "time sync", "time: 2026-12-04T03:00:00.000000000Z\nsource: chronyc tracking\nSystem time     : 1.500000000 seconds slow of NTP time\noffset: 1.500000000 s (slow)\n",
			[]string{"crit clock off by 1.500000000 s (slow)"}},
		{"fd-exhaustion", "system", "file handles: 9800000 of 9999999 (98.00%)\n",
			[]string{"crit 9800000 of 9999999 system file handles in use (98.00%)"}},
		{"containers", "containers", "== docker: restarting, unhealthy or dead\nstatus=restarting\tweb\tnginx:1.27\tRestarting (1) 3 seconds ago\n== docker: restarts, OOM killed, exit code, name (most restarts first)\n14\ttrue\t137\t/worker\n",
			[]string{"warn container web (nginx:1.27) status=restarting: Restarting (1) 3 seconds ago", "warn container worker was OOM-killed (exit 137, 14 restarts)", "crit container worker restarted 14 times (last exit 137)"}},
	} {
		p, _ := set.Get(tc.playbook)
		i := stepIndex(t, p, tc.step)
		found, _ := p.Findings(i, []byte(tc.out), nil)
		var got []string
		for _, f := range found {
			got = append(got, f.Severity.String()+" "+f.Message)
		}
		for _, w := range tc.want {
			if !contains(got, w) {
				t.Errorf("%s/%s: no finding %q; got %q", tc.playbook, tc.step, w, got)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s/%s: got %d findings %q, want %d", tc.playbook, tc.step, len(got), got, len(tc.want))
		}
	}
}

// Every step of every library playbook that can find something has at
// least one finding rule, and every playbook leads with one: a step with
// findings comes first or second.
func TestFindingsLead(t *testing.T) {
	for _, p := range load(t).All() {
		first := -1
		for i, s := range p.Steps {
			if len(s.Findings) > 0 {
				first = i
				break
			}
		}
		if first < 0 || first > 1 {
			t.Errorf("%s: the first step with findings is step %d; a playbook leads with findings", p.Name, first)
		}
	}
}

func stepIndex(t *testing.T, p *playbooks.Playbook, name string) int {
	t.Helper()
	for i, s := range p.Steps {
		if s.Name == name {
			return i
		}
	}
	t.Fatalf("%s: no step %q", p.Name, name)
	return -1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}
