package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// startTimeout bounds how long the embedded server may take to recover its
// store and open its listeners.
const startTimeout = 2 * time.Minute

// startEmbedded starts the in-process NATS server with JetStream on
// cfg.Embedded.Dir. password is the one read from cfg.PasswordFile. It
// returns the credentials the in-process client must present, if any.
func startEmbedded(cfg Config, password string) (s *server.Server, user, pass string, err error) {
	always, interval, err := parseSync(cfg.Sync)
	if err != nil {
		return nil, "", "", err
	}
	opts := &server.Options{
		ServerName: cfg.Embedded.Name,
		JetStream:  true,
		StoreDir:   cfg.Embedded.Dir,
		SyncAlways: always,
		// With SyncAlways the interval still drives background flushes of
		// other state; keep NATS's default for it then.
		SyncInterval: interval,
		// The server lives inside firstlook: signals are firstlook's.
		NoSigs: true,
	}
	if always {
		opts.SyncInterval = 2 * time.Minute
	}
	if err := encryption(cfg.Embedded, opts); err != nil {
		return nil, "", "", err
	}
	if cfg.Embedded.PreviousKeyFile != "" {
		// nats-server re-keys streams with the previous key but not a
		// consumer's state (v2.15.2: consumer stores ignore the old
		// key), so the workers' consumer could not be opened. Its state
		// is only which jobs are leased: without it, the work-queue
		// stream's jobs are all delivered again, and runs that finished
		// are skipped as ever.
		obs := filepath.Join(cfg.Embedded.Dir, "jetstream", "$G", "streams", cfg.Stream, "obs", cfg.Consumer)
		if err := os.RemoveAll(obs); err != nil {
			return nil, "", "", fmt.Errorf("embedded: key rotation: remove consumer state: %w", err)
		}
		cfg.Logger.Warn("queue: rotating the encryption key; remove embedded.previous_key_file once started")
	}
	switch {
	case cfg.Embedded.Listen != "":
		host, port, err := splitHostPort(cfg.Embedded.Listen)
		if err != nil {
			return nil, "", "", fmt.Errorf("embedded.listen: %w", err)
		}
		opts.Host, opts.Port = host, port
		if cfg.User != "" {
			user, pass = cfg.User, password
		}
	case cfg.Embedded.Cluster.enabled():
		// nats-server starts routing only once its client listener is up,
		// and with DontListen it never is (server.go Start, v2.15.2): the
		// route listener would never open. So a clustered server listens
		// on a loopback port that nobody else can use: its credentials are
		// random and live only in this process.
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, "", "", fmt.Errorf("embedded: generate credentials: %w", err)
		}
		user, pass = "firstlook-local", hex.EncodeToString(b)
	default:
		// No client port at all: firstlook connects in-process.
		opts.DontListen = true
	}
	if user != "" {
		// The server keeps a bcrypt hash, not the password (and does not
		// warn about plaintext passwords in its configuration).
		h, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			return nil, "", "", fmt.Errorf("embedded: hash password: %w", err)
		}
		opts.Username, opts.Password = user, string(h)
	}
	if c := cfg.Embedded.Cluster; c.enabled() {
		host, port, err := splitHostPort(c.Listen)
		if err != nil {
			return nil, "", "", fmt.Errorf("embedded.cluster.listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
		opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
	}

	s, err = server.NewServer(opts)
	if err != nil {
		return nil, "", "", fmt.Errorf("create embedded server: %w", err)
	}
	s.SetLoggerV2(serverLogger{cfg.Logger.With("component", "nats-server")}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(startTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, "", "", fmt.Errorf("start embedded server: not ready after %s (see its log)", startTimeout)
	}
	return s, user, pass, nil
}

// minKeyLen is the shortest encryption key file accepted.
const minKeyLen = 16

// encryption turns on JetStream's encryption at rest when a key file is
// configured. The server derives each stream's keys from it; the files on
// disk hold ciphertext only.
func encryption(e EmbeddedConfig, opts *server.Options) error {
	if e.KeyFile == "" {
		return nil
	}
	read := func(field, path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("embedded.%s: %w", field, err)
		}
		k := strings.TrimRight(string(b), "\r\n")
		if len(k) < minKeyLen {
			// Not echoing the key, nor its length.
			return "", fmt.Errorf("embedded.%s: %s: want at least %d bytes of key", field, path, minKeyLen)
		}
		return k, nil
	}
	var err error
	if opts.JetStreamKey, err = read("key_file", e.KeyFile); err != nil {
		return err
	}
	if e.PreviousKeyFile != "" {
		if opts.JetStreamOldKey, err = read("previous_key_file", e.PreviousKeyFile); err != nil {
			return err
		}
	}
	opts.JetStreamCipher = server.ChaCha
	if e.Cipher == "aes" {
		opts.JetStreamCipher = server.AES
	}
	return nil
}

// splitHostPort splits a validated host:port; port 0 asks for a free port,
// which NATS spells -1 (its 0 means "the default port").
func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// serverLogger routes the embedded server's log to slog. Notices (the
// startup banner, route and Raft chatter) go to debug so a healthy server
// is silent; warnings and errors stay visible.
type serverLogger struct{ l *slog.Logger }

func (s serverLogger) logf(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if s.l.Enabled(ctx, level) {
		s.l.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}

func (s serverLogger) Noticef(format string, v ...any) { s.logf(slog.LevelDebug, format, v) }
func (s serverLogger) Warnf(format string, v ...any)   { s.logf(slog.LevelWarn, format, v) }
func (s serverLogger) Fatalf(format string, v ...any)  { s.logf(slog.LevelError, format, v) }
func (s serverLogger) Errorf(format string, v ...any)  { s.logf(slog.LevelError, format, v) }
func (s serverLogger) Debugf(format string, v ...any)  { s.logf(slog.LevelDebug, format, v) }
func (s serverLogger) Tracef(format string, v ...any)  { s.logf(slog.LevelDebug, format, v) }
