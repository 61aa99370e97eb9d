package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/playbooks/library"
	"github.com/firstlook/firstlook/runner"
)

// findingsFlags are replay's flags for re-evaluating a playbook's
// findings over saved output, on no host: a stored bundle (-bundle), or
// one step's saved stdout (-step and -output).
type findingsFlags struct {
	bundle, playbook, step, output, service *string
}

func addFindingsFlags(fs *flag.FlagSet) findingsFlags {
	return findingsFlags{
		bundle:   fs.String("bundle", "", "a stored run's `directory` (<source>/<incident>/<run-id>, holding manifest.json): show the findings the current playbook raises on its saved output"),
		playbook: fs.String("playbook", "", "the playbook `name` (from the config's playbooks or the library) or file to evaluate; default: the bundle's"),
		step:     fs.String("step", "", "with -output: the step `name` whose findings to evaluate"),
		output:   fs.String("output", "", "a saved stdout `file` of one step (give -step and -playbook)"),
		service:  fs.String("service", "", "the `service` whose params overrides apply; default: the bundle's incident service"),
	}
}

// wanted reports whether any of the flags was given: replay then
// evaluates findings instead of a webhook.
func (f findingsFlags) wanted() bool {
	return *f.bundle != "" || *f.output != "" || *f.step != "" || *f.playbook != "" || *f.service != ""
}

// replayFindings evaluates the findings of the current version of a
// playbook over saved output and prints the summary as the Markdown note
// has it. The config is read when given, or when the default file
// exists; without one the playbook's own params apply.
func replayFindings(ctx context.Context, fs *flag.FlagSet, f findingsFlags, configPath string, stdout io.Writer) error {
	switch {
	case fs.NArg() != 0:
		return errors.New("replay: -bundle, -output, -step, -playbook and -service evaluate findings on saved output and take no webhook file")
	case *f.bundle != "" && (*f.output != "" || *f.step != ""):
		return errors.New("replay: give -bundle DIR, or -step NAME -output FILE, not both")
	case *f.bundle == "" && (*f.output == "" || *f.step == "" || *f.playbook == ""):
		return errors.New("replay: a saved output needs -step NAME -output FILE -playbook NAME|FILE")
	}
	configGiven := false
	fs.Visit(func(fl *flag.Flag) { configGiven = configGiven || fl.Name == "config" })
	var cfg *Config
	if _, err := os.Stat(configPath); configGiven || err == nil {
		c, err := LoadConfig(configPath)
		if err != nil {
			return err
		}
		cfg = c
	}

	var b *evidence.Bundle
	if *f.bundle != "" {
		var err error
		if b, err = readBundleDir(ctx, *f.bundle); err != nil {
			return err
		}
	} else {
		out, err := os.ReadFile(*f.output)
		if err != nil {
			return fmt.Errorf("read output: %w", err)
		}
		b = &evidence.Bundle{Manifest: evidence.Manifest{
			Host:   evidence.Host{Name: filepath.Base(*f.output)},
			Status: evidence.StatusOK,
			Steps:  []evidence.Step{{Name: *f.step}},
		}}
		b.Manifest.Steps[0].Stdout = b.SetOutput(evidence.StepFile(0, *f.step, "stdout"), out, int64(len(out)))
	}
	m := &b.Manifest

	p, err := findPlaybook(cfg, cmp.Or(*f.playbook, m.Playbook.Name))
	if err != nil {
		return err
	}
	if *f.output != "" && !slices.ContainsFunc(p.Steps, func(s playbooks.Step) bool { return s.Name == *f.step }) {
		return fmt.Errorf("replay: playbook %s has no step %q; its steps are %s", p.Name, *f.step, strings.Join(stepNames(p), ", "))
	}
	if m.Playbook.Name != "" && m.Playbook.Name != p.Name {
		fmt.Fprintf(stdout, "note: the bundle ran playbook %s; evaluating %s\n", m.Playbook.Name, p.Name)
	}
	if m.Playbook.SHA256 != "" && p.SHA256 != "" && m.Playbook.SHA256 != p.SHA256 {
		fmt.Fprintf(stdout, "note: playbook %s changed since the run (sha256 %.12s then, %.12s now)\n", p.Name, m.Playbook.SHA256, p.SHA256)
	}
	m.Playbook = evidence.Playbook{Name: p.Name, File: p.File, SHA256: p.SHA256, FollowUps: p.FollowUps}

	// Params as the runner chooses them: the config's overrides for the
	// incident's service (by id, then by name). The manifest records the
	// service's name only.
	service := cmp.Or(*f.service, m.Incident.Service)
	var overrides map[string]string
	var redact evidence.RedactConfig
	switch {
	case cfg == nil:
		fmt.Fprintln(stdout, "params: the playbook's defaults (no config)")
	case service == "":
		fmt.Fprintln(stdout, "params: the playbook's defaults (the service is not known: give -service to apply its overrides)")
	case cfg.Params[service] == nil:
		fmt.Fprintf(stdout, "params: the playbook's defaults (the config has no params for service %q; overrides keyed by service id cannot be matched, the bundle records the name)\n", service)
	default:
		overrides = cfg.Params[service]
		fmt.Fprintf(stdout, "params: the playbook's defaults with the config's overrides for service %q\n", service)
	}
	if cfg != nil {
		redact = cfg.Evidence.Redact
	}
	// The runner evaluates the redacted output; a bundle's is already, a
	// saved file may not be, and the summary prints its first lines.
	red, err := evidence.NewRedactor(redact)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	red.RedactBundle(b)

	if before := evidence.Findings(*m); len(before) > 0 {
		fmt.Fprintln(stdout, "the run found:")
		for _, fd := range before {
			fmt.Fprintf(stdout, "- %s (%s)\n", fd, fd.Step)
		}
	}
	for k := range m.Steps {
		st := &m.Steps[k]
		st.Findings, st.Values = nil, nil
		i := slices.IndexFunc(p.Steps, func(s playbooks.Step) bool { return s.Name == st.Name })
		if i < 0 {
			fmt.Fprintf(stdout, "note: step %q of the bundle is not in playbook %s any more; it is shown without findings\n", st.Name, p.Name)
			continue
		}
		if st.Stdout.File == "" {
			continue
		}
		found, measures := p.Findings(i, b.Files[st.Stdout.File], overrides)
		runner.RecordFindings(st, found, measures)
	}
	if m.Status == evidence.StatusNotStarted {
		fmt.Fprintln(stdout, "note: the run did not start; there is no output to evaluate")
	}
	for _, s := range p.Steps {
		if m.Status == evidence.StatusNotStarted {
			break
		}
		if !slices.ContainsFunc(m.Steps, func(st evidence.Step) bool { return st.Name == s.Name }) && *f.output == "" {
			fmt.Fprintf(stdout, "note: step %q of playbook %s is not in the bundle (added since the run?)\n", s.Name, p.Name)
		}
	}
	fmt.Fprintf(stdout, "\n%s", evidence.Markdown(evidence.Report{Bundle: b, Link: *f.bundle}))
	fmt.Fprintln(stdout, "\nnothing was run: findings re-evaluated on saved output")
	return nil
}

// readBundleDir reads the bundle a directory store wrote in dir.
func readBundleDir(ctx context.Context, d string) (*evidence.Bundle, error) {
	abs, err := filepath.Abs(d)
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	if _, err := os.Stat(filepath.Join(abs, evidence.ManifestFile)); err != nil {
		return nil, fmt.Errorf("read bundle: %s has no %s; give a run's directory in the evidence store (<source>/<incident>/<run-id>)", d, evidence.ManifestFile)
	}
	s, err := dir.New(dir.Config{Path: filepath.Dir(abs)})
	if err != nil {
		return nil, fmt.Errorf("read bundle: %w", err)
	}
	b, err := evidence.Read(ctx, s, filepath.Base(abs))
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", d, err)
	}
	return b, nil
}

// findPlaybook is the playbook file name, or the playbook called name in
// the config's playbooks or, as firstlook run does, the library.
func findPlaybook(cfg *Config, name string) (*playbooks.Playbook, error) {
	if name == "" {
		return nil, errors.New("replay: the bundle names no playbook; give -playbook")
	}
	if st, err := os.Stat(name); err == nil && !st.IsDir() {
		set, err := playbooks.Load(name)
		if err != nil {
			return nil, fmt.Errorf("load playbook:\n%w", err)
		}
		all := set.All()
		if len(all) != 1 {
			return nil, fmt.Errorf("load playbook: %s holds %d playbooks; give one", name, len(all))
		}
		return all[0], nil
	}
	var have []string
	if cfg != nil {
		set, err := cfg.loadPlaybooks()
		if err != nil {
			return nil, fmt.Errorf("playbooks:\n%w", err)
		}
		if p, ok := set.Get(name); ok {
			return p, nil
		}
		for _, p := range set.All() {
			have = append(have, p.Name)
		}
	}
	if slices.Contains(library.Names(), name) {
		set, err := library.Load(name)
		if err != nil {
			return nil, err
		}
		p, _ := set.Get(name)
		return p, nil
	}
	msg := fmt.Sprintf("replay: no playbook %q", name)
	if cfg != nil {
		msg += fmt.Sprintf("; the config has %s", strings.Join(have, ", "))
	}
	return nil, fmt.Errorf("%s; the library has %s (or give -playbook FILE)", msg, strings.Join(library.Names(), ", "))
}

func stepNames(p *playbooks.Playbook) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.Name)
	}
	return out
}
