// Package spool keeps evidence on local disk while the remote store (S3)
// is unreachable, and uploads it when the store comes back: nothing is
// lost. A spool.Store wraps any evidence.Store. Put goes to the remote; when
// the remote is unavailable (see Transient) the object is written durably
// under the spool directory and Put returns nil. Run, owned by the caller,
// uploads what is spooled, oldest first, with capped exponential backoff,
// including what an earlier process left behind.
//
// Ordering: an object is never sent to the remote before one spooled
// earlier in its directory or below it. A bundle's manifest, written last at
// the top of its prefix, therefore never reaches the remote before the
// files it names, which is what evidence.Write promises readers.
//
// Write-once while offline: once the remote has been found unavailable,
// Puts go straight to disk until Run has uploaded something, so a slow or
// hung store holds up one Put, not every one. Such a Put cannot ask the
// remote whether the key exists; it reports evidence.ErrExists only for a
// key already in the spool. If the remote turns out to hold the key when
// Run uploads it, identical bytes count as uploaded (an earlier attempt
// that timed out had in fact landed), and different bytes are kept under
// Dir/conflicts for a person to look at, never written over the remote.
//
// One process uses a directory at a time (an flock on Dir/LOCK); a process
// that starts after a crash takes over what was left.
package spool

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/retry"
)

const (
	// DefaultMaxBackoff is max_backoff when unset.
	DefaultMaxBackoff = time.Minute
	minBackoff        = 500 * time.Millisecond
	// failureLogEvery rate-limits Run's log lines while the remote is down.
	failureLogEvery = time.Minute

	queueDir    = "queue"
	conflictDir = "conflicts"
	corruptDir  = "corrupt"
	lockFile    = "LOCK"
	objSuffix   = ".obj"
	tmpPrefix   = ".tmp-"
)

// Config is the spool's configuration.
type Config struct {
	// Dir holds the objects waiting for the remote store; it is created
	// if missing (mode 0700: evidence may be sensitive). Required; put it
	// on a persistent disk, e.g. <data_dir>/spool.
	Dir string `yaml:"dir"`
	// MaxBackoff caps the wait between upload attempts while the remote
	// is down; default 1m.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("dir: required"))
	}
	if c.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("max_backoff: %s is negative", c.MaxBackoff))
	}
	return errors.Join(errs...)
}

// Stats is a snapshot of the spool, for metrics and tests.
type Stats struct {
	// Pending is the number of objects waiting for the remote.
	Pending int
	// PendingBytes is their total size.
	PendingBytes int64
	// Uploaded counts objects Run has handed to the remote since New.
	Uploaded uint64
	// Conflicts counts spooled objects that the remote already held with
	// different bytes; they are kept under Dir/conflicts.
	Conflicts uint64
	// Offline is true while Puts go to disk because the remote was found
	// unavailable and Run has not yet uploaded anything since.
	Offline bool
}

// Store is an evidence.Store that falls back to local disk.
type Store struct {
	dir        string
	maxBackoff time.Duration
	remote     evidence.Store
	log        *slog.Logger
	lock       *os.File

	keyLocks [64]sync.Mutex // per key, by hash: Put, upload and write-once checks of one key
	wmu      sync.Mutex     // serialises spool writes so that file order is queue order
	kick     chan struct{}  // a new object was spooled
	running  atomic.Bool

	mu        sync.Mutex
	queue     []*entry          // oldest first
	byKey     map[string]*entry // the first queued entry of each key
	seq       uint64            // the last sequence number used
	offline   bool
	uploaded  uint64
	conflicts uint64
}

var _ evidence.Store = (*Store)(nil)

// entry is one spooled object: Dir/queue/<seq>.obj.
type entry struct {
	seq  uint64
	key  string
	size int64
}

// header is the first line of a spooled file; the body follows it.
type header struct {
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// New opens the spool in cfg.Dir in front of remote, and takes over the
// objects an earlier process left there. A nil log means slog.Default().
func New(cfg Config, remote evidence.Store, log *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if remote == nil {
		return nil, errors.New("spool: no remote store")
	}
	if log == nil {
		log = slog.Default()
	}
	cfg.MaxBackoff = cmp.Or(cfg.MaxBackoff, DefaultMaxBackoff)
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, queueDir), filepath.Join(dir, conflictDir), filepath.Join(dir, corruptDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("spool: create %s: %w", d, err)
		}
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("spool: %s: %w", dir, err)
	}
	s := &Store{
		dir: dir, maxBackoff: cfg.MaxBackoff, remote: remote, log: log, lock: lock,
		kick: make(chan struct{}, 1), byKey: map[string]*entry{},
	}
	if err := s.load(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: load %s: %w", dir, err)
	}
	if n := len(s.queue); n > 0 {
		log.Info("spool: objects left by an earlier process will be uploaded", "dir", dir, "pending", n)
	}
	return s, nil
}

// load reads the queue an earlier process left, oldest first, and removes
// its unfinished temporary files.
func (s *Store) load() error {
	qdir := filepath.Join(s.dir, queueDir)
	des, err := os.ReadDir(qdir)
	if err != nil {
		return err
	}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			// Never renamed into place: its Put did not return nil.
			_ = os.Remove(filepath.Join(qdir, name))
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, objSuffix), 10, 64)
		if err != nil || !strings.HasSuffix(name, objSuffix) {
			continue // not ours; leave it alone
		}
		h, err := readHeader(filepath.Join(qdir, name))
		if err != nil || validKey(h.Key) != nil {
			s.log.Error("spool: unreadable object moved aside", "file", name, "err", err)
			_ = os.Rename(filepath.Join(qdir, name), filepath.Join(s.dir, corruptDir, name))
			continue
		}
		s.queue = append(s.queue, &entry{seq: seq, key: h.Key, size: h.Size})
		s.seq = max(s.seq, seq)
	}
	slices.SortFunc(s.queue, func(a, b *entry) int { return cmpUint(a.seq, b.seq) })
	for _, e := range s.queue {
		if _, ok := s.byKey[e.key]; !ok {
			s.byKey[e.key] = e
		}
	}
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Close releases the spool directory. Stop Run first.
func (s *Store) Close() error {
	return s.lock.Close()
}

// Stats returns a snapshot of the spool.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Pending: len(s.queue), Uploaded: s.uploaded, Conflicts: s.conflicts, Offline: s.offline}
	for _, e := range s.queue {
		st.PendingBytes += e.size
	}
	return st
}

// Pending is the number of objects waiting for the remote.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

func (s *Store) keyLock(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &s.keyLocks[h.Sum32()%uint32(len(s.keyLocks))]
}

// Put writes body under key in the remote store, or, when the remote is
// unavailable, durably in the spool; either way a nil error means the
// object will be in the remote store. It returns evidence.ErrExists for a
// key the remote or the spool already holds, and the remote's error when
// the remote refused the object for a reason that waiting will not fix.
func (s *Store) Put(ctx context.Context, key string, body []byte) error {
	if err := validKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	kl := s.keyLock(key)
	kl.Lock()
	defer kl.Unlock()

	s.mu.Lock()
	_, spooled := s.byKey[key]
	hold := s.offline || s.blockedLocked(key)
	s.mu.Unlock()
	if spooled {
		return fmt.Errorf("spool: put %s: %w", key, evidence.ErrExists)
	}
	if !hold {
		err := s.remote.Put(ctx, key, body)
		if err == nil || !Transient(err) {
			return err
		}
		if ctx.Err() != nil {
			// The caller gave up; the write is its to retry.
			return err
		}
		s.mu.Lock()
		was := s.offline
		s.offline = true
		s.mu.Unlock()
		if !was {
			s.log.Warn("spool: remote store unavailable; keeping evidence on local disk", "dir", s.dir, "err", err)
		}
	}
	if err := s.write(key, body); err != nil {
		return fmt.Errorf("spool: put %s: %w", key, err)
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// blockedLocked reports whether an object spooled earlier lies in key's
// directory or below it, so that key must queue behind it.
func (s *Store) blockedLocked(key string) bool {
	d := path.Dir(key)
	for _, e := range s.queue {
		if d == "." || strings.HasPrefix(e.key, d+"/") {
			return true
		}
	}
	return false
}

// write spools one object: a temporary file, fsync, rename to its
// sequence number, fsync the directory. A crash leaves the object whole or
// absent, never torn.
func (s *Store) write(key string, body []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	seq := s.seq + 1
	s.mu.Unlock()

	sum := sha256.Sum256(body)
	hdr, err := json.Marshal(header{Key: key, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return err
	}
	qdir := filepath.Join(s.dir, queueDir)
	tmp, err := os.CreateTemp(qdir, tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	w := bufio.NewWriter(tmp)
	w.Write(hdr)
	w.WriteByte('\n')
	w.Write(body)
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(qdir, fileName(seq))); err != nil {
		return err
	}
	if err := syncDir(qdir); err != nil {
		return err
	}
	s.mu.Lock()
	e := &entry{seq: seq, key: key, size: int64(len(body))}
	s.seq = seq
	s.queue = append(s.queue, e)
	if _, ok := s.byKey[key]; !ok {
		s.byKey[key] = e
	}
	s.mu.Unlock()
	return nil
}

func fileName(seq uint64) string { return fmt.Sprintf("%020d%s", seq, objSuffix) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func readHeader(file string) (header, error) {
	f, err := os.Open(file)
	if err != nil {
		return header{}, err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil {
		return header{}, fmt.Errorf("read header: %w", err)
	}
	var h header
	if err := json.Unmarshal(line, &h); err != nil {
		return header{}, fmt.Errorf("decode header: %w", err)
	}
	return h, nil
}

// errCorrupt marks a spooled file whose body does not match its header.
var errCorrupt = errors.New("spooled object does not match its checksum")

// read returns a spooled object's body, checked against its header.
func (s *Store) read(e *entry) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(s.dir, queueDir, fileName(e.seq)))
	if err != nil {
		return nil, err
	}
	line, body, ok := bytes.Cut(raw, []byte{'\n'})
	var h header
	if !ok || json.Unmarshal(line, &h) != nil || h.Key != e.key || h.Size != int64(len(body)) {
		return nil, errCorrupt
	}
	sum := sha256.Sum256(body)
	if hex.EncodeToString(sum[:]) != h.SHA256 {
		return nil, errCorrupt
	}
	return body, nil
}

// Get returns the object under key: the spooled copy while it waits, else
// the remote's.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	s.mu.Lock()
	e := s.byKey[key]
	s.mu.Unlock()
	if e != nil {
		body, err := s.read(e)
		if err == nil {
			return body, nil
		}
		// fs.ErrNotExist: Run uploaded and removed it meanwhile, so the
		// remote has it now.
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("spool: get %s: %w", key, err)
		}
	}
	return s.remote.Get(ctx, key)
}

// Link returns the remote's link for key. For a spooled object that link
// exists before the object does: a presigned S3 URL is computed locally
// and starts working when Run has uploaded the object (until then S3
// answers 404). A link is never served from the spool directory, which is
// private to this process.
func (s *Store) Link(ctx context.Context, key string) (string, error) {
	if err := validKey(key); err != nil {
		return "", err
	}
	return s.remote.Link(ctx, key)
}

// Run uploads spooled objects, oldest first, until ctx ends; then it
// returns nil. It waits with capped exponential backoff while the remote
// fails, and retries every failure: an object is only dropped from the
// spool once the remote holds it. One Run per Store.
func (s *Store) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("spool: Run called twice")
	}
	defer s.running.Store(false)
	for {
		s.mu.Lock()
		var e *entry
		if len(s.queue) > 0 {
			e = s.queue[0]
		}
		s.mu.Unlock()
		if e == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-s.kick:
				continue
			}
		}
		// Only ctx ends this loop: every failure is retried, the object
		// stays spooled until the remote holds it.
		pol := retry.Policy{
			Name: "spool: upload " + e.key, Initial: minBackoff, Max: s.maxBackoff,
			Log: s.log, LogEvery: failureLogEvery,
		}
		if err := retry.Do(ctx, pol, retry.Always, func(ctx context.Context) error { return s.upload(ctx, e) }); err != nil {
			// ctx ended, or its deadline comes before the next attempt
			// could: nothing more can be uploaded.
			<-ctx.Done()
			return nil
		}
	}
}

// upload hands one spooled object to the remote and drops it from the
// spool once the remote holds it.
func (s *Store) upload(ctx context.Context, e *entry) error {
	kl := s.keyLock(e.key)
	kl.Lock()
	defer kl.Unlock()
	name := fileName(e.seq)
	body, err := s.read(e)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.log.Error("spool: spooled object vanished from disk", "key", e.key, "file", name)
		} else {
			s.log.Error("spool: spooled object is damaged; moved aside", "key", e.key, "file", name, "err", err)
			_ = os.Rename(filepath.Join(s.dir, queueDir, name), filepath.Join(s.dir, corruptDir, name))
		}
		s.drop(e, false)
		return nil
	}
	err = s.remote.Put(ctx, e.key, body)
	if errors.Is(err, evidence.ErrExists) {
		got, gerr := s.remote.Get(ctx, e.key)
		if gerr != nil {
			return fmt.Errorf("spool: compare %s with the remote copy: %w", e.key, gerr)
		}
		if !bytes.Equal(got, body) {
			dst := filepath.Join(s.dir, conflictDir, name)
			if err := os.Rename(filepath.Join(s.dir, queueDir, name), dst); err != nil {
				return fmt.Errorf("spool: keep conflicting %s: %w", e.key, err)
			}
			s.log.Warn("spool: the remote already holds this key with other bytes; kept the spooled copy aside",
				"key", e.key, "file", dst)
			s.mu.Lock()
			s.conflicts++
			s.offline = false // the remote answered
			s.mu.Unlock()
			s.drop(e, false)
			return nil
		}
		err = nil // an earlier attempt had landed
	}
	if err != nil {
		return err
	}
	if rerr := os.Remove(filepath.Join(s.dir, queueDir, name)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		// Harmless: a later process uploads it again, gets ErrExists
		// and finds the same bytes.
		s.log.Warn("spool: remove uploaded object", "file", name, "err", rerr)
	}
	s.drop(e, true)
	return nil
}

// drop removes e from the queue.
func (s *Store) drop(e *entry, uploaded bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = slices.DeleteFunc(s.queue, func(x *entry) bool { return x == e })
	if s.byKey[e.key] == e {
		delete(s.byKey, e.key)
		for _, x := range s.queue {
			if x.key == e.key {
				s.byKey[e.key] = x
				break
			}
		}
	}
	if uploaded {
		s.uploaded++
		s.offline = false
	}
}

// validKey applies the evidence.Store key rules (a relative slash path
// without empty, . or .. elements). Keys never become file names in the
// spool, which names files by sequence number, but a key another store
// would refuse must not be accepted now and fail at upload.
func validKey(key string) error {
	if err := evidence.ValidKey(key); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
