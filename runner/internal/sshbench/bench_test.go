package sshbench_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

const (
	// hopDelay is added to every packet in each direction on each link:
	// 20 ms of round-trip time from the runner to the bastion and 20 ms
	// more from the bastion to each host, as the issue asks ("20 ms of
	// added round-trip time per hop"). A round trip from the runner to a
	// host through the bastion is 40 ms.
	hopDelay = 10 * time.Millisecond
	// fleet is the fan-out's size.
	fleet = 20
	// pause separates measurements. Incidents arrive seconds apart, not
	// back to back; without it a measurement would start while the
	// previous one's channel closes are still unacknowledged on the
	// pooled bastion connection, and sshd, which sets TCP_NODELAY only
	// for interactive sessions, would hold its first answer for the
	// client's delayed ACK (Nagle), charging one measurement for the
	// last.
	pause = 250 * time.Millisecond
)

// steps are the playbook's five quick read-only commands, as an SRE writes
// them; OpenSSH runs the same lines joined by "; ".
var steps = []struct{ name, run string }{
	{"load", "uptime"},
	{"memory", "free -m"},
	{"disk", "df -h /"},
	{"top cpu", "ps -eo pid,user,pcpu,pmem,etime,comm --sort=-pcpu | head -n 15"},
	{"sockets", "ss -s"},
}

// The playbooks, by name: the same steps, sequential (as written) or with
// parallel: true, on one host or on the whole fleet at once.
const (
	seq1  = "seq-1"
	seq20 = "seq-20"
	par1  = "par-1"
	par20 = "par-20"
)

type bench struct {
	net       *sshtest.Net
	dir       string
	inv       *inventory.Inventory
	set       *playbooks.Set
	sshConfig string // OpenSSH client configuration, see writeSSHConfig
	// warm shares one Dialer, so its bastion connection stays pooled
	// from one measurement to the next.
	warm   *runner.Runner
	dialer *ssh.Dialer
}

func setup(b *testing.B) *bench {
	b.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		msg := "no OpenSSH client (ssh) in PATH: apt-get install openssh-client"
		if os.Getenv(sshtest.EnvRequire) == "1" {
			b.Fatal(msg)
		}
		b.Skip(msg)
	}
	hosts := make([]string, fleet)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("host-%02d", i+1)
	}
	t0 := time.Now()
	n := sshtest.New(b, sshtest.Options{Hosts: hosts, HopDelay: hopDelay})
	fmt.Printf("network: bastion and %d hosts up in %s\n", fleet, time.Since(t0).Round(time.Millisecond))
	e := &bench{net: n, dir: b.TempDir()}

	// The inventory: every host behind the bastion, all in group fleet,
	// the first also in group one.
	var inv strings.Builder
	fmt.Fprintf(&inv, "defaults: {user: %s, bastion: bastion}\n", sshtest.User)
	fmt.Fprintf(&inv, "bastions: [{name: bastion, address: %s}]\n", hostOf(n.Bastion().Addr))
	inv.WriteString("hosts:\n")
	for i, h := range n.Hosts() {
		groups := "[fleet]"
		if i == 0 {
			groups = "[fleet, one]"
		}
		fmt.Fprintf(&inv, "  - {name: %s, address: %s, groups: %s}\n", h.Name, hostOf(h.Addr), groups)
	}
	var err error
	if e.inv, err = inventory.Parse("bench-inventory.yaml", []byte(inv.String())); err != nil {
		b.Fatal(err)
	}

	pbDir := filepath.Join(e.dir, "playbooks")
	if err := os.Mkdir(pbDir, 0o700); err != nil {
		b.Fatal(err)
	}
	for _, p := range []struct {
		name, targets string
		parallel      bool
	}{
		{seq1, "{group: one}", false},
		{seq20, fmt.Sprintf("{group: fleet, max_hosts: %d, concurrency: %d}", fleet, fleet), false},
		{par1, "{group: one}", true},
		{par20, fmt.Sprintf("{group: fleet, max_hosts: %d, concurrency: %d}", fleet, fleet), true},
	} {
		var y strings.Builder
		fmt.Fprintf(&y, "name: %s\nmatch: {labels: {bench: %s}}\ntargets: %s\ntimeout: 60s\nparallel: %t\nsteps:\n", p.name, p.name, p.targets, p.parallel)
		for _, s := range steps {
			fmt.Fprintf(&y, "  - name: %s\n    run: %q\n", s.name, s.run)
		}
		if err := os.WriteFile(filepath.Join(pbDir, p.name+".yaml"), []byte(y.String()), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	if e.set, err = playbooks.Load(pbDir); err != nil {
		b.Fatal(err)
	}

	e.sshConfig = e.writeSSHConfig(b)
	e.dialer = e.newDialer(b)
	b.Cleanup(func() { e.dialer.Close() })
	e.warm = e.runner(b, e.dialer)
	return e
}

func hostOf(addr string) string { return strings.TrimSuffix(addr, ":22") }

func (e *bench) newDialer(b *testing.B) *ssh.Dialer {
	b.Helper()
	d, err := ssh.New(ssh.Config{KnownHosts: []string{e.net.KnownHostsFile}, IdentityFiles: []string{e.net.IdentityFile}})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func (e *bench) runner(b *testing.B, d *ssh.Dialer) *runner.Runner {
	b.Helper()
	r, err := runner.New(runner.Options{
		Inventory: e.inv,
		Playbooks: e.set,
		Dialer:    runner.SSH(d),
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// writeSSHConfig writes the OpenSSH client configuration of the baseline:
// the harness's key and known_hosts, host keys checked, no prompt, no
// connection sharing (each invocation is a responder typing the command).
// It is a file given with -F because ssh -J passes -F, and not -o, on to
// the ssh it starts for the jump host.
func (e *bench) writeSSHConfig(b *testing.B) string {
	b.Helper()
	path := filepath.Join(e.dir, "ssh_config")
	cfg := fmt.Sprintf(`Host *
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  BatchMode yes
  ControlMaster no
  ControlPath none
  LogLevel ERROR
`, sshtest.User, e.net.IdentityFile, e.net.KnownHostsFile)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}

func trigger(playbook string) hooks.Trigger {
	return hooks.Trigger{
		Source: "bench", DeliveryID: playbook, Event: playbooks.DefaultEvent,
		Incident: hooks.Incident{ID: "BENCH", Title: "bench " + playbook},
		Labels:   map[string]string{"bench": playbook},
	}
}

// fanOut runs one group playbook as the runner's worker does (handle in
// runner/runner.go): r.Plan expands the group through the inventory, and
// the runs go at most targets.concurrency at a time, each one
// runner.Execute, which dials the host through the Dialer's pooled
// bastion connection and runs the steps. It claims, stores and publishes
// nothing: the KV claims and the bundle store are not SSH. When the
// runner exposes its fan-out on its own, call it here instead.
func fanOut(ctx context.Context, r *runner.Runner, playbook string, hosts int) (time.Duration, error) {
	t := trigger(playbook)
	start := time.Now()
	plan := r.Plan(ctx, t)
	if len(plan.Runs) != hosts {
		return 0, fmt.Errorf("%s: got %d runs, want %d", playbook, len(plan.Runs), hosts)
	}
	sem := make(chan struct{}, max(plan.Runs[0].Playbook.Targets.Concurrency, 1))
	errs := make([]error, len(plan.Runs))
	var wg sync.WaitGroup
	for i, run := range plan.Runs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = check(r.Execute(ctx, t, run))
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			return 0, fmt.Errorf("%s: %w", playbook, err)
		}
	}
	return elapsed, nil
}

// check makes sure a run did the work: every step exited 0 with output.
func check(b *evidence.Bundle) error {
	m := b.Manifest
	if m.Status != evidence.StatusOK || len(m.Steps) != len(steps) {
		return fmt.Errorf("%s: status %s, %d steps (%s), want ok and %d steps", m.Host.Name, m.Status, len(m.Steps), m.Error, len(steps))
	}
	for _, st := range m.Steps {
		if !st.OK() || st.Stdout.Bytes == 0 {
			return fmt.Errorf("%s: step %s: exit %d, %d bytes of output, error %q", m.Host.Name, st.Name, st.ExitCode, st.Stdout.Bytes, st.Error)
		}
	}
	return nil
}

// cold runs the one-host sequential playbook with a new Dialer: the
// bastion handshake is part of it, as for the first incident after a
// start or after the pooled connection was dropped.
func (e *bench) cold(ctx context.Context, b *testing.B) (time.Duration, error) {
	d := e.newDialer(b)
	defer d.Close()
	return fanOut(ctx, e.runner(b, d), seq1, 1)
}

// openSSH runs the five commands as a responder would type them: one
// ssh -J invocation, a new process each time, both hops' host keys
// checked against the harness's known_hosts.
func (e *bench) openSSH(ctx context.Context) (time.Duration, error) {
	lines := make([]string, len(steps))
	for i, s := range steps {
		lines[i] = s.run
	}
	host := e.net.Hosts()[0]
	cmd := exec.CommandContext(ctx, "ssh", "-F", e.sshConfig,
		"-J", sshtest.User+"@"+hostOf(e.net.Bastion().Addr),
		sshtest.User+"@"+hostOf(host.Addr), strings.Join(lines, "; "))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("ssh -J: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	for _, want := range []string{"load average", "Mem:", "Filesystem", "PID", "TCP:"} {
		if !bytes.Contains(out.Bytes(), []byte(want)) {
			return 0, fmt.Errorf("ssh -J: no %q in the output:\n%s", want, out.Bytes())
		}
	}
	return elapsed, nil
}

// connect dials the first host through the pooled bastion connection and
// closes the connection: the host part of every firstlook run.
func (e *bench) connect(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	c, err := e.dialer.Dial(ctx, e.target())
	if err != nil {
		return 0, err
	}
	elapsed := time.Since(start)
	c.Close()
	return elapsed, nil
}

// step runs one command on an open host connection: what each step of a
// sequential playbook adds.
func (e *bench) step(ctx context.Context, c *ssh.Client) (time.Duration, error) {
	start := time.Now()
	res, err := c.Run(ctx, "uptime", ssh.RunOptions{})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("uptime: exit %d", res.ExitCode)
	}
	return time.Since(start), err
}

func (e *bench) target() ssh.Target {
	h, b := e.net.Hosts()[0], e.net.Bastion()
	return ssh.Target{Name: h.Name, Addr: h.Addr, User: h.User, Bastion: &ssh.Hop{Name: b.Name, Addr: b.Addr, User: b.User}}
}

// What is measured, in the order of the table.
type measure struct {
	key, label string
}

var measures = []measure{
	{"cold-seq1", "firstlook, 1 host, sequential, cold (bastion handshake included)"},
	{"seq1", "firstlook, 1 host, sequential"},
	{"seq20", fmt.Sprintf("firstlook, %d hosts, sequential", fleet)},
	{"par1", "firstlook, 1 host, parallel: true"},
	{"par20", fmt.Sprintf("firstlook, %d hosts, parallel: true", fleet)},
	{"ssh-j", "OpenSSH ssh -J, 1 host, the 5 commands in one session"},
	{"connect", "  of which: host connection through the pooled bastion"},
	{"step", "  of which: one step on an open host connection"},
}

// BenchmarkPlaybookSSH measures the two SSH targets in one run, on
// a bastion and 20 hosts in network namespaces with 20 ms of round-trip
// time per hop:
//
//   - fan-out: the five-step playbook on 20 hosts at once (concurrency 20,
//     one pooled bastion connection) against the same playbook on one
//     host, both with the bastion connection already pooled (warm), since
//     the target is about fan-out; target 20 hosts <= 1.3x one host.
//   - against OpenSSH: firstlook's warm one-host run against ssh -J running
//     the five commands in one invocation (a new process: two full
//     handshakes and one session); target firstlook <= 0.7x ssh -J. Both
//     sides include the connection to the host; firstlook's bastion
//     connection is pooled, which is the point of the Dialer. The cold
//     run (bastion handshake included) is reported too.
//
// Each benchmark iteration is one round of every measurement, in an order
// that rotates from round to round so that drift on a shared machine hits
// all of them alike; -benchtime 20x gives 20 rounds (the first, N=1, pass
// is a warm-up that is not reported). Medians and 90th percentiles are
// printed with the ratios; the raw figures are the benchmark's metrics.
//
// Where the time goes, in round trips (RTT 20 ms per hop, so 40 ms from
// the runner to a host through the bastion):
//
//   - ssh -J: the jump ssh connects to the bastion (1 RTT of 20 ms), does
//     the version exchange, key exchange, and publickey auth (about 5-6
//     more), then opens a direct-tcpip channel, for which the bastion
//     connects to the host (20 + 20 ms). The inner ssh then does the same
//     handshake with the host over that channel, each round trip now
//     40 ms, and one session: open, exec, output and exit (2 x 40 ms).
//   - firstlook warm: no bastion handshake; the channel to the host
//     (40 ms) and the host handshake (as the inner ssh's), then one
//     session per step: channel open, then exec and its exit, 2 x 40 ms
//     each, five times in a row for a sequential playbook, or all at
//     once with parallel: true. So the sequential playbook pays four
//     more sessions (320 ms) than ssh -J's single session and saves the
//     bastion handshake (about 120-140 ms): it cannot reach 0.7x of ssh -J
//     over a 40 ms path; parallel steps, or several steps in one session,
//     can.
func BenchmarkPlaybookSSH(b *testing.B) {
	e := setup(b)
	ctx := context.Background()
	// The pooled bastion connection and the hosts' first connections
	// (sshd reads its keys) before anything is measured.
	if _, err := fanOut(ctx, e.warm, seq20, fleet); err != nil {
		b.Fatal(err)
	}
	before := e.net.DelayStats()
	statsBefore := e.dialer.Stats()

	samples := map[string][]time.Duration{}
	b.Run("rounds", func(b *testing.B) {
		samples = map[string][]time.Duration{} // the N=1 warm-up pass is not kept
		host, err := e.dialer.Dial(ctx, e.target())
		if err != nil {
			b.Fatal(err)
		}
		defer host.Close()
		runs := []struct {
			key string
			f   func() (time.Duration, error)
		}{
			{"cold-seq1", func() (time.Duration, error) { return e.cold(ctx, b) }},
			{"seq1", func() (time.Duration, error) { return fanOut(ctx, e.warm, seq1, 1) }},
			{"seq20", func() (time.Duration, error) { return fanOut(ctx, e.warm, seq20, fleet) }},
			{"par1", func() (time.Duration, error) { return fanOut(ctx, e.warm, par1, 1) }},
			{"par20", func() (time.Duration, error) { return fanOut(ctx, e.warm, par20, fleet) }},
			{"ssh-j", func() (time.Duration, error) { return e.openSSH(ctx) }},
			{"connect", func() (time.Duration, error) { return e.connect(ctx) }},
			{"step", func() (time.Duration, error) { return e.step(ctx, host) }},
		}
		for round := range b.N {
			for k := range runs {
				run := runs[(k+round)%len(runs)]
				time.Sleep(pause)
				d, err := run.f()
				if err != nil {
					b.Fatalf("%s: %v", run.key, err)
				}
				samples[run.key] = append(samples[run.key], d)
			}
		}
		b.StopTimer()
		for _, m := range measures {
			s := samples[m.key]
			b.ReportMetric(ms(percentile(s, 50)), m.key+"-p50-ms")
			b.ReportMetric(ms(percentile(s, 90)), m.key+"-p90-ms")
		}
		b.ReportMetric(ratio(samples, "seq20", "seq1"), "fanout-seq-x")
		b.ReportMetric(ratio(samples, "par20", "par1"), "fanout-par-x")
		b.ReportMetric(ratio(samples, "seq1", "ssh-j"), "seq1/ssh-j-x")
		b.ReportMetric(ratio(samples, "par1", "ssh-j"), "par1/ssh-j-x")
		b.ReportMetric(0, "ns/op")
	})

	delay := e.net.DelayStats().Sub(before)
	ds := e.dialer.Stats()
	n := len(samples["seq1"])
	fmt.Printf("\nfive-step playbook over SSH: bastion + %d hosts in network namespaces, %s round trip per hop (%s each way), %d rounds\n",
		fleet, 2*hopDelay, hopDelay, n)
	fmt.Printf("  %-72s %8s %8s\n", "", "p50 ms", "p90 ms")
	for _, m := range measures {
		s := samples[m.key]
		fmt.Printf("  %-72s %8.1f %8.1f\n", m.label, ms(percentile(s, 50)), ms(percentile(s, 90)))
	}
	fmt.Printf("  ratios of medians, warm (bastion connection pooled):\n")
	fmt.Printf("    %d hosts / 1 host, sequential:   %.2f (target <= 1.3)\n", fleet, ratio(samples, "seq20", "seq1"))
	fmt.Printf("    %d hosts / 1 host, parallel:     %.2f (target <= 1.3)\n", fleet, ratio(samples, "par20", "par1"))
	fmt.Printf("    firstlook / ssh -J, sequential: %.2f (target <= 0.7)\n", ratio(samples, "seq1", "ssh-j"))
	fmt.Printf("    firstlook / ssh -J, parallel:   %.2f (target <= 0.7)\n", ratio(samples, "par1", "ssh-j"))
	fmt.Printf("    firstlook cold / ssh -J:        %.2f\n", ratio(samples, "cold-seq1", "ssh-j"))
	fmt.Printf("  warm Dialer: %d bastion dials, %d reuses, %d drops, %d waits for a session slot (max_sessions_per_bastion %d)\n",
		ds.BastionDials-statsBefore.BastionDials, ds.BastionReuses-statsBefore.BastionReuses,
		ds.BastionDrops-statsBefore.BastionDrops, ds.SessionWaits-statsBefore.SessionWaits, ssh.DefaultMaxSessionsPerBastion)
	fmt.Printf("  delay links: %d packets, %d dropped, late by %s on average, %s at most, %d packets (%.2f%%) over 1 ms late\n\n",
		delay.Packets, delay.Dropped, delay.LateMean().Round(time.Microsecond), delay.LateMax.Round(time.Microsecond),
		delay.LateOver1ms, 100*float64(delay.LateOver1ms)/math.Max(1, float64(delay.Packets)))
}

// percentile is the nearest-rank percentile p of s.
func percentile(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	s = slices.Sorted(slices.Values(s))
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(i, 0)]
}

func ratio(samples map[string][]time.Duration, a, b string) float64 {
	return float64(percentile(samples[a], 50)) / float64(percentile(samples[b], 50))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
