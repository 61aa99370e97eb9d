// Command delaylink joins pairs of TUN devices so that each pair acts as a
// point-to-point link with a fixed one-way delay in each direction, as
// tc-netem's "delay" would: every packet is released exactly the delay
// after it was read, in order, with no rate limit and no loss.
//
// sshtest runs it to add round-trip time between its network namespaces on
// kernels built without sch_netem (CONFIG_NET_SCH_NETEM unset; sch_fq and
// sch_etf, which an eBPF EDT delay would need, are often missing too). It
// works on packets, below TCP, so every TCP handshake, ACK and window
// update pays the delay exactly as on a real link.
//
// Usage:
//
//	delaylink -delay 10ms NAME_A:NAME_B [NAME_A:NAME_B ...]
//
// It creates the TUN devices in its own network namespace, prints "ready"
// on stdout and forwards packets; the caller moves the devices into their
// namespaces and configures them (a TUN device keeps working when moved).
// Each "stats" line on stdin is answered with one line of JSON (Stats). At
// end of stdin, when its parent exits or closes the pipe, it exits, and
// the kernel deletes the devices with their last file descriptor.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// queueLen bounds the packets in flight in one direction. At 1500 bytes a
// packet and a 10 ms delay it allows 600 MB/s, far above what the tests
// send; beyond it packets are dropped, as a router drops at the tail of a
// full queue.
const queueLen = 4096

// Stats is the answer to "stats": how faithfully packets were delayed
// since the start. Late is how long after its due time a packet was
// written, the scheduling error added on top of the delay.
type Stats struct {
	Packets     int64 `json:"packets"`
	Bytes       int64 `json:"bytes"`
	LateMaxNS   int64 `json:"late_max_ns"`
	LateSumNS   int64 `json:"late_sum_ns"`
	LateOver1ms int64 `json:"late_over_1ms"`
	// Dropped counts packets lost: refused by the receiving device (down,
	// or its namespace going away) or beyond queueLen.
	Dropped int64 `json:"dropped"`
}

// counters are written by the forwarding thread and read by "stats".
type counters struct {
	packets, bytes, lateMax, lateSum, lateOver1ms, dropped atomic.Int64
}

func (c *counters) record(n int, late int64) {
	c.packets.Add(1)
	c.bytes.Add(int64(n))
	c.lateSum.Add(late)
	if late > int64(time.Millisecond) {
		c.lateOver1ms.Add(1)
	}
	if late > c.lateMax.Load() { // only the forwarding thread writes it
		c.lateMax.Store(late)
	}
}

func (c *counters) stats() Stats {
	return Stats{
		Packets: c.packets.Load(), Bytes: c.bytes.Load(),
		LateMaxNS: c.lateMax.Load(), LateSumNS: c.lateSum.Load(),
		LateOver1ms: c.lateOver1ms.Load(), Dropped: c.dropped.Load(),
	}
}

func main() {
	delay := flag.Duration("delay", 0, "one-way delay added in each direction")
	flag.Parse()
	if err := run(*delay, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "delaylink:", err)
		os.Exit(1)
	}
}

func run(delay time.Duration, pairs []string) error {
	if delay <= 0 || len(pairs) == 0 {
		return errors.New("usage: delaylink -delay 10ms NAME_A:NAME_B [NAME_A:NAME_B ...]")
	}
	// The forwarding loop holds the main thread; see forward.
	runtime.LockOSThread()
	var dirs []*direction
	for _, p := range pairs {
		a, b, ok := strings.Cut(p, ":")
		if !ok || a == "" || b == "" {
			return fmt.Errorf("link %q: want NAME_A:NAME_B", p)
		}
		fa, err := openTUN(a)
		if err != nil {
			return err
		}
		fb, err := openTUN(b)
		if err != nil {
			return err
		}
		dirs = append(dirs, &direction{src: fa, dst: fb}, &direction{src: fb, dst: fa})
	}
	var c counters
	fwd, err := newForwarder(dirs, int64(delay), &c)
	if err != nil {
		return err
	}
	go control(&c) // exits the process at end of input
	fmt.Println("ready")
	return fwd.loop()
}

// control answers "stats" lines on stdin and exits at its end: the parent
// closed the pipe, or died.
func control(c *counters) {
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if in.Text() == "stats" {
			if err := out.Encode(c.stats()); err != nil {
				break
			}
		}
	}
	os.Exit(0)
}

// openTUN creates a layer-3 TUN device without packet information
// headers, so that each read or write is one IP packet.
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("tun %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("create tun %s: %w", name, err)
	}
	return fd, nil
}

// direction is one way of one link: packets read from src wait in q, in
// order, until due, then go to dst.
type direction struct {
	src, dst int
	q        []packet
	head     int // q[head:] is waiting
}

type packet struct {
	b   []byte
	due int64 // CLOCK_MONOTONIC, ns
}

// forwarder moves every direction's packets on one thread: an epoll loop
// over the devices and a timerfd armed, with an absolute CLOCK_MONOTONIC
// time, for the earliest packet due. Each packet is stamped with its due
// time when read and released then, so packets in flight overlap as on a
// wire: the delay is added once per packet, never once per packet queued
// ahead of it, and the bandwidth is not limited. A timerfd wakes with
// microsecond precision (epoll's own timeout, and the Go timers built on
// it, have a millisecond), and one thread doing everything keeps the cost
// to a few system calls per packet with no scheduler in between.
type forwarder struct {
	dirs  []*direction
	delay int64
	c     *counters
	ep    int
	timer int
	free  [][]byte // packet buffers to reuse
}

func newForwarder(dirs []*direction, delay int64, c *counters) (*forwarder, error) {
	f := &forwarder{dirs: dirs, delay: delay, c: c}
	var err error
	if f.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	if f.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	// Event data: the direction's index, or -1 for the timer.
	add := func(fd int, data int32) error {
		return unix.EpollCtl(f.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: data})
	}
	if err := add(f.timer, -1); err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	for i, d := range dirs {
		if err := add(d.src, int32(i)); err != nil {
			return nil, fmt.Errorf("epoll: %w", err)
		}
	}
	return f, nil
}

func (f *forwarder) loop() error {
	realtime()
	events := make([]unix.EpollEvent, len(f.dirs)+1)
	scratch := make([]byte, 1<<16) // the largest IPv4 packet
	armed := int64(0)
	for {
		next := f.release()
		if next != armed {
			// Zero disarms.
			spec := unix.ItimerSpec{Value: unix.NsecToTimespec(next)}
			if err := unix.TimerfdSettime(f.timer, unix.TFD_TIMER_ABSTIME, &spec, nil); err != nil {
				return fmt.Errorf("timerfd: %w", err)
			}
			armed = next
		}
		n, err := unix.EpollWait(f.ep, events, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll: %w", err)
		}
		for _, ev := range events[:n] {
			if ev.Fd < 0 {
				var b [8]byte
				_, _ = unix.Read(f.timer, b[:]) // clear it; release runs next
				continue
			}
			f.receive(f.dirs[ev.Fd], scratch)
		}
	}
}

// receive reads every packet waiting on d's source and queues it.
func (f *forwarder) receive(d *direction, scratch []byte) {
	for {
		n, err := unix.Read(d.src, scratch)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 { // EAGAIN: all read
			return
		}
		due := now() + f.delay
		if len(d.q)-d.head >= queueLen {
			f.c.dropped.Add(1)
			continue
		}
		b := f.buffer(n)
		copy(b, scratch[:n])
		d.q = append(d.q, packet{b: b, due: due})
	}
}

// release writes every packet that is due and returns the earliest due
// time still waiting, or 0.
func (f *forwarder) release() int64 {
	var next int64
	t := now()
	for _, d := range f.dirs {
		for d.head < len(d.q) {
			p := d.q[d.head]
			if p.due > t {
				if next == 0 || p.due < next {
					next = p.due
				}
				break
			}
			// Late is measured at release; the write that follows is the
			// receiving stack's work, which netem's dequeue pays too.
			late := t - p.due
			if _, err := unix.Write(d.dst, p.b); err != nil {
				// The receiving device is down (not configured yet, or
				// its namespace is going away): lost, as on a wire.
				f.c.dropped.Add(1)
			} else {
				f.c.record(len(p.b), late)
			}
			f.free = append(f.free, p.b[:cap(p.b)])
			d.q[d.head] = packet{}
			d.head++
			t = now()
		}
		if d.head == len(d.q) {
			d.q, d.head = d.q[:0], 0
		}
	}
	return next
}

// buffer returns a buffer of n bytes, reusing one when it is big enough.
func (f *forwarder) buffer(n int) []byte {
	if k := len(f.free); k > 0 && cap(f.free[k-1]) >= n {
		b := f.free[k-1]
		f.free = f.free[:k-1]
		return b[:n]
	}
	return make([]byte, n, max(n, 2048))
}

// realtime gives the calling thread the lowest real-time priority
// (SCHED_FIFO 1), so that it runs as soon as it wakes, ahead of the sshd
// and ssh processes that keep the CPUs busy in a benchmark: netem does
// its work in the kernel's softirq, ahead of every process, and a delay
// process waiting for a CPU would add the machine's load to the links.
// The thread only ever blocks or moves due packets, and the kernel caps
// real-time threads at 95% of a CPU (sched_rt_runtime_us). Without the
// privilege it stays at normal priority. Its timer slack is cut from
// 50 µs to 1 ns.
func realtime() {
	param := struct{ priority int32 }{1}
	_, _, _ = unix.Syscall(unix.SYS_SCHED_SETSCHEDULER, 0, uintptr(unix.SCHED_FIFO), uintptr(unsafe.Pointer(&param)))
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}

// now reads CLOCK_MONOTONIC in nanoseconds, the timer's clock.
func now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
