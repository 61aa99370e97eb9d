package queue_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// childEnv makes the test binary the SIGKILL test's child: it names the
// embedded store directory, and childSyncEnv the fsync policy.
const (
	childEnv     = "FIRSTLOOK_QUEUE_KILL_CHILD_DIR"
	childSyncEnv = "FIRSTLOOK_QUEUE_KILL_CHILD_SYNC"
)

// TestSIGKILLDurability checks the intake's guarantee: a trigger whose Put
// returned is stored, even if the process is SIGKILLed right after. A child
// process Puts triggers from several goroutines and prints "stored <id>"
// after each acknowledgement; the parent kills it mid-stream, reopens the
// directory and must find every printed id. The guarantee does not depend
// on fsync, so it holds for every sync policy, the lax ones included.
func TestSIGKILLDurability(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		killChild(dir, os.Getenv(childSyncEnv))
		return
	}
	for _, mode := range []string{"", queue.SyncAlways, "10m"} {
		t.Run("sync="+mode, func(t *testing.T) {
			dir := t.TempDir()
			stored := runKillChild(t, dir, mode, 300)

			q := open(t, queue.Config{DataDir: dir, Sync: mode, Logger: quietLogger()})
			st := stats(t, q)
			if st.Stored < uint64(len(stored)) {
				t.Errorf("after SIGKILL: %d jobs stored, want at least the %d acknowledged", st.Stored, len(stored))
			}
			found := map[string]bool{}
			for range st.Stored {
				j := next(t, q)
				found[j.Trigger.DeliveryID] = true
			}
			var lost []string
			for id := range stored {
				if !found[id] {
					lost = append(lost, id)
				}
			}
			if len(lost) > 0 {
				t.Fatalf("%d of %d acknowledged triggers lost after SIGKILL: %v", len(lost), len(stored), lost)
			}
			t.Logf("%d acknowledged, %d stored after SIGKILL", len(stored), st.Stored)
		})
	}
}

// runKillChild starts the child on dir, SIGKILLs it once it has reported
// n stores, and returns every id it reported.
func runKillChild(t *testing.T, dir, mode string, n int) map[string]bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILLDurability$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, childSyncEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { _ = cmd.Process.Signal(syscall.SIGKILL) }) }
	t.Cleanup(kill)

	stored := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, ok := strings.CutPrefix(sc.Text(), "stored ")
		if !ok {
			continue
		}
		stored[id] = true
		if len(stored) == n {
			kill()
		}
	}
	// Lines written before the kill are still read from the pipe above.
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: got %v, want killed by SIGKILL (stored %d)", err, len(stored))
	}
	if len(stored) < n {
		t.Fatalf("child reported %d stores, want at least %d", len(stored), n)
	}
	return stored
}

// killChild is the child: Put forever from 8 goroutines, reporting each
// acknowledged trigger, until the parent kills the process.
func killChild(dir, mode string) {
	// An orphan must not linger if the parent dies first.
	time.AfterFunc(2*time.Minute, func() { os.Exit(3) })
	ctx := context.Background()
	q, err := queue.Open(ctx, queue.Config{DataDir: dir, Sync: mode, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("kill-%d-%d", g, i)
				if _, err := q.Put(ctx, trigger(id)); err != nil {
					fmt.Fprintln(os.Stderr, "child: put:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "stored %s\n", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
