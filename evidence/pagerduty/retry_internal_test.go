package pagerduty

import (
	"net/http"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	h := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name      string
		status    int
		header    http.Header
		wantRetry bool
		wantWait  time.Duration
	}{
		{"no answer", 0, nil, true, 0},
		{"2xx unreadable", 201, nil, true, 0},
		{"400 argument error", 400, nil, false, 0},
		{"401 bad token", 401, nil, false, 0},
		{"402 plan", 402, nil, false, 0},
		{"403 read-only key", 403, nil, false, 0},
		{"404 no incident", 404, nil, false, 0},
		{"408 request timeout", 408, nil, true, 0},
		{"409 conflict", 409, nil, false, 0},
		{"422", 422, nil, false, 0},
		{"429 bare", 429, nil, true, 0},
		{"429 ratelimit-reset", 429, h("ratelimit-reset", "7", "ratelimit-remaining", "0", "ratelimit-limit", "960"), true, 7 * time.Second},
		{"429 fractional reset", 429, h("ratelimit-reset", "1.5"), true, 1500 * time.Millisecond},
		{"429 Retry-After", 429, h("Retry-After", "3"), true, 3 * time.Second},
		{"429 both, longer wins", 429, h("ratelimit-reset", "4", "Retry-After", "9"), true, 9 * time.Second},
		{"429 both, reset longer", 429, h("ratelimit-reset", "12", "Retry-After", "2"), true, 12 * time.Second},
		{"429 garbage", 429, h("ratelimit-reset", "soon", "Retry-After", "later"), true, 0},
		{"429 negative", 429, h("ratelimit-reset", "-5", "Retry-After", "-1"), true, 0},
		{"429 NaN", 429, h("ratelimit-reset", "NaN"), true, 0},
		{"500", 500, nil, true, 0},
		{"502", 502, nil, true, 0},
		{"503 Retry-After", 503, h("Retry-After", "5"), true, 5 * time.Second},
		{"504", 504, nil, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retry, wait := classify(tt.status, tt.header)
			if retry != tt.wantRetry || wait != tt.wantWait {
				t.Errorf("classify(%d) = %v, %s; want %v, %s", tt.status, retry, wait, tt.wantRetry, tt.wantWait)
			}
		})
	}
}

func TestServerWaitDate(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Retry-After", now.Add(30*time.Second).Format(http.TimeFormat))
	if got := serverWait(h, now); got != 30*time.Second {
		t.Errorf("got %s, want 30s", got)
	}
	h.Set("Retry-After", now.Add(-time.Minute).Format(http.TimeFormat))
	if got := serverWait(h, now); got > 0 {
		t.Errorf("date in the past: got %s, want no wait", got)
	}
}
