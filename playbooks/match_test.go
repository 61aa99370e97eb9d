package playbooks_test

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
)

func TestMatch(t *testing.T) {
	pb := func(name, match string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("name: " + name + "\n" + match + "steps: [{name: a, run: uptime}]\n")}
	}
	fsys := fstest.MapFS{
		"any.yaml":      pb("any", ""),
		"empty.yaml":    pb("empty-match", "match: {}\n"),
		"resolved.yaml": pb("resolved", "match: {events: [incident.resolved, incident.triggered]}\n"),
		"svc.yaml":      pb("svc-name", "match: {services: [\"Web (prod)\"]}\n"),
		"svcid.yaml":    pb("svc-id", "match: {services: [PWEB123]}\n"),
		"high.yaml":     pb("urgency", "match: {urgency: [high]}\n"),
		"p1.yaml":       pb("priority", "match: {priority: [p1, p2]}\n"),
		"title.yaml":    pb("title", "match: {title: '(?i)\\bdisk\\b'}\n"),
		"labels.yaml":   pb("labels", "match: {labels: {env: prod, team: sre}}\n"),
		"all.yaml":      pb("all", "match:\n  services: [PWEB123]\n  urgency: [HIGH]\n  priority: [P1]\n  title: full\n  labels: {env: prod}\n"),
	}
	set, err := playbooks.LoadFS(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	base := hooks.Trigger{Event: "incident.triggered", Incident: hooks.Incident{Title: "CPU high"}}
	with := func(f func(*hooks.Trigger)) hooks.Trigger {
		tr := base
		tr.Labels = map[string]string{}
		f(&tr)
		return tr
	}
	tests := []struct {
		name string
		t    hooks.Trigger
		want []string
	}{
		{"defaults match incident.triggered", base, []string{"any", "empty-match", "resolved"}},
		{"other events match only what asks for them", with(func(t *hooks.Trigger) { t.Event = "incident.resolved" }), []string{"resolved"}},
		{"unknown event", with(func(t *hooks.Trigger) { t.Event = "incident.acknowledged" }), nil},
		{"service by name", with(func(t *hooks.Trigger) { t.Incident.Service = hooks.Service{ID: "PX", Name: "Web (prod)"} }),
			[]string{"any", "empty-match", "resolved", "svc-name"}},
		{"service by id", with(func(t *hooks.Trigger) { t.Incident.Service = hooks.Service{ID: "PWEB123", Name: "Web"} }),
			[]string{"any", "empty-match", "resolved", "svc-id"}},
		{"service names are exact", with(func(t *hooks.Trigger) { t.Incident.Service = hooks.Service{Name: "web (prod)"} }),
			[]string{"any", "empty-match", "resolved"}},
		{"urgency ignores case", with(func(t *hooks.Trigger) { t.Incident.Urgency = "High" }),
			[]string{"any", "empty-match", "resolved", "urgency"}},
		{"priority", with(func(t *hooks.Trigger) { t.Incident.Priority = "P2" }),
			[]string{"any", "empty-match", "priority", "resolved"}},
		{"title regexp", with(func(t *hooks.Trigger) { t.Incident.Title = "Disk full on /var" }),
			[]string{"any", "empty-match", "resolved", "title"}},
		{"title regexp does not match", with(func(t *hooks.Trigger) { t.Incident.Title = "diskette" }),
			[]string{"any", "empty-match", "resolved"}},
		{"labels all present", with(func(t *hooks.Trigger) { t.Labels = map[string]string{"env": "prod", "team": "sre", "x": "y"} }),
			[]string{"any", "empty-match", "labels", "resolved"}},
		{"labels partly present", with(func(t *hooks.Trigger) { t.Labels = map[string]string{"env": "prod"} }),
			[]string{"any", "empty-match", "resolved"}},
		{"label value differs", with(func(t *hooks.Trigger) { t.Labels = map[string]string{"env": "Prod", "team": "sre"} }),
			[]string{"any", "empty-match", "resolved"}},
		{"every condition", with(func(t *hooks.Trigger) {
			t.Incident = hooks.Incident{Title: "disk full", Service: hooks.Service{ID: "PWEB123"}, Urgency: "high", Priority: "P1"}
			t.Labels = map[string]string{"env": "prod"}
		}), []string{"all", "any", "empty-match", "priority", "resolved", "svc-id", "title", "urgency"}},
		{"one condition missing", with(func(t *hooks.Trigger) {
			t.Incident = hooks.Incident{Title: "disk full", Service: hooks.Service{ID: "PWEB123"}, Urgency: "high", Priority: "P3"}
			t.Labels = map[string]string{"env": "prod"}
		}), []string{"any", "empty-match", "resolved", "svc-id", "title", "urgency"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, p := range set.Match(tc.t) {
				got = append(got, p.Name)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a, err := playbooks.Load("testdata/valid")
	if err != nil {
		t.Fatal(err)
	}
	names := func(s *playbooks.Set) (out []string) {
		for _, p := range s.All() {
			out = append(out, p.Name)
		}
		return out
	}
	m, err := playbooks.Merge(a, nil)
	if err != nil || strings.Join(names(m), ",") != strings.Join(names(a), ",") {
		t.Fatalf("merge with nil: got %v, %v", names(m), err)
	}
	if _, err := playbooks.Merge(a, a); err == nil || !strings.Contains(err.Error(), "is already defined in") {
		t.Fatalf("merging a set with itself: got %v, want a duplicate-name error", err)
	}
}
