package ssh

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/firstlook/firstlook/evidence/retry"
)

// session is one "session" channel run the way Run needs it. Unlike
// x/crypto's Session, it sends "exec" without asking for a reply: waiting
// for it costs a round trip over every hop before the command even starts,
// and a refused exec shows anyway (the channel closes without an exit
// status). With a spare channel opened while the previous step runs (see
// Client.takeSession), a step costs one round trip (the exec out, the
// status back) plus the command's own time, instead of three (open, exec
// reply, status): through a bastion with 20 ms per hop, 40 ms a step
// instead of 120 (BenchmarkPlaybookSSH).
type session struct {
	ch   xssh.Channel
	reqs <-chan *xssh.Request

	done   chan struct{} // closed when output and requests are drained
	status exitStatus
}

// exitStatus is what the host said about how the command ended.
type exitStatus struct {
	reported bool   // an exit-status or exit-signal arrived
	code     int    // exit-status
	signal   string // exit-signal, e.g. "KILL"
}

// openRetry bounds openChannel's retries: eight attempts.
var openRetry = retry.Policy{Name: "ssh: open session", Initial: 10 * time.Millisecond, Max: openRetryMax, MaxTries: 8}

// openChannel opens a session channel, retrying while sshd refuses it.
// sshd frees a session's slot a moment after it has sent the channel close
// that ends our wait, so a Run that follows another at the MaxSessions
// limit can be refused ("open failed") for a few milliseconds. A refused
// channel ran nothing, so retrying is safe.
func (c *Client) openChannel(ctx context.Context) (*session, error) {
	var s *session
	err := retry.Do(ctx, openRetry, func(err error) (bool, time.Duration) {
		var refused *xssh.OpenChannelError
		return errors.As(err, &refused), 0
	}, func(context.Context) error {
		ch, reqs, err := c.conn.OpenChannel("session", nil)
		if err == nil {
			s = &session{ch: ch, reqs: reqs, done: make(chan struct{})}
		}
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			// Refused for good, or something else: the error as sshd
			// gave it.
			err = retry.Last(err)
		}
		return nil, err
	}
	return s, nil
}

// start sends the command and copies stdin, stdout and stderr on
// goroutines that goTracked owns. A nil stdin is an empty one.
func (s *session) start(cmd string, stdin io.Reader, stdout, stderr io.Writer, goTracked func(func()) bool) error {
	if _, err := s.ch.SendRequest("exec", false, xssh.Marshal(struct{ Command string }{cmd})); err != nil {
		return err
	}
	var copies sync.WaitGroup
	copies.Add(3)
	started := goTracked(func() {
		defer copies.Done()
		_, _ = io.Copy(stdout, s.ch)
	}) && goTracked(func() {
		defer copies.Done()
		_, _ = io.Copy(stderr, s.ch.Stderr())
	}) && goTracked(func() {
		defer copies.Done()
		if stdin != nil {
			_, _ = io.Copy(s.ch, stdin)
		}
		_ = s.ch.CloseWrite()
	})
	if !started {
		s.ch.Close()
		return ErrClosed
	}
	if !goTracked(func() {
		// The requests end when the channel closes; their status is
		// complete once the output is drained too.
		for req := range s.reqs {
			switch req.Type {
			case "exit-status":
				var m struct{ Status uint32 }
				if xssh.Unmarshal(req.Payload, &m) == nil {
					s.status = exitStatus{reported: true, code: int(m.Status)}
				}
			case "exit-signal":
				var m struct {
					Signal     string
					CoreDumped bool
					Error      string
					Lang       string
				}
				if xssh.Unmarshal(req.Payload, &m) == nil {
					s.status = exitStatus{reported: true, code: -1, signal: m.Signal}
				}
			}
			if req.WantReply {
				_ = req.Reply(false, nil)
			}
		}
		copies.Wait()
		close(s.done)
	}) {
		s.ch.Close()
		return ErrClosed
	}
	return nil
}

// wait blocks until the command ended and its output was read, and
// returns how it ended.
func (s *session) wait() exitStatus {
	<-s.done
	return s.status
}

// signal asks the host to signal the command (honoured by OpenSSH for
// non-root users only; see wrapCommand).
func (s *session) signal(sig xssh.Signal) {
	_, _ = s.ch.SendRequest("signal", false, xssh.Marshal(struct{ Signal string }{string(sig)}))
}

func (s *session) close() { _ = s.ch.Close() }

// takeSession returns the spare session channel if one is open, or opens
// one; either way it starts opening the next spare, so that a playbook's
// next step finds its channel ready.
func (c *Client) takeSession(ctx context.Context) (*session, error) {
	c.spareMu.Lock()
	s := c.spare
	c.spare = nil
	c.spareMu.Unlock()
	defer c.refillSpare()
	if s != nil {
		return s, nil
	}
	return c.openChannel(ctx)
}

// refillSpare opens a spare session channel in the background, unless one
// is open or opening, or the connection is near its session limit (the
// spare takes a slot; one stays free for stopping a timed-out command).
func (c *Client) refillSpare() {
	c.spareMu.Lock()
	defer c.spareMu.Unlock()
	if c.spare != nil || c.spareOpening || len(c.runs) >= maxRunsPerConn-1 {
		return
	}
	c.spareOpening = true
	if !c.goTracked(func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.d.cfg.ConnectTimeout)
		defer cancel()
		s, err := c.openChannel(ctx)
		c.spareMu.Lock()
		defer c.spareMu.Unlock()
		c.spareOpening = false
		if err != nil {
			return
		}
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed || c.spare != nil {
			s.close()
			return
		}
		c.spare = s
	}) {
		c.spareOpening = false
	}
}
