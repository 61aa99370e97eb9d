package runner

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"github.com/firstlook/firstlook/hooks"
)

// HintsConfig says where the runner looks for the host an incident is
// about, beyond what the payload itself names.
type HintsConfig struct {
	// Title lists patterns over the incident title, per service.
	Title []TitlePattern `yaml:"title"`
}

// TitlePattern finds host names in incident titles: every match of
// Pattern's (?P<host>…) group is a hint.
type TitlePattern struct {
	// Service is the service name or id the pattern applies to; empty
	// applies it to every service.
	Service string `yaml:"service"`
	Pattern string `yaml:"pattern"`

	re *regexp.Regexp
}

// Validate compiles the patterns.
func (c *HintsConfig) Validate() error {
	for i := range c.Title {
		p := &c.Title[i]
		re, err := regexp.Compile(p.Pattern)
		if err != nil {
			return fmt.Errorf("title[%d].pattern: %v", i, err)
		}
		if re.SubexpIndex("host") < 0 {
			return fmt.Errorf("title[%d].pattern %q: needs a (?P<host>…) group that captures the host name", i, p.Pattern)
		}
		p.re = re
	}
	return nil
}

// AlertHints looks up hints the payload does not carry, such as the
// PagerDuty incident's alerts.
type AlertHints interface {
	Hints(ctx context.Context, t hooks.Trigger) (hooks.Hints, error)
}

// hints gathers every host hint for t, in order of precedence and without
// repeats: what the payload names, the title patterns, then the alerts.
// A failed alert lookup is returned with whatever else was found.
func (r *Runner) hints(ctx context.Context, t hooks.Trigger) ([]string, error) {
	var out []string
	add := func(hs ...string) {
		for _, h := range hs {
			if h != "" && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	add(t.Hints.Names...)
	add(t.Hints.IPs...)
	add(t.Hints.InstanceIDs...)
	for _, p := range r.cfg.Hints.Title {
		if p.re == nil || (p.Service != "" && p.Service != t.Incident.Service.Name && p.Service != t.Incident.Service.ID) {
			continue
		}
		i := p.re.SubexpIndex("host")
		for _, m := range p.re.FindAllStringSubmatch(t.Incident.Title, -1) {
			add(m[i])
		}
	}
	if r.alerts == nil {
		return out, nil
	}
	h, err := r.alerts.Hints(ctx, t)
	add(h.Names...)
	add(h.IPs...)
	add(h.InstanceIDs...)
	if err != nil {
		return out, fmt.Errorf("look up alert hints: %w", err)
	}
	return out, nil
}
