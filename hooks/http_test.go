package hooks_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/firstlook/firstlook/hooks"
)

func TestRespond(t *testing.T) {
	tests := []hooks.Reply{
		{Status: "queued", Job: "pagerduty.wh-1"},
		{Status: "error", Reason: `bad "thing" <script>` + "\n\x00\u2028"},
		{Status: "pong"},
	}
	for _, want := range tests {
		w := httptest.NewRecorder()
		hooks.Respond(w, http.StatusAccepted, want)
		var got hooks.Reply
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
			t.Fatalf("reply %q is not JSON: %v", w.Body, err)
		}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("got Content-Type %q", ct)
		}
	}
}

func TestReadBody(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 300)
	tests := []struct {
		name   string
		method string
		body   []byte
		length int64
		status int
	}{
		{"exact length", http.MethodPost, body, int64(len(body)), 0},
		{"unknown length", http.MethodPost, body, -1, 0},
		{"short length", http.MethodPost, body, 10, 0},
		{"empty", http.MethodPost, nil, 0, 0},
		{"declared too large", http.MethodPost, body, hooks.MaxBody + 1, http.StatusRequestEntityTooLarge},
		{"too large", http.MethodPost, bytes.Repeat([]byte("x"), hooks.MaxBody+1), -1, http.StatusRequestEntityTooLarge},
		{"get", http.MethodGet, nil, 0, http.StatusMethodNotAllowed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/", iotest.HalfReader(bytes.NewReader(tc.body)))
			r.ContentLength = tc.length
			got, err := hooks.ReadBody(httptest.NewRecorder(), r)
			var he *hooks.Error
			switch {
			case tc.status != 0:
				if err == nil || !asError(err, &he) || he.Status != tc.status {
					t.Fatalf("got %v, want status %d", err, tc.status)
				}
			case err != nil:
				t.Fatal(err)
			case !bytes.Equal(got, tc.body):
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.body))
			}
		})
	}
	if !strings.Contains(hooks.Errorf(413, "x %d", 1).Error(), "413 x 1") {
		t.Error("Errorf")
	}
}

func asError(err error, target **hooks.Error) bool {
	e, ok := err.(*hooks.Error)
	*target = e
	return ok
}
