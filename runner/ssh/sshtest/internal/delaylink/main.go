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
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// queueLen bounds the packets in flight in one direction. At 1500 bytes a
// packet and a 10 ms delay it allows 600 MB/s, far above what the tests
// send; beyond it the reader waits and the kernel's device queue fills
// and drops, as a real router would.
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
	// Dropped counts packets the destination device refused (it was down,
	// or its namespace was being deleted).
	Dropped int64 `json:"dropped"`
}

type counters struct {
	packets, bytes, lateMax, lateSum, lateOver1ms, dropped atomic.Int64
}

func (c *counters) record(n int, late time.Duration) {
	c.packets.Add(1)
	c.bytes.Add(int64(n))
	c.lateSum.Add(int64(late))
	if late > time.Millisecond {
		c.lateOver1ms.Add(1)
	}
	for {
		old := c.lateMax.Load()
		if int64(late) <= old || c.lateMax.CompareAndSwap(old, int64(late)) {
			return
		}
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
	// A P for each reader and writer thread (two per direction, two
	// directions per link) and the main goroutine: see pump.
	runtime.GOMAXPROCS(max(runtime.NumCPU(), 4*len(pairs)+2))
	var c counters
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
		// The pumps end with the process: the devices live as long as
		// it does, and the test that started it ends it.
		go pump(fa, fb, delay, &c)
		go pump(fb, fa, delay, &c)
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		if in.Text() == "stats" {
			if err := out.Encode(c.stats()); err != nil {
				return err
			}
		}
	}
	return nil
}

// openTUN creates a layer-3 TUN device without packet information
// headers, so that each read or write is one IP packet. The descriptor
// stays blocking: each one is read by a thread of its own (see pump).
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
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

type packet struct {
	buf *[]byte // from bufs
	n   int
	due unix.Timespec // CLOCK_MONOTONIC
}

// bufSize holds any packet: TUN devices have an MTU of 1500 unless
// changed, and the largest IPv4 packet is 65535 bytes.
const bufSize = 1 << 16

var bufs = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// pump moves packets from src to dst, each released delay after it was
// read. The reader stamps a packet with its due time and queues it at
// once, so packets in flight overlap as on a wire: the delay is added
// once per packet, never once per packet queued ahead of it.
//
// Precision: the reader and the writer each hold an OS thread and block
// in plain system calls, read(2) and an absolute clock_nanosleep(2) with
// a 1 ns timer slack, so the kernel wakes them on time; main gives the
// runtime a P for every such thread, so none waits for another to get
// back to Go code. (Go timers would wake on a millisecond epoll timeout
// and add up to 1 ms per packet; a P shared by busy goroutines, up to the
// scheduler's 10 ms time slice.)
func pump(src, dst int, delay time.Duration, c *counters) {
	q := make(chan packet, queueLen)
	go func() { // lives as long as the process
		realtime()
		_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
		for p := range q {
			for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &p.due, nil) == unix.EINTR {
			}
			late := time.Duration(now() - p.due.Nano())
			if _, err := unix.Write(dst, (*p.buf)[:p.n]); err != nil {
				// The receiving device is down (not configured yet, or
				// its namespace is going away): lost, as on a wire.
				c.dropped.Add(1)
			} else {
				c.record(p.n, late)
			}
			bufs.Put(p.buf)
		}
	}()
	realtime()
	for {
		buf := bufs.Get().(*[]byte)
		n, err := unix.Read(src, *buf)
		if err == unix.EINTR || err == unix.EAGAIN {
			bufs.Put(buf)
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "delaylink: read: %v\n", err)
			return
		}
		q <- packet{buf: buf, n: n, due: unix.NsecToTimespec(now() + int64(delay))}
	}
}

// realtime locks the calling goroutine to its thread and gives the thread
// the lowest real-time priority (SCHED_FIFO 1), so that it runs as soon
// as it wakes, ahead of the sshd and ssh processes that keep the CPUs
// busy in a benchmark: netem does its work in the kernel's softirq, ahead
// of every process, and a delay process waiting for a CPU would add the
// machine's load to the links. The threads only ever block or copy one
// packet, and the kernel caps real-time threads at 95% of a CPU
// (sched_rt_runtime_us); without the privilege it runs at normal
// priority.
func realtime() {
	runtime.LockOSThread()
	param := struct{ priority int32 }{1}
	_, _, _ = unix.Syscall(unix.SYS_SCHED_SETSCHEDULER, 0, uintptr(unix.SCHED_FIFO), uintptr(unsafe.Pointer(&param)))
}

// now reads CLOCK_MONOTONIC in nanoseconds, the clock the writer sleeps
// on.
func now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
