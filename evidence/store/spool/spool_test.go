package spool_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/evidence/store/spool"
	"github.com/firstlook/firstlook/evidence/store/storetest"
)

// remote is a dir.Store that can be taken down: while down, every call
// fails as a dial to a closed port does. It records the order in which
// objects reached it, and beforePut can hold a Put.
type remote struct {
	evidence.Store
	down      atomic.Bool
	putErr    atomic.Pointer[error] // returned by Put instead, when set
	beforePut func(ctx context.Context, key string)

	mu    sync.Mutex
	order []string
}

var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

func newRemote(t *testing.T) *remote {
	t.Helper()
	d, err := dir.New(dir.Config{Path: filepath.Join(t.TempDir(), "remote")})
	if err != nil {
		t.Fatal(err)
	}
	return &remote{Store: d}
}

func (r *remote) Put(ctx context.Context, key string, body []byte) error {
	if r.beforePut != nil {
		r.beforePut(ctx, key)
	}
	if p := r.putErr.Load(); p != nil {
		return *p
	}
	if r.down.Load() {
		return fmt.Errorf("fake: put %s: %w", key, errRefused)
	}
	err := r.Store.Put(ctx, key, body)
	if err == nil {
		r.mu.Lock()
		r.order = append(r.order, key)
		r.mu.Unlock()
	}
	return err
}

func (r *remote) Get(ctx context.Context, key string) ([]byte, error) {
	if r.down.Load() {
		return nil, fmt.Errorf("fake: get %s: %w", key, errRefused)
	}
	return r.Store.Get(ctx, key)
}

func (r *remote) puts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func open(t *testing.T, spoolDir string, r evidence.Store, log *slog.Logger) *spool.Store {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := spool.New(spool.Config{Dir: spoolDir, MaxBackoff: 100 * time.Millisecond}, r, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run runs s.Run until the test ends, and checks it returned.
func run(t *testing.T, s *spool.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil after cancel", err)
		}
	})
}

// waitFor polls cond until it holds; the deadline only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bundle is a small run: two step outputs and, written last, a manifest.
func bundle(host string) *evidence.Bundle {
	start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema:   evidence.ManifestSchema,
		RunID:    evidence.RunID(start, host, "linux-baseline"),
		Incident: evidence.Incident{Source: "pagerduty", ID: "Q2CKYRLH85UNN4", Title: "CPU high", Event: "incident.triggered"},
		Host:     evidence.Host{Name: host, Address: "10.0.0.2:22"},
		Playbook: evidence.Playbook{Name: "linux-baseline"},
		Status:   evidence.StatusOK, StartedAt: start, EndedAt: start.Add(time.Second),
	}}
	for i, name := range []string{"load", "top cpu"} {
		st := evidence.Step{Name: name, Command: name}
		st.Stdout = b.SetOutput(evidence.StepFile(i, name, "stdout"), []byte(name+" output on "+host+"\n\x00\xff"), 20)
		b.Manifest.Steps = append(b.Manifest.Steps, st)
	}
	return b
}

func TestContractOverDir(t *testing.T) {
	storetest.Run(t, func(t *testing.T) evidence.Store {
		return open(t, filepath.Join(t.TempDir(), "spool"), newRemote(t), nil)
	})
}

func TestSpoolWhileDownThenUpload(t *testing.T) {
	r := newRemote(t)
	var logs logBuffer
	spoolDir := filepath.Join(t.TempDir(), "spool")
	s := open(t, spoolDir, r, logs.logger())
	ctx := context.Background()
	r.down.Store(true)

	b := bundle("web-1")
	prefix, err := evidence.Write(ctx, s, b)
	if err != nil {
		t.Fatalf("write while the remote is down: got %v, want nil", err)
	}
	st := s.Stats()
	if st.Pending != 4 || !st.Offline || st.PendingBytes == 0 {
		t.Fatalf("got %+v, want 4 pending (two outputs, the page, the manifest), offline", st)
	}
	// Readable from the spool meanwhile, and still write-once.
	got, err := evidence.Read(ctx, s, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 2 {
		t.Fatalf("got %d files back from the spool, want 2", len(got.Files))
	}
	if _, err := evidence.Write(ctx, s, b); !errors.Is(err, evidence.ErrExists) {
		t.Fatalf("second write of the run: got %v, want ErrExists", err)
	}
	if l, err := s.Link(ctx, prefix+evidence.ManifestFile); err != nil || !strings.HasPrefix(l, "file://") {
		t.Fatalf("got link %q, %v, want the remote's link", l, err)
	}
	if n := len(r.puts()); n != 0 {
		t.Fatalf("the remote got %d objects while down", n)
	}
	if !strings.Contains(logs.String(), "remote store unavailable") {
		t.Errorf("no log line says the remote is unavailable: %s", logs.String())
	}

	run(t, s)
	r.down.Store(false)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })

	puts := r.puts()
	if len(puts) != 4 || puts[3] != prefix+evidence.ManifestFile {
		t.Fatalf("got uploads %v, want the two files, the page and then the manifest", puts)
	}
	back, err := evidence.Read(ctx, r.Store, prefix)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range b.Files {
		if !bytes.Equal(back.Files[name], body) {
			t.Errorf("%s: got %q on the remote, want %q", name, back.Files[name], body)
		}
	}
	if st := s.Stats(); st.Uploaded != 4 || st.Offline || st.PendingBytes != 0 {
		t.Errorf("got %+v after the upload, want 4 uploaded, online", st)
	}
	entries, _ := os.ReadDir(filepath.Join(spoolDir, "queue"))
	if len(entries) != 0 {
		t.Errorf("got %d files left in the queue directory, want 0", len(entries))
	}
}

// TestWhichErrorsSpool: Put spools what Transient calls transient and
// returns everything else to the caller.
func TestWhichErrorsSpool(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		spool bool
	}{
		{"ConnectionRefused", sendError(errRefused), true},
		{"SlowDown", s3Error(503, "SlowDown"), true},
		{"InternalError", s3Error(500, "InternalError"), true},
		{"Timeout", fmt.Errorf("s3: put k: %w", context.DeadlineExceeded), true},
		{"AccessDenied", s3Error(403, "AccessDenied"), false},
		{"NoSuchBucket", s3Error(404, "NoSuchBucket"), false},
		{"Exists", fmt.Errorf("s3: put k: %w", evidence.ErrExists), false},
		{"UnknownCA", sendError(x509UnknownAuthority()), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRemote(t)
			r.putErr.Store(&tc.err)
			s := open(t, filepath.Join(t.TempDir(), "spool"), r, nil)
			err := s.Put(context.Background(), "a/b", []byte("x"))
			if tc.spool {
				if err != nil || s.Pending() != 1 {
					t.Fatalf("got %v with %d pending, want nil and 1 pending", err, s.Pending())
				}
				return
			}
			if !errors.Is(err, tc.err) || s.Pending() != 0 {
				t.Fatalf("got %v with %d pending, want %v and nothing spooled", err, s.Pending(), tc.err)
			}
		})
	}
}

func TestCallerCancelIsNotSpooled(t *testing.T) {
	r := newRemote(t)
	ctx, cancel := context.WithCancel(context.Background())
	r.beforePut = func(ctx context.Context, _ string) { cancel(); <-ctx.Done() }
	timeout := fmt.Errorf("fake: %w", context.DeadlineExceeded) // transient, but the caller is gone
	r.putErr.Store(&timeout)
	s := open(t, filepath.Join(t.TempDir(), "spool"), r, nil)
	if err := s.Put(ctx, "a/b", []byte("x")); err == nil {
		t.Fatal("got nil, want the error of a Put whose caller gave up")
	}
	if n := s.Pending(); n != 0 {
		t.Fatalf("got %d pending, want 0", n)
	}
}

// TestNoManifestBeforeItsFiles: the remote comes back while a bundle's
// files are still spooled; a manifest written then must queue behind them,
// while other bundles go straight to the remote.
func TestNoManifestBeforeItsFiles(t *testing.T) {
	r := newRemote(t)
	s := open(t, filepath.Join(t.TempDir(), "spool"), r, nil)
	ctx := context.Background()
	r.down.Store(true)
	for _, k := range []string{"p/i/run/steps/01-a.stdout", "p/i/run/steps/02-b.stdout"} {
		if err := s.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	// Run uploads the first file, then is held on the second.
	held, release := make(chan struct{}), make(chan struct{})
	r.beforePut = func(_ context.Context, key string) {
		if key == "p/i/run/steps/02-b.stdout" {
			close(held)
			<-release
		}
	}
	r.down.Store(false)
	run(t, s)
	<-held
	waitFor(t, "the first upload", func() bool { return s.Stats().Uploaded == 1 })
	if s.Stats().Offline {
		t.Fatal("still offline after an upload")
	}
	if err := s.Put(ctx, "p/i/run/manifest.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "p/j/run/manifest.json", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if got := r.puts(); len(got) != 2 || got[1] != "p/j/run/manifest.json" {
		t.Fatalf("got remote puts %v, want the other bundle's manifest to go straight through", got)
	}
	if n := s.Pending(); n != 2 {
		t.Fatalf("got %d pending, want the held file and the manifest queued behind it", n)
	}
	close(release)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	want := []string{"p/i/run/steps/01-a.stdout", "p/j/run/manifest.json", "p/i/run/steps/02-b.stdout", "p/i/run/manifest.json"}
	if got := r.puts(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("got remote puts %v, want %v", got, want)
	}
}

// TestAlreadyOnRemote: the remote holds two spooled keys already (an upload
// that timed out but landed; a genuine clash). The same bytes count as
// uploaded; other bytes are kept aside and the remote is left alone.
func TestAlreadyOnRemote(t *testing.T) {
	r := newRemote(t)
	var logs logBuffer
	spoolDir := filepath.Join(t.TempDir(), "spool")
	s := open(t, spoolDir, r, logs.logger())
	ctx := context.Background()
	r.down.Store(true)
	if err := s.Put(ctx, "a/same", []byte("same")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/clash", []byte("spooled")); err != nil {
		t.Fatal(err)
	}
	if err := r.Store.Put(ctx, "a/same", []byte("same")); err != nil {
		t.Fatal(err)
	}
	if err := r.Store.Put(ctx, "a/clash", []byte("remote")); err != nil {
		t.Fatal(err)
	}
	r.down.Store(false)
	run(t, s)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	if st := s.Stats(); st.Uploaded != 1 || st.Conflicts != 1 {
		t.Fatalf("got %+v, want 1 uploaded and 1 conflict", st)
	}
	if got, _ := r.Store.Get(ctx, "a/clash"); string(got) != "remote" {
		t.Fatalf("got %q on the remote, want the remote's own %q", got, "remote")
	}
	kept, _ := os.ReadDir(filepath.Join(spoolDir, "conflicts"))
	if len(kept) != 1 {
		t.Fatalf("got %d files kept aside, want 1", len(kept))
	}
	raw, _ := os.ReadFile(filepath.Join(spoolDir, "conflicts", kept[0].Name()))
	if !bytes.Contains(raw, []byte(`"key":"a/clash"`)) || !bytes.HasSuffix(raw, []byte("\nspooled")) {
		t.Fatalf("got %q kept aside, want the header and the spooled bytes", raw)
	}
	if !strings.Contains(logs.String(), "kept the spooled copy aside") {
		t.Errorf("no log line about the conflict: %s", logs.String())
	}
}

func TestRestartPicksUpAndRejectsDamage(t *testing.T) {
	r := newRemote(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	first, err := spool.New(spool.Config{Dir: spoolDir}, r, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r.down.Store(true)
	for _, k := range []string{"a/1", "a/2", "a/3"} {
		if err := first.Put(ctx, k, []byte("body of "+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := spool.New(spool.Config{Dir: spoolDir}, r, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("a second spool on a directory in use: got %v, want an in-use error", err)
	}
	first.Close()

	// Damage the second object and leave a half-written temporary file.
	qdir := filepath.Join(spoolDir, "queue")
	files, _ := os.ReadDir(qdir)
	if len(files) != 3 {
		t.Fatalf("got %d spooled files, want 3", len(files))
	}
	damaged := filepath.Join(qdir, files[1].Name())
	raw, _ := os.ReadFile(damaged)
	raw[len(raw)-1] ^= 0xff
	if err := os.WriteFile(damaged, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(qdir, ".tmp-123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}

	var logs logBuffer
	s := open(t, spoolDir, r, logs.logger())
	if n := s.Pending(); n != 3 {
		t.Fatalf("got %d pending after restart, want 3", n)
	}
	if _, err := os.Stat(filepath.Join(qdir, ".tmp-123")); !os.IsNotExist(err) {
		t.Errorf("the temporary file survived New: %v", err)
	}
	r.down.Store(false)
	run(t, s)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	if got := r.puts(); strings.Join(got, " ") != "a/1 a/3" {
		t.Fatalf("got uploads %v, want a/1 a/3 (a/2 is damaged)", got)
	}
	if _, err := os.Stat(filepath.Join(spoolDir, "corrupt", files[1].Name())); err != nil {
		t.Errorf("the damaged object was not kept aside: %v", err)
	}
	if !strings.Contains(logs.String(), "damaged") {
		t.Errorf("no log line about the damaged object: %s", logs.String())
	}
}

func TestRunRetriesUntilTheRemoteIsBack(t *testing.T) {
	r := newRemote(t)
	s := open(t, filepath.Join(t.TempDir(), "spool"), r, nil)
	var attempts atomic.Int32
	r.beforePut = func(context.Context, string) {
		if attempts.Add(1) == 4 {
			r.down.Store(false)
		}
	}
	r.down.Store(true)
	if err := s.Put(context.Background(), "a/b", []byte("x")); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	if n := attempts.Load(); n != 4 {
		t.Fatalf("got %d remote attempts, want 4 (one by Put, two failed retries, one success)", n)
	}
}

func TestRunTwice(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "spool"), newRemote(t), nil)
	run(t, s)
	// A second Run refuses; with a cancelled context, one that won the
	// race against the first returns at once and the loop tries again.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	waitFor(t, "the second Run to refuse", func() bool { return s.Run(done) != nil })
}

func TestKeysAndConfig(t *testing.T) {
	r := newRemote(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	s := open(t, spoolDir, r, nil)
	r.down.Store(true)
	for _, key := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "a/", "."} {
		if err := s.Put(context.Background(), key, []byte("x")); err == nil || !strings.Contains(err.Error(), "invalid key") {
			t.Errorf("Put(%q): got %v, want an invalid key error", key, err)
		}
	}
	if n := s.Pending(); n != 0 {
		t.Fatalf("got %d pending after invalid keys, want 0", n)
	}
	for _, tc := range []struct {
		cfg  spool.Config
		want string
	}{
		{spool.Config{}, "dir: required"},
		{spool.Config{Dir: spoolDir + "2", MaxBackoff: -time.Second}, "max_backoff:"},
	} {
		if _, err := spool.New(tc.cfg, r, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v): got %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := spool.New(spool.Config{Dir: spoolDir + "3"}, nil, nil); err == nil {
		t.Error("New without a remote: got nil error")
	}
}
