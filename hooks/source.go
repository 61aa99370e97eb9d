package hooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Source is one alert source: a package under hooks/ (hooks/pagerduty,
// hooks/alertmanager, …) implements it, and the Handler runs it through the
// pipeline every source shares.
type Source interface {
	// Name is the source's path under /hooks/ ("pagerduty").
	Name() string
	// Authenticate checks the request's credentials or signature over
	// body. An *Error (401) refuses it; the reason is sent to the caller,
	// so it must not say which credential came close.
	Authenticate(r *http.Request, body []byte) error
	// Parse turns an authenticated body into zero or more triggers, each
	// with Source, DeliveryID (stable across the sender's retries) and
	// Event set. A trigger of an event that Action ignores needs nothing
	// else. An *Answer answers a delivery that carries no triggers (a
	// ping, a subscription confirmation); any other error is the reason
	// for a 400.
	Parse(r *http.Request, body []byte) ([]Trigger, error)
	// Action says what the pipeline does with a trigger of the event type:
	// run playbooks, record that the incident resolved, or nothing.
	Action(event string) Action
}

// Action is what the pipeline does with one trigger.
type Action int

// The actions, by event type.
const (
	// Ignore answers 2xx and stores nothing: event types that make no
	// run (acknowledged, a host registered…).
	Ignore Action = iota
	// Run stores the trigger as a job.
	Run
	// Resolve records that the incident resolved, so that its runs that
	// have not started yet do not start.
	Resolve
)

// The event types of the triggers of sources that only start and end
// incidents (Alertmanager, Mackerel, SNS), in PagerDuty's words.
const (
	EventTriggered = "incident.triggered"
	EventResolved  = "incident.resolved"
)

// TriggeredOrResolved is the Action of such a source: it runs
// EventTriggered, resolves on EventResolved and ignores anything else.
func TriggeredOrResolved(event string) Action {
	switch event {
	case EventTriggered:
		return Run
	case EventResolved:
		return Resolve
	}
	return Ignore
}

// Resolver records that an incident resolved. runner keeps the record in
// the per-incident state and checks it before a run starts.
type Resolver interface {
	Resolve(ctx context.Context, t Trigger) error
}

// Answer is a delivery answered without storing anything: PagerDuty's
// ping, an SNS subscription confirmation. Parse returns it as its error.
type Answer struct {
	// Code is the HTTP status (200 when zero).
	Code  int
	Reply Reply
	// Then, when set, is done before answering, once the request is
	// authenticated (confirming an SNS subscription); its error is
	// answered 502. Replaying a saved payload never calls it.
	Then func(ctx context.Context) error
}

func (a *Answer) Error() string { return "answered: " + a.Reply.Status }

// Options are a Handler's parts.
type Options struct {
	// Queue stores the triggers that run.
	Queue Queue
	// Resolver records resolved incidents; without one, resolving events
	// are answered as ignored.
	Resolver Resolver
	Log      *slog.Logger
	// Timeout bounds storing (and an Answer's Then) so that the sender
	// gets a 503 and retries rather than timing out: PagerDuty gives up
	// after 5 s, Alertmanager's webhook timeout is often 10 s. Default 4s.
	Timeout time.Duration
	// Now is the clock of Trigger.ReceivedAt (default time.Now).
	Now func() time.Time
}

// Handler is the pipeline every source shares: capped body read,
// authentication, parse, event filter, store before the 2xx, JSON reply.
type Handler struct {
	src  Source
	opts Options
}

// NewHandler returns the http.Handler of src.
func NewHandler(src Source, opts Options) *Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 4 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{src: src, opts: opts}
}

// Source returns the handler's source.
func (h *Handler) Source() Source { return h.src }

// ServeHTTP authenticates, parses and stores one delivery, and answers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := ReadBody(w, r)
	if err != nil {
		Fail(w, err)
		return
	}
	if err := h.src.Authenticate(r, body); err != nil {
		h.opts.Log.Warn("webhook refused", "source", h.src.Name(), "remote", r.RemoteAddr, "reason", reason(err))
		Fail(w, asError(err, http.StatusUnauthorized))
		return
	}
	ts, err := h.src.Parse(r, body)
	if err != nil {
		var a *Answer
		if errors.As(err, &a) {
			h.answer(w, r, a)
			return
		}
		Fail(w, asError(err, http.StatusBadRequest))
		return
	}
	if len(ts) == 1 {
		// The common case, without the bookkeeping of several.
		h.one(w, r, ts[0])
		return
	}
	h.many(w, r, ts)
}

func (h *Handler) answer(w http.ResponseWriter, r *http.Request, a *Answer) {
	if a.Then != nil {
		ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
		err := a.Then(ctx)
		cancel()
		if err != nil {
			h.opts.Log.Error("webhook answer", "source", h.src.Name(), "err", err)
			Respond(w, http.StatusBadGateway, Reply{Status: "error", Reason: err.Error()})
			return
		}
	}
	Respond(w, cmp.Or(a.Code, http.StatusOK), a.Reply)
}

func (h *Handler) one(w http.ResponseWriter, r *http.Request, t Trigger) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	status, err := h.store(ctx, &t)
	if err != nil {
		h.fail(w, t, err)
		return
	}
	reply := Reply{Status: status}
	switch status {
	case "queued", "duplicate":
		reply.Job = t.JobID()
	case "ignored":
		reply.Reason = "event type " + t.Event + " is not configured to trigger"
	}
	Respond(w, http.StatusAccepted, reply)
}

func (h *Handler) many(w http.ResponseWriter, r *http.Request, ts []Trigger) {
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.Timeout)
	defer cancel()
	counts := map[string]int{}
	var jobs []string
	for i := range ts {
		status, err := h.store(ctx, &ts[i])
		if err != nil {
			// The sender retries the whole delivery; what was stored
			// already comes back as duplicates.
			h.fail(w, ts[i], err)
			return
		}
		counts[status]++
		if status == "queued" || status == "duplicate" {
			jobs = append(jobs, ts[i].JobID())
		}
	}
	reply := Reply{Status: "ignored"}
	for _, s := range []string{"resolved", "duplicate", "queued"} {
		if counts[s] > 0 {
			reply.Status = s
		}
	}
	if len(jobs) == 1 {
		reply.Job = jobs[0]
	}
	var parts []string
	for _, s := range []string{"queued", "duplicate", "resolved", "ignored"} {
		if counts[s] > 0 {
			parts = append(parts, strconv.Itoa(counts[s])+" "+s)
		}
	}
	if len(ts) == 0 {
		parts = append(parts, "nothing to run")
	}
	reply.Reason = strings.Join(parts, ", ")
	Respond(w, http.StatusAccepted, reply)
}

// errMalformed is a trigger a source should not have produced.
var errMalformed = errors.New("malformed trigger")

// store does what Action says with t and returns the reply status.
func (h *Handler) store(ctx context.Context, t *Trigger) (string, error) {
	switch h.src.Action(t.Event) {
	case Run:
		if t.DeliveryID == "" || t.Incident.ID == "" {
			return "", fmt.Errorf("%w: event %s without a delivery or incident id", errMalformed, t.Event)
		}
		t.ReceivedAt = h.opts.Now().UTC()
		dup, err := h.opts.Queue.Put(ctx, *t)
		if err != nil {
			return "", err
		}
		if dup {
			return "duplicate", nil
		}
		return "queued", nil
	case Resolve:
		if h.opts.Resolver == nil {
			return "ignored", nil
		}
		if t.Incident.ID == "" {
			return "", fmt.Errorf("%w: event %s without an incident id", errMalformed, t.Event)
		}
		t.ReceivedAt = h.opts.Now().UTC()
		if err := h.opts.Resolver.Resolve(ctx, *t); err != nil {
			return "", err
		}
		return "resolved", nil
	}
	return "ignored", nil
}

func (h *Handler) fail(w http.ResponseWriter, t Trigger, err error) {
	if errors.Is(err, errMalformed) {
		Fail(w, Errorf(http.StatusBadRequest, "%v", err))
		return
	}
	h.opts.Log.Error("queue webhook", "source", h.src.Name(), "delivery", t.DeliveryID, "err", err)
	Respond(w, http.StatusServiceUnavailable, Reply{Status: "error", Reason: "queue unavailable; retry later"})
}

// asError is err as an *Error, or as one with status and err's text.
func asError(err error, status int) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Status: status, Reason: err.Error()}
}

func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return err.Error()
}
