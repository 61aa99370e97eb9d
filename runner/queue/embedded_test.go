package queue_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/firstlook/firstlook/runner/queue"
)

// embeddedConfig is an embedded, in-process server on a directory of the
// test's own.
func embeddedConfig(t *testing.T) queue.Config {
	return queue.Config{DataDir: t.TempDir(), Logger: quietLogger()}
}

func TestEmbedded(t *testing.T) {
	runContract(t, embeddedConfig)
}

func TestEmbeddedDefaults(t *testing.T) {
	cfg := embeddedConfig(t)
	q := open(t, cfg)
	if got := queue.Replicas(q); got != 1 {
		t.Errorf("replicas: got %d, want 1", got)
	}
	// The store lives under the data directory by default.
	put(t, q, "where")
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil {
		t.Errorf("store directory: %v", err)
	}
}

// TestEmbeddedListenAuth checks that an embedded server with a TCP port
// demands the configured credentials, and that neither a failed connection's
// error nor the printed config shows the password.
func TestEmbeddedListenAuth(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-pa55word-do-not-log"
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	server := queue.Config{
		DataDir:      dir,
		Logger:       quietLogger(),
		User:         "firstlook",
		PasswordFile: pwFile,
		Embedded:     queue.EmbeddedConfig{Listen: addr},
	}
	q := open(t, server)
	put(t, q, "auth-1")

	url := "nats://" + addr
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatalf("anonymous connection: got nil error, want an authorization error")
	}
	wrongFile := filepath.Join(dir, "wrong")
	const wrong = "wrong-pa55word-do-not-log"
	if err := os.WriteFile(wrongFile, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	client := queue.Config{URL: url, User: "firstlook", PasswordFile: wrongFile, Logger: quietLogger()}
	_, err := queue.Open(testCtx(t, 30*time.Second), client)
	if err == nil {
		t.Fatalf("Open with a wrong password: got nil error")
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v %#v", client, server)} {
		if strings.Contains(s, secret) || strings.Contains(s, wrong) {
			t.Errorf("a password leaked: %s", s)
		}
	}

	// The right password reaches the same queue from outside the process.
	client.PasswordFile = pwFile
	c := open(t, client)
	if j := next(t, c); j.Trigger.DeliveryID != "auth-1" {
		t.Errorf("got %s, want auth-1", j.Trigger.DeliveryID)
	}
}

// TestEmbeddedCluster clusters three nodes' embedded servers, as several
// firstlook nodes would, and uses the queue across them.
func TestEmbeddedCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	routes := []string{"nats-route://" + freeAddr(t), "nats-route://" + freeAddr(t), "nats-route://" + freeAddr(t)}
	qs := make([]*queue.Queue, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	ctx := testCtx(t, 2*time.Minute)
	for i := range qs {
		cfg := queue.Config{
			DataDir: t.TempDir(),
			Logger:  quietLogger(),
			Embedded: queue.EmbeddedConfig{
				Name: fmt.Sprintf("node-%d", i),
				Cluster: queue.ClusterConfig{
					Name:   "firstlook-test",
					Listen: strings.TrimPrefix(routes[i], "nats-route://"),
					Routes: routes,
				},
			},
		}
		// The nodes only finish opening together, once the cluster has
		// formed and placed the replicas.
		wg.Go(func() {
			qs[i], errs[i] = queue.Open(ctx, cfg)
			if qs[i] != nil {
				t.Cleanup(func() { _ = qs[i].Close() })
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Open: %v", err)
	}
	if got := queue.Replicas(qs[0]); got != 3 {
		t.Errorf("replicas: got %d, want 3", got)
	}
	put(t, qs[0], "across")
	if dup, err := qs[1].Put(ctx, trigger("across")); err != nil || !dup {
		t.Errorf("Put of the same delivery on another node: got (%v, %v), want (true, nil)", dup, err)
	}
	j := next(t, qs[2])
	if j.Trigger.DeliveryID != "across" {
		t.Fatalf("got %s, want across", j.Trigger.DeliveryID)
	}
	ack(t, j)
	key := queue.Key("Q1X", "slack")
	rev, err := qs[1].State().Create(ctx, key, []byte("C1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := qs[0].State().Update(ctx, key, []byte("C2"), rev-1); !errors.Is(err, queue.ErrConflict) {
		t.Errorf("stale Update on another node: got %v, want ErrConflict", err)
	}
	// A node may briefly have no route to the bucket's leader (an
	// election under load: "no responders"); what must hold is that it
	// reads the value once it has one.
	var v []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		v, _, err = qs[2].State().Get(ctx, key)
		if err == nil || !errors.Is(err, nats.ErrNoResponders) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || string(v) != "C1" {
		t.Errorf("Get on a third node: got (%q, %v), want C1", v, err)
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago: NATS routes must be known before the nodes start.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
