package sshtest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sync/errgroup"
)

// Addressing. Each Net gets a slot: a /24 in 10.200.0.0–10.215.255.0, cut
// into /30 links: .0/30 root–bastion (.1 root side, .2 bastion), then one
// /30 per host, .4k+4/30 (.4k+5 bastion side, .4k+6 host).
const (
	slots    = 16 * 256
	maxHosts = 62
	netnsDir = "/run/netns"
	// nsPrefix starts every namespace name: "flst-<slot>-<pid>-<role>".
	// The pid lets a later run reap what a killed test process left.
	nsPrefix = "flst-"
	lockFile = "/tmp/firstlook-sshtest.lock"
)

func nsName(slot int, role string) string {
	return fmt.Sprintf("%s%d-%d-%s", nsPrefix, slot, os.Getpid(), role)
}

// rootVeth is the root namespace's end of the bastion link; interface names
// are at most 15 bytes.
func rootVeth(slot int) string { return "flst" + strconv.Itoa(slot) }

// subnet returns a function giving the address at offset i in the slot's /24.
func subnet(slot int) func(i int) string {
	return func(i int) string {
		return fmt.Sprintf("10.%d.%d.%d", 200+slot/256, slot%256, i)
	}
}

func slotNet(slot int) *net.IPNet {
	return &net.IPNet{IP: net.IPv4(10, byte(200+slot/256), byte(slot%256), 0).To4(), Mask: net.CIDRMask(24, 32)}
}

// allocate picks a free slot. A counter file under flock spreads
// concurrent processes over slots; a slot is skipped when a namespace of
// ours holds it or the machine already uses an address or a specific route
// in its /24.
func allocate() (int, error) {
	f, err := os.OpenFile(lockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("allocate a subnet: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("allocate a subnet: lock %s: %w", lockFile, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	reapStale()
	buf := make([]byte, 32)
	nr, _ := f.ReadAt(buf, 0)
	next, _ := strconv.Atoi(strings.TrimSpace(string(buf[:nr])))
	taken := takenSlots()
	used, err := usedNets()
	if err != nil {
		return 0, fmt.Errorf("allocate a subnet: %w", err)
	}
	for k := range slots {
		slot := (next + k) % slots
		if taken[slot] || overlaps(slotNet(slot), used) {
			continue
		}
		if _, err := net.InterfaceByName(rootVeth(slot)); err == nil {
			continue // being deleted by a previous run
		}
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(strconv.Itoa(slot+1)), 0)
		}
		// Claim it before releasing the lock: the namespace names carry
		// the slot.
		if err := run("ip", "netns", "add", nsName(slot, "b")); err != nil {
			return 0, fmt.Errorf("allocate a subnet: %w", err)
		}
		return slot, nil
	}
	return 0, errors.New("allocate a subnet: no free /24 in 10.200.0.0/12")
}

// takenSlots reads the slots of existing namespaces of ours.
func takenSlots() map[int]bool {
	taken := make(map[int]bool)
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if slot, _, ok := parseNSName(e.Name()); ok {
			taken[slot] = true
		}
	}
	return taken
}

func parseNSName(name string) (slot, pid int, ok bool) {
	rest, ok := strings.CutPrefix(name, nsPrefix)
	if !ok {
		return 0, 0, false
	}
	parts := strings.SplitN(rest, "-", 3)
	if len(parts) != 3 {
		return 0, 0, false
	}
	slot, err1 := strconv.Atoi(parts[0])
	pid, err2 := strconv.Atoi(parts[1])
	return slot, pid, err1 == nil && err2 == nil
}

// reapStale removes namespaces left by test processes that died without
// running their cleanup (killed by a timeout, say).
func reapStale() {
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		_, pid, ok := parseNSName(e.Name())
		if !ok || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		killNetns(e.Name())
		run("ip", "netns", "del", e.Name())
	}
}

// usedNets lists the root namespace's addresses (as /32) and its routes
// of /16 or longer; broader routes (a 10/8 VPN route) do not stop a more
// specific local /30 from working.
func usedNets() ([]*net.IPNet, error) {
	var used []*net.IPNet
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			used = append(used, &net.IPNet{IP: ipn.IP.To4(), Mask: net.CIDRMask(32, 32)})
		}
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(fields[1], 16, 32)
		mask, err2 := strconv.ParseUint(fields[7], 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		ip, m := make(net.IP, 4), make(net.IPMask, 4)
		binary.LittleEndian.PutUint32(ip, uint32(dst))
		binary.LittleEndian.PutUint32(m, uint32(mask))
		if ones, _ := m.Size(); ones >= 16 {
			used = append(used, &net.IPNet{IP: ip, Mask: m})
		}
	}
	return used, sc.Err()
}

func overlaps(a *net.IPNet, used []*net.IPNet) bool {
	for _, u := range used {
		if a.Contains(u.IP) || u.Contains(a.IP) {
			return true
		}
	}
	return false
}

// buildNetwork creates the namespaces and links. The bastion's namespace
// exists already (allocate claimed the slot with it). New namespaces do
// not forward IPv4 (net.ipv4.ip_forward defaults to 0 in each), so the
// bastion routes nothing between its links. The links are veth pairs, or
// with a delay the delay process's TUN devices, which exist already and
// are moved into place.
func (n *Net) buildNetwork(addr func(int) string) error {
	b := n.bastion.ns
	root := []string{}
	for _, h := range n.hosts {
		root = append(root, "netns add "+h.ns)
	}
	veth := rootVeth(n.slot)
	if n.delay == nil {
		root = append(root, fmt.Sprintf("link add %s type veth peer name eth0 netns %s", veth, b))
	} else {
		root = append(root, n.delay.moves...)
	}
	root = append(root,
		fmt.Sprintf("addr add %s/30 dev %s", addr(1), veth),
		fmt.Sprintf("link set %s up", veth),
	)
	if err := ipBatch("", root); err != nil {
		return err
	}
	inB := []string{
		fmt.Sprintf("addr add %s/30 dev eth0", addr(2)),
		"link set eth0 up",
		"link set lo up",
	}
	for k, h := range n.hosts {
		dev := "h" + strconv.Itoa(k)
		if n.delay == nil {
			inB = append(inB, fmt.Sprintf("link add %s type veth peer name eth0 netns %s", dev, h.ns))
		}
		inB = append(inB,
			fmt.Sprintf("addr add %s/30 dev %s", addr(4*k+5), dev),
			fmt.Sprintf("link set %s up", dev),
		)
	}
	if err := ipBatch(b, inB); err != nil {
		return err
	}
	// One ip process per host namespace, at once: a Net of 20 hosts
	// starts in about the time of one.
	var g errgroup.Group
	for k, h := range n.hosts {
		g.Go(func() error {
			return ipBatch(h.ns, []string{
				fmt.Sprintf("addr add %s/30 dev eth0", addr(4*k+6)),
				"link set eth0 up",
				"link set lo up",
			})
		})
	}
	return g.Wait()
}

// removeSlot deletes every namespace of the slot (their processes must be
// gone); the veth pairs go with them.
func removeSlot(slot int) error {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil
	}
	var errs []error
	prefix := fmt.Sprintf("%s%d-%d-", nsPrefix, slot, os.Getpid())
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := run("ip", "netns", "del", e.Name()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
