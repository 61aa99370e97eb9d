package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
)

// Execute performs one run and returns its bundle, redacted: nothing of
// it leaves the runner otherwise. It never fails: a run that cannot start,
// or stops early, says why in the bundle.
func (r *Runner) Execute(ctx context.Context, t hooks.Trigger, run Run) *evidence.Bundle {
	b := r.execute(ctx, t, run)
	r.redactor.RedactBundle(b)
	return b
}

func (r *Runner) execute(ctx context.Context, t hooks.Trigger, run Run) *evidence.Bundle {
	start := r.now().UTC()
	p := run.Playbook
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema:           evidence.ManifestSchema,
		RunID:            evidence.RunID(start, run.Target, p.Name),
		FirstlookVersion: r.version,
		Incident: evidence.Incident{
			Source: t.Source, ID: t.Incident.ID, Number: t.Incident.Number, Title: t.Incident.Title,
			URL: t.Incident.URL, Service: t.Incident.Service.Name, Event: t.Event, Delivery: t.DeliveryID,
			Note: t.Note,
		},
		Host:      evidence.Host{Name: run.Target},
		Playbook:  evidence.Playbook{Name: p.Name, File: p.File, SHA256: p.SHA256, FollowUps: p.FollowUps},
		StartedAt: start,
		Steps:     []evidence.Step{},
	}}
	m := &b.Manifest
	if isGroup(run) {
		m.Group = groupName(p)
	}
	notStarted := func(err error) *evidence.Bundle {
		m.Status = evidence.StatusNotStarted
		m.Error = err.Error()
		m.EndedAt = r.now().UTC()
		return b
	}
	if run.Err != nil {
		return notStarted(run.Err)
	}
	h := run.Host
	m.Host = evidence.Host{Name: h.Name, Address: h.Addr(), User: h.User}
	if h.Bastion != nil {
		m.Host.Bastion = h.Bastion.Name
	}
	data := r.templateData(t, h)
	cmds := p.Render(data)
	for i, step := range p.Steps {
		if step.Sudo && !h.Sudo && cmds[i].Err == nil {
			// Not sent: a failed sudo writes a security-log entry
			// ("user NOT in sudoers"), mailed to root on many systems.
			cmds[i].Err = fmt.Errorf("step %q has sudo: true, but host %s did not opt in to sudo (inventory: sudo: true, per host, in defaults or through sudo_groups); not sent", step.Name, h.Name)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	conn, err := r.dialer.Dial(ctx, target(h))
	if err != nil {
		return notStarted(fmt.Errorf("connect: %w", err))
	}
	defer conn.Close()

	m.Steps = make([]evidence.Step, len(p.Steps))
	if p.Parallel {
		// Concurrent sessions on the one connection; runner/ssh queues
		// what exceeds the host's session limit.
		// Each step records into its own bundle; they are merged once all
		// are done (a Bundle is not safe for concurrent use).
		var wg sync.WaitGroup
		parts := make([]*evidence.Bundle, len(p.Steps))
		for i := range p.Steps {
			m.Steps[i] = evidence.Step{Name: p.Steps[i].Name, Command: cmds[i].Line, Script: string(cmds[i].Stdin), ExitCode: -1, StartedAt: r.now().UTC()}
			if cmds[i].Err != nil {
				m.Steps[i].Error = cmds[i].Err.Error()
				continue
			}
			parts[i] = &evidence.Bundle{}
			wg.Go(func() {
				r.runStep(ctx, conn, i, p.Steps[i], cmds[i], parts[i], &m.Steps[i])
				r.findings(p, i, data.Params, parts[i], &m.Steps[i])
			})
		}
		wg.Wait()
		for _, part := range parts {
			if part == nil {
				continue
			}
			if b.Files == nil {
				b.Files = map[string][]byte{}
			}
			maps.Copy(b.Files, part.Files)
		}
	} else {
		results := map[string]playbooks.Result{}
		for i, step := range p.Steps {
			st := evidence.Step{Name: step.Name, Command: cmds[i].Line, Script: string(cmds[i].Stdin), ExitCode: -1, StartedAt: r.now().UTC()}
			run, why := p.Decide(i, results)
			switch {
			case ctx.Err() != nil:
				st.Skipped, st.Error = true, fmt.Sprintf("not run: the playbook's %s timeout was reached", p.Timeout)
			case !run && step.When != nil:
				// The condition did not hold: skipping is the plan.
				st.Skipped = true
			case !run:
				st.Skipped, st.Error = true, "not run: "+why
			case cmds[i].Err != nil:
				st.Error = cmds[i].Err.Error()
				results[step.Name] = playbooks.Result{ExitCode: -1}
			default:
				r.runStep(ctx, conn, i, step, cmds[i], b, &st)
				results[step.Name] = playbooks.Result{ExitCode: st.ExitCode, Findings: r.findings(p, i, data.Params, b, &st)}
			}
			m.Steps[i] = st
		}
	}
	m.Status = evidence.StatusOK
	for _, st := range m.Steps {
		if !st.OK() {
			m.Status = evidence.StatusFailed
		}
	}
	m.EndedAt = r.now().UTC()
	return b
}

func (r *Runner) runStep(ctx context.Context, conn Conn, i int, step playbooks.Step, cmd playbooks.Command, b *evidence.Bundle, st *evidence.Step) {
	sctx, cancel := context.WithTimeout(ctx, step.Timeout)
	defer cancel()
	opts := ssh.RunOptions{MaxOutput: step.MaxOutput}
	if cmd.Stdin != nil {
		opts.Stdin = bytes.NewReader(cmd.Stdin)
	}
	res, err := conn.Run(sctx, cmd.Line, opts)
	st.ExitCode = res.ExitCode
	st.Signal = res.Signal
	st.TimedOut = res.TimedOut
	st.DurationMS = res.Duration.Milliseconds()
	if !res.Started.IsZero() {
		st.StartedAt = res.Started.UTC()
	}
	st.Stdout = b.SetOutput(evidence.StepFile(i, step.Name, "stdout"), res.Stdout, res.StdoutBytes)
	st.Stderr = b.SetOutput(evidence.StepFile(i, step.Name, "stderr"), res.Stderr, res.StderrBytes)
	switch {
	case err != nil:
		st.Error = err.Error()
	case res.TimedOut && ctx.Err() != nil:
		st.Error = "timed out: the playbook's timeout was reached"
	case res.TimedOut:
		st.Error = fmt.Sprintf("timed out after %s", step.Timeout)
	}
	if errors.Is(err, context.Canceled) {
		st.Error = "cancelled"
	}
}

// findings evaluates step i's finding rules on its stdout, redacted
// first (findings are published, and RedactBundle has not run yet), and
// records them in st.
func (r *Runner) findings(p *playbooks.Playbook, i int, overrides map[string]string, b *evidence.Bundle, st *evidence.Step) []playbooks.Finding {
	if len(p.Steps[i].Findings) == 0 || st.Stdout.File == "" {
		return nil
	}
	out, _ := r.redactor.Redact(b.Files[st.Stdout.File])
	found, measures := p.Findings(i, out, overrides)
	RecordFindings(st, found, measures)
	return found
}

// RecordFindings records a step's findings and named values, as
// playbooks.Playbook.Findings returned them, in its manifest entry. The
// runner and replay both record through it.
func RecordFindings(st *evidence.Step, found []playbooks.Finding, measures []playbooks.Measure) {
	for _, f := range found {
		ef := evidence.Finding{Rule: f.Rule, Severity: evidence.Severity(f.Severity.String()), Message: f.Message}
		if f.HasValue {
			v := f.Value
			ef.Value = &v
		}
		st.Findings = append(st.Findings, ef)
	}
	for _, m := range measures {
		if st.Values == nil {
			st.Values = map[string]float64{}
		}
		st.Values[m.Rule] = m.Value
	}
}

// templateData is what t's templates see on host h, with the per-service
// parameter overrides (by service id, then by name, which wins).
func (r *Runner) templateData(t hooks.Trigger, h inventory.Host) playbooks.Data {
	params := map[string]string{}
	for _, key := range []string{t.Incident.Service.ID, t.Incident.Service.Name} {
		maps.Copy(params, r.params[key])
	}
	return playbooks.NewData(t, playbooks.Host{Name: h.Name, Address: h.Address, User: h.User, Sudo: h.Sudo, Labels: h.Labels}, params)
}

// target maps an inventory host to what runner/ssh dials.
func target(h inventory.Host) ssh.Target {
	t := ssh.Target{Name: h.Name, Addr: h.Addr(), User: h.User}
	if b := h.Bastion; b != nil {
		t.Bastion = &ssh.Hop{Name: b.Name, Addr: b.Addr(), User: b.User}
	}
	return t
}

// SSH adapts runner/ssh's Dialer to the runner's Dialer.
func SSH(d *ssh.Dialer) Dialer { return sshDialer{d} }

type sshDialer struct{ d *ssh.Dialer }

func (s sshDialer) Dial(ctx context.Context, t ssh.Target) (Conn, error) {
	c, err := s.d.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	return c, nil
}
