package playbooks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/firstlook/firstlook/hooks"
)

// Set is a loaded set of playbooks with unique names. It is read-only and
// safe for concurrent use.
type Set struct {
	list   []*Playbook // by name
	byName map[string]*Playbook
}

// All returns the playbooks, ordered by name.
func (s *Set) All() []*Playbook { return slices.Clone(s.list) }

// Get returns the playbook called name.
func (s *Set) Get(name string) (*Playbook, bool) {
	p, ok := s.byName[name]
	return p, ok
}

// Match returns the playbooks whose match conditions t meets, ordered by
// name. Every matching playbook runs.
func (s *Set) Match(t hooks.Trigger) []*Playbook {
	var out []*Playbook
	for _, p := range s.list {
		if p.Match.Matches(t) {
			out = append(out, p)
		}
	}
	return out
}

// Matches reports whether t meets every condition of m.
func (m *Match) Matches(t hooks.Trigger) bool {
	events := m.Events
	if len(events) == 0 {
		events = []string{DefaultEvent}
	}
	if !slices.Contains(events, t.Event) {
		return false
	}
	if len(m.Services) > 0 && !slices.ContainsFunc(m.Services, func(s string) bool {
		return s == t.Incident.Service.Name || s == t.Incident.Service.ID
	}) {
		return false
	}
	if len(m.Urgency) > 0 && !containsFold(m.Urgency, t.Incident.Urgency) {
		return false
	}
	if len(m.Priority) > 0 && !containsFold(m.Priority, t.Incident.Priority) {
		return false
	}
	if m.Title != nil && !m.Title.MatchString(t.Incident.Title) {
		return false
	}
	for k, v := range m.Labels {
		if got, ok := t.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	return s != "" && slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

// Merge combines sets, such as a site's playbooks and those it takes from
// the library. A name defined twice is an error that points at both.
func Merge(sets ...*Set) (*Set, error) {
	out := &Set{byName: map[string]*Playbook{}}
	var errs ErrorList
	for _, s := range sets {
		if s == nil {
			continue
		}
		for _, p := range s.list {
			if prev, dup := out.byName[p.Name]; dup {
				errs = append(errs, &Error{File: p.File, Line: p.Pos.Line, Column: p.Pos.Column,
					Msg: fmt.Sprintf("name: playbook %q is already defined in %s; rename one of them, or leave it out of playbooks.library", p.Name, prev.File)})
				continue
			}
			out.byName[p.Name] = p
			out.list = append(out.list, p)
		}
	}
	// Follow-ups name playbooks of the whole set: a site's playbook may
	// offer a library one.
	for _, p := range out.list {
		for _, f := range p.FollowUps {
			if _, ok := out.byName[f]; !ok {
				errs = append(errs, &Error{File: p.File, Line: p.Pos.Line, Column: p.Pos.Column,
					Msg: fmt.Sprintf("follow_ups: no playbook %q is loaded; name one under playbooks.paths or playbooks.library", f)})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	slices.SortFunc(out.list, func(a, b *Playbook) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
