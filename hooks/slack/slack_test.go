package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	goslack "github.com/slack-go/slack"

	"github.com/firstlook/firstlook/evidence/slack/slacktest"
	"github.com/firstlook/firstlook/hooks/slack"
)

const (
	secret    = "8f742231b10e8888abcd99yyyzzz85a5"
	oldSecret = "0123456789abcdef0123456789abcdef"
	lead      = "U0LEAD001"
	sre       = "U0SRE0001"
	stranger  = "U0ANY0001"
)

// runsFunc adapts functions to slack.Runs.
type runsFunc struct {
	run  func(context.Context, slack.RunRequest) (slack.Reply, error)
	last func(context.Context, string, *slack.IncidentRef) (slack.Reply, error)
}

func (f runsFunc) Run(ctx context.Context, r slack.RunRequest) (slack.Reply, error) {
	return f.run(ctx, r)
}

func (f runsFunc) Last(ctx context.Context, host string, inc *slack.IncidentRef) (slack.Reply, error) {
	if f.last == nil {
		return slack.Reply{Text: "no evidence"}, nil
	}
	return f.last(ctx, host, inc)
}

func (f runsFunc) Playbooks(context.Context, string) (slack.Reply, error) {
	return slack.Reply{Text: "disk-usage: web-1"}, nil
}

// incidentsFunc adapts a function to slack.Incidents.
type incidentsFunc func(string) (slack.IncidentRef, bool)

func (f incidentsFunc) ChannelIncident(_ context.Context, ch string) (slack.IncidentRef, bool, error) {
	ref, ok := f(ch)
	return ref, ok, nil
}

// recorder collects run requests.
type recorder struct {
	mu   sync.Mutex
	runs []slack.RunRequest
}

func (r *recorder) run(_ context.Context, req slack.RunRequest) (slack.Reply, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, req)
	return slack.Reply{Text: "queued " + req.Playbook + " on " + req.Target}, nil
}

func (r *recorder) all() []slack.RunRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slack.RunRequest(nil), r.runs...)
}

// auditLog is a JSON audit log in memory.
type auditLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (a *auditLog) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *auditLog) lines(t *testing.T) []map[string]any {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []map[string]any
	for l := range strings.Lines(a.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

type fixture struct {
	slack *slacktest.Server
	svc   *slack.Service
	srv   *httptest.Server
	runs  *recorder
	audit *auditLog
}

const incidentChannel = "C0INC0001"

func newFixture(t *testing.T, edit func(*slack.Options)) *fixture {
	t.Helper()
	fake := slacktest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddUsergroup("S0SRE0001", "sre-oncall", sre)
	f := &fixture{slack: fake, runs: &recorder{}, audit: &auditLog{}}
	cfg := policy()
	cfg.APIURL = fake.URL
	opts := slack.Options{
		Config:   cfg,
		BotToken: slacktest.Token,
		Runs:     runsFunc{run: f.runs.run},
		Incidents: incidentsFunc(func(ch string) (slack.IncidentRef, bool) {
			return slack.IncidentRef{Source: "pagerduty", ID: "Q1INC"}, ch == incidentChannel
		}),
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Audit: slog.New(slog.NewJSONHandler(f.audit, nil)),
	}
	if edit != nil {
		edit(&opts)
	}
	svc, err := slack.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	h, err := slack.NewHandler(svc, []string{secret, oldSecret})
	if err != nil {
		t.Fatal(err)
	}
	f.svc = svc
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

type answer struct {
	status int
	body   string
	msg    struct {
		Text         string `json:"text"`
		ResponseType string `json:"response_type"`
	}
}

func (f *fixture) post(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, body: string(b)}
	_ = json.Unmarshal(b, &a.msg)
	return a
}

func (f *fixture) command(t *testing.T, c slacktest.SlashCommand) answer {
	t.Helper()
	c.Command = "/firstlook"
	return f.post(t, slacktest.SignedRequest(f.srv.URL+"/hooks/slack/commands", f.slack.CommandForm(c), secret, time.Now()))
}

func TestSignatures(t *testing.T) {
	f := newFixture(t, nil)
	form := f.slack.CommandForm(slacktest.SlashCommand{UserID: lead, ChannelID: "C0OPS0001", Command: "/firstlook", Text: "help"})
	url := f.srv.URL + "/hooks/slack/commands"
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		reason string
	}{
		{"signed", func() *http.Request { return slacktest.SignedRequest(url, form, secret, time.Now()) }, 200, ""},
		{"signed with the old secret while rotating", func() *http.Request { return slacktest.SignedRequest(url, form, oldSecret, time.Now()) }, 200, ""},
		{"forged", func() *http.Request { return slacktest.SignedRequest(url, form, "not-the-secret", time.Now()) }, 401, "matches none"},
		{"replayed after 6 minutes", func() *http.Request {
			return slacktest.SignedRequest(url, form, secret, time.Now().Add(-6*time.Minute))
		}, 401, "more than 5 minutes"},
		{"body changed after signing", func() *http.Request {
			r := slacktest.SignedRequest(url, form, secret, time.Now())
			changed := form.Encode() + "&text=run+x+on+y"
			r.Body, r.ContentLength = io.NopCloser(strings.NewReader(changed)), int64(len(changed))
			return r
		}, 401, "matches none"},
		{"unsigned", func() *http.Request {
			r := slacktest.SignedRequest(url, form, secret, time.Now())
			r.Header.Del("X-Slack-Signature")
			return r
		}, 401, "not signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.post(t, tt.req())
			if a.status != tt.status || !strings.Contains(a.body, tt.reason) {
				t.Fatalf("got %d %s, want %d %q", a.status, a.body, tt.status, tt.reason)
			}
		})
	}
	// Refused requests never reach a decision.
	if n := len(f.audit.lines(t)); n != 2 {
		t.Errorf("got %d audit lines, want 2 (the two signed requests)", n)
	}
}

func TestCommands(t *testing.T) {
	f := newFixture(t, nil)
	tests := []struct {
		name     string
		c        slacktest.SlashCommand
		want     string
		decision string
		rule     string
		runs     int
	}{
		{"denied user", slacktest.SlashCommand{UserID: stranger, ChannelID: incidentChannel, ChannelName: "inc-42-disk", Text: "run disk-usage on web-1"},
			"not allowed: no grant gives `run` to you (U0ANY0001)", "deny", "default", 0},
		{"denied channel", slacktest.SlashCommand{UserID: sre, ChannelID: "C0GEN0001", ChannelName: "general", Text: "run disk-usage on web-1"},
			"not allowed: `run` is granted to you only in other channels, not in #general", "deny", "default", 0},
		{"allowed through a user group", slacktest.SlashCommand{UserID: sre, UserName: "sam", ChannelID: incidentChannel, ChannelName: "inc-42-disk", Text: "run disk-usage on web-1"},
			"queued disk-usage on web-1", "allow", "grants[1]", 1},
		{"workspace mismatch", slacktest.SlashCommand{TeamID: "T0OTHER01", UserID: lead, ChannelID: "C0OPS0001", Text: "help"},
			"serves workspace T0FIRSTLK only; the request came from T0OTHER01", "deny", "team_id", 1},
		{"help shows the caller's own permissions", slacktest.SlashCommand{UserID: sre, ChannelID: incidentChannel, Text: "help"},
			"`run PLAYBOOK on HOST|GROUP: run a playbook now` (grants[1])", "allow", "grants[0]", 1},
		{"a malformed command gets usage", slacktest.SlashCommand{UserID: sre, ChannelID: incidentChannel, Text: "run disk-usage"},
			"want run PLAYBOOK on HOST", "allow", "grants[0]", 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.command(t, tt.c)
			if a.status != 200 || !strings.Contains(a.msg.Text, tt.want) {
				t.Fatalf("got %d %q, want 200 with %q", a.status, a.body, tt.want)
			}
			if a.msg.ResponseType != "ephemeral" {
				t.Errorf("got response_type %q, want ephemeral", a.msg.ResponseType)
			}
			lines := f.audit.lines(t)
			if len(lines) != i+1 {
				t.Fatalf("got %d audit lines, want %d", len(lines), i+1)
			}
			l := lines[i]
			if l["decision"] != tt.decision || l["rule"] != tt.rule || l["user"] != tt.c.UserID || l["channel"] != tt.c.ChannelID {
				t.Errorf("audit line %v: want decision %s by %s for %s in %s", l, tt.decision, tt.rule, tt.c.UserID, tt.c.ChannelID)
			}
			if got := len(f.runs.all()); got != tt.runs {
				t.Errorf("got %d runs, want %d", got, tt.runs)
			}
		})
	}
	r := f.runs.all()[0]
	if r.Incident == nil || r.Incident.ID != "Q1INC" || r.User != sre || r.UserName != "sam" || r.Channel != incidentChannel || r.ID == "" {
		t.Errorf("run request %+v: want the incident channel's incident, the caller and a request id", r)
	}
}

func TestButtons(t *testing.T) {
	f := newFixture(t, nil)
	press := func(user, channel string) slacktest.BlockAction {
		return slacktest.BlockAction{UserID: user, ChannelID: channel, MessageTS: "1700000000.000100", ActionID: slack.ActionRun, Value: "run disk-usage on web-1"}
	}
	for _, tt := range []struct {
		name  string
		press slacktest.BlockAction
		want  string
		runs  int
	}{
		{"pressed by someone not allowed", press(stranger, incidentChannel), "not allowed: no grant gives `run` to you", 0},
		{"pressed by a user group member", press(sre, incidentChannel), "queued disk-usage on web-1", 1},
		{"pressed in another workspace", func() slacktest.BlockAction { p := press(sre, incidentChannel); p.TeamID = "T0OTHER01"; return p }(), "serves workspace T0FIRSTLK only", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			form := f.slack.ActionForm(tt.press)
			a := f.post(t, slacktest.SignedRequest(f.srv.URL+"/hooks/slack/interactions", form, secret, time.Now()))
			if a.status != 200 || a.body != "" {
				t.Fatalf("got %d %q, want an empty 200", a.status, a.body)
			}
			f.svc.Wait()
			var payload struct {
				ResponseURL string `json:"response_url"`
			}
			_ = json.Unmarshal([]byte(form.Get("payload")), &payload)
			got := f.slack.Responses(payload.ResponseURL)
			if len(got) != 1 || !strings.Contains(got[0].Text, tt.want) || got[0].ResponseType != "ephemeral" {
				t.Fatalf("got responses %+v, want one ephemeral with %q", got, tt.want)
			}
			if n := len(f.runs.all()); n != tt.runs {
				t.Errorf("got %d runs, want %d", n, tt.runs)
			}
		})
	}
	lines := f.audit.lines(t)
	if len(lines) != 3 || lines[0]["button"] != true || lines[0]["decision"] != "deny" || lines[1]["decision"] != "allow" {
		t.Errorf("audit: %v", lines)
	}
}

// The acknowledgement comes within the ack budget however slow the work;
// the result follows through the response_url.
func TestSlowWorkIsAcknowledgedAtOnce(t *testing.T) {
	release := make(chan struct{})
	f := newFixture(t, func(o *slack.Options) {
		o.Config.AckBudget = 100 * time.Millisecond
		o.Runs = runsFunc{run: func(ctx context.Context, r slack.RunRequest) (slack.Reply, error) {
			<-release // the work cannot finish before the ack is in
			return slack.Reply{Text: "queued at last"}, nil
		}}
	})
	form := f.slack.CommandForm(slacktest.SlashCommand{UserID: lead, ChannelID: incidentChannel, Command: "/firstlook", Text: "run disk-usage on web-1"})
	a := f.post(t, slacktest.SignedRequest(f.srv.URL+"/hooks/slack/commands", form, secret, time.Now()))
	close(release)
	if a.status != 200 || !strings.Contains(a.msg.Text, "working on `run disk-usage on web-1`") {
		t.Fatalf("got %d %q, want the working-on-it acknowledgement", a.status, a.body)
	}
	f.svc.Wait()
	got := f.slack.Responses(form.Get("response_url"))
	if len(got) != 1 || got[0].Text != "queued at last" {
		t.Fatalf("got responses %+v, want the result", got)
	}
}

func TestResponseURLLimits(t *testing.T) {
	f := newFixture(t, nil)
	ch := f.slack.AddChannel(slacktest.Channel{Name: "ops", Members: []string{slacktest.BotUserID}})
	u := f.slack.NewResponseURL(team)
	req := slack.Request{Channel: ch, ResponseURL: u, Received: time.Now()}
	ctx := context.Background()
	for i := range slack.ResponseURLUses {
		if err := f.svc.Respond(ctx, req, slack.Reply{Text: "answer", InChannel: true}); err != nil {
			t.Fatalf("use %d: %v", i+1, err)
		}
	}
	if err := f.svc.Respond(ctx, req, slack.Reply{Text: "only for you"}); err != slack.ErrResponseURLSpent {
		t.Errorf("sixth ephemeral answer: got %v, want ErrResponseURLSpent", err)
	}
	if err := f.svc.Respond(ctx, req, slack.Reply{Text: "for the channel", InChannel: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.slack.Responses(u)); n != slack.ResponseURLUses {
		t.Errorf("got %d posts to the response_url, want %d", n, slack.ResponseURLUses)
	}
	if m := f.slack.Messages(ch); len(m) != 1 || m[0].Text != "for the channel" {
		t.Errorf("got channel messages %+v, want the sixth answer", m)
	}
	// Past 30 minutes the URL is not tried.
	old := slack.Request{Channel: ch, ResponseURL: f.slack.NewResponseURL(team), Received: time.Now().Add(-31 * time.Minute)}
	if err := f.svc.Respond(ctx, old, slack.Reply{Text: "late", InChannel: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(f.slack.Responses(old.ResponseURL)); n != 0 {
		t.Errorf("an expired response_url was used %d times", n)
	}
}

func TestSocketMode(t *testing.T) {
	f := newFixture(t, nil)
	sock, err := slack.NewSocket(f.svc, slacktest.Token, slacktest.AppToken)
	if err != nil {
		t.Fatal(err)
	}
	defer runSocket(t, sock)()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := f.slack.WaitSocket(wctx); err != nil {
		t.Fatal(err)
	}

	// A slash command's answer rides on its ack.
	ack, err := f.slack.SendEnvelope(wctx, "slash_commands", f.slack.CommandPayload(slacktest.SlashCommand{
		UserID: sre, ChannelID: incidentChannel, Command: "/firstlook", Text: "run disk-usage on web-1"}))
	if err != nil {
		t.Fatal(err)
	}
	var msg struct{ Text, ResponseType string }
	var raw map[string]string
	_ = json.Unmarshal(ack.Payload, &raw)
	msg.Text, msg.ResponseType = raw["text"], raw["response_type"]
	if msg.Text != "queued disk-usage on web-1" || msg.ResponseType != "ephemeral" {
		t.Errorf("got ack payload %s", ack.Payload)
	}
	// The same checks: another workspace is refused.
	ack, err = f.slack.SendEnvelope(wctx, "slash_commands", f.slack.CommandPayload(slacktest.SlashCommand{
		TeamID: "T0OTHER01", UserID: lead, ChannelID: incidentChannel, Command: "/firstlook", Text: "run disk-usage on web-1"}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ack.Payload), "not allowed") {
		t.Errorf("got ack payload %s, want a refusal", ack.Payload)
	}
	// A button is acked empty; its answer goes to the response_url.
	p := f.slack.ActionPayload(slacktest.BlockAction{UserID: stranger, ChannelID: incidentChannel, ActionID: slack.ActionRun, Value: "run disk-usage on web-1"})
	ack, err = f.slack.SendEnvelope(wctx, "interactive", p)
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.Payload) != 0 {
		t.Errorf("got button ack payload %s, want none", ack.Payload)
	}
	// The answer comes after the ack: wait for it.
	for len(f.slack.Responses(p["response_url"].(string))) == 0 && wctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	if got := f.slack.Responses(p["response_url"].(string)); len(got) != 1 || !strings.Contains(got[0].Text, "not allowed") {
		t.Errorf("got %+v, want the refusal", got)
	}
	if n := len(f.runs.all()); n != 1 {
		t.Errorf("got %d runs, want 1", n)
	}
	// Slack refreshes connections: slack-go reconnects and commands flow.
	f.slack.CloseSockets()
	for {
		ack, err = f.slack.SendEnvelope(wctx, "slash_commands", f.slack.CommandPayload(slacktest.SlashCommand{
			UserID: lead, ChannelID: incidentChannel, Command: "/firstlook", Text: "help"}))
		if err == nil || wctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(ack.Payload), "what you may run here") {
		t.Errorf("after reconnecting: got %s, %v", ack.Payload, err)
	}
}

func TestAuthenticate(t *testing.T) {
	v, err := slack.NewVerifier([]string{"", secret})
	if err != nil {
		t.Fatal(err)
	}
	form := slacktest.NewServer()
	defer form.Close()
	good := slacktest.SignedRequest("http://x/hooks/slack/commands", form.CommandForm(slacktest.SlashCommand{Text: "help"}), secret, time.Now())
	body, _ := io.ReadAll(good.Body)
	if err := v.Authenticate(good, body); err != nil {
		t.Errorf("good request: %v", err)
	}
	if err := v.Authenticate(good, append(body, 'x')); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("tampered body: got %v, want a 401", err)
	}
	if _, err := slack.NewVerifier([]string{""}); err == nil {
		t.Error("a verifier without secrets was made")
	}
}

func TestInteractionRequest(t *testing.T) {
	fake := slacktest.NewServer()
	defer fake.Close()
	for _, tt := range []struct {
		action, value string
		ok            bool
	}{
		{slack.ActionRun, "run disk on web-1", true},
		{slack.ActionRun + ":memory", "run memory on web-1", true},
		{"firstlook_evidence", "evidence", false},
		{slack.ActionRun, "page web-prod everything is on fire", false},
	} {
		var cb goslack.InteractionCallback
		b, _ := json.Marshal(fake.ActionPayload(slacktest.BlockAction{UserID: sre, ChannelID: "C0OPS0001", ActionID: tt.action, Value: tt.value}))
		if err := json.Unmarshal(b, &cb); err != nil {
			t.Fatal(err)
		}
		req, err := slack.InteractionRequest(cb)
		if (err == nil) != tt.ok || (tt.ok && (req.Text != tt.value || !req.Button || req.User != sre || req.ResponseURL == "" || req.ID == "")) {
			t.Errorf("%s %q: got %+v, %v; want ok %v", tt.action, tt.value, req, err, tt.ok)
		}
	}
}

// runSocket runs sock until the returned stop is called.
func runSocket(t *testing.T, sock *slack.Socket) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The goroutine gets what it uses as arguments, not captured
	// variables of the test's frame (a data race on one was reported
	// once under load).
	go func(ctx context.Context, sock *slack.Socket, done chan<- error) { done <- sock.Run(ctx) }(ctx, sock, done)
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
