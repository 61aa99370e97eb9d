package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner/inventory"
)

// Plan is what a trigger would run: every matching playbook on every host
// it targets, including the runs that cannot start and why.
type Plan struct {
	Trigger hooks.Trigger
	// Hints are the host hints found for the incident.
	Hints []string
	// HintErr is a failed hint lookup (the PagerDuty API, say); the plan
	// uses the hints found elsewhere.
	HintErr error
	Runs    []Run
}

// Run is one playbook on one host.
type Run struct {
	Playbook *playbooks.Playbook
	// Host is the inventory host; zero when Err is set.
	Host inventory.Host
	// Target names the run's host: the inventory name, or the hint that
	// could not be resolved.
	Target string
	// Err says why the run cannot start.
	Err error
}

// ErrNoHost means the incident names no host the runner could find.
var ErrNoHost = errors.New("the incident names no host")

// Plan matches t against the playbooks and resolves the hosts they target.
// It runs nothing.
func (r *Runner) Plan(ctx context.Context, t hooks.Trigger) Plan {
	plan := Plan{Trigger: t}
	if t.Request != nil {
		plan.Runs = r.planRequest(ctx, *t.Request)
		return plan
	}
	matched := r.playbooks.Match(t)
	if len(matched) == 0 {
		return plan
	}
	var (
		resolved bool
		hosts    []inventory.Host
		refused  []Run
	)
	incidentHosts := func() {
		if resolved {
			return
		}
		resolved = true
		plan.Hints, plan.HintErr = r.hints(ctx, t)
		seen := map[string]bool{}
		for _, h := range plan.Hints {
			host, err := r.inv.Resolve(ctx, h)
			if err != nil {
				refused = append(refused, Run{Target: h, Err: fmt.Errorf("%w: add it to the inventory, or fix the hint that named it", err)})
				continue
			}
			if !seen[host.Name] {
				seen[host.Name] = true
				hosts = append(hosts, host)
			}
		}
		if len(plan.Hints) == 0 {
			why := fmt.Errorf("%w: configure hints.title patterns for service %q, or send host hints in the alert", ErrNoHost, t.Incident.Service.Name)
			if plan.HintErr != nil {
				why = fmt.Errorf("%w (and the alert lookup failed: %v)", why, plan.HintErr)
			}
			refused = append(refused, Run{Target: "(none)", Err: why})
		}
	}
	for _, p := range matched {
		switch p.Targets.Kind {
		case playbooks.TargetGroup, playbooks.TargetSelector:
			sel, err := r.inv.Select(ctx, p.Targets.Group, p.Targets.Selector)
			if err == nil && len(sel) == 0 {
				err = fmt.Errorf("no inventory host is in group %q with labels %v", p.Targets.Group, p.Targets.Selector)
			}
			if err != nil {
				// A source that failed (EC2 down) is reported; the hosts
				// the others found still run.
				plan.Runs = append(plan.Runs, Run{Playbook: p, Target: "(" + p.Targets.Kind.String() + ")", Err: err})
			}
			for i, h := range sel {
				run := Run{Playbook: p, Host: h, Target: h.Name}
				if p.Targets.MaxHosts > 0 && i >= p.Targets.MaxHosts {
					run = Run{Playbook: p, Target: h.Name, Err: fmt.Errorf("not run: the playbook's max_hosts (%d) was reached", p.Targets.MaxHosts)}
				}
				plan.Runs = append(plan.Runs, run)
			}
		default:
			incidentHosts()
			for _, h := range hosts {
				plan.Runs = append(plan.Runs, Run{Playbook: p, Host: h, Target: h.Name})
			}
			for _, rf := range refused {
				rf.Playbook = p
				plan.Runs = append(plan.Runs, rf)
			}
		}
	}
	return plan
}

// Commands renders the commands run would send, exactly as they would be
// sent, without connecting anywhere. A step that cannot be rendered has
// Command.Err set.
func (r *Runner) Commands(t hooks.Trigger, run Run) []playbooks.Command {
	return run.Playbook.Render(r.templateData(t, run.Host))
}

// ErrUnknownPlaybook means a request named a playbook that is not loaded.
var ErrUnknownPlaybook = errors.New("no such playbook")

// planRequest plans a person's request: the named playbook on the named
// host, group or label selector, whatever the playbook's own match and
// targets say. Only loaded playbooks and inventory hosts qualify.
func (r *Runner) planRequest(ctx context.Context, req hooks.Request) []Run {
	p, ok := r.playbooks.Get(req.Playbook)
	if !ok {
		return []Run{{Playbook: &playbooks.Playbook{Name: req.Playbook}, Target: req.Target, Err: fmt.Errorf("%w: %q", ErrUnknownPlaybook, req.Playbook)}}
	}
	hosts, err := r.RequestTargets(ctx, req.Target)
	if err != nil {
		return []Run{{Playbook: p, Target: req.Target, Err: err}}
	}
	runs := make([]Run, 0, len(hosts))
	for i, h := range hosts {
		run := Run{Playbook: p, Host: h, Target: h.Name}
		if p.Targets.MaxHosts > 0 && i >= p.Targets.MaxHosts {
			run = Run{Playbook: p, Target: h.Name, Err: fmt.Errorf("not run: the playbook's max_hosts (%d) was reached", p.Targets.MaxHosts)}
		}
		runs = append(runs, run)
	}
	return runs
}

// RequestTargets resolves a requested target: an inventory host (by name,
// address or instance id), else a group, else a key=value label selector.
func (r *Runner) RequestTargets(ctx context.Context, target string) ([]inventory.Host, error) {
	h, herr := r.inv.Resolve(ctx, target)
	if herr == nil {
		return []inventory.Host{h}, nil
	}
	group, labels := target, map[string]string(nil)
	if k, v, ok := strings.Cut(target, "="); ok {
		group, labels = "", map[string]string{k: v}
	}
	hosts, err := r.inv.Select(ctx, group, labels)
	if err == nil && len(hosts) > 0 {
		return hosts, nil
	}
	return nil, fmt.Errorf("%q is neither an inventory host (%v) nor a group or label selector with hosts", target, herr)
}
