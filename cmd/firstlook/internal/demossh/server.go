// Package demossh is a small in-process SSH server for `firstlook demo`,
// which must run with no root, no network and no sshd. One Server plays a
// bastion (it only forwards direct-tcpip channels to an allow-list of
// addresses) or a host (it runs exec requests with /bin/sh -c as the
// current user). The demo's client talks to it exactly as to a real
// fleet: through the bastion, with host keys checked against a
// known_hosts file written from HostKey, and public-key auth.
//
// It is not a general SSH server: no pty, shell, subsystem, env or
// forwarding other than the bastion's direct-tcpip.
package demossh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
	"golang.org/x/sys/unix"
)

// Role is what a Server does.
type Role int

// Roles.
const (
	// RoleHost runs exec requests locally.
	RoleHost Role = iota + 1
	// RoleBastion forwards direct-tcpip channels to Options.AllowForward.
	RoleBastion
)

func (r Role) String() string {
	switch r {
	case RoleHost:
		return "host"
	case RoleBastion:
		return "bastion"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

const (
	handshakeTimeout = 10 * time.Second
	// waitDelay bounds how long a finished command's output pipes may be
	// held open by a background process before the session ends anyway.
	waitDelay = 2 * time.Second
)

// Options configure a Server.
type Options struct {
	Role Role
	// AuthorizedKey is the only key accepted, for any user name.
	AuthorizedKey xssh.PublicKey
	// AllowForward lists the "host:port" addresses a bastion forwards to,
	// exactly as the client asks for them (e.g. a host Server's Addr()).
	AllowForward []string
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
}

// Server is a running demo SSH server.
type Server struct {
	opts   Options
	ln     net.Listener
	signer xssh.Signer
	cfg    *xssh.ServerConfig
	stop   func() bool // unregisters the ctx hook

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{}
	wg     sync.WaitGroup
}

// Start listens and serves until Close or until ctx ends. The host key is
// a fresh Ed25519 key.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Role != RoleHost && opts.Role != RoleBastion {
		return nil, fmt.Errorf("demossh: unknown role %v", opts.Role)
	}
	if opts.AuthorizedKey == nil {
		return nil, errors.New("demossh: no authorized key")
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demossh: generate host key: %w", err)
	}
	signer, err := xssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("demossh: generate host key: %w", err)
	}
	want := opts.AuthorizedKey.Marshal()
	cfg := &xssh.ServerConfig{
		PublicKeyCallback: func(_ xssh.ConnMetadata, key xssh.PublicKey) (*xssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), want) {
				return &xssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
		ServerVersion: "SSH-2.0-firstlook-demo",
	}
	cfg.AddHostKey(signer)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("demossh: listen: %w", err)
	}
	s := &Server{opts: opts, ln: ln, signer: signer, cfg: cfg, conns: make(map[io.Closer]struct{})}
	s.goTracked(s.serve)
	s.stop = context.AfterFunc(ctx, func() { s.Close() })
	return s, nil
}

// Addr is the address the server listens on, host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey is the server's public host key.
func (s *Server) HostKey() xssh.PublicKey { return s.signer.PublicKey() }

// KnownHostsLine is the known_hosts line for this server, e.g.
// "[127.0.0.1]:40123 ssh-ed25519 AAAA…".
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{s.Addr()}, s.HostKey())
}

// Close stops listening, closes every connection (killing running
// commands) and waits for the server's goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if s.stop != nil {
		s.stop()
	}
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) goTracked(fn func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		fn()
	}()
	return true
}

// track registers c to be closed by Close; false if already closed.
func (s *Server) track(c io.Closer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c io.Closer) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

func (s *Server) serve() {
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		if !s.track(nc) || !s.goTracked(func() { s.handleConn(nc) }) {
			nc.Close()
			return
		}
	}
}

func (s *Server) handleConn(nc net.Conn) {
	defer s.untrack(nc)
	nc.SetDeadline(time.Now().Add(handshakeTimeout))
	sc, chans, reqs, err := xssh.NewServerConn(nc, s.cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	nc.SetDeadline(time.Time{})
	// Global requests (keepalive@openssh.com) get "failure", as from
	// OpenSSH: any reply proves the connection is alive.
	if !s.goTracked(func() { xssh.DiscardRequests(reqs) }) {
		return
	}
	for newCh := range chans {
		switch {
		case s.opts.Role == RoleHost && newCh.ChannelType() == "session":
			s.goTracked(func() { s.session(newCh) })
		case s.opts.Role == RoleBastion && newCh.ChannelType() == "direct-tcpip":
			s.goTracked(func() { s.forward(newCh) })
		default:
			newCh.Reject(xssh.Prohibited, fmt.Sprintf("%s channels are not served by this %s", newCh.ChannelType(), s.opts.Role))
		}
	}
}

// forward serves a direct-tcpip channel (RFC 4254 section 7.2).
func (s *Server) forward(newCh xssh.NewChannel) {
	var req struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := xssh.Unmarshal(newCh.ExtraData(), &req); err != nil {
		newCh.Reject(xssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	addr := net.JoinHostPort(req.Host, strconv.FormatUint(uint64(req.Port), 10))
	if !slices.Contains(s.opts.AllowForward, addr) {
		newCh.Reject(xssh.Prohibited, "forwarding to "+addr+" is not allowed")
		return
	}
	tcp, err := net.DialTimeout("tcp", addr, handshakeTimeout)
	if err != nil {
		newCh.Reject(xssh.ConnectionFailed, err.Error())
		return
	}
	if !s.track(tcp) {
		tcp.Close()
		newCh.Reject(xssh.ConnectionFailed, "server closing")
		return
	}
	defer s.untrack(tcp)
	ch, reqs, err := newCh.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	s.goTracked(func() { xssh.DiscardRequests(reqs) }) // ends when ch closes
	// host -> client ends when the host closes its side, or when Close
	// closes tcp.
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(ch, tcp)
		ch.CloseWrite()
	}()
	io.Copy(tcp, ch)
	if tc, ok := tcp.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	<-done
}

// session serves one session channel: a single exec request, signals, and
// the kill of the command's process group when the channel goes away.
func (s *Server) session(newCh xssh.NewChannel) {
	ch, reqs, err := newCh.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var p *process
	for req := range reqs {
		switch req.Type {
		case "exec":
			var msg struct{ Command string }
			if p != nil || xssh.Unmarshal(req.Payload, &msg) != nil {
				req.Reply(false, nil)
				continue
			}
			p, err = s.start(ch, msg.Command)
			req.Reply(err == nil, nil)
			if err != nil {
				// Keep draining reqs until the client closes: x/crypto
				// delivers requests in order, and an unread one would
				// stall the connection.
				ch.Close()
			}
		case "signal":
			var msg struct{ Signal string }
			if p != nil && xssh.Unmarshal(req.Payload, &msg) == nil {
				if sig := unix.SignalNum("SIG" + msg.Signal); sig != 0 {
					p.signal(sig)
				}
			}
			if req.WantReply {
				req.Reply(p != nil, nil)
			}
		default:
			if req.WantReply {
				req.Reply(false, nil)
			}
		}
	}
	// The client closed the channel (or the connection went): nothing may
	// outlive it.
	if p != nil {
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// process is a command started by an exec request, leading its own process
// group so that a signal reaches its pipelines and children too.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the exit is reported

	mu     sync.Mutex
	exited bool
}

func (s *Server) start(ch xssh.Channel, command string) (*process, error) {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	cmd.WaitDelay = waitDelay
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	// Copies stdin until the client's EOF; ends when the channel closes,
	// which session's caller guarantees.
	s.goTracked(func() {
		io.Copy(stdin, ch)
		stdin.Close()
	})
	s.goTracked(func() {
		defer close(p.done)
		cmd.Wait() // the status is in ProcessState; ErrWaitDelay only means output was cut short
		p.mu.Lock()
		p.exited = true
		p.mu.Unlock()
		reportExit(ch, cmd.ProcessState)
		ch.CloseWrite()
		ch.Close()
	})
	return p, nil
}

// signal signals the process group, unless the command has been reaped
// (its pid, hence group id, could then belong to someone else).
func (p *process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.exited {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// reportExit sends exit-status, or exit-signal for a command killed by a
// signal, as OpenSSH does (RFC 4254 section 6.10).
func reportExit(ch xssh.Channel, ps *os.ProcessState) {
	if ps == nil {
		return
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok {
		return
	}
	if ws.Signaled() {
		msg := struct {
			Signal     string
			CoreDumped bool
			Error      string
			Lang       string
		}{Signal: strings.TrimPrefix(unix.SignalName(ws.Signal()), "SIG"), CoreDumped: ws.CoreDump()}
		ch.SendRequest("exit-signal", false, xssh.Marshal(&msg))
		return
	}
	ch.SendRequest("exit-status", false, xssh.Marshal(&struct{ Status uint32 }{uint32(ws.ExitStatus())}))
}
