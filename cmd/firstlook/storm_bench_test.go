package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Storm shape: every incident arrives under stormIDs delivery ids, and
// every delivery stormRetries times (PagerDuty's retries), all shuffled.
const (
	stormIncidents = 500
	stormHosts     = 20
	stormIDs       = 4
	stormRetries   = 5
	stormConns     = 16
)

// stormResult is what one storm measured.
type stormResult struct {
	queued, duplicate, other int
	runs                     int           // runs started on hosts
	bundles                  int           // incidents with exactly one bundle
	extra                    int           // bundles beyond one per incident
	lastBundle               time.Duration // first webhook to last bundle
	p50, p99                 time.Duration // intake latency
	peakRSS                  int64         // bytes, the highest of the serve processes
	inFlightAtKill           int
}

// BenchmarkStorm is an alert storm against `serve` as a separate process
// (embedded queue, demo SSH hosts in this process): 10,000 deliveries for
// 500 incidents on 20 hosts (each incident under 4 delivery ids, each
// delivery sent 5 times, in shuffled order over 16 connections). It
// checks that exactly 500 runs happen and each incident gets one bundle,
// and reports the time from the first webhook to the last bundle, the
// intake's p99 during the storm and the peak RSS of serve; then the same
// storm with serve SIGKILLed after half the deliveries and restarted.
func BenchmarkStorm(b *testing.B) {
	bin := buildBinary(b)
	for _, kill := range []bool{false, true} {
		name := "steady"
		if kill {
			name = "killed-half-way"
		}
		b.Run(name, func(b *testing.B) {
			r := storm(b, bin, kill)
			fmt.Printf("\nstorm (%s): %d deliveries for %d incidents on %d hosts, %d connections\n", name, stormIncidents*stormIDs*stormRetries, stormIncidents, stormHosts, stormConns)
			fmt.Printf("  answers: %d queued, %d duplicate, %d other\n", r.queued, r.duplicate, r.other)
			fmt.Printf("  runs made: %d (incidents with exactly one bundle: %d of %d; extra bundles: %d)\n", r.runs, r.bundles, stormIncidents, r.extra)
			if kill {
				fmt.Printf("  runs in flight at the kill: %d (each may run once more)\n", r.inFlightAtKill)
			}
			fmt.Printf("  first webhook to last bundle: %s\n", r.lastBundle.Round(10*time.Millisecond))
			fmt.Printf("  intake latency: p50 %.2f ms, p99 %.2f ms\n", ms(r.p50), ms(r.p99))
			fmt.Printf("  peak RSS of serve: %.1f MiB (target <= 256 MiB)\n", float64(r.peakRSS)/(1<<20))
			b.ReportMetric(r.lastBundle.Seconds(), "s-to-last-bundle")
			b.ReportMetric(ms(r.p99), "intake-p99-ms")
			b.ReportMetric(float64(r.peakRSS)/(1<<20), "peak-rss-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
	fmt.Println()
}

func storm(b *testing.B, bin string, kill bool) stormResult {
	f := newFleet(b, fleetOptions{Hosts: stormHosts, Step: "true"})
	logFile := filepath.Join(f.dir, "serve.log")

	type delivery struct {
		incident, id string
		host         int
	}
	var sends []delivery
	for i := range stormIncidents {
		for d := range stormIDs {
			for range stormRetries {
				sends = append(sends, delivery{fmt.Sprintf("PSTORM%03d", i), fmt.Sprintf("wh-storm-%03d-%d", i, d), i % stormHosts})
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 2026))
	rng.Shuffle(len(sends), func(i, j int) { sends[i], sends[j] = sends[j], sends[i] })
	bodies := map[string][2]string{}
	for i := range stormIncidents {
		id := fmt.Sprintf("PSTORM%03d", i)
		body, sig := f.webhook(id, fmt.Sprintf("kill on host-%d", i%stormHosts))
		bodies[id] = [2]string{string(body), sig}
	}

	var res stormResult
	d := startDaemon(b, bin, f.cfgPath, logFile)
	lat := make([]time.Duration, len(sends))
	var mu sync.Mutex
	send := func(from, to int) {
		var wg sync.WaitGroup
		next := from
		for range stormConns {
			wg.Go(func() {
				c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
				for {
					mu.Lock()
					i := next
					next++
					mu.Unlock()
					if i >= to {
						return
					}
					s := sends[i]
					bs := bodies[s.incident]
					t0 := time.Now()
					code, reply, err := f.post(c, []byte(bs[0]), bs[1], s.id)
					lat[i] = time.Since(t0)
					mu.Lock()
					switch {
					case err == nil && code == http.StatusAccepted && reply.Status == "queued":
						res.queued++
					case err == nil && code == http.StatusAccepted && reply.Status == "duplicate":
						res.duplicate++
					default:
						res.other++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	start := time.Now()
	if !kill {
		send(0, len(sends))
	} else {
		send(0, len(sends)/2)
		res.peakRSS = peakRSS(d.cmd.Process.Pid)
		d.kill(b)
		done := f.bundled()
		startedAt, _ := f.started()
		for id := range startedAt {
			if done[id] == 0 {
				res.inFlightAtKill++
			}
		}
		d = startDaemon(b, bin, f.cfgPath, logFile)
		send(len(sends)/2, len(sends))
	}
	if !waitFor(10*time.Minute, func() bool { return len(f.bundled()) == stormIncidents }) {
		b.Fatalf("%d of %d incidents bundled after 10 minutes:\n%s", len(f.bundled()), stormIncidents, tail(logFile))
	}
	res.lastBundle = time.Since(start)
	// Stragglers: a duplicate run would show up now.
	time.Sleep(time.Second)
	res.peakRSS = max(res.peakRSS, peakRSS(d.cmd.Process.Pid))
	d.kill(b)

	_, res.runs = f.started()
	for _, n := range f.bundled() {
		if n == 1 {
			res.bundles++
		}
		res.extra += n - 1
	}
	slices.Sort(lat)
	res.p50, res.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	if res.bundles != stormIncidents || res.extra != 0 {
		b.Errorf("%d incidents with exactly one bundle, %d extra bundles; want %d and 0", res.bundles, res.extra, stormIncidents)
	}
	if !kill && res.runs != stormIncidents {
		b.Errorf("%d runs made, want exactly %d", res.runs, stormIncidents)
	}
	if kill && (res.runs < stormIncidents || res.runs > stormIncidents+res.inFlightAtKill) {
		b.Errorf("%d runs made, want %d plus at most the %d in flight at the kill", res.runs, stormIncidents, res.inFlightAtKill)
	}
	if !kill && res.queued != stormIncidents*stormIDs {
		b.Errorf("%d deliveries queued, want one per delivery id (%d)", res.queued, stormIncidents*stormIDs)
	}
	if res.other != 0 {
		b.Errorf("%d answers neither queued nor duplicate", res.other)
	}
	return res
}

// peakRSS is a process's peak resident set (VmHWM), in bytes.
func peakRSS(pid int) int64 {
	fh, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
