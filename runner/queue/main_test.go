package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/hooks"
)

// The nats-server binary for the tests that run a cluster of separate
// processes, built from the module in go.mod on first use (fuzz workers and
// the SIGKILL test's child never need it) into a directory TestMain removes.
var (
	natsServerOnce sync.Once
	natsServerDir  string
	natsServerBin  string
	natsServerErr  error
)

func natsServer() (string, error) {
	natsServerOnce.Do(func() {
		natsServerDir, natsServerErr = os.MkdirTemp("", "firstlook-queue-test-")
		if natsServerErr == nil {
			natsServerBin, natsServerErr = buildNATSServer(natsServerDir)
		}
	})
	return natsServerBin, natsServerErr
}

func TestMain(m *testing.M) {
	code := m.Run()
	if natsServerDir != "" {
		os.RemoveAll(natsServerDir)
	}
	os.Exit(code)
}

// buildNATSServer builds github.com/nats-io/nats-server/v2 at the version in
// go.mod; it works offline from the module cache.
func buildNATSServer(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go tool not found: %w", err)
	}
	bin := filepath.Join(dir, "nats-server")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/nats-io/nats-server/v2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build nats-server: %w\n%s", err, out)
	}
	return bin, nil
}

// requireIntegration skips, or fails under FIRSTLOOK_REQUIRE_INTEGRATION=1,
// when a real part of the test is missing.
func requireIntegration(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("FIRSTLOOK_REQUIRE_INTEGRATION") == "1" {
		t.Fatalf("integration prerequisite missing: %v", err)
	}
	t.Skipf("integration prerequisite missing: %v", err)
}

// quietLogger keeps the servers' expected warnings (a killed peer, say) out
// of the test output; errors still show.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// trigger returns a distinct, fully populated trigger.
func trigger(id string) hooks.Trigger {
	at := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	return hooks.Trigger{
		Source:     "pagerduty",
		DeliveryID: id,
		Event:      "incident.triggered",
		Incident: hooks.Incident{
			ID:        "Q1" + id,
			Number:    42,
			Title:     "CPU high on web-1",
			URL:       "https://example.pagerduty.com/incidents/Q1" + id,
			Service:   hooks.Service{ID: "PSVC", Name: "Web (prod)"},
			Urgency:   "high",
			Status:    "triggered",
			CreatedAt: at,
		},
		Hints:      hooks.Hints{Names: []string{"web-1.example.com"}, IPs: []string{"10.0.0.1"}},
		Labels:     map[string]string{"env": "prod"},
		ReceivedAt: at.Add(time.Second),
	}
}

// testCtx is a context that ends with the test, bounded by d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
