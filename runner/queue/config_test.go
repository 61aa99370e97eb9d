package queue_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/runner/queue"
)

func TestConfigValidate(t *testing.T) {
	embedded := queue.Config{DataDir: "/var/lib/firstlook"}
	tests := []struct {
		name    string
		cfg     queue.Config
		wantErr string // "" for valid
	}{
		{"embedded defaults", embedded, ""},
		{"embedded dir", queue.Config{Embedded: queue.EmbeddedConfig{Dir: "/srv/js"}}, ""},
		{"embedded sync always", queue.Config{DataDir: "/d", Sync: "always"}, ""},
		{"embedded sync interval", queue.Config{DataDir: "/d", Sync: "250ms"}, ""},
		{"embedded listen with auth", queue.Config{DataDir: "/d", User: "u", PasswordFile: "/p", Embedded: queue.EmbeddedConfig{Listen: "127.0.0.1:4222"}}, ""},
		{"embedded cluster", queue.Config{DataDir: "/d", Embedded: queue.EmbeddedConfig{Cluster: queue.ClusterConfig{
			Name: "fl", Listen: "0.0.0.0:6222", Routes: []string{"nats-route://a:6222", "nats-route://b:6222"}}}}, ""},
		{"external", queue.Config{URL: "nats://a:4222, nats://b:4222"}, ""},
		{"external creds", queue.Config{URL: "tls://a:4222", CredsFile: "/c.creds", TLS: queue.TLSConfig{CAFile: "/ca.pem"}}, ""},
		{"external user", queue.Config{URL: "nats://a:4222", User: "u", PasswordFile: "/p", Replicas: 3}, ""},
		{"external mtls", queue.Config{URL: "nats://a:4222", TLS: queue.TLSConfig{CertFile: "/c", KeyFile: "/k", ServerName: "nats"}}, ""},
		{"tuned", queue.Config{DataDir: "/d", Stream: "JOBS", Subject: "fl.jobs.v1", Consumer: "w-1", KVBucket: "state",
			DuplicateWindow: time.Hour, AckWait: 30 * time.Second, MaxDeliver: 3, StateTTL: time.Hour}, ""},

		{"no store", queue.Config{}, "embedded.dir"},
		{"password in url", queue.Config{URL: "nats://u:hunter2@a:4222"}, "carries a password"},
		{"bad scheme", queue.Config{URL: "http://a:4222"}, "scheme"},
		{"bad url", queue.Config{URL: "a:4222"}, "url"},
		{"sync with url", queue.Config{URL: "nats://a:4222", Sync: "always"}, "sync"},
		{"embedded with url", queue.Config{URL: "nats://a:4222", Embedded: queue.EmbeddedConfig{Listen: "127.0.0.1:4222"}}, "embedded"},
		{"creds embedded", queue.Config{DataDir: "/d", CredsFile: "/c"}, "creds_file"},
		{"tls embedded", queue.Config{DataDir: "/d", TLS: queue.TLSConfig{CAFile: "/ca"}}, "tls"},
		{"user embedded in-process", queue.Config{DataDir: "/d", User: "u", PasswordFile: "/p"}, "user"},
		{"user without password", queue.Config{URL: "nats://a:4222", User: "u"}, "password_file"},
		{"password without user", queue.Config{URL: "nats://a:4222", PasswordFile: "/p"}, "password_file"},
		{"creds and user", queue.Config{URL: "nats://a:4222", CredsFile: "/c", User: "u", PasswordFile: "/p"}, "creds_file"},
		{"cert without key", queue.Config{URL: "nats://a:4222", TLS: queue.TLSConfig{CertFile: "/c"}}, "key_file"},
		{"replicas", queue.Config{DataDir: "/d", Replicas: 7}, "replicas"},
		{"stream name", queue.Config{DataDir: "/d", Stream: "a.b"}, "stream"},
		{"consumer name", queue.Config{DataDir: "/d", Consumer: "a b"}, "consumer"},
		{"bucket name", queue.Config{DataDir: "/d", KVBucket: "a>"}, "kv_bucket"},
		{"subject wildcard", queue.Config{DataDir: "/d", Subject: "jobs.*"}, "subject"},
		{"subject empty token", queue.Config{DataDir: "/d", Subject: "jobs..x"}, "subject"},
		{"ack_wait", queue.Config{DataDir: "/d", AckWait: -time.Second}, "ack_wait"},
		{"duplicate_window", queue.Config{DataDir: "/d", DuplicateWindow: -time.Second}, "duplicate_window"},
		{"state_ttl", queue.Config{DataDir: "/d", StateTTL: 10 * time.Millisecond}, "state_ttl"},
		{"max_deliver", queue.Config{DataDir: "/d", MaxDeliver: -1}, "max_deliver"},
		{"sync word", queue.Config{DataDir: "/d", Sync: "sometimes"}, "sync"},
		{"sync zero", queue.Config{DataDir: "/d", Sync: "0s"}, "sync"},
		{"listen without host", queue.Config{DataDir: "/d", Embedded: queue.EmbeddedConfig{Listen: ":4222"}}, "embedded.listen"},
		{"listen port", queue.Config{DataDir: "/d", Embedded: queue.EmbeddedConfig{Listen: "4222"}}, "embedded.listen"},
		{"cluster without routes", queue.Config{DataDir: "/d", Embedded: queue.EmbeddedConfig{Cluster: queue.ClusterConfig{
			Name: "fl", Listen: "10.0.0.1:6222"}}}, "embedded.cluster.routes"},
		{"cluster without name", queue.Config{DataDir: "/d", Embedded: queue.EmbeddedConfig{Cluster: queue.ClusterConfig{
			Listen: "10.0.0.1:6222", Routes: []string{"nats-route://a:6222"}}}}, "embedded.cluster.name"},
		{"cluster bad route", queue.Config{DataDir: "/d", Embedded: queue.EmbeddedConfig{Cluster: queue.ClusterConfig{
			Name: "fl", Listen: "10.0.0.1:6222", Routes: []string{"a"}}}}, "embedded.cluster.routes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("got nil, want an error about %s", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("got %v, want an error about %s", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows the password: %v", err)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
url: nats://a:4222,nats://b:4222
user: firstlook
password_file: /run/secrets/nats
tls: {ca_file: /etc/nats/ca.pem, server_name: nats.internal}
replicas: 3
stream: JOBS
kv_bucket: incidents
duplicate_window: 12h
ack_wait: 45s
max_deliver: 4
state_ttl: 168h
`
	var got queue.Config
	if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := queue.Config{
		URL: "nats://a:4222,nats://b:4222", User: "firstlook", PasswordFile: "/run/secrets/nats",
		TLS:      queue.TLSConfig{CAFile: "/etc/nats/ca.pem", ServerName: "nats.internal"},
		Replicas: 3, Stream: "JOBS", KVBucket: "incidents",
		DuplicateWindow: 12 * time.Hour, AckWait: 45 * time.Second, MaxDeliver: 4, StateTTL: 168 * time.Hour,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}

	const embedded = `
sync: always
embedded:
  dir: /srv/firstlook/jetstream
  name: node-a
  cluster:
    name: firstlook
    listen: 10.0.0.1:6222
    routes: [nats-route://10.0.0.2:6222, nats-route://10.0.0.3:6222]
`
	var e queue.Config
	if err := yaml.Unmarshal([]byte(embedded), &e); err != nil {
		t.Fatal(err)
	}
	if e.Sync != "always" || e.Embedded.Name != "node-a" || len(e.Embedded.Cluster.Routes) != 2 {
		t.Fatalf("got %+v", e)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	_, err := queue.Open(context.Background(), queue.Config{Sync: "sometimes", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "sync") {
		t.Fatalf("got %v, want a config error about sync", err)
	}
}

func TestPutRejectsUnidentifiableTrigger(t *testing.T) {
	q := open(t, embeddedConfig(t))
	ctx := testCtx(t, 10*time.Second)
	tests := []struct {
		name   string
		source string
		id     string
	}{
		{"no source", "", "d1"},
		{"no delivery id", "pagerduty", ""},
		{"control characters", "pagerduty", "d1\r\nNats-Msg-Id: x"},
		{"too long", "pagerduty", strings.Repeat("x", 600)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := trigger(tt.id)
			tr.Source, tr.DeliveryID = tt.source, tt.id
			if _, err := q.Put(ctx, tr); err == nil {
				t.Fatalf("Put: got nil error, want a rejection")
			}
		})
	}
	if got := stats(t, q); got.Stored != 0 {
		t.Fatalf("Stats: got Stored %d, want 0", got.Stored)
	}
}
