package main

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// health serves the probes:
//   - GET /livez: the process answers; no dependency is checked, so a
//     queue outage does not get the process restarted;
//   - GET /readyz: it can take webhooks: the queue answers, and shutdown
//     has not begun (it turns 503 first, before the intake closes);
//   - GET /healthz: /livez under its older name.
func health(mux *http.ServeMux, q *queue.Queue, stopping *atomic.Bool) {
	live := func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	}
	mux.HandleFunc("GET /livez", live)
	mux.HandleFunc("GET /healthz", live)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if stopping.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if _, err := q.Stats(ctx); err != nil {
			// The reason stays in the logs; a probe needs only the code.
			http.Error(w, "queue unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}
