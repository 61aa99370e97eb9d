package queue_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// publishers is how many webhook requests the intake serves at once in the
// benchmarks.
const publishers = 64

// BenchmarkPut measures Put as the webhook intake uses it: 64 concurrent
// publishers on the embedded server with file storage, for each fsync
// policy, each publisher putting again as soon as its Put returns (the
// queue saturated). Besides ns/op (wall time per Put, all publishers
// together: the inverse of throughput) it reports each Put's latency,
// p50-ms and p99-ms, which at saturation is mostly queueing.
//
//	go test -run '^$' -bench BenchmarkPut -benchtime 40000x ./runner/queue/
func BenchmarkPut(b *testing.B) {
	for _, mode := range []string{queue.DefaultSync, queue.SyncAlways, "2m"} {
		b.Run("sync="+mode, func(b *testing.B) {
			q := benchQueue(b, mode)
			procs := runtime.GOMAXPROCS(0)
			b.SetParallelism((publishers + procs - 1) / procs)
			var seq atomic.Int64
			var lat latencies
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1024)
				for pb.Next() {
					mine = append(mine, benchPut(b, q, seq.Add(1)))
				}
				lat.add(mine)
			})
			b.StopTimer()
			lat.report(b, q)
		})
	}
}

// BenchmarkPutPaced measures Put's latency below saturation: 64 publishers
// together offering a fixed rate of webhooks, far above any real alert
// storm, as the p99 target of the intake assumes.
func BenchmarkPutPaced(b *testing.B) {
	for _, bc := range []struct {
		mode string
		rate int // Puts per second, all publishers together
	}{
		{queue.DefaultSync, 2000}, {queue.DefaultSync, 200},
		{queue.SyncAlways, 1000}, {queue.SyncAlways, 200},
	} {
		mode, rate := bc.mode, bc.rate
		b.Run(fmt.Sprintf("sync=%s/rate=%d", mode, rate), func(b *testing.B) {
			q := benchQueue(b, mode)
			var seq atomic.Int64
			var lat latencies
			var wg sync.WaitGroup
			b.ResetTimer()
			for range publishers {
				wg.Go(func() {
					// Staggered, so the offered load is steady rather than
					// bursts of 64.
					period := publishers * time.Second / time.Duration(rate)
					time.Sleep(rand.N(period))
					tick := time.NewTicker(period)
					defer tick.Stop()
					mine := make([]time.Duration, 0, 1024)
					for {
						n := seq.Add(1)
						if n > int64(b.N) {
							break
						}
						<-tick.C
						mine = append(mine, benchPut(b, q, n))
					}
					lat.add(mine)
				})
			}
			wg.Wait()
			b.StopTimer()
			lat.report(b, q)
		})
	}
}

func benchQueue(b *testing.B, mode string) *queue.Queue {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q, err := queue.Open(ctx, queue.Config{DataDir: b.TempDir(), Sync: mode, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = q.Close() })
	return q
}

// benchPut puts the n-th trigger as an HTTP handler would, with a
// deadline, and returns how long it took.
func benchPut(b *testing.B, q *queue.Queue, n int64) time.Duration {
	t := trigger("bench-" + strconv.FormatInt(n, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := q.Put(ctx, t); err != nil {
		b.Error(err)
	}
	return time.Since(start)
}

type latencies struct {
	mu  sync.Mutex
	all []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.all = append(l.all, d...)
	l.mu.Unlock()
}

// report adds the percentiles to the benchmark's result and checks that
// every Put was stored.
func (l *latencies) report(b *testing.B, q *queue.Queue) {
	if len(l.all) == 0 {
		return
	}
	slices.Sort(l.all)
	pct := func(p float64) float64 {
		return float64(l.all[int(p*float64(len(l.all)-1))].Nanoseconds()) / 1e6
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	st, err := q.Stats(context.Background())
	if err != nil || st.Stored != uint64(len(l.all)) {
		b.Fatalf("Stats: got (%+v, %v), want %d stored", st, err, len(l.all))
	}
}
