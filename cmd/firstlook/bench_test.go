package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/runner/queue"
)

// benchConns is how many concurrent keep-alive connections send webhooks.
const benchConns = 64

// loadResult is one load run against one target.
type loadResult struct {
	n        int
	elapsed  time.Duration
	p50, p99 time.Duration
	accepted int64 // 202 "queued" answers
	other    int64
}

func (r loadResult) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

// load sends n signed webhooks to url over benchConns connections, each
// with its own X-Webhook-Id, and measures each request's latency.
func load(b *testing.B, url string, n int, body []byte, sig, idPrefix string) loadResult {
	b.Helper()
	var next atomic.Int64
	lat := make([]time.Duration, n)
	var res loadResult
	var wg sync.WaitGroup
	start := time.Now()
	for range benchConns {
		wg.Go(func() {
			tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-PagerDuty-Signature", sig)
				req.Header.Set("X-Webhook-Id", idPrefix+strconv.Itoa(i))
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				var reply hooks.Reply
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lat[i] = time.Since(t0)
				if resp.StatusCode == http.StatusAccepted && json.Unmarshal(raw, &reply) == nil && reply.Status == "queued" {
					atomic.AddInt64(&res.accepted, 1)
				} else {
					atomic.AddInt64(&res.other, 1)
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.n = n
	slices.Sort(lat)
	res.p50, res.p99 = lat[n/2], lat[n*99/100]
	return res
}

func report(b *testing.B, r loadResult) {
	b.ReportMetric(r.rps(), "req/s")
	b.ReportMetric(float64(r.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIntake sends signed webhooks at 64 concurrent connections to a
// no-op net/http handler and to serve (embedded queue, file storage, every
// job stored before its 202) in the same run, and prints the ratio: the
// machine is shared and noisy, so only the ratio means something.
func BenchmarkIntake(b *testing.B) {
	secret := hookstest.CapturedSecret(b)
	body := hookstest.Fixture(b, "pagerduty-v3", "incident.triggered.json")
	sig := hookstest.Sign(body, secret)
	results := map[string]loadResult{}

	b.Run("noop", func(b *testing.B) {
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"status":"queued"}`+"\n")
		})}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		go srv.Serve(ln)
		defer srv.Close()
		r := load(b, "http://"+ln.Addr().String()+"/", max(b.N, benchConns), body, sig, "noop-")
		results["noop"] = r
		report(b, r)
	})

	b.Run("serve", func(b *testing.B) {
		dir := b.TempDir()
		writeFile(b, filepath.Join(dir, "secret"), secret)
		writeFile(b, filepath.Join(dir, "known_hosts"), "")
		writeFile(b, filepath.Join(dir, "id"), "")
		writeFile(b, filepath.Join(dir, "firstlook.yaml"), `data_dir: data
log_level: error
pagerduty:
  webhook_secret_files: [secret]
inventory:
  hosts: [{name: h, address: 127.0.0.1, user: u}]
ssh:
  known_hosts: [known_hosts]
  agent: true
playbooks:
  paths: [playbooks]
`)
		if err := os.MkdirAll(filepath.Join(dir, "playbooks"), 0o700); err != nil {
			b.Fatal(err)
		}
		writeFile(b, filepath.Join(dir, "playbooks", "p.yaml"), "name: p\nsteps:\n  - name: s\n    run: uptime\n")
		b.Setenv("SSH_AUTH_SOCK", filepath.Join(dir, "no-agent"))
		cfg, err := LoadConfig(filepath.Join(dir, "firstlook.yaml"))
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Serve(ctx, ServeOptions{Config: cfg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Listener: ln, NoWorkers: true})
		}()
		waitHealthy(b, "http://"+ln.Addr().String())
		b.ResetTimer()
		r := load(b, "http://"+ln.Addr().String()+"/hooks/pagerduty", max(b.N, benchConns), body, sig, fmt.Sprintf("serve-%d-", b.N))
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		// Every 202 is a stored job: reopen the queue and count.
		q, err := queue.Open(context.Background(), cfg.Queue)
		if err != nil {
			b.Fatal(err)
		}
		st, err := q.Stats(context.Background())
		q.Close()
		if err != nil {
			b.Fatal(err)
		}
		if r.other != 0 || int64(st.Stored) != r.accepted {
			b.Fatalf("got %d jobs stored for %d answers 202 queued (%d other answers); want one stored job per 202", st.Stored, r.accepted, r.other)
		}
		results["serve"] = r
		report(b, r)
	})

	noop, serve := results["noop"], results["serve"]
	if noop.n > 0 && serve.n > 0 {
		fmt.Printf("\nintake, %d connections:\n", benchConns)
		fmt.Printf("  %-6s %9.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d requests)\n", "noop", noop.rps(), ms(noop.p50), ms(noop.p99), noop.n)
		fmt.Printf("  %-6s %9.0f req/s   p50 %6.2f ms   p99 %6.2f ms   (%d requests, every one stored before its 202)\n", "serve", serve.rps(), ms(serve.p50), ms(serve.p99), serve.n)
		fmt.Printf("  ratio serve/noop throughput: %.2f (target >= 0.5); serve p99 %.2f ms (target <= 5)\n\n", serve.rps()/noop.rps(), ms(serve.p99))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func waitHealthy(tb testing.TB, base string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatal("serve did not become healthy within 30s")
}
