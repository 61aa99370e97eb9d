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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
		return errors.New("usage: delaylink -delay 10ms NAME_A:NAME_B ...")
	}
	var c counters
	var wg sync.WaitGroup
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
		wg.Go(func() { pump(fa, fb, delay, &c) })
		wg.Go(func() { pump(fb, fa, delay, &c) })
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
// headers, so that each read or write is one IP packet.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create tun %s: %w", name, err)
	}
	// Non-blocking, so that os.NewFile hands it to the runtime poller and a
	// read parks a goroutine rather than a thread.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

type packet struct {
	b   []byte
	due unix.Timespec // CLOCK_MONOTONIC
}

// pump moves packets from src to dst, each released delay after it was
// read. The reader stamps a packet with its due time and queues it at
// once, so packets in flight overlap as on a wire: the delay is added
// once per packet, never once per packet queued ahead of it. The writer
// sleeps until the head packet is due with an absolute clock_nanosleep
// (microsecond precision; the Go timer behind time.Sleep wakes on a
// millisecond epoll timeout, which would add up to 1 ms per packet).
func pump(src, dst *os.File, delay time.Duration, c *counters) {
	q := make(chan packet, queueLen)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(q)
	wg.Go(func() {
		for p := range q {
			for {
				err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &p.due, nil)
				if err != syscall.EINTR {
					break
				}
			}
			late := time.Duration(now() - p.due.Nano())
			if _, err := dst.Write(p.b); err != nil {
				c.dropped.Add(1)
				continue
			}
			c.record(len(p.b), late)
		}
	})
	buf := make([]byte, 1<<16)
	for {
		n, err := src.Read(buf)
		if err != nil {
			if errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) {
				continue
			}
			return
		}
		due := unix.NsecToTimespec(now() + int64(delay))
		q <- packet{b: append([]byte(nil), buf[:n]...), due: due}
	}
}

// now reads CLOCK_MONOTONIC in nanoseconds, the clock the writer sleeps
// on.
func now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
