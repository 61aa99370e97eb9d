package pagerduty_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// BenchmarkHandler is the intake's own cost per webhook: verify, parse,
// answer, with a queue that stores nothing.
func BenchmarkHandler(b *testing.B) {
	secret := hookstest.CapturedSecret(b)
	body := hookstest.Fixture(b, "pagerduty-v3", "incident.triggered.json")
	sig := hookstest.Sign(body, secret)
	q := queueFunc(func(context.Context, hooks.Trigger) (bool, error) { return false, nil })
	h, err := pagerduty.NewHandler(pagerduty.Config{}, []string{secret}, q, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/hooks/pagerduty", bytes.NewReader(body))
		req.Header.Set("X-PagerDuty-Signature", sig)
		req.Header.Set("X-Webhook-Id", "wh-1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("got %d", w.Code)
		}
	}
}
