package queue

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Open to the zero values of Config.
const (
	// DefaultStream is the work-queue stream's name.
	DefaultStream = "FIRSTLOOK_JOBS"
	// DefaultSubject is the subject jobs are published on.
	DefaultSubject = "firstlook.jobs"
	// DefaultConsumer is the durable pull consumer every worker of every
	// node pulls from.
	DefaultConsumer = "firstlook-workers"
	// DefaultKVBucket is the key-value bucket holding per-incident state.
	DefaultKVBucket = "firstlook_incidents"
	// DefaultLeaseBucket is the key-value bucket holding the workers'
	// leases.
	DefaultLeaseBucket = "firstlook_leases"
	// DefaultDeliveryBucket is the key-value bucket remembering finished
	// jobs' ids for the duplicate window.
	DefaultDeliveryBucket = "firstlook_deliveries"
	// DefaultLeaseTTL is how long a lease outlives its holder's last
	// renewal (every third of it): a worker that dies frees its host ×
	// playbook within this time. Long enough that a loaded machine's
	// pauses do not lose a live lease, short enough that nobody waits for a
	// dead one.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultDuplicateWindow is how long a webhook id is recognised:
	// PagerDuty retries within minutes, and a person may re-send a delivery
	// from the PagerDuty UI hours later.
	DefaultDuplicateWindow = 24 * time.Hour
	// DefaultAckWait is how long a leased job may go without an Ack or an
	// InProgress heartbeat before JetStream hands it to another worker.
	DefaultAckWait = 60 * time.Second
	// DefaultMaxDeliver is how many times a job is delivered at most.
	DefaultMaxDeliver = 5
	// DefaultStateTTL is how long per-incident state is kept after its last
	// write: long after anyone re-triggers an incident, short enough that the
	// bucket does not grow forever.
	DefaultStateTTL = 30 * 24 * time.Hour
	// DefaultSync is the embedded server's fsync policy.
	//
	// Every mode is safe against a crash of the process (SIGKILL, panic,
	// OOM kill): JetStream write(2)s a message to its block file before it
	// sends the PubAck (file stores of R1 streams and Raft logs flush in
	// place), so the message is in the kernel's page cache and survives the
	// process. The modes differ on a power loss or kernel crash:
	//
	//   - "always": every write is fsynced before the PubAck, so nothing
	//     acknowledged is lost on a power loss either. Writes queue behind
	//     the disk's flush: measured with BenchmarkPut (2-vCPU VM, ext4 on
	//     virtio), one fsync per Put caps the queue near 1,300 Puts/s, and
	//     64 concurrent publishers wait p50 48 ms, p99 110 ms, against
	//     ~25,000 Puts/s and p50 2 ms, p99 15-20 ms with an interval. At a
	//     steady 200 Puts/s both stay under 2 ms p99; an alert storm is
	//     where "always" breaks the intake's 5 ms budget.
	//   - an interval (the default, "1s"): the page cache is fsynced every
	//     interval, so a power loss or kernel crash of a lone node loses
	//     the webhooks acknowledged in at most the last interval. With
	//     replicas 3 a message is acknowledged once a quorum holds it, so
	//     one node's power loss loses nothing; only a simultaneous power
	//     loss of a quorum loses up to one interval.
	//
	// One second keeps the intake fast under a storm and bounds the
	// power-loss window to what a person could re-send by hand, for one
	// background fsync a second (no measurable cost against "2m", NATS's
	// own default, whose window is needlessly wide for a queue this small).
	DefaultSync = "1s"
	// SyncAlways is the Sync value that fsyncs every write.
	SyncAlways = "always"
)

// Config configures the queue: where JetStream runs and how jobs and state
// are kept. The zero value runs an embedded server under DataDir.
type Config struct {
	// URL lists external NATS servers, comma-separated
	// ("nats://a:4222,nats://b:4222"). Empty runs the embedded server.
	// Credentials do not belong in the URL: use CredsFile or PasswordFile.
	URL string `yaml:"url"`
	// CredsFile is a NATS credentials file (JWT and nkey seed) for URL.
	CredsFile string `yaml:"creds_file"`
	// User and PasswordFile authenticate with a user and a password read
	// from a file. With the embedded server they are the credentials it
	// demands from TCP clients when Embedded.Listen is set.
	User         string `yaml:"user"`
	PasswordFile string `yaml:"password_file"`
	// TLS configures TLS to external servers.
	TLS TLSConfig `yaml:"tls"`
	// Embedded configures the embedded server; only used when URL is empty.
	Embedded EmbeddedConfig `yaml:"embedded"`
	// Replicas is how many servers hold each job and state entry: default 1,
	// or 3 when the servers form a cluster (embedded cluster, or an external
	// server that reports a cluster name).
	Replicas int `yaml:"replicas"`
	// Stream, Subject and Consumer name the work-queue stream, the subject
	// jobs are published on, and the durable consumer workers pull from.
	// Defaults: DefaultStream, DefaultSubject, DefaultConsumer.
	Stream   string `yaml:"stream"`
	Subject  string `yaml:"subject"`
	Consumer string `yaml:"consumer"`
	// KVBucket names the per-incident state bucket (DefaultKVBucket).
	KVBucket string `yaml:"kv_bucket"`
	// LeaseBucket and DeliveryBucket name the buckets of the workers'
	// leases and of finished jobs' ids (DefaultLeaseBucket,
	// DefaultDeliveryBucket).
	LeaseBucket    string `yaml:"lease_bucket"`
	DeliveryBucket string `yaml:"delivery_bucket"`
	// StateTTL is how long a state entry lives after its last write
	// (DefaultStateTTL).
	StateTTL time.Duration `yaml:"state_ttl"`
	// LeaseTTL is how long a worker's host × playbook lease outlives its
	// last renewal (DefaultLeaseTTL); at least 1s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// DuplicateWindow is how long a webhook id is recognised, whether its
	// job is queued, running or finished (DefaultDuplicateWindow).
	DuplicateWindow time.Duration `yaml:"duplicate_window"`
	// AckWait is the lease of a delivered job (DefaultAckWait); workers
	// extend it with Job.InProgress.
	AckWait time.Duration `yaml:"ack_wait"`
	// MaxDeliver caps deliveries of one job (DefaultMaxDeliver).
	MaxDeliver int `yaml:"max_deliver"`
	// Sync is the embedded server's fsync policy: "always" or an interval
	// such as "1s" (DefaultSync explains the choice). External servers
	// have their own (jetstream.sync_interval in their configuration).
	Sync string `yaml:"sync"`

	// DataDir is firstlook's data directory, set by the caller; the
	// embedded store defaults to DataDir/jetstream.
	DataDir string `yaml:"-"`
	// Logger receives the embedded server's warnings and errors and the
	// client's asynchronous errors. Nil means slog.Default(). Server notices
	// are logged at debug level, which keeps startup quiet.
	Logger *slog.Logger `yaml:"-"`
}

// TLSConfig is TLS to external NATS servers. Servers whose URL has the
// tls:// scheme, or that demand TLS, are reached with TLS regardless.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs to trust instead of the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate, for servers that
	// verify clients.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the servers' certificates.
	ServerName string `yaml:"server_name"`
}

func (t TLSConfig) enabled() bool { return t != TLSConfig{} }

// EmbeddedConfig configures the in-process NATS server.
type EmbeddedConfig struct {
	// Dir is the JetStream store directory (default DataDir/jetstream).
	Dir string `yaml:"dir"`
	// Name is the server's name, which must be stable across restarts
	// and unique in a cluster (default: the host name).
	Name string `yaml:"name"`
	// Listen is a host:port for NATS clients. Empty (the default) opens
	// no port at all: firstlook talks to the server in-process. Set it only
	// with User and PasswordFile, or on a trusted interface: anyone who can
	// connect can queue jobs.
	Listen string `yaml:"listen"`
	// Cluster joins several firstlook nodes' embedded servers.
	Cluster ClusterConfig `yaml:"cluster"`
	// KeyFile, when set, turns on encryption at rest: the store's files
	// (jobs, which hold webhook bodies, and state) are encrypted with a
	// key derived from this file's contents (trailing newlines dropped; at
	// least 16 bytes). A systemd credential ($CREDENTIALS_DIRECTORY/…) or
	// a mounted secret are both files. Losing it loses the store: see the
	// README.
	KeyFile string `yaml:"key_file"`
	// PreviousKeyFile, set together with a new KeyFile for one start,
	// rotates the key: the store is read with the previous key and
	// rewritten with the new one.
	PreviousKeyFile string `yaml:"previous_key_file"`
	// Cipher is the encryption at rest's cipher: "chacha" (the default)
	// or "aes".
	Cipher string `yaml:"cipher"`
}

// ClusterConfig clusters embedded servers through NATS routes.
type ClusterConfig struct {
	// Name is the cluster's name; the same on every node.
	Name string `yaml:"name"`
	// Listen is this node's host:port for routes.
	Listen string `yaml:"listen"`
	// Routes are the other nodes' route URLs ("nats-route://host:6222");
	// listing this node too is harmless, so every node can share one list.
	Routes []string `yaml:"routes"`
}

func (c ClusterConfig) enabled() bool {
	return c.Name != "" || c.Listen != "" || len(c.Routes) > 0
}

var (
	// Stream and consumer names: no whitespace, '.', '*', '>' or path
	// separators (https://docs.nats.io/nats-concepts/jetstream/streams).
	nameRe = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	// Subject tokens of a literal subject.
	tokenRe = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
)

// Validate reports the first nonsensical setting. Zero values are valid:
// Open replaces them with the defaults.
func (c Config) Validate() error {
	if c.URL != "" {
		if err := validateURLs(c.URL); err != nil {
			return err
		}
		if c.Embedded.Dir != "" || c.Embedded.Name != "" || c.Embedded.Listen != "" || c.Embedded.Cluster.enabled() ||
			c.Embedded.KeyFile != "" || c.Embedded.PreviousKeyFile != "" || c.Embedded.Cipher != "" {
			return errors.New("embedded: set, but url is set: the embedded server is not used")
		}
		if c.Sync != "" {
			return errors.New("sync: applies to the embedded server only; set jetstream.sync_interval on the NATS servers")
		}
	} else {
		if c.CredsFile != "" {
			return errors.New("creds_file: only for an external server (url)")
		}
		if c.TLS.enabled() {
			return errors.New("tls: only for an external server (url)")
		}
		if c.User != "" && c.Embedded.Listen == "" {
			return errors.New("user: the embedded server without embedded.listen accepts in-process connections only")
		}
		if c.Embedded.Dir == "" && c.DataDir == "" {
			return errors.New("embedded.dir: required when no data directory is set")
		}
		if err := c.Embedded.validate(); err != nil {
			return err
		}
		if _, _, err := parseSync(c.Sync); err != nil {
			return err
		}
	}
	if c.CredsFile != "" && (c.User != "" || c.PasswordFile != "") {
		return errors.New("creds_file: set together with user/password_file; use one")
	}
	if (c.User == "") != (c.PasswordFile == "") {
		return errors.New("user, password_file: set both or neither")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls: cert_file and key_file: set both or neither")
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d: want 1 to 5", c.Replicas)
	}
	for _, n := range []struct{ field, v string }{{"stream", c.Stream}, {"consumer", c.Consumer}, {"kv_bucket", c.KVBucket}, {"lease_bucket", c.LeaseBucket}, {"delivery_bucket", c.DeliveryBucket}} {
		if n.v != "" && !nameRe.MatchString(n.v) {
			return fmt.Errorf("%s: %q: want 1 to 64 of [a-zA-Z0-9_-]", n.field, n.v)
		}
	}
	if c.Subject != "" {
		for tok := range strings.SplitSeq(c.Subject, ".") {
			if !tokenRe.MatchString(tok) {
				return fmt.Errorf("subject: %q: want dot-separated tokens of [a-zA-Z0-9_-]", c.Subject)
			}
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"state_ttl", c.StateTTL}, {"duplicate_window", c.DuplicateWindow}, {"ack_wait", c.AckWait}, {"lease_ttl", c.LeaseTTL}} {
		if d.v < 0 {
			return fmt.Errorf("%s: %s: must not be negative", d.field, d.v)
		}
	}
	if c.StateTTL != 0 && c.StateTTL < time.Second {
		return fmt.Errorf("state_ttl: %s: want at least 1s", c.StateTTL)
	}
	if c.LeaseTTL != 0 && c.LeaseTTL < time.Second {
		return fmt.Errorf("lease_ttl: %s: want at least 1s", c.LeaseTTL)
	}
	if c.MaxDeliver < 0 {
		return fmt.Errorf("max_deliver: %d: want at least 1", c.MaxDeliver)
	}
	return nil
}

func (e EmbeddedConfig) validate() error {
	switch e.Cipher {
	case "", "chacha", "aes":
	default:
		return fmt.Errorf("embedded.cipher: %q: want chacha or aes", e.Cipher)
	}
	if e.Cipher != "" && e.KeyFile == "" {
		return errors.New("embedded.cipher: set without embedded.key_file")
	}
	if e.PreviousKeyFile != "" && e.KeyFile == "" {
		return errors.New("embedded.previous_key_file: set without embedded.key_file (the new key)")
	}
	if e.Listen != "" {
		if err := validateHostPort(e.Listen); err != nil {
			return fmt.Errorf("embedded.listen: %w", err)
		}
	}
	if !e.Cluster.enabled() {
		return nil
	}
	if e.Cluster.Name == "" || !nameRe.MatchString(e.Cluster.Name) {
		return fmt.Errorf("embedded.cluster.name: %q: want 1 to 64 of [a-zA-Z0-9_-]", e.Cluster.Name)
	}
	if err := validateHostPort(e.Cluster.Listen); err != nil {
		return fmt.Errorf("embedded.cluster.listen: %w", err)
	}
	if len(e.Cluster.Routes) == 0 {
		return errors.New("embedded.cluster.routes: required: the other nodes' route URLs")
	}
	for _, r := range e.Cluster.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" || u.Port() == "" {
			return fmt.Errorf("embedded.cluster.routes: %q: want nats-route://host:port", r)
		}
	}
	return nil
}

func validateHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q: want host:port", hp)
	}
	if host == "" {
		return fmt.Errorf("%q: want an explicit host, e.g. 127.0.0.1", hp)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", hp)
	}
	return nil
}

func validateURLs(list string) error {
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			// Not echoing s: a malformed URL may still carry a password.
			return errors.New("url: want nats://host:port, comma-separated")
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("url: scheme %q: want nats, tls, ws or wss", u.Scheme)
		}
		if _, ok := u.User.Password(); ok {
			return errors.New("url: carries a password; use user and password_file")
		}
	}
	return nil
}

// parseSync returns the fsync policy: always, or the interval.
func parseSync(s string) (always bool, interval time.Duration, err error) {
	s = cmp.Or(s, DefaultSync)
	if s == SyncAlways {
		return true, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf("sync: %q: want %q or an interval such as %q", s, SyncAlways, DefaultSync)
	}
	return false, d, nil
}

// withDefaults returns c with every zero value replaced by its default.
// Replicas stays 0 when it depends on the servers; Open settles it.
func (c Config) withDefaults() Config {
	c.Stream = cmp.Or(c.Stream, DefaultStream)
	c.Subject = cmp.Or(c.Subject, DefaultSubject)
	c.Consumer = cmp.Or(c.Consumer, DefaultConsumer)
	c.KVBucket = cmp.Or(c.KVBucket, DefaultKVBucket)
	c.LeaseBucket = cmp.Or(c.LeaseBucket, DefaultLeaseBucket)
	c.DeliveryBucket = cmp.Or(c.DeliveryBucket, DefaultDeliveryBucket)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, DefaultLeaseTTL)
	c.StateTTL = cmp.Or(c.StateTTL, DefaultStateTTL)
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, DefaultDuplicateWindow)
	c.AckWait = cmp.Or(c.AckWait, DefaultAckWait)
	c.MaxDeliver = cmp.Or(c.MaxDeliver, DefaultMaxDeliver)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.URL == "" {
		c.Sync = cmp.Or(c.Sync, DefaultSync)
		c.Embedded.Dir = cmp.Or(c.Embedded.Dir, filepath.Join(c.DataDir, "jetstream"))
		if c.Embedded.Name == "" {
			// A clustered server's Raft identity derives from its name, so
			// the default must survive restarts: the host name does.
			if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \t\n") {
				c.Embedded.Name = h
			} else {
				c.Embedded.Name = "firstlook"
			}
		}
		if c.Replicas == 0 && c.Embedded.Cluster.enabled() {
			c.Replicas = 3
		}
	}
	return c
}
