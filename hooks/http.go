package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// MaxBody is the largest request body any intake accepts. PagerDuty's
// payloads are a few KiB; anything near this is not a webhook.
const MaxBody = 512 << 10

// Error is a request the intake refuses: the status to answer and the
// reason, which is sent to the caller so a misconfigured sender can tell
// what is wrong.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Reason) }

// Errorf returns an *Error with the status and a formatted reason.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Reason: fmt.Sprintf(format, args...)}
}

// ReadBody reads the request body, refusing anything but POST and bodies
// over MaxBody (413).
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, Errorf(http.StatusMethodNotAllowed, "method %s not allowed: webhooks are POSTed", r.Method)
	}
	if r.ContentLength > MaxBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "body of %d bytes is over the %d KiB limit", r.ContentLength, MaxBody>>10)
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, MaxBody), r.ContentLength)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, Errorf(http.StatusRequestEntityTooLarge, "body is over the %d KiB limit", MaxBody>>10)
		}
		return nil, Errorf(http.StatusBadRequest, "read body: %v", err)
	}
	return body, nil
}

// readAll is io.ReadAll with the buffer sized from Content-Length up
// front: webhooks always send it, and growing from 512 bytes costs several
// copies per request on the hot path.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size < 0 || size > MaxBody {
		size = 512
	}
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// Reply is the JSON body of every intake answer.
type Reply struct {
	// Status is "queued", "duplicate", "ignored", "pong" or "error".
	Status string `json:"status"`
	// Job is the queue id of the stored job, when there is one.
	Job string `json:"job,omitempty"`
	// Reason says why a request was ignored or refused.
	Reason string `json:"reason,omitempty"`
}

// Respond writes reply as JSON with the status code.
func Respond(w http.ResponseWriter, code int, reply Reply) {
	h := w.Header()
	// Direct map writes: the keys are already canonical.
	h["Content-Type"] = jsonType
	h["X-Content-Type-Options"] = nosniff
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	w.WriteHeader(code)
	b := make([]byte, 0, 64+len(reply.Job)+len(reply.Reason))
	b = append(b, `{"status":`...)
	b = appendJSON(b, reply.Status)
	if reply.Job != "" {
		b = append(b, `,"job":`...)
		b = appendJSON(b, reply.Job)
	}
	if reply.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSON(b, reply.Reason)
	}
	b = append(b, "}\n"...)
	_, _ = w.Write(b)
}

var (
	jsonType = []string{"application/json"}
	nosniff  = []string{"nosniff"}
)

// appendJSON appends s as a JSON string.
func appendJSON(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// Fail answers err: an *Error with its own status and reason, anything
// else as 500 without detail (the caller logs it).
func Fail(w http.ResponseWriter, err error) {
	var e *Error
	if errors.As(err, &e) {
		Respond(w, e.Status, Reply{Status: "error", Reason: e.Reason})
		return
	}
	Respond(w, http.StatusInternalServerError, Reply{Status: "error", Reason: "internal error"})
}
