package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"
)

const (
	// maxRunsPerConn keeps concurrent Runs on one connection below
	// OpenSSH's default MaxSessions (10, sshd_config(5)), with one session
	// to spare for stopping a timed-out command: beyond the limit sshd
	// refuses the channel ("administratively prohibited").
	maxRunsPerConn = 9
	// pidWait is how long a stop waits for the command's pid line when it
	// has not arrived yet (a timeout right after the start).
	pidWait = time.Second
	// killTimeout bounds the session that kills a timed-out command; the
	// kill script itself gives TERM up to 1s before KILL.
	killTimeout = 5 * time.Second
	// stopGrace is how long a stop waits for the session to end after the
	// kill, before reporting ErrNotStopped.
	stopGrace = 3 * time.Second
	// openRetryMax is the longest pause between attempts to open a
	// session that sshd refused: 10ms doubling to it, each drawn from its
	// upper half, seven pauses adding up to 0.6-1.3s.
	openRetryMax = 640 * time.Millisecond
)

// Client is one authenticated connection to a host. It is safe for
// concurrent Runs.
type Client struct {
	d       *Dialer
	hop     hop
	conn    *xssh.Client
	bastion *bastion // nil for a direct connection

	runs   chan struct{} // one token per Run in progress
	killMu sync.Mutex    // one kill session at a time: the spare session slot
	cancel context.CancelFunc

	spareMu      sync.Mutex
	spare        *session // a channel opened for the next Run
	spareOpening bool

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // watcher and session waiters
}

func (d *Dialer) newClient(conn *xssh.Client, h hop, b *bastion) (*Client, error) {
	ctx, cancel := context.WithCancel(d.ctx)
	c := &Client{d: d, hop: h, conn: conn, bastion: b, runs: make(chan struct{}, maxRunsPerConn), cancel: cancel}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		cancel()
		conn.Close()
		return nil, ErrClosed
	}
	d.clients[c] = struct{}{}
	d.mu.Unlock()
	c.goTracked(func() { d.watch(ctx, conn) })
	return c, nil
}

// Close closes the connection, ending any Run on it, and waits for the
// Client's goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.spareMu.Lock()
	if c.spare != nil {
		c.spare.close()
		c.spare = nil
	}
	c.spareMu.Unlock()
	c.cancel()
	c.conn.Close()
	c.wg.Wait()
	c.d.mu.Lock()
	delete(c.d.clients, c)
	c.d.mu.Unlock()
	return nil
}

func (c *Client) goTracked(fn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// RunOptions tune one Run.
type RunOptions struct {
	// Stdin, if set, is sent to the command's standard input, then EOF.
	// It is read to EOF by a goroutine that Run waits for, so it must end
	// (a script in a bytes.Reader, not os.Stdin).
	Stdin io.Reader
	// MaxOutput caps the bytes kept of stdout and of stderr, each;
	// 0 means the Dialer's max_output.
	MaxOutput int64
}

// Result is what a command did. A non-zero exit is a Result, not an error.
type Result struct {
	// Command is the exact string sent to the server: the command given to
	// Run behind a one-line preamble (see Run).
	Command string
	// ExitCode is the command's exit status, or -1 when it did not exit by
	// itself: killed by a signal, or stopped because ctx ended.
	ExitCode int
	Signal   string // the signal the host reported, e.g. "TERM", if any

	Stdout, Stderr                   []byte // the first MaxOutput bytes of each
	StdoutBytes, StderrBytes         int64  // the total bytes each produced
	StdoutTruncated, StderrTruncated bool

	Started  time.Time
	Duration time.Duration
	// TimedOut is set when ctx's deadline ended the command (or expired
	// before it started); the command was stopped on the host.
	TimedOut bool
}

// pidMarker prefixes the line the preamble writes to stderr.
const pidMarker = "firstlook-pid="

// wrapCommand prepends the preamble that reports the remote shell's pid.
//
// Why: when ctx ends, the command must not keep running on the host, and
// OpenSSH (9.2, measured against Debian's sshd) does not guarantee that by
// itself for a command without a pty:
//   - closing the channel, or the whole connection, leaves "sleep 300" and
//     "sleep 300 | cat" running: sshd closes their pipes, and a process
//     that never writes never notices;
//   - the "signal" channel request is honoured (sshd does killpg on the
//     session's process group, pipeline included) only for privilege-
//     separated sessions: for root logins sshd logs "session signalling
//     requires privilege separation" and ignores it, and with want-reply
//     false the client cannot tell.
//
// sshd starts each session's shell with setsid(), so the shell's pid is
// also its process group and session id, and a non-interactive shell keeps
// pipelines and background jobs in that group. Knowing "$$" lets a second
// session run "kill -- -PID", which works for root and non-root alike, on
// any POSIX login shell. The preamble is one printf on stderr, in the same
// shell as the command (no re-exec, so the login shell's semantics are
// unchanged); Run strips that line from Stderr. The command runs after a
// newline, so it may start with anything, comments included.
func wrapCommand(cmd string) string {
	return "printf '" + pidMarker + "%s\\n' \"$$\" >&2\n" + cmd
}

// killScript stops a process group: TERM, up to 1s for it to go, then KILL.
// "sleep 0.1" needs GNU or busybox sleep; where it fails the loop just
// finishes sooner. kill -0 also counts zombies not yet reaped, so the loop
// may run its full second: the KILL is then a harmless no-op.
func killScript(pgid int) string {
	g := "-" + strconv.Itoa(pgid)
	return "kill -s TERM -- " + g + " 2>/dev/null || exit 0\n" +
		"i=0; while [ $i -lt 10 ] && kill -s 0 -- " + g + " 2>/dev/null; do sleep 0.1; i=$((i+1)); done\n" +
		"kill -s KILL -- " + g + " 2>/dev/null; exit 0\n"
}

// Run runs cmd on the host in a new session and waits for it. The error is
// for failures to run it (session refused, connection lost), or for a
// context that ended before the command started; a non-zero exit is in the
// Result.
//
// When ctx ends first, Run stops the command (see wrapCommand): it sends
// the "signal" request (TERM), kills the command's process group from a
// second session (TERM, then KILL after 1s), closes the session, and
// returns with TimedOut set for a deadline. A cancelled ctx returns the
// Result with ctx's error. If the session has not ended a few seconds after
// the kill, Run returns ErrNotStopped: the command may still be running.
func (c *Client) Run(ctx context.Context, cmd string, opts RunOptions) (Result, error) {
	res := Result{Command: wrapCommand(cmd), ExitCode: -1}
	if cmd == "" {
		return res, fmt.Errorf("run on %s: empty command", c.hop.name)
	}
	limit := opts.MaxOutput
	if limit <= 0 {
		limit = c.d.cfg.MaxOutput
	}
	notStarted := func(err error) (Result, error) {
		res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		return res, fmt.Errorf("run on %s: %w", c.hop.name, err)
	}

	select {
	case c.runs <- struct{}{}:
		defer func() { <-c.runs }()
	case <-ctx.Done():
		return notStarted(fmt.Errorf("wait for a session: %w", ctx.Err()))
	}
	if c.bastion != nil {
		if err := c.d.acquire(ctx, c.bastion); err != nil {
			return notStarted(err)
		}
		defer c.bastion.release()
	}
	if err := ctx.Err(); err != nil {
		return notStarted(err)
	}

	sess, err := c.takeSession(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return notStarted(err)
		}
		return res, fmt.Errorf("run on %s: open session: %w", c.hop.name, err)
	}
	stdout, stderr := &capture{max: limit}, &capture{max: limit}
	pids := newPIDFilter(stderr)

	res.Started = time.Now()
	if err := sess.start(res.Command, opts.Stdin, stdout, pids, c.goTracked); err != nil {
		sess.close()
		return res, fmt.Errorf("run on %s: start: %w", c.hop.name, err)
	}
	waited := make(chan exitStatus, 1)
	if !c.goTracked(func() { waited <- sess.wait() }) {
		sess.close()
		return res, fmt.Errorf("run on %s: %w", c.hop.name, ErrClosed)
	}

	var status exitStatus
	stopped, ended := false, true
	select {
	case status = <-waited:
	case <-ctx.Done():
		res.TimedOut = errors.Is(ctx.Err(), context.DeadlineExceeded)
		stopped = true
		status, ended = c.stop(ctx, sess, pids, waited)
	}
	res.Duration = time.Since(res.Started)
	pids.flush()
	res.Stdout, res.StdoutBytes, res.StdoutTruncated = stdout.result()
	res.Stderr, res.StderrBytes, res.StderrTruncated = stderr.result()

	switch {
	case !ended:
		res.ExitCode = -1
		return res, fmt.Errorf("run on %s: %w after %s; it may still be running on the host", c.hop.name, ErrNotStopped, ctx.Err())
	case status.signal != "":
		// The host reported a signal, not a status (OpenSSH sends
		// exit-signal for a killed command).
		res.ExitCode, res.Signal = -1, status.signal
	case status.reported:
		res.ExitCode = status.code
	case stopped:
		// We closed the session; no status is expected.
	default:
		return res, fmt.Errorf("run on %s: session ended without an exit status (the host refused the command, or the connection was lost)", c.hop.name)
	}
	if stopped {
		// We ended it: whatever status the host saw is ours, not the
		// command's (Signal keeps what the host reported).
		res.ExitCode = -1
		if !res.TimedOut {
			return res, fmt.Errorf("run on %s: %w", c.hop.name, ctx.Err())
		}
	}
	return res, nil
}

// stop ends a running session whose ctx has ended; see wrapCommand for why
// it takes all three steps. It returns the session's status and whether
// the session ended.
func (c *Client) stop(ctx context.Context, sess *session, pids *pidFilter, waited <-chan exitStatus) (exitStatus, bool) {
	// Honoured by OpenSSH for non-root users (killpg of the session); a
	// no-op elsewhere, hence the kill below.
	sess.signal(xssh.SIGTERM)
	if pid := pids.wait(pidWait); pid > 0 {
		c.kill(ctx, pid)
	}
	// Closing our end lets sshd close the channel once the shell is gone,
	// even if a stray process still holds its output pipes.
	sess.close()
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case st := <-waited:
		return st, true
	case <-timer.C:
		// The waiter goroutine ends when the connection closes; the
		// Client owns it.
		return exitStatus{}, false
	}
}

// kill runs killScript on a second session of the same connection.
func (c *Client) kill(ctx context.Context, pgid int) {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	// ctx has ended already; keep its values, not its deadline.
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killTimeout)
	defer cancel()
	sess, err := c.openChannel(kctx)
	if err != nil {
		return
	}
	if sess.start(killScript(pgid), nil, io.Discard, io.Discard, c.goTracked) != nil {
		sess.close()
		return
	}
	done := make(chan struct{})
	if !c.goTracked(func() {
		defer close(done)
		sess.wait()
	}) {
		sess.close()
		return
	}
	select {
	case <-done:
	case <-kctx.Done():
		sess.close()
	}
}
