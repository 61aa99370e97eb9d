package sshtest_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// TestServerCPU checks that ServerCPU counts what a command run over SSH
// spends on the host, and that its cgroup goes with the Net.
func TestServerCPU(t *testing.T) {
	var cgroups []string
	t.Run("count", func(t *testing.T) {
		n := sshtest.New(t, sshtest.Options{Hosts: []string{"h"}})
		before, err := n.ServerCPU()
		if err != nil {
			msg := "sshtest: " + err.Error()
			if os.Getenv(sshtest.EnvRequire) == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		cfg := clientConfig(t, n)
		bastion, err := xssh.Dial("tcp", n.Bastion().Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer bastion.Close()
		host := hostClient(t, bastion, n.Host("h").Addr, cfg)
		defer host.Close()
		sess, err := host.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		// A busy loop that reports its own CPU time: bash's times prints
		// the shell's user and system time on its first line.
		out, err := sess.Output(`i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; times`)
		if err != nil {
			t.Fatal(err)
		}
		var own time.Duration
		for _, f := range strings.Fields(strings.SplitN(string(out), "\n", 2)[0]) {
			d, err := time.ParseDuration(f) // "0m0.512s"
			if err != nil {
				t.Fatalf("parse times output %q: %v", out, err)
			}
			own += d
		}
		after, err := n.ServerCPU()
		if err != nil {
			t.Fatal(err)
		}
		if own <= 0 || after.Hosts-before.Hosts < own {
			t.Errorf("ServerCPU: got %s more for the hosts, want at least the %s the command reports (times: %q)", after.Hosts-before.Hosts, own, out)
		}
		// The bastion did the handshake and forwarded the channel; it ran
		// no command.
		if after.Bastion <= before.Bastion || after.Bastion-before.Bastion >= after.Hosts-before.Hosts {
			t.Errorf("ServerCPU: got bastion %s → %s, hosts %s → %s, want the bastion's to grow less than the hosts'", before.Bastion, after.Bastion, before.Hosts, after.Hosts)
		}
		mine := "firstlook-sshtest-" + strconv.Itoa(os.Getpid()) + "-*"
		matches, _ := filepath.Glob("/sys/fs/cgroup/" + mine)
		more, _ := filepath.Glob("/sys/fs/cgroup/*/" + mine)
		cgroups = append(matches, more...)
		if len(cgroups) == 0 {
			t.Errorf("no firstlook-sshtest cgroup under /sys/fs/cgroup")
		}
	})
	for _, dir := range cgroups {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("cgroup %s: still there after cleanup", dir)
		}
	}
}
