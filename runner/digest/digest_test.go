package digest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/pagerduty/pdtest"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
	"github.com/firstlook/firstlook/runner/digest"
	"github.com/firstlook/firstlook/runner/queue"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var t0 = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

func at(h, m int) time.Time { return t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }

// The fixed set: five incidents opened 09:00–21:00 and one before.
func fixedIncidents() []digest.Incident {
	return []digest.Incident{
		{ID: "Q1", Number: 101, Title: "disk full on web-1", Service: "Web (prod)", Urgency: "high", Status: "resolved", CreatedAt: at(0, 10), AckedAt: at(0, 12), ResolvedAt: at(0, 40)},
		{ID: "Q2", Number: 102, Title: "latency", Service: "Web (prod)", Urgency: "high", Status: "resolved", CreatedAt: at(1, 0), AckedAt: at(1, 10), ResolvedAt: at(3, 0)},
		{ID: "Q3", Number: 103, Title: "replica lag", Service: "DB", Urgency: "low", Status: "acknowledged", CreatedAt: at(2, 0), AckedAt: at(2, 4)},
		{ID: "Q4", Number: 104, Title: "5xx <script>", Service: "Web (prod)", Urgency: "low", Status: "triggered", CreatedAt: at(5, 0), URL: "https://acme.pagerduty.com/incidents/Q4"},
		{ID: "Q5", Number: 105, Title: "cert expiry", Service: "Edge", Urgency: "high", Status: "resolved", CreatedAt: at(6, 0), AckedAt: at(6, 30), ResolvedAt: at(6, 45)},
		{ID: "Q0", Number: 100, Title: "yesterday", Service: "Web (prod)", Urgency: "high", Status: "resolved", CreatedAt: at(-1, 0), ResolvedAt: at(0, 30)},
	}
}

func fixedRuns() []digest.Run {
	return []digest.Run{
		{Source: "pagerduty", Incident: "Q1", Host: "web-1", Playbook: "disk-usage", At: at(0, 11), Outcome: "ok", Link: "https://evidence/1"},
		{Source: "pagerduty", Incident: "Q2", Host: "web-1", Playbook: "linux-baseline", At: at(1, 1), Outcome: "failed"},
		{Source: "pagerduty", Incident: "Q2", Host: "web-2", Playbook: "linux-baseline", At: at(1, 1), Outcome: "ok"},
		{Source: "pagerduty", Incident: "Q4", Host: "web-9", Playbook: "linux-baseline", At: at(5, 1), Outcome: "not_started"},
		{Source: "slack", Incident: "run-abc", Host: "web-2", Playbook: "disk-usage", At: at(7, 0), Outcome: "ok"},
		{Source: "pagerduty", Incident: "Q0", Host: "db-1", Playbook: "x", At: at(-1, 1), Outcome: "ok"},
	}
}

func TestCompute(t *testing.T) {
	f := digest.Compute(at(0, 0), at(12, 0), fixedIncidents(), fixedRuns(), 5)
	if f.Opened != 5 {
		t.Errorf("got %d opened, want 5", f.Opened)
	}
	wantSvc := []digest.ServiceCount{{"Web (prod)", 2, 1}, {"DB", 0, 1}, {"Edge", 1, 0}}
	if fmt.Sprint(f.ByService) != fmt.Sprint(wantSvc) {
		t.Errorf("got by service %v, want %v", f.ByService, wantSvc)
	}
	if len(f.StillOpen) != 2 || f.StillOpen[0].ID != "Q3" || f.StillOpen[1].ID != "Q4" {
		t.Errorf("got still open %v, want Q3, Q4", f.StillOpen)
	}
	// Acks after 2, 10, 4, 30 minutes: median (4+10)/2 = 7m, worst 30m.
	if want := (digest.Stat{N: 4, Median: 7 * time.Minute, Worst: 30 * time.Minute}); f.TTA != want {
		t.Errorf("got TTA %+v, want %+v", f.TTA, want)
	}
	// Resolved after 30m, 2h, 45m: median 45m, worst 2h.
	if want := (digest.Stat{N: 3, Median: 45 * time.Minute, Worst: 2 * time.Hour}); f.TTR != want {
		t.Errorf("got TTR %+v, want %+v", f.TTR, want)
	}
	// web-1 had runs for Q1 and Q2; web-2 for Q2 (the manual run is no
	// incident); web-9 could not be reached.
	wantHosts := []digest.HostCount{{"web-1", 2}, {"web-2", 1}}
	if fmt.Sprint(f.Hosts) != fmt.Sprint(wantHosts) {
		t.Errorf("got hosts %v, want %v", f.Hosts, wantHosts)
	}
	if len(f.Runs) != 5 || f.CouldNotRun != 1 || f.Failed != 1 {
		t.Errorf("got %d runs, %d failed, %d could not run; want 5, 1, 1", len(f.Runs), f.Failed, f.CouldNotRun)
	}
}

func TestNextSlot(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	times := []string{"09:00", "21:00"}
	tests := []struct{ now, want time.Time }{
		{time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)},  // 08:00 Berlin → 09:00
		{time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC), time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)}, // exactly 09:00 → 21:00
		{time.Date(2026, 12, 4, 21, 0, 0, 0, time.UTC), time.Date(2026, 12, 5, 8, 0, 0, 0, time.UTC)}, // 22:00 → tomorrow 09:00
		{time.Date(2026, 7, 1, 18, 30, 0, 0, time.UTC), time.Date(2026, 7, 1, 19, 0, 0, 0, time.UTC)}, // summer time: UTC+2
	}
	for _, tt := range tests {
		got, ok := digest.NextSlot(tt.now, times, berlin)
		if !ok || !got.Equal(tt.want) {
			t.Errorf("NextSlot(%s): got %s, want %s", tt.now, got.UTC(), tt.want)
		}
	}
}

// fixedPagerDuty serves the fixed incidents and their log entries as
// PagerDuty's REST API shapes them, two to a page, so paging is exercised.
func fixedPagerDuty(t *testing.T, fail bool) *httptest.Server {
	t.Helper()
	ts := func(x time.Time) string {
		if x.IsZero() {
			return ""
		}
		return x.UTC().Format(time.RFC3339)
	}
	var incidents, entries []map[string]any
	for _, inc := range fixedIncidents() {
		if inc.CreatedAt.Before(t0) {
			continue // the API filters by since
		}
		m := map[string]any{
			"id": inc.ID, "type": "incident", "incident_number": inc.Number, "title": inc.Title,
			"html_url": "https://acme.pagerduty.com/incidents/" + inc.ID, "created_at": ts(inc.CreatedAt),
			"status": inc.Status, "urgency": inc.Urgency,
			"service":          map[string]any{"id": "P" + inc.Service[:2], "type": "service_reference", "summary": inc.Service},
			"acknowledgements": []any{},
		}
		if inc.Status == "resolved" {
			m["resolved_at"] = ts(inc.ResolvedAt)
		}
		if inc.Status == "acknowledged" {
			m["acknowledgements"] = []any{map[string]any{"at": ts(inc.AckedAt), "acknowledger": map[string]any{"id": "PU1", "type": "user_reference"}}}
		}
		incidents = append(incidents, m)
		if !inc.AckedAt.IsZero() {
			entries = append(entries, map[string]any{"id": "L" + inc.ID + "a", "type": "acknowledge_log_entry", "created_at": ts(inc.AckedAt), "incident": map[string]any{"id": inc.ID, "type": "incident_reference"}})
		}
		if !inc.ResolvedAt.IsZero() {
			entries = append(entries, map[string]any{"id": "L" + inc.ID + "r", "type": "resolve_log_entry", "created_at": ts(inc.ResolvedAt), "incident": map[string]any{"id": inc.ID, "type": "incident_reference"}})
		}
	}
	page := func(w http.ResponseWriter, r *http.Request, key string, all []map[string]any) {
		off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		end := min(off+2, len(all))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{key: all[off:end], "limit": 2, "offset": off, "more": end < len(all)})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail {
			http.Error(w, `{"error":{"message":"Internal Server Error","code":2001}}`, http.StatusInternalServerError)
			return
		}
		if r.Header.Get("Authorization") != "Token token=pd-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/incidents":
			page(w, r, "incidents", incidents)
		case "/log_entries":
			page(w, r, "log_entries", entries)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type world struct {
	fake    *slacktest.Server
	channel string
	q       *queue.Queue
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{fake: slacktest.NewServer()}
	t.Cleanup(w.fake.Close)
	w.channel = w.fake.AddChannel(slacktest.Channel{Name: "sre-handover", Members: []string{slacktest.BotUserID}})
	var err error
	w.q, err = queue.Open(context.Background(), queue.Config{DataDir: t.TempDir(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.q.Close() })
	return w
}

func (w *world) digester(t *testing.T, pd digest.Incidents) *digest.Digester {
	t.Helper()
	d, err := digest.New(digest.Options{
		Config:    digest.Config{Channel: w.channel, Times: []string{"09:00", "21:00"}, TimeZone: "UTC"},
		Incidents: pd, State: w.q.State(), BotToken: slacktest.Token, SlackAPIURL: w.fake.URL, Log: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A digest over the fixed incidents, fetched through the REST client with
// paging, posted as Block Kit with the known figures.
func TestDigestPosted(t *testing.T) {
	w := newWorld(t)
	srv := fixedPagerDuty(t, false)
	for _, r := range []struct {
		key     string
		since   time.Time
		outcome string
	}{
		{queue.Key("run", "pagerduty", "Q1", "web-1", "disk-usage"), at(0, 11), "ok"},
		{queue.Key("run", "pagerduty", "Q4", "web-9", "linux-baseline"), at(5, 1), "not_started"},
		{queue.Key("run", "pagerduty", "Q0", "db-1", "linux-baseline"), at(-1, 0), "ok"},
	} {
		v, _ := json.Marshal(map[string]any{"status": "done", "job": "j", "since": r.since, "bundle": "pagerduty/x/" + r.outcome + "/", "outcome": r.outcome})
		if _, err := w.q.State().Create(context.Background(), r.key, v); err != nil {
			t.Fatal(err)
		}
	}
	d := w.digester(t, digest.NewPagerDuty(srv.URL, "pd-token", nil))
	if err := d.Post(context.Background(), at(0, 0), at(12, 0), w.channel); err != nil {
		t.Fatal(err)
	}
	ms := w.fake.Messages(w.channel)
	if len(ms) != 1 {
		t.Fatalf("got %d messages, want 1", len(ms))
	}
	blocks := unescaped(t, ms[0].Blocks)
	for _, want := range []string{
		"Incidents opened: 5", "Web (prod): 2 high, 1 low", "DB: 0 high, 1 low", "Edge: 1 high, 0 low",
		"Still open: 2", "<https://acme.pagerduty.com/incidents/Q4|#104> 5xx &lt;script&gt;",
		"*Time to acknowledge:* median 7m0s, worst 30m0s (4 incidents)",
		"*Time to resolve:* median 45m0s, worst 2h0m0s (3 incidents)",
		"firstlook runs: 2* (0 failed, 1 could not run)", "`web-1`: 1",
		":white_check_mark: disk-usage on `web-1` (Q1 09:11)", ":warning: linux-baseline on `web-9` (Q4 14:01)",
	} {
		if !strings.Contains(blocks, want) {
			t.Errorf("digest lacks %q:\n%s", want, blocks)
		}
	}
	if !strings.HasPrefix(ms[0].Text, "Handover digest Dec 4 09:00–Dec 4 21:00 UTC: 5 incidents opened, 2 still open") {
		t.Errorf("got text %q", ms[0].Text)
	}
}

// A digest that cannot be made says so in the channel.
func TestDigestFailureIsPosted(t *testing.T) {
	w := newWorld(t)
	d := w.digester(t, digest.NewPagerDuty(fixedPagerDuty(t, true).URL, "pd-token", nil))
	rep, err := d.Digest(context.Background(), 12, w.channel)
	if err == nil {
		t.Fatalf("got %+v, want an error", rep)
	}
	ms := w.fake.Messages(w.channel)
	if len(ms) != 1 || !strings.Contains(ms[0].Text, "could not be made: pagerduty: list incidents") {
		t.Fatalf("got %+v, want the failure in the channel", ms)
	}
}

// Two nodes sharing one JetStream (node A embeds the server, node B
// connects to it as a client, as a second firstlook would), each with two
// schedulers, racing one slot: one digest.
func TestSlotPostedOnce(t *testing.T) {
	w := newWorld(t)
	srv := fixedPagerDuty(t, false)
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("digest-race-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodeA, err := queue.Open(ctx, queue.Config{DataDir: dir, Logger: quiet(), User: "firstlook", PasswordFile: pw, Embedded: queue.EmbeddedConfig{Listen: addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeA.Close()
	nodeB, err := queue.Open(ctx, queue.Config{URL: "nats://" + addr, User: "firstlook", PasswordFile: pw, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer nodeB.Close()
	var nodes []*digest.Digester
	for _, q := range []*queue.Queue{nodeA, nodeB, nodeA, nodeB} {
		d, err := digest.New(digest.Options{
			Config:    digest.Config{Channel: w.channel, Times: []string{"09:00", "21:00"}},
			Incidents: digest.NewPagerDuty(srv.URL, "pd-token", nil), State: q.State(),
			BotToken: slacktest.Token, SlackAPIURL: w.fake.URL, Log: quiet(),
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, d)
	}
	slot := at(12, 0)
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() {
			if err := n.Slot(ctx, slot); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ms := w.fake.Messages(w.channel); len(ms) != 1 {
		t.Fatalf("got %d digests for one slot, want 1", len(ms))
	}
	// The next slot is another key.
	if err := nodes[1].Slot(ctx, slot.Add(12*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ms := w.fake.Messages(w.channel); len(ms) != 2 {
		t.Fatalf("got %d digests for two slots, want 2", len(ms))
	}
}

// Every request the digest sends is one PagerDuty's spec accepts, and the
// spec's example incidents decode. The spec's own example answer for GET
// /log_entries does not validate against the spec's schema (its channel
// and type match none of the oneOf variants), so Prism answers that
// request 500 with response-side violations only: the request itself is
// checked and passes, and the digest reports the failed listing.
func TestPrismRequests(t *testing.T) {
	p, err := pdtest.Mock()
	if err != nil {
		pdtest.RequireIntegration(t, err)
	}
	defer p.Close()
	check := &pdtest.Check{}
	pd := digest.NewPagerDuty(p.URL, "pd-token", &http.Client{Transport: check, Timeout: 30 * time.Second})
	_, err = pd.Incidents(context.Background(), at(0, 0), at(12, 0))
	ex := check.Exchanges()
	if len(ex) < 2 || ex[0].Path != "/incidents" || ex[len(ex)-1].Path != "/log_entries" {
		t.Fatalf("got exchanges %v, want /incidents then /log_entries", ex)
	}
	for _, e := range ex {
		switch e.Path {
		case "/incidents":
			if e.Status != 200 || e.Violations != "" {
				t.Errorf("%s: %s", e, e.Violations)
			}
			for _, want := range []string{"since=2026-12-04T09%3A00%3A00Z", "until=2026-12-04T21%3A00%3A00Z", "limit=100"} {
				if !strings.Contains(e.Query, want) {
					t.Errorf("%s?%s: want %s", e, e.Query, want)
				}
			}
		case "/log_entries":
			var vs []struct {
				Location []string `json:"location"`
			}
			if err := json.Unmarshal([]byte(e.Violations), &vs); err != nil || len(vs) == 0 {
				t.Fatalf("%s: violations %q: want the spec's broken example", e, e.Violations)
			}
			for _, v := range vs {
				if len(v.Location) == 0 || v.Location[0] != "response" {
					t.Errorf("%s: the spec rejects the request: %v", e, v.Location)
				}
			}
		}
	}
	if err == nil || !strings.Contains(err.Error(), "list log entries") {
		t.Errorf("got %v, want the failed log listing reported", err)
	}
}

// unescaped is blocks re-encoded without HTML escaping, as a person reads
// them.
func unescaped(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.String()
}
