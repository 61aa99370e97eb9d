package sshtest

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binDirs are where commands are installed; Hide removes commands from
// each of them.
var binDirs = []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// startScript sets the hostname, makes the mounts given as triples
// (bind SRC DST: DST shows SRC, a directory or a file; hide LAYER DST: DST
// shows DST without what LAYER's whiteouts remove; tmpfs SIZE DST: a
// tmpfs of SIZE at DST) and runs sshd: $1 hostname, $2 sshd, $3
// config, then the triples.
const startScript = `hostname "$1" || exit 1; sshd=$2 cfg=$3; shift 3
while [ $# -ge 3 ]; do
	case $1 in
	bind) mount --bind "$2" "$3" || exit 1 ;;
	hide) mount -t overlay -o "lowerdir=$2:$3" overlay "$3" || exit 1 ;;
	tmpfs) mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$3" || exit 1 ;;
	esac
	shift 3
done
exec "$sshd" -D -e -f "$cfg"`

// requireOverlay skips the test, saying why, or fails it under
// FIRSTLOOK_REQUIRE_INTEGRATION=1, when Options.Hide cannot work: the
// kernel has no overlayfs, built in or as a module.
func requireOverlay(t testing.TB) {
	t.Helper()
	if b, err := os.ReadFile("/proc/filesystems"); err == nil && bytes.Contains(b, []byte("\toverlay\n")) {
		return
	}
	if exec.Command("modinfo", "overlay").Run() == nil {
		return // mount loads the module
	}
	msg := "sshtest: Options.Hide needs overlayfs, which this kernel lacks"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + " (" + EnvRequire + "=1)")
	}
	t.Skip(msg)
}

// mount is one mount made in a host's mount namespace: kind is "bind",
// "hide" or "tmpfs" (see startScript).
type mount struct{ kind, src, dst string }

// prepare makes the host's private directories and the whiteout layers
// that hide its commands, and lists the mounts.
func (nd *node) prepare(private, hide []string) error {
	for _, d := range private {
		own := filepath.Join(nd.dir, "private", d)
		if err := os.MkdirAll(own, 0o755); err != nil {
			return fmt.Errorf("private dir %s of %s: %w", d, nd.name, err)
		}
		if nd.private == nil {
			nd.private = map[string]string{}
		}
		nd.private[d] = own
		nd.mounts = append(nd.mounts, mount{"bind", own, d})
	}
	if len(hide) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, dir := range binDirs {
		real, err := filepath.EvalSymlinks(dir) // /bin is often /usr/bin
		if err != nil || seen[real] {
			continue
		}
		seen[real] = true
		layer := filepath.Join(nd.dir, "hide", real)
		made := false
		for _, name := range hide {
			if _, err := os.Lstat(filepath.Join(real, name)); err != nil {
				continue
			}
			if !made {
				// overlayfs splits its options at ',' and ':'.
				if strings.ContainsAny(layer, ",:\\") {
					return fmt.Errorf("hide commands on %s: the temporary directory %s holds ',', ':' or '\\', which overlayfs options cannot carry; rename the test", nd.name, layer)
				}
				if err := os.MkdirAll(layer, 0o755); err != nil {
					return err
				}
				made = true
			}
			// A whiteout: a character device 0/0 in an upper layer
			// hides the lower layer's entry of that name.
			if err := syscall.Mknod(filepath.Join(layer, name), syscall.S_IFCHR, 0); err != nil {
				return fmt.Errorf("hide %s on %s: %w", name, nd.name, err)
			}
		}
		if made {
			nd.mounts = append(nd.mounts, mount{"hide", layer, real})
		}
	}
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

// prepareTmpfs creates the mount points of the host's small filesystems
// in its private directories, and lists the mounts (after the binds that
// make those directories private).
func (nd *node) prepareTmpfs(fss map[string]string) error {
	for _, d := range slices.Sorted(maps.Keys(fss)) {
		for priv, own := range nd.private {
			if rel, ok := strings.CutPrefix(d, priv+"/"); ok {
				if err := os.MkdirAll(filepath.Join(own, rel), 0o755); err != nil {
					return fmt.Errorf("tmpfs %s on %s: %w", d, nd.name, err)
				}
			}
		}
		nd.mounts = append(nd.mounts, mount{"tmpfs", fss[d], d})
	}
	return nil
}

// requireSudo skips the test, saying why, or fails it under
// FIRSTLOOK_REQUIRE_INTEGRATION=1, when Options.Sudoers cannot work: sudo
// is not installed.
func requireSudo(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/sudo"); err == nil {
		return
	}
	msg := "sshtest: Options.Sudoers needs sudo (apt-get install sudo)"
	if os.Getenv(EnvRequire) == "1" {
		t.Fatal(msg + " (" + EnvRequire + "=1)")
	}
	t.Skip(msg)
}

// prepareUsers gives the host private /etc/passwd, /etc/group,
// /etc/shadow and /etc/hosts with the users added (and its own name resolving, for sudo),
// and, with sudoers, a private /etc/sudoers.d holding them.
func (n *Net) prepareUsers(nd *node, users []string, sudoers string) error {
	if n.usersDir == "" {
		// Outside the test's temporary directory, which only root can
		// traverse: sshd reads a user's keys as that user.
		d, err := os.MkdirTemp("", "sshtest-users-")
		if err != nil {
			return err
		}
		n.usersDir = d
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
		pub, err := os.ReadFile(filepath.Join(n.dir, "authorized_keys"))
		if err != nil {
			return fmt.Errorf("users: %w (keys are written first)", err)
		}
		for i, u := range users {
			if err := os.WriteFile(filepath.Join(d, u+".keys"), pub, 0o644); err != nil {
				return err
			}
			home := filepath.Join(d, "home-"+u)
			if err := os.Mkdir(home, 0o755); err != nil {
				return err
			}
			if err := os.Chown(home, FirstUID+i, FirstUID+i); err != nil {
				return err
			}
		}
	}
	etc := filepath.Join(nd.dir, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	files := map[string]func(i int, u string) string{
		"passwd": func(i int, u string) string {
			return fmt.Sprintf("%s:x:%d:%d:sshtest user:%s:/bin/sh\n", u, FirstUID+i, FirstUID+i, filepath.Join(n.usersDir, "home-"+u))
		},
		"group": func(i int, u string) string { return fmt.Sprintf("%s:x:%d:\n", u, FirstUID+i) },
		// PAM's account check (sudo runs it) wants a shadow entry: no
		// password, never expires.
		"shadow": func(i int, u string) string { return fmt.Sprintf("%s:*:19000:0:99999:7:::\n", u) },
	}
	for _, name := range []string{"passwd", "group", "shadow", "hosts"} {
		b, err := os.ReadFile("/etc/" + name)
		if err != nil {
			return fmt.Errorf("users on %s: %w", nd.name, err)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		if name == "hosts" {
			b = append(b, fmt.Sprintf("%s %s\n", nd.ip, nd.name)...)
		} else {
			for i, u := range users {
				b = append(b, files[name](i, u)...)
			}
		}
		own := filepath.Join(etc, name)
		mode := os.FileMode(0o644)
		if name == "shadow" {
			mode = 0o600
		}
		if err := os.WriteFile(own, b, mode); err != nil {
			return err
		}
		nd.mounts = append(nd.mounts, mount{"bind", own, "/etc/" + name})
	}
	if sudoers != "" {
		if _, err := os.Stat("/etc/sudoers.d"); err != nil {
			return fmt.Errorf("sudoers on %s: %w", nd.name, err)
		}
		d := filepath.Join(etc, "sudoers.d")
		if err := os.Mkdir(d, 0o750); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, "sshtest"), []byte(strings.TrimSpace(sudoers)+"\n"), 0o440); err != nil {
			return err
		}
		nd.mounts = append(nd.mounts, mount{"bind", d, "/etc/sudoers.d"})
	}
	return nil
}

// HostPath returns a path of this machine that reaches path as the named
// host sees it (through its sshd's /proc/PID/root): a file in one of the
// host's Tmpfs, say.
func (n *Net) HostPath(name, path string) string {
	n.t.Helper()
	nd := n.node(name)
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		n.t.Fatalf("sshtest: %s is stopped", name)
	}
	return fmt.Sprintf("/proc/%d/root%s", nd.cmd.Process.Pid, path)
}
