package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/sns/snstest"
)

// benchReq is one prepared webhook: path, headers and body.
type benchReq struct {
	path   string
	header http.Header
	body   []byte
}

// sourceBenchMax is the most webhooks each source gets per round: SNS
// messages are signed ahead (RSA, about a millisecond each).
const sourceBenchMax = 20000

// sourceBenchParts is how many alternating parts (see alternate) each
// source's round is cut into.
const sourceBenchParts = 10

// BenchmarkIntakeSources sends each alert source's real payload shape,
// authenticated as its sender does and each a new delivery, to serve
// (every one stored before its 202), and the same bodies to a no-op
// handler, in the same run; it prints each source's throughput as a ratio
// to the no-op's (target >= 0.5).
func BenchmarkIntakeSources(b *testing.B) {
	// make bench's -benchtime 100000x gives the most; the first, b.N=1
	// call a quick pass.
	n := min(max(b.N/5, benchConns), sourceBenchMax)
	aws := snstest.New(b)
	reqs := map[string][]benchReq{
		"pagerduty":    pagerdutyReqs(b, n),
		"alertmanager": alertmanagerReqs(b, n),
		"mackerel":     mackerelReqs(b, n),
		"sns":          snsReqs(b, aws, n),
	}
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "known_hosts"), "")
	writeFile(b, filepath.Join(dir, "firstlook.yaml"), `data_dir: data
log_level: error
pagerduty:
  webhook_secrets: [`+hookstest.CapturedSecret(b)+`]
alertmanager:
  bearer_tokens: [bench-am-token]
mackerel:
  tokens: [bench-mackerel-token-0123456789]
sns:
  topic_arns: [`+benchTopic+`]
inventory:
  hosts: [{name: h, address: 127.0.0.1, user: u}]
ssh:
  known_hosts: [known_hosts]
  agent: true
playbooks:
  library: [linux-baseline]
`)
	b.Setenv("SSH_AUTH_SOCK", filepath.Join(dir, "no-agent"))
	cfg, err := LoadConfig(filepath.Join(dir, "firstlook.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	base, stop := startServe(b, ServeOptions{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), NoWorkers: true, SourceClient: aws.Client})
	noop := startNoop(b)

	var accepted int64
	names := []string{"pagerduty", "alertmanager", "mackerel", "sns"}
	clients := [2][]*http.Client{warmClients(b, noop), warmClients(b, base)}
	bases := [2]string{noop, base}
	if b.N == 1 {
		fmt.Printf("\nintake per source: first pass, %d deliveries each, to check the answers (not a measurement)\n", n)
	} else {
		fmt.Printf("\nintake per source, %d keep-alive connections, %d new deliveries each per round in %d alternating parts, ratio to a no-op handler given the same requests:\n", benchConns, n, sourceBenchParts)
	}
	for round := 1; round <= benchRounds; round++ {
		for _, name := range names {
			// Each round sends new deliveries: the round number is in
			// every id.
			rs := reqs[name][(round-1)*n : round*n]
			nr, s := alternate(n, sourceBenchParts, func(t, from, to int) loadResult {
				return loadReqs(b, clients[t], bases[t], rs[from:to])
			})
			if s.other != 0 {
				b.Fatalf("%s: %d answers other than 202 queued", name, s.other)
			}
			accepted += s.accepted
			if b.N > 1 {
				fmt.Printf("  round %d %-13s serve %7.0f req/s (p99 %6.2f ms)   noop %7.0f req/s   ratio %.2f (target >= 0.5)\n",
					round, name, s.rps(), ms(s.p99), nr.rps(), s.rps()/nr.rps())
			}
		}
	}
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	if stored := storedJobs(b, cfg.Queue); int64(stored) != accepted {
		b.Fatalf("got %d jobs stored for %d answers 202 queued; want one per 202", stored, accepted)
	}
	b.ReportMetric(0, "ns/op")
}

// warmClients returns benchConns clients, each with one keep-alive
// connection to base already open (a GET /healthz): a webhook sender keeps
// its connections, and a few thousand requests would otherwise measure 64
// cold connects too.
func warmClients(b *testing.B, base string) []*http.Client {
	cs := make([]*http.Client, benchConns)
	for i := range cs {
		tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
		b.Cleanup(tr.CloseIdleConnections)
		cs[i] = &http.Client{Transport: tr}
		resp, err := cs[i].Get(base + "/healthz")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return cs
}

// loadReqs sends reqs over the clients' keep-alive connections and
// measures throughput and latency.
func loadReqs(b *testing.B, clients []*http.Client, base string, reqs []benchReq) loadResult {
	b.Helper()
	return send(b, clients, len(reqs), func(i int) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, base+reqs[i].path, bytes.NewReader(reqs[i].body))
		for k, v := range reqs[i].header {
			req.Header[k] = v
		}
		return req
	})
}

const benchTopic = "arn:aws:sns:us-east-1:123456789012:alarms"

// pagerdutyReqs is the captured incident.triggered delivery, signed, each
// with its own X-Webhook-Id: the baseline the other sources compare with.
func pagerdutyReqs(b *testing.B, n int) []benchReq {
	secret := hookstest.CapturedSecret(b)
	body := hookstest.Fixture(b, "pagerduty-v3", "incident.triggered.json")
	sig := hookstest.Sign(body, secret)
	out := make([]benchReq, benchRounds*n)
	for i := range out {
		out[i] = benchReq{path: "/hooks/pagerduty", body: body, header: http.Header{
			"Content-Type": {"application/json"}, "X-Pagerduty-Signature": {sig}, "X-Webhook-Id": {"bench-" + strconv.Itoa(i)}}}
	}
	return out
}

// alertmanagerReqs is the captured firing notification, each with a new
// alert (fingerprint), authenticated with a bearer token.
func alertmanagerReqs(b *testing.B, n int) []benchReq {
	var doc map[string]any
	if err := json.Unmarshal(hookstest.Fixture(b, "alertmanager", "v4-firing.json"), &doc); err != nil {
		b.Fatal(err)
	}
	out := make([]benchReq, benchRounds*n)
	for i := range out {
		doc["alerts"].([]any)[0].(map[string]any)["fingerprint"] = fmt.Sprintf("%016x", i)
		body, _ := json.Marshal(doc)
		out[i] = benchReq{path: "/hooks/alertmanager", body: body, header: http.Header{
			"Content-Type": {"application/json"}, "Authorization": {"Bearer bench-am-token"}, "User-Agent": {"Alertmanager/0.31.1"}}}
	}
	return out
}

// mackerelReqs is the documented alert, each a new alert id, with the
// token as the last path segment.
func mackerelReqs(b *testing.B, n int) []benchReq {
	var doc map[string]any
	if err := json.Unmarshal(hookstest.Fixture(b, "mackerel", "alert-host-critical.docs.json"), &doc); err != nil {
		b.Fatal(err)
	}
	out := make([]benchReq, benchRounds*n)
	for i := range out {
		doc["alert"].(map[string]any)["id"] = "bench-" + strconv.Itoa(i)
		body, _ := json.Marshal(doc)
		out[i] = benchReq{path: "/hooks/mackerel/bench-mackerel-token-0123456789", body: body, header: http.Header{"Content-Type": {"application/json"}}}
	}
	return out
}

// snsReqs are signed CloudWatch alarm notifications, each its own message.
func snsReqs(b *testing.B, aws *snstest.AWS, n int) []benchReq {
	out := make([]benchReq, benchRounds*n)
	var wg sync.WaitGroup
	workers := 4
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(out); i += workers {
				m := aws.Notification(b, benchTopic, "bench-"+strconv.Itoa(i), snstest.Alarm("cpu-high", "ALARM", "i-0abc1234def567890", time.Now().UTC().Format("2006-01-02T15:04:05.000-0700")+strconv.Itoa(i)))
				r := snstest.Request(m)
				out[i] = benchReq{path: "/hooks/sns", body: m.Body(), header: r.Header}
			}
		})
	}
	wg.Wait()
	return out
}
