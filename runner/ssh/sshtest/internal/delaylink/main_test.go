package main

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// seqpacket returns a connected pair of SOCK_SEQPACKET sockets: like a
// TUN device, each read or write is one whole packet.
func seqpacket(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

type arrival struct {
	b  []byte
	at time.Time
}

// TestForward sends a burst of packets each way through a forwarder and
// checks that every packet arrives whole, in order, no sooner than the
// delay after it was sent, and that the burst's packets travel together
// rather than one delay after another.
func TestForward(t *testing.T) {
	const delay = 20 * time.Millisecond
	const n = 200
	// One socket pair per leg, so that the forwarder's writes block
	// rather than fail when a reader lags (AF_UNIX queues few packets,
	// net.unix.max_dgram_qlen; a TUN device takes every write): the test
	// writes to aIn, the forwarder reads aSrc and writes bDst, the test
	// reads bOut; and the other way round.
	aIn, aSrc := seqpacket(t)
	bIn, bSrc := seqpacket(t)
	aDst, aOut := seqpacket(t)
	bDst, bOut := seqpacket(t)
	for _, fd := range []int{aSrc, bSrc} {
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	var c counters
	f, err := newForwarder([]*direction{{src: aSrc, dst: bDst}, {src: bSrc, dst: aDst}}, int64(delay), &c)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		// The loop changes its thread's scheduling; the locked thread
		// ends with the goroutine.
		runtime.LockOSThread()
		done <- f.loop()
	}()

	packet := func(i int) []byte {
		b := bytes.Repeat([]byte{byte(i)}, 100+i*5)
		binary.BigEndian.PutUint32(b, uint32(i))
		return b
	}
	received := func(fd int) chan []arrival {
		ch := make(chan []arrival, 1)
		go func() {
			var got []arrival
			buf := make([]byte, 1<<16)
			for len(got) < n {
				k, err := unix.Read(fd, buf)
				if err != nil {
					break
				}
				got = append(got, arrival{append([]byte(nil), buf[:k]...), time.Now()})
			}
			ch <- got
		}()
		return ch
	}
	toB, toA := received(bOut), received(aOut)
	start := time.Now()
	for i := range n {
		if _, err := unix.Write(aIn, packet(i)); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(bIn, packet(i)); err != nil {
			t.Fatal(err)
		}
	}
	sent := time.Now()

	for name, ch := range map[string]chan []arrival{"a to b": toB, "b to a": toA} {
		var got []arrival
		select {
		case got = <-ch:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: packets missing after 30s", name)
		}
		if len(got) != n {
			t.Fatalf("%s: got %d packets, want %d", name, len(got), n)
		}
		for i, a := range got {
			if !bytes.Equal(a.b, packet(i)) {
				t.Fatalf("%s: packet %d: got %d bytes starting %x, want packet %d whole and in order", name, i, len(a.b), a.b[:4], i)
			}
			if d := a.at.Sub(start); d < delay {
				t.Errorf("%s: packet %d arrived %s after the burst started, want at least the delay, %s", name, i, d, delay)
			}
		}
		// In a row they would take n x delay (4s); together, about one
		// delay after the last was sent.
		if last := got[n-1].at.Sub(sent); last > n*delay/4 {
			t.Errorf("%s: last packet %s after the burst was sent, want about %s: packets wait for one another", name, last, delay)
		}
	}
	st := c.stats()
	if st.Packets != 2*n || st.Dropped != 0 {
		t.Errorf("stats: got %+v, want %d packets and no drops", st, 2*n)
	}
	// Closing the epoll descriptor does not wake a waiting loop; the next
	// packet does, and its next wait then fails.
	unix.Close(f.ep)
	if _, err := unix.Write(aIn, packet(0)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Errorf("loop: returned nil after its epoll descriptor was closed")
	}
}
