// Package ssh connects to hosts, directly or through a bastion, and runs
// commands on them, with every hop's host key checked against known_hosts.
//
// A Dialer pools one connection per bastion (address and user) and reaches
// each host over a direct-tcpip channel through it, so a burst of incidents
// behind one bastion costs one bastion handshake, not one per job. A Client
// is one authenticated connection to one host; each Run opens a session on
// it, captures stdout and stderr separately with a byte cap, and makes sure
// the remote command does not outlive the Run's context.
//
// The package imports golang.org/x/crypto/ssh as xssh.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"
)

// clientVersion identifies us in the hosts' sshd logs.
const clientVersion = "SSH-2.0-firstlook"

// Dialer connects to Targets. It is safe for concurrent use.
type Dialer struct {
	cfg       Config
	hostKeys  *hostKeys
	signers   []xssh.Signer
	agentSock string

	// ctx ends when the Dialer closes; it is the parent of every pooled
	// connection's watcher and of bastion dials, which outlive any one
	// caller. It is not a request context.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // bastion dials and bastion watchers

	mu       sync.Mutex
	closed   bool
	bastions map[string]*bastion
	clients  map[*Client]struct{}

	bastionDials  atomic.Int64
	bastionReuses atomic.Int64
	bastionDrops  atomic.Int64
	hostDials     atomic.Int64
	sessionWaits  atomic.Int64
}

// Stats are counters for tests and metrics.
type Stats struct {
	BastionDials  int64 // bastion connections attempted
	BastionReuses int64 // Dials served by a pooled or in-flight bastion connection
	BastionDrops  int64 // pooled bastion connections dropped as dead
	BastionConns  int   // bastion connections pooled now
	HostDials     int64 // host connections attempted
	SessionWaits  int64 // times a handshake or Run waited for a bastion slot
}

// New checks cfg, reads the known_hosts and identity files, and returns a
// Dialer. It does not connect anywhere.
func New(cfg Config) (*Dialer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	cfg = cfg.WithDefaults()
	hk, err := loadHostKeys(cfg.KnownHosts)
	if err != nil {
		return nil, err
	}
	d := &Dialer{
		cfg:      cfg,
		hostKeys: hk,
		bastions: make(map[string]*bastion),
		clients:  make(map[*Client]struct{}),
	}
	for _, f := range cfg.IdentityFiles {
		s, err := loadIdentity(f)
		if err != nil {
			return nil, err
		}
		d.signers = append(d.signers, s)
	}
	if cfg.Agent {
		d.agentSock = os.Getenv("SSH_AUTH_SOCK")
		if d.agentSock == "" {
			return nil, errors.New("ssh config: agent: true but SSH_AUTH_SOCK is not set")
		}
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d, nil
}

// Stats returns the current counters.
func (d *Dialer) Stats() Stats {
	s := Stats{
		BastionDials:  d.bastionDials.Load(),
		BastionReuses: d.bastionReuses.Load(),
		BastionDrops:  d.bastionDrops.Load(),
		HostDials:     d.hostDials.Load(),
		SessionWaits:  d.sessionWaits.Load(),
	}
	d.mu.Lock()
	bs := make([]*bastion, 0, len(d.bastions))
	for _, b := range d.bastions {
		bs = append(bs, b)
	}
	d.mu.Unlock()
	for _, b := range bs {
		b.mu.Lock()
		if b.conn != nil {
			s.BastionConns++
		}
		b.mu.Unlock()
	}
	return s
}

// Dial connects to t, through its bastion when it has one. ctx bounds the
// dial only; the Client lives until Close. Host key failures are
// *HostKeyError; other connection failures are *HopError.
func (d *Dialer) Dial(ctx context.Context, t Target) (*Client, error) {
	bh, hh, err := t.hops()
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	d.mu.Lock()
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if bh == nil {
		conn, _, err := d.dialHost(ctx, hh, nil, nil)
		if err != nil {
			return nil, err
		}
		return d.newClient(conn, hh, nil)
	}
	b, err := d.bastionFor(*bh)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		bc, err := d.bastionConn(ctx, b)
		if err != nil {
			return nil, err
		}
		conn, dead, err := d.dialHost(ctx, hh, b, bc)
		if dead {
			// The pooled connection broke since its last keepalive: drop
			// it and redial, once, so a bastion restart costs one retry
			// rather than a failed job.
			d.drop(b, bc)
			if attempt == 0 {
				continue
			}
		}
		if err != nil {
			return nil, err
		}
		return d.newClient(conn, hh, b)
	}
}

// Close closes every Client and pooled connection and waits for their
// goroutines. Dial fails with ErrClosed afterwards.
func (d *Dialer) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	clients := make([]*Client, 0, len(d.clients))
	for c := range d.clients {
		clients = append(clients, c)
	}
	bastions := make([]*bastion, 0, len(d.bastions))
	for _, b := range d.bastions {
		bastions = append(bastions, b)
	}
	d.mu.Unlock()

	d.cancel()
	for _, c := range clients {
		c.Close()
	}
	for _, b := range bastions {
		b.mu.Lock()
		if b.conn != nil {
			b.conn.client.Close()
			b.conn = nil
		}
		b.mu.Unlock()
	}
	d.wg.Wait()
	return nil
}

// goTracked runs fn on a goroutine that Close waits for, unless the Dialer
// is closed.
func (d *Dialer) goTracked(fn func()) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		fn()
	}()
	return true
}

// bastion is the pool entry for one bastion address and user.
type bastion struct {
	hop hop
	// sem holds one token per handshake or Run in progress through this
	// bastion, whichever host it is for.
	sem chan struct{}

	mu   sync.Mutex
	conn *bastionConn // the pooled connection, nil when none
	call *dialCall    // the dial in flight, shared by concurrent Dials
}

type bastionConn struct {
	client *xssh.Client
}

// dialCall is one bastion dial shared by every Dial that needs it while it
// runs. It is cancelled when all of them have given up.
type dialCall struct {
	done    chan struct{}
	conn    *bastionConn
	err     error
	waiters int
	cancel  context.CancelFunc
}

func (d *Dialer) bastionFor(h hop) (*bastion, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	key := h.user + "@" + h.addr
	b := d.bastions[key]
	if b == nil {
		b = &bastion{hop: h, sem: make(chan struct{}, d.cfg.MaxSessionsPerBastion)}
		d.bastions[key] = b
	}
	return b, nil
}

// bastionConn returns the pooled connection to b, dialling it if there is
// none. Concurrent callers share one dial.
func (d *Dialer) bastionConn(ctx context.Context, b *bastion) (*bastionConn, error) {
	b.mu.Lock()
	if b.conn != nil {
		bc := b.conn
		b.mu.Unlock()
		d.bastionReuses.Add(1)
		return bc, nil
	}
	call := b.call
	if call == nil {
		// The dial runs under the Dialer's context, not ctx: its result
		// serves every waiter, so no single waiter's ctx may cancel it.
		dctx, cancel := context.WithTimeoutCause(d.ctx, d.cfg.ConnectTimeout, connectTimeoutError(d.cfg.ConnectTimeout))
		call = &dialCall{done: make(chan struct{}), cancel: cancel}
		if !d.goTracked(func() { d.dialBastion(dctx, b, call) }) {
			b.mu.Unlock()
			cancel()
			return nil, ErrClosed
		}
		b.call = call
		d.bastionDials.Add(1)
	} else {
		d.bastionReuses.Add(1)
	}
	call.waiters++
	b.mu.Unlock()

	select {
	case <-call.done:
		return call.conn, call.err
	case <-ctx.Done():
		b.mu.Lock()
		call.waiters--
		if call.waiters == 0 {
			call.cancel()
		}
		b.mu.Unlock()
		return nil, &HopError{Hop: HopBastion, Name: b.hop.name, Addr: b.hop.addr, User: b.hop.user, Op: OpDial, Err: ctx.Err()}
	}
}

func (d *Dialer) dialBastion(ctx context.Context, b *bastion, call *dialCall) {
	defer call.cancel()
	client, err := d.connectBastion(ctx, b.hop)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.call = nil
	if err == nil {
		bc := &bastionConn{client: client}
		watched := d.goTracked(func() {
			d.watch(d.ctx, client)
			d.drop(b, bc)
		})
		if watched {
			b.conn, call.conn = bc, bc
		} else {
			client.Close()
			err = ErrClosed
		}
	}
	call.err = err
	close(call.done)
}

func (d *Dialer) connectBastion(ctx context.Context, h hop) (*xssh.Client, error) {
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		return nil, &HopError{Hop: h.kind, Name: h.name, Addr: h.addr, User: h.user, Op: OpDial, Err: err}
	}
	return d.handshake(ctx, quickAck(conn), h)
}

// drop removes bc from the pool if it is still pooled, and closes it.
func (d *Dialer) drop(b *bastion, bc *bastionConn) {
	b.mu.Lock()
	if b.conn == bc {
		b.conn = nil
		if d.ctx.Err() == nil {
			d.bastionDrops.Add(1)
		}
	}
	b.mu.Unlock()
	bc.client.Close()
}

// acquire takes one of b's session slots.
func (d *Dialer) acquire(ctx context.Context, b *bastion) error {
	select {
	case b.sem <- struct{}{}:
		return nil
	default:
	}
	d.sessionWaits.Add(1)
	select {
	case b.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no free session slot on bastion %s (max_sessions_per_bastion %d): %w", b.hop.name, cap(b.sem), ctx.Err())
	}
}

func (b *bastion) release() { <-b.sem }

// dialHost connects to h, directly (bc nil) or through bc. dead reports a
// transport failure of bc itself, as opposed to the bastion refusing or
// failing to reach the host.
func (d *Dialer) dialHost(ctx context.Context, h hop, b *bastion, bc *bastionConn) (client *xssh.Client, dead bool, err error) {
	hopErr := func(op string, err error) *HopError {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return &HopError{Hop: h.kind, Name: h.name, Addr: h.addr, Via: h.via, User: h.user, Op: op, Err: err}
	}
	if b != nil {
		// Waiting for a slot is throttling, not a connection problem: it
		// is bounded by ctx alone, before connect_timeout starts.
		if err := d.acquire(ctx, b); err != nil {
			return nil, false, &HopError{Hop: h.kind, Name: h.name, Addr: h.addr, Via: h.via, User: h.user, Op: OpQueue, Err: err}
		}
		defer b.release()
	}
	d.hostDials.Add(1)
	ctx, cancel := context.WithTimeoutCause(ctx, d.cfg.ConnectTimeout, connectTimeoutError(d.cfg.ConnectTimeout))
	defer cancel()

	var conn net.Conn
	if bc == nil {
		var nd net.Dialer
		if conn, err = nd.DialContext(ctx, "tcp", h.addr); err != nil {
			return nil, false, hopErr(OpDial, err)
		}
	} else if conn, err = bc.client.DialContext(ctx, "tcp", h.addr); err != nil {
		var refused *xssh.OpenChannelError
		dead := ctx.Err() == nil && !errors.As(err, &refused)
		if dead {
			err = fmt.Errorf("connection to bastion lost: %w", err)
		}
		return nil, dead, hopErr(OpDial, err)
	}
	client, err = d.handshake(ctx, conn, h)
	return client, false, err
}

// handshake runs the SSH handshake for h over conn, which it owns: on error
// conn is closed. ctx bounds it; x/crypto has no context here, so closing
// conn is what interrupts it.
func (d *Dialer) handshake(ctx context.Context, conn net.Conn, h hop) (*xssh.Client, error) {
	a := d.authFor(d.cfg.ConnectTimeout)
	defer a.close()
	fail := func(op string, err error) *HopError {
		return &HopError{Hop: h.kind, Name: h.name, Addr: h.addr, Via: h.via, User: h.user, Op: op, Err: err}
	}
	if len(a.signers) == 0 {
		conn.Close()
		return nil, fail(OpAuth, fmt.Errorf("no keys to offer: %w", a.agentErr))
	}

	var hkErr *HostKeyError
	cfg := &xssh.ClientConfig{
		User:              h.user,
		Auth:              []xssh.AuthMethod{xssh.PublicKeys(a.signers...)},
		HostKeyCallback:   d.hostKeys.callback(h, &hkErr),
		HostKeyAlgorithms: d.hostKeys.algorithms(h.addr),
		ClientVersion:     clientVersion,
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := xssh.NewClientConn(conn, h.addr, cfg)
	interrupted := !stop()
	if err == nil && interrupted {
		c.Close()
		err = context.Cause(ctx)
	}
	if err != nil {
		conn.Close()
		var neg *xssh.AlgorithmNegotiationError
		switch {
		case hkErr != nil:
			return nil, hkErr
		case interrupted:
			return nil, fail(OpHandshake, context.Cause(ctx))
		case errors.As(err, &neg) && neg.What == "host key" && cfg.HostKeyAlgorithms != nil:
			return nil, d.hostKeys.mismatchedTypes(h, err)
		case strings.Contains(err.Error(), "unable to authenticate"):
			// x/crypto has no typed error for this; its message is stable.
			if a.agentErr != nil {
				err = fmt.Errorf("%w (%v)", err, a.agentErr)
			}
			return nil, fail(OpAuth, trimHandshakePrefix(err))
		default:
			return nil, fail(OpHandshake, trimHandshakePrefix(err))
		}
	}
	return xssh.NewClient(c, chans, reqs), nil
}

// trimHandshakePrefix drops x/crypto's "ssh: handshake failed: " wrapper,
// which the HopError's own label makes redundant.
func trimHandshakePrefix(err error) error {
	if strings.HasPrefix(err.Error(), "ssh: handshake failed: ") {
		if inner := errors.Unwrap(err); inner != nil {
			return inner
		}
	}
	return err
}

func connectTimeoutError(d time.Duration) error {
	return fmt.Errorf("connect_timeout %s exceeded: %w", d, context.DeadlineExceeded)
}

// watch keeps conn alive until ctx ends or conn dies: every keepalive
// interval it sends keepalive@openssh.com and closes conn when the reply
// does not come within the connect timeout. It returns once conn is closed.
func (d *Dialer) watch(ctx context.Context, conn *xssh.Client) {
	dead := make(chan struct{})
	go func() {
		conn.Wait() // returns once conn is closed, which every path below ensures
		close(dead)
	}()
	tick := time.NewTicker(d.cfg.KeepaliveInterval)
	defer tick.Stop()
	for {
		select {
		case <-dead:
			return
		case <-ctx.Done():
			conn.Close()
			<-dead
			return
		case <-tick.C:
			// SendRequest has no deadline; closing the connection is what
			// unblocks it when the peer has vanished.
			timer := time.AfterFunc(d.cfg.ConnectTimeout, func() { conn.Close() })
			_, _, err := conn.SendRequest("keepalive@openssh.com", true, nil)
			timer.Stop()
			if err != nil {
				conn.Close()
			}
		}
	}
}
