package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner/queue"
)

// isGroup reports whether a run is one host of a fan-out: its playbook
// targets a group or a label selector. Such runs are stored one by one and
// published together, as one summary that says which hosts differ.
func isGroup(run Run) bool {
	k := run.Playbook.Targets.Kind
	return k == playbooks.TargetGroup || k == playbooks.TargetSelector
}

// groupName describes a fan-out's hosts for people: "group web",
// "selector role=web".
func groupName(p *playbooks.Playbook) string {
	if p.Targets.Kind == playbooks.TargetGroup {
		return "group " + p.Targets.Group
	}
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(p.Targets.Selector)) {
		kv = append(kv, k+"="+p.Targets.Selector[k])
	}
	return "selector " + strings.Join(kv, ",")
}

// publishFanouts publishes, for each group playbook of the plan whose runs
// are all done, one summary of its hosts. Runs another job still holds
// are left to that job, which publishes the summary when it finishes.
func (r *Runner) publishFanouts(ctx context.Context, t hooks.Trigger, plan Plan) error {
	if len(r.publishers) == 0 {
		return nil
	}
	groups := map[string][]Run{}
	var order []*playbooks.Playbook
	for _, run := range plan.Runs {
		if !isGroup(run) {
			continue
		}
		if groups[run.Playbook.Name] == nil {
			order = append(order, run.Playbook)
		}
		groups[run.Playbook.Name] = append(groups[run.Playbook.Name], run)
	}
	var errs []error
	for _, p := range order {
		if err := r.publishFanout(ctx, t, p, groups[p.Name]); err != nil {
			errs = append(errs, fmt.Errorf("summary of %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// storeGroupPage stores the fan-out's page and returns its link. Its
// links to the hosts' pages are relative, so that they work wherever the
// store's objects are served from, except when the store hands out
// presigned https links (S3): a relative link would lose the signature,
// so the page carries the hosts' presigned links.
func (r *Runner) storeGroupPage(ctx context.Context, rep evidence.Report) (string, error) {
	page, err := evidence.FanoutPage(rep, func(run evidence.FanoutRun) string {
		if strings.HasPrefix(run.Link, "https://") || strings.HasPrefix(run.Link, "http://") {
			return run.Link
		}
		return evidence.HostPageLink(run.Bundle.Manifest)
	})
	if err != nil {
		return "", err
	}
	key := evidence.GroupPrefix(rep.Bundle.Manifest) + evidence.PageFile
	if err := r.store.Put(ctx, key, page); err != nil && !errors.Is(err, evidence.ErrExists) {
		return "", fmt.Errorf("store %s: %w", key, err)
	}
	link, err := r.store.Link(ctx, key)
	if err != nil {
		return "", fmt.Errorf("link %s: %w", key, err)
	}
	return link, nil
}

func (r *Runner) publishFanout(ctx context.Context, t hooks.Trigger, p *playbooks.Playbook, runs []Run) error {
	f := &evidence.Fanout{Target: groupName(p)}
	var bundles []*evidence.Bundle
	for _, run := range runs {
		rs, _, err := r.readRun(ctx, queue.Key("run", t.Source, runScope(t), run.Target, p.Name))
		if err != nil {
			return err
		}
		if rs.Status != "done" {
			return nil // another job is still running this host
		}
		b, err := evidence.Read(ctx, r.store, rs.Bundle)
		if err != nil {
			return fmt.Errorf("read bundle %s: %w", rs.Bundle, err)
		}
		link, err := r.store.Link(ctx, rs.Bundle+evidence.PageFile)
		if err != nil {
			return fmt.Errorf("link %s: %w", rs.Bundle, err)
		}
		f.Runs = append(f.Runs, evidence.FanoutRun{Bundle: b, Link: link})
		bundles = append(bundles, b)
	}
	f.Differences = evidence.Compare(bundles)
	key := queue.Key("fanout", t.Source, runScope(t), p.Name)
	rep := evidence.Report{
		Bundle: &evidence.Bundle{Manifest: evidence.FanoutManifest(f)},
		Fanout: f,
		Marker: key,
	}
	link, err := r.storeGroupPage(ctx, rep)
	if err != nil {
		return err
	}
	rep.Link = link
	rec, _ := json.Marshal(runState{Status: "done", Job: t.JobID(), Since: r.now().UTC()})
	if _, err := r.state.Create(ctx, key, rec); err != nil && !errors.Is(err, queue.ErrExists) {
		return fmt.Errorf("record summary %s: %w", key, err)
	}
	st := incidentState{state: r.state, source: t.Source, incident: t.Incident.ID}
	var errs []error
	for _, pub := range r.publishers {
		if err := r.publishTo(ctx, pub, key, t.JobID(), rep, st); errors.Is(err, errKilled) {
			return err
		} else if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", pub.Sink(), err))
		}
	}
	return errors.Join(errs...)
}
