package sshtest_test

import (
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// fastest runs f n times and returns the shortest time it took: the
// round trips a link adds are a floor that no sample can go below, and
// the fastest sample is the one least disturbed by a busy machine.
//
// It pauses between samples. sshd sets TCP_NODELAY only for interactive
// sessions, so on the bastion connection an answer sent while the
// previous one is still unacknowledged waits for the client's delayed
// ACK (up to 40 ms, Nagle's algorithm): real TCP behaviour, which netem
// would show too, but not the link's round trip this test checks.
func fastest(t *testing.T, n int, f func() error) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		time.Sleep(50 * time.Millisecond)
		t0 := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(t0))
	}
	return slices.Min(ds)
}

// TestHopDelay checks the harness, not firstlook: that HopDelay adds its
// round trip to each link, at the packet level (a TCP connect pays it),
// without limiting bandwidth, and leaves the topology as it was.
func TestHopDelay(t *testing.T) {
	const delay = 10 * time.Millisecond
	// What a link may add on top of its delay in the fastest of several
	// samples: scheduling on a machine busy with other tests.
	const slack = 10 * time.Millisecond
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"web-1", "web-2"}, HopDelay: delay})
	cfg := clientConfig(t, n)

	// A TCP connect is one round trip of the test–bastion link: the SYN
	// out, the SYN-ACK back.
	connect := fastest(t, 9, func() error {
		c, err := net.DialTimeout("tcp", n.Bastion().Addr, 5*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if connect < 2*delay || connect > 2*delay+slack {
		t.Errorf("TCP connect to the bastion: got %s, want one round trip, %s (+ up to %s)", connect, 2*delay, slack)
	}

	bastion, err := xssh.Dial("tcp", n.Bastion().Addr, cfg)
	if err != nil {
		t.Fatalf("dial bastion: %v", err)
	}
	defer bastion.Close()
	// A channel to a host is a round trip to the bastion around the
	// bastion's own TCP connect to the host: two round trips.
	host := n.Host("web-1").Addr
	open := fastest(t, 9, func() error {
		c, err := bastion.Dial("tcp", host)
		if err == nil {
			c.Close()
		}
		return err
	})
	if open < 4*delay || open > 4*delay+2*slack {
		t.Errorf("channel to %s through the bastion: got %s, want two round trips, %s (+ up to %s)", host, open, 4*delay, 2*slack)
	}

	for _, h := range n.Hosts() {
		if got := hostname(t, bastion, h.Addr, cfg); got != h.Name {
			t.Errorf("hostname via %s: got %q, want %q", h.Addr, got, h.Name)
		}
		out, err := n.Exec(context.Background(), h.Name, "ip", "-4", "route")
		if err != nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("routes on %s: got %q, %v, want only its link to the bastion", h.Name, out, err)
		}
	}

	before := n.DelayStats()
	// 8 MiB through both links, whole. Were the delay added per packet
	// in turn rather than to packets in flight together, this would take
	// minutes (some 6,000 packets each delayed 20 ms in a row).
	const size = 8 << 20
	conn, err := bastion.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	c, chans, reqs, err := xssh.NewClientConn(conn, host, cfg)
	if err != nil {
		t.Fatal(err)
	}
	web := xssh.NewClient(c, chans, reqs)
	defer web.Close()
	sess, err := web.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("head -c 8388608 /dev/zero"); err != nil {
		t.Fatal(err)
	}
	done := make(chan int64, 1)
	go func() {
		got, _ := io.Copy(io.Discard, out)
		done <- got
	}()
	select {
	case got := <-done:
		if got != size {
			t.Errorf("bulk transfer: got %d bytes, want %d", got, size)
		}
	case <-time.After(30 * time.Second):
		sess.Close()
		t.Fatalf("bulk transfer: %d bytes not through after 30s: the links limit bandwidth", size)
	}
	sess.Wait()

	// Drops happen only while New sets the links up (IPv6 router
	// solicitations sent before the far end is up); none afterwards.
	st := n.DelayStats().Sub(before)
	t.Logf("delay links: before the bulk transfer %+v (late %s on average), during it %+v (late %s)", before, before.LateMean(), st, st.LateMean())
	if st.HopDelay != delay || st.Bytes < 2*size || st.Dropped != 0 {
		t.Errorf("DelayStats during the bulk transfer: got %+v, want HopDelay %s, at least %d bytes (two links) and no drops", st, delay, 2*size)
	}

	// Stop and Start restart a server behind its link; the link stays.
	n.Stop("web-2")
	n.Start("web-2")
	if got := hostname(t, bastion, n.Host("web-2").Addr, cfg); got != "web-2" {
		t.Errorf("hostname after restart: got %q, want web-2", got)
	}
}

func TestNoDelayStats(t *testing.T) {
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"h"}})
	if got := n.DelayStats(); got != (sshtest.DelayStats{}) {
		t.Errorf("DelayStats without HopDelay: got %+v, want zero", got)
	}
}
