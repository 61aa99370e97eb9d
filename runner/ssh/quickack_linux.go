package ssh

import (
	"net"
	"syscall"
)

// quickAck wraps a TCP connection so that the kernel acknowledges what
// arrives at once instead of up to 40 ms later. A bastion that only
// forwards a host's channel (no session of its own) leaves Nagle's
// algorithm on its side of the connection (sshd sets TCP_NODELAY when a
// session starts), so each burst a host sends after a first small packet
// (a command's exit status, EOF and close after its output) waited for
// our delayed ACK: about 40 ms on every step of every playbook. Linux
// drops back to delayed ACKs on its own, so the option is set again before
// every read.
func quickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{TCPConn: tc, raw: raw}
}

type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	_ = c.raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
	return c.TCPConn.Read(p)
}
