package evidence_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/redacttest"
)

// mixedOutput is size bytes of diagnostic output (the clean samples,
// over and over) with one planted secret about every every bytes, or none
// when every is 0. It returns the output and the secrets planted.
func mixedOutput(tb testing.TB, size, every int) ([]byte, []redacttest.Secret) {
	files, _ := filepath.Glob("testdata/redact/clean/*")
	var clean [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		clean = append(clean, b)
	}
	var out bytes.Buffer
	var planted []redacttest.Secret
	var pool []redacttest.Secret
	next := every
	for i := 0; out.Len() < size; i++ {
		for _, line := range bytes.SplitAfter(clean[i%len(clean)], []byte("\n")) {
			out.Write(line)
			if every > 0 && out.Len() >= next {
				if len(pool) == 0 {
					pool = redacttest.Plant(uint64(len(planted)))
				}
				s := pool[0]
				pool = pool[1:]
				out.WriteString(s.Text + "\n")
				planted = append(planted, s)
				next += every
			}
		}
	}
	return out.Bytes(), planted
}

// baseReps is how often each baseline runs per round.
const baseReps = 50

// BenchmarkRedact measures the cost of redacting 1 MiB of output with the
// default rules, against two baselines timed in the same run on the same
// bytes: a copy, and bytes.Count of newlines (one pass of the fastest
// scan Go has). Reported per MiB, in wall and CPU time, and as ratios of
// CPU time (on a shared machine the wall clock mostly measures the others).
func BenchmarkRedact(b *testing.B) {
	r, err := evidence.NewRedactor(evidence.RedactConfig{})
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name  string
		every int
	}{
		{"clean diagnostic output", 0},
		{"mixed: a secret every 8 KiB", 8 << 10},
		{"dense: a secret every 512 B", 512},
	}
	type result struct {
		redact, copy, count time.Duration
		cpu                 time.Duration
		secrets, n          int
	}
	results := make([]result, len(cases))
	rounds := 0
	b.Run("rounds", func(b *testing.B) {
		results, rounds = make([]result, len(cases)), b.N
		for i, c := range cases {
			in, planted := mixedOutput(b, 1<<20, c.every)
			in = in[:1<<20]
			var sink, last []byte
			var lines int
			for range b.N {
				c0 := cpuTime()
				t0 := time.Now()
				out, n := r.Redact(in)
				t1 := time.Now()
				c1 := cpuTime()
				// The baselines are quick: repeated, so that CPU time,
				// which a loaded machine does not inflate, can see them.
				for range baseReps {
					sink = append(sink[:0], in...)
				}
				c2 := cpuTime()
				for range baseReps {
					lines += bytes.Count(in, []byte("\n"))
				}
				c3 := cpuTime()
				results[i].redact += t1.Sub(t0)
				results[i].cpu += c1 - c0
				results[i].copy += (c2 - c1) / baseReps
				results[i].count += (c3 - c2) / baseReps
				results[i].n = n
				last = out
			}
			if leaks := redacttest.Leaks(string(last), planted[:max(len(planted)-1, 0)]); len(leaks) > 0 {
				b.Fatalf("%s: leaked %d secrets, the first: %s", c.name, len(leaks), leaks[0])
			}
			results[i].secrets = len(planted)
			_, _ = sink, lines
		}
		mixed := results[1]
		b.ReportMetric(float64(mixed.cpu.Microseconds())/1000/float64(b.N), "mixed-cpu-ms/MiB")
		b.ReportMetric(float64(mixed.cpu)/float64(max(mixed.count, 1)), "mixed/count-x")
		b.ReportMetric(0, "ns/op")
	})
	fmt.Printf("\nredaction of 1 MiB of output, gitleaks %s rules + firstlook's, %d rounds\n", evidence.GitleaksVersion, rounds)
	fmt.Printf("  %-32s %10s %12s %10s %12s %14s\n", "", "ms/MiB", "CPU ms/MiB", "MiB/s", "x a copy", "x bytes.Count")
	for i, c := range cases {
		res := results[i]
		if rounds == 0 {
			break
		}
		per := res.redact / time.Duration(rounds)
		fmt.Printf("  %-32s %10.1f %12.1f %10.1f %12.0f %14.0f   (%d secrets planted, %d redactions)\n", c.name,
			float64(per.Microseconds())/1000, float64((res.cpu/time.Duration(rounds)).Microseconds())/1000, float64(time.Second)/float64(per),
			float64(res.cpu)/float64(max(res.copy, 1)), float64(res.cpu)/float64(max(res.count, 1)), res.secrets, res.n)
	}
}

// cpuTime is the CPU time the process has used: on a machine shared with
// other work it says what redaction costs better than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
