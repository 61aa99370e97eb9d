package sshtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Delay on the links (Options.HopDelay).
//
// The obvious tool, "tc qdisc add dev eth0 root netem delay 10ms", needs
// sch_netem, and kernels built without it exist (the project's test
// machine has CONFIG_NET_SCH_NETEM unset). Neither do the other in-kernel
// ways work there: an eBPF program on clsact can set an earliest departure time
// (EDT) but only sch_fq or sch_etf honour it, and both are missing too;
// tbf and htb add queueing delay that depends on the load, not a fixed
// delay.
//
// So with a delay the links are not veth pairs but pairs of TUN devices
// joined by a small process, internal/delaylink, that reads each IP packet
// from one device and writes it to the other exactly the delay later. It
// works below TCP, like netem: every SYN, ACK and window update pays the
// delay, a TCP connect costs one round trip, a direct-tcpip channel the
// bastion opens to a host costs the bastion one round trip on its own
// link, and the bandwidth is not limited (packets in flight overlap, each
// delayed once). A TCP relay at the application layer could do none of
// that: its local accept completes at once, which saves the connecting
// side a round trip per connection.
//
// The process runs in the root namespace and creates every device there;
// New moves each into its namespace (a TUN device keeps working when
// moved). It exits when the test closes its stdin, or when the test
// process dies (the pipe closes), and the kernel deletes the devices with
// it. It is built with the go command at New, so the tests need no
// prebuilt binary.

// delayLinkPkg is the delay process's package, built by startDelay.
const delayLinkPkg = "github.com/firstlook/firstlook/runner/ssh/sshtest/internal/delaylink"

// requireDelay skips the test, or fails it under EnvRequire, when links
// with a delay cannot be built.
func requireDelay(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("go"); err != nil {
		missing = append(missing, "no go command in PATH (HopDelay builds its delay process)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "no /dev/net/tun (modprobe tun)")
	}
	if len(missing) == 0 {
		return
	}
	msg := "sshtest: cannot add a delay to the links: " + strings.Join(missing, "; ")
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + " (" + EnvRequire + "=1)")
	}
	t.Skip(msg)
}

// delayLinks is the running delay process.
type delayLinks struct {
	delay time.Duration
	cmd   *exec.Cmd
	// moves are ip commands, for the root namespace, that put every
	// device but the root's own into its namespace under its final name.
	moves []string

	mu    sync.Mutex // one stats request at a time
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startDelay builds and starts the delay process with one link from the
// root namespace to the bastion and one from the bastion to each host, and
// registers its end with the test. Failures are fatal to the test.
func (n *Net) startDelay(d time.Duration) {
	t := n.t
	t.Helper()
	if d < 0 {
		t.Fatalf("sshtest: HopDelay %s is negative", d)
	}
	requireDelay(t)
	// Temporary names, unique on the machine while the slot is ours;
	// interface names have at most 15 bytes ("fl4095x61").
	tmp := func(side string, k int) string { return "fl" + strconv.Itoa(n.slot) + side + strconv.Itoa(k) }
	pairs := []string{rootVeth(n.slot) + ":" + tmp("b", 0)}
	moves := []string{fmt.Sprintf("link set dev %s netns %s name eth0", tmp("b", 0), n.bastion.ns)}
	for k, h := range n.hosts {
		pairs = append(pairs, tmp("x", k)+":"+tmp("y", k))
		moves = append(moves,
			fmt.Sprintf("link set dev %s netns %s name h%d", tmp("x", k), n.bastion.ns, k),
			fmt.Sprintf("link set dev %s netns %s name eth0", tmp("y", k), h.ns))
	}
	dl, err := startDelayLinks(n.dir, d, pairs)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	dl.moves = moves
	n.delay = dl
	// Registered after New's own cleanup, so it runs first: the devices
	// go before the namespaces that hold them.
	t.Cleanup(func() {
		if err := dl.stop(); err != nil {
			t.Errorf("sshtest: cleanup: %v", err)
		}
	})
}

// startDelayLinks builds the delay process into dir and starts it with
// the given NAME_A:NAME_B device pairs; it returns once every device
// exists.
func startDelayLinks(dir string, d time.Duration, pairs []string) (*delayLinks, error) {
	bin := filepath.Join(dir, "delaylink")
	build := exec.Command("go", "build", "-o", bin, delayLinkPkg)
	// Build from this package's source directory, so that the module is
	// found whichever package's test runs; the test's own working
	// directory (inside the module too) serves when the binary was built
	// with -trimpath.
	if _, file, _, ok := runtime.Caller(0); ok {
		if st, err := os.Stat(filepath.Dir(file)); err == nil && st.IsDir() {
			build.Dir = filepath.Dir(file)
		}
	}
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build the delay process: %w: %s", err, strings.TrimSpace(string(out)))
	}

	cmd := exec.Command(bin, append([]string{"-delay", d.String()}, pairs...)...)
	// Should the test process be killed, the closed stdin ends the delay
	// process; Pdeathsig is the second line.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the delay process: %w", err)
	}
	dl := &delayLinks{delay: d, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	ready := make(chan error, 1)
	go func() { // ends with the first line, or when the process exits
		line, err := dl.out.ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("got %q, want ready", line)
		}
		ready <- err
	}()
	select {
	case err = <-ready:
	case <-time.After(readyTimeout):
		err = fmt.Errorf("not ready after %s", readyTimeout)
	}
	if err != nil {
		dl.stop()
		return nil, fmt.Errorf("start the delay process: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return dl, nil
}

// stop ends the delay process: end of stdin, then SIGKILL if it lingers.
func (dl *delayLinks) stop() error {
	dl.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- dl.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("delay process: %w", err)
		}
		return nil
	case <-time.After(readyTimeout):
		dl.cmd.Process.Kill()
		<-done
		return fmt.Errorf("delay process (pid %d) did not exit at end of input; killed", dl.cmd.Process.Pid)
	}
}

// DelayStats says how faithfully the links delayed packets since New, for
// a benchmark to show that its network was what it claims. Late is how
// long after it was due a packet left: the delay process's scheduling
// error, on top of HopDelay.
type DelayStats struct {
	HopDelay    time.Duration // Options.HopDelay
	Packets     int64         // packets delivered, all links and directions
	Bytes       int64
	LateTotal   time.Duration // summed over the packets
	LateMax     time.Duration
	LateOver1ms int64 // packets more than 1 ms late
	Dropped     int64 // packets the receiving device refused
	// CPU is the CPU time the delay process used: what the emulated
	// network costs the machine.
	CPU time.Duration
}

// LateMean is the mean lateness of a packet.
func (s DelayStats) LateMean() time.Duration {
	if s.Packets == 0 {
		return 0
	}
	return s.LateTotal / time.Duration(s.Packets)
}

// Sub returns the counters of what happened between before and s; LateMax
// and HopDelay stay s's.
func (s DelayStats) Sub(before DelayStats) DelayStats {
	s.Packets -= before.Packets
	s.Bytes -= before.Bytes
	s.LateTotal -= before.LateTotal
	s.LateOver1ms -= before.LateOver1ms
	s.Dropped -= before.Dropped
	s.CPU -= before.CPU
	return s
}

// DelayStats returns the delay links' counters; the zero DelayStats
// without Options.HopDelay. Failures are fatal to the test.
func (n *Net) DelayStats() DelayStats {
	n.t.Helper()
	if n.delay == nil {
		return DelayStats{}
	}
	s, err := n.delay.stats()
	if err != nil {
		n.t.Fatalf("sshtest: delay stats: %v", err)
	}
	return s
}

func (dl *delayLinks) stats() (DelayStats, error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if _, err := io.WriteString(dl.stdin, "stats\n"); err != nil {
		return DelayStats{}, err
	}
	line, err := dl.out.ReadBytes('\n')
	if err != nil {
		return DelayStats{}, err
	}
	var raw struct {
		Packets     int64 `json:"packets"`
		Bytes       int64 `json:"bytes"`
		LateMaxNS   int64 `json:"late_max_ns"`
		LateSumNS   int64 `json:"late_sum_ns"`
		LateOver1ms int64 `json:"late_over_1ms"`
		Dropped     int64 `json:"dropped"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return DelayStats{}, fmt.Errorf("%w: %q", err, line)
	}
	cpu, err := processCPU(dl.cmd.Process.Pid)
	if err != nil {
		return DelayStats{}, err
	}
	return DelayStats{
		HopDelay: dl.delay, Packets: raw.Packets, Bytes: raw.Bytes,
		LateTotal: time.Duration(raw.LateSumNS), LateMax: time.Duration(raw.LateMaxNS),
		LateOver1ms: raw.LateOver1ms, Dropped: raw.Dropped, CPU: cpu,
	}, nil
}

// processCPU reads a process's user and system time from /proc/PID/stat.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	fields := strings.Fields(string(b[i+1:]))
	if i < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks) * (time.Second / 100), nil
}
