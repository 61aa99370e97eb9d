package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/firstlook/firstlook/runner/queue"
)

// natsCluster is three nats-server processes on 127.0.0.1, clustered with
// JetStream, as an external cluster firstlook nodes would share.
type natsCluster struct {
	t     *testing.T
	bin   string
	nodes []*natsNode
	urls  string // all client URLs, comma-separated
}

type natsNode struct {
	name, conf, log string
	cmd             *exec.Cmd
	exited          chan struct{}
}

// startCluster starts the cluster and waits until JetStream answers on
// every node. Cleanup kills whatever still runs, by pid.
func startCluster(t *testing.T) *natsCluster {
	t.Helper()
	bin, err := natsServer()
	requireIntegration(t, err)
	dir := t.TempDir()
	clients := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	routes := make([]string, 3)
	for i := range routes {
		routes[i] = "nats-route://" + freeAddr(t)
	}
	c := &natsCluster{t: t, bin: bin}
	var urls []string
	for i := range 3 {
		n := &natsNode{
			name: fmt.Sprintf("n%d", i),
			conf: filepath.Join(dir, fmt.Sprintf("n%d.conf", i)),
			log:  filepath.Join(dir, fmt.Sprintf("n%d.log", i)),
		}
		conf := fmt.Sprintf(`server_name: %s
listen: %q
jetstream { store_dir: %q }
cluster {
  name: firstlook-test-%d
  listen: %q
  routes: [%s]
}
`, n.name, clients[i], filepath.Join(dir, n.name), os.Getpid(), strings.TrimPrefix(routes[i], "nats-route://"), strings.Join(routes, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
		urls = append(urls, "nats://"+clients[i])
	}
	c.urls = strings.Join(urls, ",")
	t.Cleanup(func() {
		for i, n := range c.nodes {
			c.kill(i)
			if t.Failed() {
				if b, err := os.ReadFile(n.log); err == nil {
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					t.Logf("%s log tail:\n%s", n.name, strings.Join(lines[max(0, len(lines)-15):], "\n"))
				}
			}
		}
	})
	for i := range c.nodes {
		c.start(i)
	}
	for i := range c.nodes {
		c.waitJetStream(i)
	}
	return c
}

// start starts (or restarts, on the same store) node i.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	n := c.nodes[i]
	log, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer log.Close()
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	n.cmd.Stdout, n.cmd.Stderr = log, log
	if err := n.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", n.name, err)
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(n.cmd, n.exited)
}

// kill SIGKILLs node i, by its pid, and waits for it to be gone.
func (c *natsCluster) kill(i int) {
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// waitJetStream waits until node i answers JetStream API requests, which
// takes a meta leader.
func (c *natsCluster) waitJetStream(i int) {
	c.t.Helper()
	url := strings.Split(c.urls, ",")[i]
	err := eventually(60*time.Second, func(ctx context.Context) error {
		nc, err := nats.Connect(url, nats.NoReconnect())
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.AccountInfo(ctx)
		return err
	})
	if err != nil {
		c.t.Fatalf("node %s: JetStream not ready: %v", c.nodes[i].name, err)
	}
}

// js is a client of the test's own on the whole cluster, for looking at
// streams from outside the queue.
func (c *natsCluster) js() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(c.urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	return js
}

var clusterSeq atomic.Int32

// config returns a queue configuration with a stream, consumer and bucket
// of its own on the cluster.
func (c *natsCluster) config(t *testing.T) queue.Config {
	n := clusterSeq.Add(1)
	return queue.Config{
		URL:      c.urls,
		Stream:   fmt.Sprintf("T%d", n),
		Subject:  fmt.Sprintf("t%d.jobs", n),
		Consumer: "workers",
		KVBucket: fmt.Sprintf("kv%d", n),
		// Buckets of its own too: the same job ids recur across tests.
		LeaseBucket:    fmt.Sprintf("leases%d", n),
		DeliveryBucket: fmt.Sprintf("deliveries%d", n),
		Logger:         quietLogger(),
	}
}

// eventually retries f, each time with 10 s, until it succeeds or d passed.
func eventually(d time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := startCluster(t)
	runContract(t, c.config)
}

// TestClusterFailover SIGKILLs the stream's leader: jobs and state stay,
// Put, lease and CAS keep working; the killed node rejoins and is a working
// replica again, enough to make a quorum when another node dies.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := startCluster(t)
	js := c.js()
	cfg := c.config(t)
	// A lease lost with a dead server comes back soon.
	cfg.AckWait = 5 * time.Second
	q := open(t, cfg)
	if got := queue.Replicas(q); got != 3 {
		t.Fatalf("replicas on a cluster: got %d, want 3", got)
	}
	want := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("before-%d", i)
		put(t, q, id)
		want[id] = true
	}
	key := queue.Key("Q1FAIL", "slack")
	rev, err := q.State().Create(testCtx(t, 30*time.Second), key, []byte("C1"))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	leader := c.leaderOf(js, cfg.Stream)
	c.kill(leader)
	t.Logf("killed the stream leader %s", c.nodes[leader].name)

	// The new leader still recognises a redelivered webhook.
	if err := eventually(60*time.Second, func(ctx context.Context) error {
		dup, err := q.Put(ctx, trigger("before-0"))
		if err == nil && !dup {
			t.Errorf("Put of a stored job after the kill: got duplicate false, want true")
		}
		return err
	}); err != nil {
		t.Fatalf("Put after the kill: %v", err)
	}
	for i := range 5 {
		id := fmt.Sprintf("after-kill-%d", i)
		if err := eventually(60*time.Second, func(ctx context.Context) error {
			_, err := q.Put(ctx, trigger(id))
			return err
		}); err != nil {
			t.Fatalf("Put after the kill: %v", err)
		}
		want[id] = true
	}
	if err := eventually(60*time.Second, func(ctx context.Context) error {
		r, err := q.State().Update(ctx, key, []byte("C2"), rev)
		if errors.Is(err, queue.ErrConflict) {
			// A retried Update that did land the first time.
			if v, _, gerr := q.State().Get(ctx, key); gerr == nil && string(v) == "C2" {
				return nil
			}
		}
		if err == nil {
			// Only a successful Update moves the revision: a failed
			// attempt must be retried against the one it read.
			rev = r
		}
		return err
	}); err != nil {
		t.Fatalf("Update after the kill: %v", err)
	}
	got := map[string]bool{}
	for len(got) < len(want) {
		j := next(t, q)
		got[j.Trigger.DeliveryID] = true
		if err := eventually(60*time.Second, j.Ack); err != nil && !errors.Is(err, queue.ErrDone) {
			t.Fatalf("Ack: %v", err)
		}
	}
	for id := range want {
		if !got[id] {
			t.Errorf("job %s lost in the failover", id)
		}
	}

	// The killed node rejoins and catches up.
	c.start(leader)
	c.waitCurrent(js, c.nodes[leader].name, cfg.Stream, "KV_"+cfg.KVBucket)

	// With another node down, the rejoined one makes the quorum.
	other := (leader + 1) % 3
	c.kill(other)
	t.Logf("killed %s after %s rejoined", c.nodes[other].name, c.nodes[leader].name)
	if err := eventually(60*time.Second, func(ctx context.Context) error {
		_, err := q.Put(ctx, trigger("after-rejoin"))
		return err
	}); err != nil {
		t.Fatalf("Put with the rejoined node in the quorum: %v", err)
	}
	j := next(t, q)
	if j.Trigger.DeliveryID != "after-rejoin" {
		t.Fatalf("got %s, want after-rejoin", j.Trigger.DeliveryID)
	}
	if err := eventually(60*time.Second, j.Ack); err != nil && !errors.Is(err, queue.ErrDone) {
		t.Fatalf("Ack: %v", err)
	}
	if err := eventually(60*time.Second, func(ctx context.Context) error {
		v, _, err := q.State().Get(ctx, key)
		if err == nil && string(v) != "C2" {
			return fmt.Errorf("got %q, want C2", v)
		}
		return err
	}); err != nil {
		t.Fatalf("Get with the rejoined node in the quorum: %v", err)
	}
}

// leaderOf returns the index of the node leading stream.
func (c *natsCluster) leaderOf(js jetstream.JetStream, stream string) int {
	c.t.Helper()
	var leader string
	if err := eventually(30*time.Second, func(ctx context.Context) error {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return err
		}
		if s.CachedInfo().Cluster == nil || s.CachedInfo().Cluster.Leader == "" {
			return errors.New("no leader")
		}
		leader = s.CachedInfo().Cluster.Leader
		return nil
	}); err != nil {
		c.t.Fatalf("leader of %s: %v", stream, err)
	}
	for i, n := range c.nodes {
		if n.name == leader {
			return i
		}
	}
	c.t.Fatalf("leader of %s: unknown node %q", stream, leader)
	return -1
}

// waitCurrent waits until node is a current replica of every stream.
func (c *natsCluster) waitCurrent(js jetstream.JetStream, node string, streams ...string) {
	c.t.Helper()
	for _, stream := range streams {
		err := eventually(60*time.Second, func(ctx context.Context) error {
			s, err := js.Stream(ctx, stream)
			if err != nil {
				return err
			}
			ci := s.CachedInfo().Cluster
			if ci == nil {
				return errors.New("no cluster info")
			}
			if ci.Leader == node {
				return nil
			}
			for _, r := range ci.Replicas {
				if r.Name == node && r.Current && !r.Offline {
					return nil
				}
			}
			return fmt.Errorf("%s not a current replica: %+v", node, ci.Replicas)
		})
		if err != nil {
			c.t.Fatalf("stream %s: %v", stream, err)
		}
	}
}
