package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
)

// Execute performs one run and returns its bundle. It never fails: a run
// that cannot start, or stops early, says why in the bundle.
func (r *Runner) Execute(ctx context.Context, t hooks.Trigger, run Run) *evidence.Bundle {
	start := r.now().UTC()
	p := run.Playbook
	b := &evidence.Bundle{Manifest: evidence.Manifest{
		Schema:           evidence.ManifestSchema,
		RunID:            evidence.RunID(start, run.Target, p.Name),
		FirstlookVersion: r.version,
		Incident: evidence.Incident{
			Source: t.Source, ID: t.Incident.ID, Number: t.Incident.Number, Title: t.Incident.Title,
			URL: t.Incident.URL, Service: t.Incident.Service.Name, Event: t.Event, Delivery: t.DeliveryID,
		},
		Host:      evidence.Host{Name: run.Target},
		Playbook:  evidence.Playbook{Name: p.Name, File: p.File, SHA256: p.SHA256},
		StartedAt: start,
		Steps:     []evidence.Step{},
	}}
	m := &b.Manifest
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
	cmds := p.Render(r.templateData(t, h))
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	conn, err := r.dialer.Dial(ctx, target(h))
	if err != nil {
		return notStarted(fmt.Errorf("connect: %w", err))
	}
	defer conn.Close()

	codes := map[string]int{}
	stop := ""
	for i, step := range p.Steps {
		cmd := cmds[i]
		st := evidence.Step{Name: step.Name, Command: cmd.Line, ExitCode: -1, StartedAt: r.now().UTC()}
		switch {
		case stop != "":
			st.Skipped, st.Error = true, stop
		case cmd.Err != nil:
			st.Error = cmd.Err.Error()
		case step.When != nil && !step.When.Eval(codes):
			st.Skipped = true
		default:
			r.runStep(ctx, conn, i, step, cmd, b, &st)
		}
		m.Steps = append(m.Steps, st)
		if !st.Skipped {
			codes[step.Name] = st.ExitCode
		}
		switch {
		case stop != "" || st.OK():
		case ctx.Err() != nil:
			stop = fmt.Sprintf("not run: the playbook's %s timeout was reached", p.Timeout)
		case !step.ContinueOnError:
			stop = fmt.Sprintf("not run: step %q failed", step.Name)
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

// templateData is what t's templates see on host h, with the per-service
// parameter overrides (by service id, then by name, which wins).
func (r *Runner) templateData(t hooks.Trigger, h inventory.Host) playbooks.Data {
	params := map[string]string{}
	for _, key := range []string{t.Incident.Service.ID, t.Incident.Service.Name} {
		maps.Copy(params, r.params[key])
	}
	return playbooks.NewData(t, playbooks.Host{Name: h.Name, Address: h.Address, User: h.User, Labels: h.Labels}, params)
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
