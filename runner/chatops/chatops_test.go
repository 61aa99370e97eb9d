package chatops_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	slackpub "github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/hooks/slack"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/chatops"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/queue"
	"github.com/firstlook/firstlook/runner/runnertest"
	"github.com/firstlook/firstlook/runner/ssh"
)

// dialerFunc and connFunc adapt functions to the runner's Dialer and
// Conn: these tests are about what is queued and published, not SSH.
type (
	dialerFunc = runnertest.DialerFunc
	connFunc   = runnertest.ConnFunc
)

func echo() runner.Dialer {
	return dialerFunc(func(_ context.Context, t ssh.Target) (runner.Conn, error) {
		return connFunc(func(_ context.Context, cmd string, _ ssh.RunOptions) (ssh.Result, error) {
			out := []byte(t.Name + ": " + cmd + "\n")
			return ssh.Result{Stdout: out, StdoutBytes: int64(len(out)), Started: time.Now(), Duration: time.Millisecond}, nil
		}), nil
	})
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

const diskUsage = `name: disk-usage
description: What fills the disk.
match:
  events: [incident.triggered]
follow_ups: [memory]
steps:
  - name: df
    run: df -h
`

const memory = `name: memory
description: Who holds the memory.
match:
  events: [never.happens]
steps:
  - name: free
    run: free -m
`

type world struct {
	fake   *slacktest.Server
	q      *queue.Queue
	desk   *chatops.Desk
	svc    *slack.Service
	run    func()
	ops    string
	incCh  string
	ctx    context.Context
	cancel context.CancelFunc
}

const (
	sre     = "U0SRE0001"
	visitor = "U0VIS0001"
)

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{}
	w.ctx, w.cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(w.cancel)
	w.fake = slacktest.NewServer()
	t.Cleanup(w.fake.Close)
	w.fake.AddUsergroup("S0SRE0001", "sre-oncall", sre)
	w.ops = w.fake.AddChannel(slacktest.Channel{Name: "ops", Members: []string{slacktest.BotUserID, sre, visitor}})
	w.incCh = w.fake.AddChannel(slacktest.Channel{Name: "inc-42-disk-full", Creator: slacktest.BotUserID, Members: []string{slacktest.BotUserID, sre}})

	var err error
	w.q, err = queue.Open(w.ctx, queue.Config{DataDir: t.TempDir(), AckWait: 5 * time.Second, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.q.Close() })
	d := t.TempDir()
	for name, body := range map[string]string{"disk.yaml": diskUsage, "memory.yaml": memory} {
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := playbooks.Load(d)
	if err == nil {
		set, err = playbooks.Merge(set)
	}
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.New(inventory.Config{
		Defaults: inventory.Defaults{User: "firstlook"},
		Hosts: []inventory.HostConfig{
			{Name: "web-1", Address: "10.0.0.1", Groups: []string{"web"}},
			{Name: "web-2", Address: "10.0.0.2", Groups: []string{"web"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := dir.New(dir.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := slackpub.New(slackpub.Config{APIURL: w.fake.URL, RunAgainButton: true}, slacktest.Token, slackpub.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := runner.New(runner.Options{
		Jobs: runner.QueueJobs(w.q), State: w.q.State(), Leases: runner.QueueLeases(w.q), Inventory: inv, Playbooks: set,
		Dialer: echo(), Store: store, Publishers: []evidence.Publisher{pub}, Log: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.desk, err = chatops.New(chatops.Options{Queue: w.q, State: w.q.State(), Store: store, Targets: r, Playbooks: set, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	w.svc, err = slack.New(slack.Options{
		Config: slack.Config{TeamID: slacktest.TeamID, APIURL: w.fake.URL, AckBudget: 2 * time.Second, Grants: []slack.Grant{
			{Commands: []string{"*"}, Usergroups: []string{"sre-oncall"}, Channels: []string{"incident", "#ops"}},
			{Commands: []string{"help", "last", "playbooks"}, Channels: []string{"#ops"}},
		}},
		BotToken: slacktest.Token, Incidents: w.desk, Runs: w.desk, Log: quiet(), Audit: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.svc.Close)
	// The incident channel is one the Slack publisher recorded.
	if _, err := w.q.State().Create(w.ctx, queue.Key("incident", "pagerduty", "Q1DISK", slackpub.StateKey), []byte(w.incCh)); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(w.ctx)
	done := make(chan struct{})
	w.run = func() {
		go func() { defer close(done); _ = r.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
	}
	return w
}

func (w *world) ask(user, channel, chName, text string) slack.Reply {
	return w.svc.Handle(slack.Request{
		Text: text, Team: slacktest.TeamID, User: user, UserName: "sam", Channel: channel, ChannelName: chName,
		ID: "trigger-" + strings.ReplaceAll(text, " ", "-") + "-" + user + "-" + time.Now().Format("150405.000000000"),
	})
}

// waitMessages waits for n messages in channel.
func (w *world) waitMessages(t *testing.T, channel string, n int) []slacktest.Message {
	t.Helper()
	for {
		ms := w.fake.Messages(channel)
		if len(ms) >= n {
			return ms
		}
		select {
		case <-w.ctx.Done():
			t.Fatalf("got %d messages in %s, want %d", len(ms), channel, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func buttonValue(t *testing.T, m slacktest.Message, actionID string) string {
	t.Helper()
	var blocks []struct {
		Type     string `json:"type"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(m.Blocks, &blocks); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		for _, e := range b.Elements {
			if e.ActionID == actionID {
				return e.Value
			}
		}
	}
	t.Fatalf("no %s button in %s", actionID, m.Blocks)
	return ""
}

// A manual run from #ops is queued like any job, runs on the inventory
// host, and its summary lands in #ops with a Run again button; pressing
// it runs the playbook again (a run of its own).
func TestManualRunAndRunAgain(t *testing.T) {
	w := newWorld(t)
	w.run()
	rep := w.ask(sre, w.ops, "ops", "run disk-usage on web-1")
	if !strings.Contains(rep.Text, "queued `disk-usage` on web-1") || !strings.Contains(rep.Text, "in this channel.") {
		t.Fatalf("got %q", rep.Text)
	}
	ms := w.waitMessages(t, w.ops, 1)
	if !strings.Contains(ms[0].Text, "disk-usage") || !strings.Contains(string(ms[0].Blocks), "web-1: df -h") {
		t.Errorf("got message %q %s", ms[0].Text, ms[0].Blocks)
	}
	v := buttonValue(t, ms[0], slack.ActionRun)
	if v != "run disk-usage on web-1" {
		t.Fatalf("got button value %q", v)
	}
	if f := buttonValue(t, ms[0], slack.ActionRun+":memory"); f != "run memory on web-1" {
		t.Fatalf("got follow-up button value %q", f)
	}
	// The button is a command like any other.
	w.svc.Handle(slack.Request{Text: v, Button: true, Team: slacktest.TeamID, User: sre, Channel: w.ops, ChannelName: "ops", ID: "button-1"})
	w.waitMessages(t, w.ops, 2)
	w.svc.Handle(slack.Request{Text: "run memory on web-1", Button: true, Team: slacktest.TeamID, User: sre, Channel: w.ops, ChannelName: "ops", ID: "button-2"})
	if ms := w.waitMessages(t, w.ops, 3); !strings.Contains(string(ms[2].Blocks), "web-1: free -m") {
		t.Errorf("the follow-up ran: %s", ms[2].Blocks)
	}
	// A visitor may look but not run.
	if rep := w.ask(visitor, w.ops, "ops", "run disk-usage on web-1"); !strings.Contains(rep.Text, "not allowed") {
		t.Errorf("got %q", rep.Text)
	}
	if rep := w.ask(visitor, w.ops, "ops", "last web-1"); !strings.Contains(rep.Text, "memory on web-1") {
		t.Errorf("last: got %q", rep.Text)
	}
	if n := len(w.fake.Channels()); n != 2 {
		t.Errorf("got %d channels, want 2: a manual run creates none", n)
	}
}

// In an incident's channel the run belongs to the incident.
func TestRunInIncidentChannel(t *testing.T) {
	w := newWorld(t)
	w.run()
	rep := w.ask(sre, w.incCh, "inc-42-disk-full", "run disk-usage on web")
	if !strings.Contains(rep.Text, "queued `disk-usage` on web-1, web-2") || !strings.Contains(rep.Text, "pagerduty.slack-") || !strings.Contains(rep.Text, "on the incident") {
		t.Fatalf("got %q", rep.Text)
	}
	ms := w.waitMessages(t, w.incCh, 2)
	for _, m := range ms {
		if !strings.Contains(string(m.Blocks), "incident Q1DISK") {
			t.Errorf("message %q does not name the incident", m.Text)
		}
	}
	if rep := w.ask(sre, w.incCh, "inc-42-disk-full", "last"); !strings.Contains(rep.Text, "disk-usage on web-") {
		t.Errorf("last in the incident channel: got %q", rep.Text)
	}
	// #ops is not an incident channel, even after manual runs recorded it.
	w.ask(sre, w.ops, "ops", "run disk-usage on web-1")
	w.waitMessages(t, w.ops, 1)
	if _, ok, _ := w.desk.ChannelIncident(w.ctx, w.ops); ok {
		t.Error("#ops counted as an incident channel")
	}
}

// Names are matched against the playbooks and the inventory; nothing else
// is queued.
func TestRefusedNames(t *testing.T) {
	w := newWorld(t)
	for text, want := range map[string]string{
		"run disk-usag on web-1":    `no playbook "disk-usag" is loaded (did you mean disk-usage?)`,
		"run disk-usage on web-9":   `"web-9" is neither an inventory host`,
		"run disk-usage on 8.8.8.8": `"8.8.8.8" is neither an inventory host`,
		"run disk-usage on role=db": `"role=db" is neither an inventory host`,
	} {
		if rep := w.ask(sre, w.ops, "ops", text); !strings.Contains(rep.Text, want) {
			t.Errorf("%s: got %q, want %q", text, rep.Text, want)
		}
	}
	st, err := w.q.Stats(w.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Stored != 0 {
		t.Errorf("got %+v, want nothing queued", st)
	}
	if rep := w.ask(visitor, w.ops, "ops", "playbooks web-1"); !strings.Contains(rep.Text, "`disk-usage` — What fills the disk.") {
		t.Errorf("playbooks: got %q", rep.Text)
	}
}
