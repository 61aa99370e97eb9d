package sshtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sessionPath is the PATH Debian's sshd gives root's sessions; a host that
// hides commands gets links to what these directories hold, in this order.
var sessionPath = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// prepare makes the host's private directories and, when it hides
// commands, its PATH directory.
func (nd *node) prepare(private, hide []string) error {
	if len(private) > 0 {
		nd.private = map[string]string{}
		for _, d := range private {
			own := filepath.Join(nd.dir, "private", d)
			if err := os.MkdirAll(own, 0o755); err != nil {
				return fmt.Errorf("private dir %s of %s: %w", d, nd.name, err)
			}
			nd.private[d] = own
		}
	}
	if len(hide) == 0 {
		return nil
	}
	bin := filepath.Join(nd.dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		return err
	}
	for _, dir := range sessionPath {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hide commands on %s: %w", nd.name, err)
		}
		for _, e := range entries {
			if e.IsDir() || slices.Contains(hide, e.Name()) {
				continue
			}
			// An earlier directory wins, as in a PATH search; /bin
			// and /usr/bin are often one directory.
			err := os.Symlink(filepath.Join(dir, e.Name()), filepath.Join(bin, e.Name()))
			if err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("hide commands on %s: %w", nd.name, err)
			}
		}
	}
	nd.path = bin
	return nil
}

// HostDir returns the directory of this machine that the named host sees
// at dir, one of Options.PrivateDirs. Files written there appear on the
// host at once.
func (n *Net) HostDir(name, dir string) string {
	n.t.Helper()
	nd := n.node(name)
	own, ok := nd.private[dir]
	if !ok {
		n.t.Fatalf("sshtest: %s has no private %s (see Options.PrivateDirs)", name, dir)
	}
	return own
}

// Spawn starts a process on the named host, in the namespaces its
// sessions run in (network, UTS and mount: it sees the host's private
// directories), and returns without waiting for it. It runs until it
// exits, is killed, or the host is stopped (Stop, or the Net's cleanup),
// like a daemon on that host. Its output is discarded.
func (n *Net) Spawn(name string, args ...string) Process {
	n.t.Helper()
	if len(args) == 0 {
		n.t.Fatalf("sshtest: spawn on %s: no command", name)
	}
	nd := n.node(name)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		n.t.Fatalf("sshtest: spawn on %s: the host is stopped", name)
	}
	// nsenter execs the command itself when it enters no PID namespace,
	// so cmd's pid is the process's.
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(nd.cmd.Process.Pid), "-n", "-u", "-m", "--"}, args...)...)
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("sshtest: spawn on %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait() // owned: stop kills the process and waits for done
		close(done)
	}()
	nd.spawned = append(nd.spawned, done)
	// Return once nsenter has entered the namespaces and run the
	// command, so that the caller sees the command, not nsenter.
	// (Start returns once nsenter itself runs.)
	pid := cmd.Process.Pid
	nsenter, err := filepath.EvalSymlinks(cmd.Path)
	if err != nil {
		n.t.Fatalf("sshtest: spawn on %s: %v", name, err)
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil || exe != nsenter {
			break // the command runs, or has already exited
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("sshtest: spawn on %s: %q not started after %s", name, args, readyTimeout)
		}
		time.Sleep(time.Millisecond)
	}
	return Process{PID: pid, Cmdline: strings.Join(args, " ")}
}
