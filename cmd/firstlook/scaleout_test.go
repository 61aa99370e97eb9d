package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// natsProc is one nats-server process of the test's cluster.
type natsProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNATSCluster starts three clustered nats-server processes with
// JetStream on loopback (the servers an operator runs next to several
// firstlook nodes) and returns their client URLs. Cleanup kills them by pid.
func startNATSCluster(t *testing.T) (urls string, procs []*natsProc) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "nats-server")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	clients := []string{freeLoopback(t), freeLoopback(t), freeLoopback(t)}
	routes := []string{freeLoopback(t), freeLoopback(t), freeLoopback(t)}
	var all []string
	for _, r := range routes {
		all = append(all, "nats-route://"+r)
	}
	var list []string
	for i := range 3 {
		conf := filepath.Join(dir, fmt.Sprintf("n%d.conf", i))
		body := fmt.Sprintf("server_name: n%d\nlisten: %q\njetstream { store_dir: %q }\ncluster {\n  name: firstlook-scaleout-%d\n  listen: %q\n  routes: [%s]\n}\n",
			i, clients[i], filepath.Join(dir, fmt.Sprintf("n%d", i)), os.Getpid(), routes[i], strings.Join(all, ", "))
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		log, err := os.Create(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		p := &natsProc{cmd: exec.Command(bin, "-c", conf), exited: make(chan struct{})}
		p.cmd.Stdout, p.cmd.Stderr = log, log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		log.Close()
		go func() { _ = p.cmd.Wait(); close(p.exited) }()
		t.Cleanup(func() { p.kill() })
		procs = append(procs, p)
		list = append(list, "nats://"+clients[i])
	}
	urls = strings.Join(list, ",")
	// Wait for a JetStream meta leader: every node answers the API.
	for _, u := range list {
		deadline := time.Now().Add(90 * time.Second)
		for {
			err := func() error {
				nc, err := nats.Connect(u, nats.NoReconnect())
				if err != nil {
					return err
				}
				defer nc.Close()
				js, err := jetstream.New(nc)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err = js.AccountInfo(ctx)
				return err
			}()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nats %s: JetStream not ready: %v", u, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return urls, procs
}

func (p *natsProc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.exited
}

// TestScaleOut is the README's scale-out recipe with real processes: three
// `firstlook serve` sharing a three-node NATS JetStream cluster (stream and
// bucket replicated three ways) and one evidence store, webhooks spread
// over the three. One firstlook node is SIGKILLed while it runs jobs and
// one NATS node is killed: every incident still gets exactly one bundle,
// one PagerDuty note and one Slack post.
func TestScaleOut(t *testing.T) {
	// About 30 s here (it builds nats-server, starts six processes and
	// waits out an ack_wait redelivery).
	if testing.Short() {
		t.Skip("starts three NATS servers and three firstlook processes")
	}
	e := newEnv(t, "host-1", "host-2")
	urls, nats := startNATSCluster(t)
	slk := slacktest.NewServer()
	t.Cleanup(slk.Close)
	e.write("slack.txt", slacktest.Token+"\n")
	bin := buildBinary(t)

	base, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []*daemon
	var addrs []string
	for i := range 3 {
		addr := freeLoopback(t)
		cfg := strings.Replace(string(base), "listen: 127.0.0.1:0", "listen: "+addr, 1)
		cfg = strings.Replace(cfg, "data_dir: data", fmt.Sprintf("data_dir: node%d", i), 1)
		// One queue (the cluster) and one evidence store for all nodes.
		cfg = strings.Replace(cfg, "queue:\n  ack_wait: 5s\n", fmt.Sprintf("queue:\n  ack_wait: 5s\n  url: %q\n  replicas: 3\n", urls), 1)
		cfg += fmt.Sprintf("evidence:\n  dir: {path: %q}\nslack:\n  bot_token_file: slack.txt\n  api_url: %s\n", e.evidence, slk.URL)
		name := fmt.Sprintf("node%d.yaml", i)
		e.write(name, cfg)
		d := startDaemon(t, bin, filepath.Join(e.dir, name), filepath.Join(e.dir, fmt.Sprintf("node%d.log", i)))
		// Registered after startDaemon's, so it runs first: that
		// cleanup waits for the log pipe, which ends only when the
		// process does.
		t.Cleanup(func() {
			if d.cmd.ProcessState == nil {
				_ = d.cmd.Process.Kill()
				_ = d.cmd.Wait()
			}
		})
		nodes = append(nodes, d)
		addrs = append(addrs, d.addr)
	}

	// Six incidents, spread over the three intakes as a load balancer
	// would. Each run takes about 3 s (the crash playbook sleeps).
	var ids []string
	for i := range 6 {
		id := fmt.Sprintf("INCSCALE%d", i)
		ids = append(ids, id)
		e.url = "http://" + addrs[i%3]
		e.send(id, fmt.Sprintf("crash on host-%d", i%2+1))
	}
	// Node 0 dies mid-run; so does one NATS server.
	deadline := time.Now().Add(30 * time.Second)
	for !logContains(nodes[0].log, "run started") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !logContains(nodes[0].log, "run started") {
		t.Fatal("node 0 never started a run")
	}
	nodes[0].kill(t)
	nats[2].kill()

	for _, id := range ids {
		e.wait(id, 1)
	}
	// Wait for the last publishes, then a little longer for a duplicate
	// to show.
	deadline = time.Now().Add(120 * time.Second)
	for (len(e.allNotes()) < len(ids) || slk.Posts() < len(ids)) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)

	started := 0
	for i, d := range nodes {
		b, _ := os.ReadFile(d.log)
		n := strings.Count(string(b), `"msg":"run started"`)
		t.Logf("node %d started %d runs", i, n)
		started += n
	}
	for _, id := range ids {
		if n := len(e.bundles(id)); n != 1 {
			t.Errorf("%s: got %d bundles, want 1", id, n)
		}
		if n := len(e.notesFor(id)); n != 1 {
			t.Errorf("%s: got %d PagerDuty notes, want 1", id, n)
		}
	}
	if n := slk.Posts(); n != len(ids) {
		t.Errorf("got %d Slack posts, want %d (one per run)", n, len(ids))
	}
	// A run is started again only when its node died with it in flight:
	// at most runner.workers (4) runs of the killed node.
	if started < len(ids) || started > len(ids)+4 {
		t.Errorf("runs started: %d, want %d plus at most the killed node's in-flight runs", started, len(ids))
	}
}

// allNotes is every note the PagerDuty API received.
func (e *env) allNotes() []pdNote {
	e.notesMu.Lock()
	defer e.notesMu.Unlock()
	return append([]pdNote(nil), e.notes...)
}
