package ssh

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"time"
)

// capture keeps the first max bytes written to it and counts the rest.
// It never blocks or fails, so the remote side is never held up by a full
// buffer: the channel keeps draining. It is locked because a Run that
// gives up on a session returns while x/crypto may still be writing.
type capture struct {
	mu    sync.Mutex
	max   int64
	buf   []byte
	total int64
}

func (c *capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total += int64(len(p))
	if room := c.max - int64(len(c.buf)); room > 0 {
		c.buf = append(c.buf, p[:min(int64(len(p)), room)]...)
	}
	return len(p), nil
}

// result returns a copy of the kept bytes, the total and whether bytes
// were dropped.
func (c *capture) result() ([]byte, int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.buf), c.total, c.total > int64(len(c.buf))
}

// pidScanLimit bounds how much stderr is searched for the pid line: a login
// shell's startup files may print before it, but not much.
const pidScanLimit = 4096

// pidFilter passes stderr through to next, except for the preamble's
// "firstlook-pid=N" line, which it removes and remembers.
type pidFilter struct {
	next io.Writer

	mu      sync.Mutex
	pending []byte // an incomplete line while scanning
	seen    int    // bytes scanned
	pid     int
	done    bool          // found, or gave up
	found   chan struct{} // closed when done
}

func newPIDFilter(next io.Writer) *pidFilter {
	return &pidFilter{next: next, found: make(chan struct{})}
}

func (f *pidFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return f.next.Write(p)
	}
	n := len(p)
	f.pending = append(f.pending, p...)
	for !f.done {
		i := bytes.IndexByte(f.pending, '\n')
		if i < 0 {
			if f.seen+len(f.pending) > pidScanLimit {
				f.finish()
			}
			break
		}
		line := f.pending[:i+1]
		f.pending = f.pending[i+1:]
		f.seen += len(line)
		if pid, ok := parsePIDLine(line); ok {
			f.pid = pid
			f.finish()
			break
		}
		f.next.Write(line)
		if f.seen > pidScanLimit {
			f.finish()
		}
	}
	return n, nil
}

// finish stops scanning and passes on what is pending. Called with mu held.
func (f *pidFilter) finish() {
	if len(f.pending) > 0 {
		f.next.Write(f.pending)
		f.pending = nil
	}
	f.done = true
	close(f.found)
}

// flush passes on an incomplete line once the session has ended.
func (f *pidFilter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.finish()
	}
}

// wait returns the pid, waiting up to d for the line; 0 if none came.
func (f *pidFilter) wait(d time.Duration) int {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.found:
	case <-t.C:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pid
}

func parsePIDLine(line []byte) (int, bool) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	rest, ok := bytes.CutPrefix(line, []byte(pidMarker))
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(string(rest))
	if err != nil || pid <= 1 {
		return 0, false
	}
	return pid, true
}
