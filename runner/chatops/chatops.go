// Package chatops carries out what responders ask for from chat (the
// /firstlook Slack command of hooks/slack): queue a playbook on a host,
// show the latest evidence of an incident or host, list the playbooks,
// and tell which incident a channel belongs to. It works only through the
// same parts as every webhook: the queue (exactly-once publishing
// included), the per-incident state, the evidence store, the loaded
// playbooks and the inventory.
package chatops

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/firstlook/firstlook/evidence"
	slackpub "github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/slack"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/queue"
)

// Event is the Trigger.Event of runs a person asked for.
const Event = "firstlook.run"

// State is the per-incident state, as runner/queue keeps it.
type State interface {
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Keys lists the keys matching NATS subject filters.
	Keys(ctx context.Context, filters ...string) ([]string, error)
}

// Targets resolves a requested host, group or selector against the
// inventory (runner.Runner.RequestTargets).
type Targets interface {
	RequestTargets(ctx context.Context, target string) ([]inventory.Host, error)
}

// Options are a Desk's parts.
type Options struct {
	Queue     hooks.Queue
	State     State
	Store     evidence.Store
	Targets   Targets
	Playbooks *playbooks.Set
	Log       *slog.Logger
}

// Desk implements slack.Runs and slack.Incidents.
type Desk struct {
	queue     hooks.Queue
	state     State
	store     evidence.Store
	targets   Targets
	playbooks *playbooks.Set
	log       *slog.Logger
	now       func() time.Time

	mu       sync.Mutex
	channels map[string]slack.IncidentRef // channel id → incident
	listed   time.Time
}

var (
	_ slack.Runs      = (*Desk)(nil)
	_ slack.Incidents = (*Desk)(nil)
)

// New returns a Desk.
func New(opts Options) (*Desk, error) {
	if opts.Queue == nil || opts.State == nil || opts.Store == nil || opts.Targets == nil || opts.Playbooks == nil {
		return nil, errors.New("chatops: queue, state, store, targets and playbooks are required")
	}
	return &Desk{
		queue: opts.Queue, state: opts.State, store: opts.Store, targets: opts.Targets,
		playbooks: opts.Playbooks, log: cmp.Or(opts.Log, slog.Default()), now: time.Now,
		channels: map[string]slack.IncidentRef{},
	}, nil
}

// Run checks the playbook and the target and queues the run. In an
// incident's channel the run belongs to the incident (its note, its
// channel); elsewhere it is a manual run of its own whose summary is
// posted in the channel it was asked from.
func (d *Desk) Run(ctx context.Context, r slack.RunRequest) (slack.Reply, error) {
	if _, ok := d.playbooks.Get(r.Playbook); !ok {
		return slack.Reply{}, fmt.Errorf("no playbook %q is loaded%s; see playbooks", r.Playbook, didYouMean(r.Playbook, d.names()))
	}
	hosts, err := d.targets.RequestTargets(ctx, r.Target)
	if err != nil {
		return slack.Reply{}, err
	}
	if r.ID == "" {
		return slack.Reply{}, errors.New("the request has no trigger_id to tell retries apart")
	}
	by := who(r.UserName, r.User, r.ChannelName, r.Channel)
	t := hooks.Trigger{
		Event:      Event,
		ReceivedAt: d.now().UTC(),
		Request:    &hooks.Request{Playbook: r.Playbook, Target: r.Target, By: by},
		Labels:     map[string]string{"requested_by": r.User, "requested_in": r.Channel},
	}
	where := "in this channel"
	if r.Incident != nil {
		t.Source, t.DeliveryID = r.Incident.Source, "slack-"+r.ID
		t.Incident = d.incident(ctx, *r.Incident)
		where = "in this channel and on the incident"
	} else {
		sum := sha256.Sum256([]byte(r.ID))
		t.Source, t.DeliveryID = slack.Source, r.ID
		t.Incident = hooks.Incident{
			ID:    "run-" + hex.EncodeToString(sum[:6]),
			Title: fmt.Sprintf("%s on %s, asked by %s", r.Playbook, r.Target, by),
		}
		// The Slack publisher posts to the channel the incident state
		// names: the one asked from.
		key := queue.Key("incident", t.Source, t.Incident.ID, slackpub.StateKey)
		if _, err := d.state.Create(ctx, key, []byte(r.Channel)); err != nil && !errors.Is(err, queue.ErrExists) {
			return slack.Reply{}, fmt.Errorf("record the run's channel: %w", err)
		}
	}
	dup, err := d.queue.Put(ctx, t)
	if err != nil {
		return slack.Reply{}, fmt.Errorf("queue the run: %w", err)
	}
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	verb := "queued"
	if dup {
		verb = "already queued"
	}
	return slack.Reply{Text: fmt.Sprintf(":arrow_forward: %s `%s` on %s (job %s); the summary will be posted %s.",
		verb, r.Playbook, clipList(names, 10), t.JobID(), where)}, nil
}

// incident fills in what the last run of inc recorded (title, number,
// link), so the run's summary reads like the incident's other runs.
func (d *Desk) incident(ctx context.Context, inc slack.IncidentRef) hooks.Incident {
	out := hooks.Incident{ID: inc.ID, Title: inc.Title, URL: inc.URL}
	if runs, err := d.incidentRuns(ctx, inc); err == nil && len(runs) > 0 {
		if b, err := evidence.Read(ctx, d.store, runs[0].Bundle); err == nil {
			mi := b.Manifest.Incident
			out.Title, out.Number, out.URL = cmp.Or(out.Title, mi.Title), mi.Number, cmp.Or(out.URL, mi.URL)
			out.Service.Name = mi.Service
		}
	}
	out.Title = cmp.Or(out.Title, "incident "+inc.ID)
	return out
}

// runState is the part of the runner's per-run state read here.
type runState struct {
	Status  string    `json:"status"`
	Since   time.Time `json:"since"`
	Bundle  string    `json:"bundle"`
	Outcome string    `json:"outcome"`
}

type storedRun struct {
	Key string
	runState
}

// runs returns the finished runs under filters, newest first.
func (d *Desk) runs(ctx context.Context, filters ...string) ([]storedRun, error) {
	keys, err := d.state.Keys(ctx, filters...)
	if err != nil {
		return nil, err
	}
	var out []storedRun
	for _, k := range keys {
		raw, _, err := d.state.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		var rs runState
		if json.Unmarshal(raw, &rs) != nil || rs.Status != "done" || rs.Bundle == "" {
			continue
		}
		out = append(out, storedRun{Key: k, runState: rs})
	}
	slices.SortFunc(out, func(a, b storedRun) int { return b.Since.Compare(a.Since) })
	return out, nil
}

// incidentRuns are the finished runs of inc, newest first: the runs its
// webhooks started (run.<source>.<incident>.<host>.<playbook>) and those
// people asked for (scope "<incident>/again/<delivery>", see the runner's
// runScope).
func (d *Desk) incidentRuns(ctx context.Context, inc slack.IncidentRef) ([]storedRun, error) {
	runs, err := d.runs(ctx, "run."+queue.Key(inc.Source)+".*.*.*")
	if err != nil {
		return nil, err
	}
	out := runs[:0]
	for _, r := range runs {
		parts, err := queue.SplitKey(r.Key)
		if err == nil && len(parts) == 5 && (parts[2] == inc.ID || strings.HasPrefix(parts[2], inc.ID+"/again/")) {
			out = append(out, r)
		}
	}
	return out, nil
}

// Last shows the newest run on host, or of inc when host is "", as its
// summary with the evidence link.
func (d *Desk) Last(ctx context.Context, host string, inc *slack.IncidentRef) (slack.Reply, error) {
	var filters []string
	what := ""
	if host != "" {
		hs, err := d.targets.RequestTargets(ctx, host)
		if err != nil || len(hs) != 1 {
			return slack.Reply{}, fmt.Errorf("%q is not an inventory host", host)
		}
		filters = []string{"run.*.*." + queue.Key(hs[0].Name) + ".*"}
		what = "host " + hs[0].Name
	}
	var runs []storedRun
	var err error
	if host != "" {
		runs, err = d.runs(ctx, filters...)
	} else {
		runs, err = d.incidentRuns(ctx, *inc)
		what = "incident " + inc.ID
	}
	if err != nil {
		return slack.Reply{}, fmt.Errorf("list runs: %w", err)
	}
	if len(runs) == 0 {
		return slack.Reply{Text: "No evidence yet for " + what + "."}, nil
	}
	b, err := evidence.Read(ctx, d.store, runs[0].Bundle)
	if err != nil {
		return slack.Reply{}, fmt.Errorf("read evidence %s: %w", runs[0].Bundle, err)
	}
	link, err := d.store.Link(ctx, strings.TrimSuffix(runs[0].Bundle, "/")+"/"+evidence.ManifestFile)
	if err != nil {
		return slack.Reply{}, fmt.Errorf("link evidence: %w", err)
	}
	rep := evidence.Report{Bundle: b, Link: link}
	return slack.Reply{Text: evidence.Text(rep), Blocks: slackpub.Fit(slackpub.Blocks(rep))}, nil
}

// Playbooks lists the loaded playbooks and where each runs by itself; any
// of them can be asked for on any inventory host with run.
func (d *Desk) Playbooks(ctx context.Context, host string) (slack.Reply, error) {
	var b strings.Builder
	if host != "" {
		hs, err := d.targets.RequestTargets(ctx, host)
		if err != nil || len(hs) != 1 {
			return slack.Reply{}, fmt.Errorf("%q is not an inventory host", host)
		}
		fmt.Fprintf(&b, "Playbooks you can run on *%s* (`run PLAYBOOK on %s`):\n", hs[0].Name, hs[0].Name)
	} else {
		b.WriteString("Loaded playbooks (`run PLAYBOOK on HOST|GROUP`):\n")
	}
	all := d.playbooks.All()
	for i, p := range all {
		if i == 40 {
			fmt.Fprintf(&b, "…and %d more\n", len(all)-i)
			break
		}
		fmt.Fprintf(&b, "• `%s` — %s (%s)\n", p.Name, clipText(p.Description, 120), targetsText(p.Targets))
	}
	return slack.Reply{Text: b.String()}, nil
}

func targetsText(t playbooks.Targets) string {
	switch t.Kind {
	case playbooks.TargetGroup:
		return "by itself on group " + t.Group
	case playbooks.TargetSelector:
		var kv []string
		for k, v := range t.Selector {
			kv = append(kv, k+"="+v)
		}
		slices.Sort(kv)
		return "by itself on hosts with " + strings.Join(kv, ",")
	}
	return "by itself on the incident's host"
}

// ChannelIncident tells whether firstlook created channel for an incident,
// from the incident state the Slack publisher keeps. Manual runs record
// their channel too; they are not incidents.
func (d *Desk) ChannelIncident(ctx context.Context, channel string) (slack.IncidentRef, bool, error) {
	d.mu.Lock()
	ref, ok := d.channels[channel]
	fresh := d.now().Sub(d.listed) < 15*time.Second
	d.mu.Unlock()
	if ok || fresh {
		return ref, ok, nil
	}
	keys, err := d.state.Keys(ctx, "incident.*.*."+queue.Key(slackpub.StateKey))
	if err != nil {
		return slack.IncidentRef{}, false, err
	}
	found := map[string]slack.IncidentRef{}
	for _, k := range keys {
		parts, err := queue.SplitKey(k)
		if err != nil || len(parts) != 4 || parts[1] == slack.Source {
			continue
		}
		v, _, err := d.state.Get(ctx, k)
		if err != nil {
			continue
		}
		found[string(v)] = slack.IncidentRef{Source: parts[1], ID: parts[2]}
	}
	d.mu.Lock()
	d.channels, d.listed = found, d.now()
	d.mu.Unlock()
	ref, ok = found[channel]
	return ref, ok, nil
}

func (d *Desk) names() []string {
	var out []string
	for _, p := range d.playbooks.All() {
		out = append(out, p.Name)
	}
	return out
}

// didYouMean suggests the names sharing the longest prefix with name.
func didYouMean(name string, names []string) string {
	best, n := "", 2
	for _, c := range names {
		k := 0
		for k < len(c) && k < len(name) && c[k] == name[k] {
			k++
		}
		if k > n {
			best, n = c, k
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}

// who names a person and where they asked from.
func who(name, id, chName, ch string) string {
	s := id
	if name != "" {
		s = name + " (" + id + ")"
	}
	if chName != "" {
		return s + " in #" + chName
	}
	if ch != "" {
		return s + " in " + ch
	}
	return s
}

func clipList(xs []string, n int) string {
	if len(xs) <= n {
		return strings.Join(xs, ", ")
	}
	return strings.Join(xs[:n], ", ") + fmt.Sprintf(" and %d more", len(xs)-n)
}

func clipText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
