package sshtest

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPU accounting, for benchmarks: all the servers of a Net run on the
// test's machine, so a fan-out to twenty hosts also makes the machine do
// twenty hosts' sshd and command work, which in production each host
// does on its own CPUs. ServerCPU measures that work, so that a benchmark
// can tell it apart from the client's.
//
// It uses a cgroup (version 2; on a hybrid machine the "unified"
// hierarchy) that the listening sshds are moved into: the processes they
// start for connections, sessions and commands are born in it, and its
// cpu.stat counts their CPU time, including that of processes that have
// exited. The cgroup enables no controller, so it limits nothing.

// cpuAccount is a Net's cgroup, with one child for the bastion and one
// for the hosts.
type cpuAccount struct {
	dir      string
	enrolled map[int]bool // listener pids moved in
}

// CPUTime is CPU time used by a Net's servers, see ServerCPU.
type CPUTime struct {
	// Bastion is the bastion's sshd: its handshakes and the forwarding of
	// every channel to the hosts.
	Bastion time.Duration
	// Hosts is every host's sshd, their sessions and the commands run.
	Hosts time.Duration
}

// ServerCPU returns the CPU time used by the servers since its first call
// on n: the listening sshds and every process they start after it
// (connections, sessions, the commands run over SSH). Call it once before
// the work to measure, then again after. It fails, saying why, where no
// writable cgroup v2 hierarchy exists (a container with a read-only
// /sys/fs/cgroup, say). A server restarted with Start is counted from the
// next call.
func (n *Net) ServerCPU() (CPUTime, error) {
	n.cpuMu.Lock()
	defer n.cpuMu.Unlock()
	if n.cpu == nil {
		root, err := cgroup2Root()
		if err != nil {
			return CPUTime{}, fmt.Errorf("server CPU: %w", err)
		}
		a := &cpuAccount{dir: filepath.Join(root, fmt.Sprintf("firstlook-sshtest-%d-%d", os.Getpid(), n.slot)), enrolled: map[int]bool{}}
		for _, d := range []string{a.dir, filepath.Join(a.dir, "bastion"), filepath.Join(a.dir, "hosts")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				a.remove(root)
				return CPUTime{}, fmt.Errorf("server CPU: %w", err)
			}
		}
		n.cpu = a
		n.t.Cleanup(func() {
			if err := a.remove(root); err != nil {
				n.t.Errorf("sshtest: cleanup: %v", err)
			}
		})
	}
	for _, nd := range n.nodes() {
		nd.mu.Lock()
		pid := 0
		if nd.cmd != nil {
			pid = nd.cmd.Process.Pid
		}
		nd.mu.Unlock()
		if pid == 0 || n.cpu.enrolled[pid] {
			continue
		}
		group := filepath.Join(n.cpu.dir, "hosts")
		if nd == n.bastion {
			group = filepath.Join(n.cpu.dir, "bastion")
		}
		if err := os.WriteFile(filepath.Join(group, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return CPUTime{}, fmt.Errorf("server CPU: move sshd of %s into %s: %w", nd.name, group, err)
		}
		n.cpu.enrolled[pid] = true
	}
	var c CPUTime
	var err error
	if c.Bastion, err = readUsage(filepath.Join(n.cpu.dir, "bastion", "cpu.stat")); err != nil {
		return CPUTime{}, err
	}
	if c.Hosts, err = readUsage(filepath.Join(n.cpu.dir, "hosts", "cpu.stat")); err != nil {
		return CPUTime{}, err
	}
	return c, nil
}

// cgroup2Root finds the mount point of the cgroup v2 hierarchy.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "36 25 0:31 / /sys/fs/cgroup/unified rw,... - cgroup2 cgroup2 rw"
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		fields, fs := strings.Fields(pre), strings.Fields(post)
		if ok && len(fields) >= 5 && len(fs) >= 1 && fs[0] == "cgroup2" {
			if syscall.Access(fields[4], 2 /* W_OK */) != nil {
				return "", fmt.Errorf("the cgroup v2 hierarchy at %s is not writable", fields[4])
			}
			return fields[4], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// readUsage reads usage_usec from a cgroup's cpu.stat.
func readUsage(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("server CPU: %s: %w", path, err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("server CPU: no usage_usec in %s", path)
}

// remove moves whatever is left in the cgroups back to the root (New's
// cleanup, which kills the servers, may not have run yet) and deletes
// them, children first.
func (a *cpuAccount) remove(root string) error {
	for _, dir := range []string{filepath.Join(a.dir, "bastion"), filepath.Join(a.dir, "hosts"), a.dir} {
		var err error
		for range 50 {
			b, rerr := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			if errors.Is(rerr, os.ErrNotExist) {
				err = nil
				break
			}
			for _, pid := range strings.Fields(string(b)) {
				// A process that exited meanwhile cannot be moved; fine.
				_ = os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(pid), 0o644)
			}
			if err = syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(10 * time.Millisecond) // a process forked while we moved the others
		}
		if err != nil {
			return fmt.Errorf("server CPU cgroup: remove %s: %w", dir, err)
		}
	}
	return nil
}
