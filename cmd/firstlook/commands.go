package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/playbooks/library"
	"github.com/firstlook/firstlook/playbooks/yamlfile"
	"github.com/firstlook/firstlook/runner"
)

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	path := fs.String("config", "firstlook.yaml", "configuration `file`")
	hostName := fs.String("host", "", "inventory `host` to run on")
	pbName := fs.String("playbook", "", "`playbook` to run")
	summary := fs.Bool("summary", false, "print the summary only, not every step's full output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *hostName == "" || *pbName == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "firstlook run: -host and -playbook are required")
		fs.Usage()
		return errUsage
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	cfg.logWarnings(newLogger(cfg, stderr))
	p, err := cfg.runParts(ctx, false, nil, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer p.close()
	host, err := p.inventory.Resolve(ctx, *hostName)
	if err != nil {
		return err
	}
	pb, ok := p.playbooks.Get(*pbName)
	if !ok && slices.Contains(library.Names(), *pbName) {
		// Every library playbook runs by name, configured or not.
		lib, err := library.Load(*pbName)
		if err != nil {
			return err
		}
		pb, ok = lib.Get(*pbName)
	}
	if !ok {
		var names []string
		for _, x := range p.playbooks.All() {
			names = append(names, x.Name)
		}
		return fmt.Errorf("no playbook %q; configured: %s; library: %s", *pbName, strings.Join(names, ", "), strings.Join(library.Names(), ", "))
	}
	r, err := runner.New(cfg.runnerOptions(p, newLogger(cfg, stderr)))
	if err != nil {
		return err
	}
	t := manualTrigger(pb.Name, host.Name)
	b := r.Execute(ctx, t, runner.Run{Playbook: pb, Host: host, Target: host.Name})
	prefix, err := evidence.Write(ctx, p.store, b)
	if err != nil {
		return err
	}
	link, _ := p.store.Link(ctx, prefix+evidence.PageFile)
	fmt.Fprint(stdout, evidence.Markdown(evidence.Report{Bundle: b, Link: link}))
	if !*summary {
		printOutputs(stdout, b)
	}
	if b.Manifest.Status != evidence.StatusOK {
		return exitError(1)
	}
	return nil
}

// manualTrigger stands for a person at a terminal.
func manualTrigger(playbook, host string) hooks.Trigger {
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	user := os.Getenv("USER")
	if user == "" {
		user = "someone"
	}
	now := time.Now().UTC()
	return hooks.Trigger{
		Source:     "cli",
		DeliveryID: hex.EncodeToString(id),
		Event:      "manual",
		Incident: hooks.Incident{
			ID:        "manual-" + now.Format("20060102") + "-" + hex.EncodeToString(id[:3]),
			Title:     fmt.Sprintf("%s on %s, run by %s", playbook, host, user),
			CreatedAt: now,
		},
		ReceivedAt: now,
	}
}

func printOutputs(w io.Writer, b *evidence.Bundle) {
	for _, st := range b.Manifest.Steps {
		if st.Skipped {
			continue
		}
		fmt.Fprintf(w, "\n── %s ── $ %s\n", st.Name, st.Command)
		if out := b.Files[st.Stdout.File]; len(out) > 0 {
			w.Write(out)
			if out[len(out)-1] != '\n' {
				fmt.Fprintln(w)
			}
		}
		if out := b.Files[st.Stderr.File]; len(out) > 0 {
			fmt.Fprintln(w, "── stderr ──")
			w.Write(out)
			if out[len(out)-1] != '\n' {
				fmt.Fprintln(w)
			}
		}
		if st.Stdout.Truncated || st.Stderr.Truncated {
			fmt.Fprintf(w, "── output truncated: %d of %d stdout bytes, %d of %d stderr bytes kept ──\n",
				st.Stdout.Kept, st.Stdout.Bytes, st.Stderr.Kept, st.Stderr.Bytes)
		}
	}
}

func validateCmd(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	path := fs.String("config", "", "configuration `file` (its playbooks, inventory and the files it names are checked too)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	paths := fs.Args()
	if *path == "" && len(paths) == 0 {
		fmt.Fprintln(stderr, "firstlook validate: give -config, playbook paths, or both")
		fs.Usage()
		return errUsage
	}
	var problems yamlfile.List
	add := func(err error) {
		var list yamlfile.List
		var one *yamlfile.Error
		switch {
		case errors.As(err, &list):
			problems = append(problems, list...)
		case errors.As(err, &one):
			problems = append(problems, one)
		default:
			problems = append(problems, &yamlfile.Error{Msg: err.Error()})
		}
	}
	var libNames []string
	if *path != "" {
		cfg, errs := loadConfig(*path)
		problems = append(problems, errs...)
		paths = append(slices.Clone(cfg.Playbooks.Paths), paths...)
		libNames = cfg.Playbooks.Library
		problems = append(problems, cfg.checkFiles()...)
	}
	var set *playbooks.Set
	var sets []*playbooks.Set
	if len(paths) > 0 {
		s, err := playbooks.Load(paths...)
		if err != nil {
			add(err)
		}
		sets = append(sets, s)
	}
	if len(libNames) > 0 {
		if s, err := library.Load(libNames...); err == nil {
			sets = append(sets, s)
		}
	}
	if problems.Errors() == nil && len(sets) > 0 {
		var err error
		if set, err = playbooks.Merge(sets...); err != nil {
			add(err)
		}
	}
	problems.Sort()
	printProblems(stdout, problems)
	if problems.Errors() != nil {
		return exitError(1)
	}
	if set != nil {
		fmt.Fprintf(stdout, "ok: %d playbooks\n", len(set.All()))
	} else {
		fmt.Fprintln(stdout, "ok")
	}
	return nil
}

// printProblems prints each problem, then the line it points at with a
// caret under the column, then a count.
func printProblems(w io.Writer, problems yamlfile.List) {
	if len(problems) == 0 {
		return
	}
	sources := map[string][]byte{}
	nerr, nwarn := 0, 0
	for _, p := range problems {
		fmt.Fprintln(w, p.Error())
		if p.File != "" && p.Line > 0 {
			src, ok := sources[p.File]
			if !ok {
				src, _ = os.ReadFile(p.File)
				sources[p.File] = src
			}
			fmt.Fprint(w, p.Excerpt(src))
		}
		if p.Warning {
			nwarn++
		} else {
			nerr++
		}
	}
	fmt.Fprintf(w, "%d %s, %d %s\n", nerr, plural(nerr, "error"), nwarn, plural(nwarn, "warning"))
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func replayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("replay", stderr)
	path := fs.String("config", "firstlook.yaml", "configuration `file`")
	source := fs.String("source", "", "alert `source` the payload came from (pagerduty, alertmanager, mackerel, sns…); default: recognised from the payload")
	ff := addFindingsFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if ff.wanted() {
		return replayFindings(ctx, fs, ff, *path, stdout)
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "firstlook replay: give one saved webhook body (JSON), or -bundle DIR, or -step NAME -output FILE")
		fs.Usage()
		return errUsage
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	srcs, err := cfg.sources(sourceOptions{replay: true, log: newLogger(cfg, stderr)})
	if err != nil {
		return err
	}
	src, ts, err := parseAny(srcs, *source, body)
	var answer *hooks.Answer
	switch {
	case errors.As(err, &answer):
		fmt.Fprintf(stdout, "%s: answered %d %s, nothing runs\n", src.Name(), cmp.Or(answer.Code, 200), answer.Reply.Status)
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(stdout, "source:   %s (%d trigger(s))\n", src.Name(), len(ts))
	var run []hooks.Trigger
	for _, t := range ts {
		switch src.Action(t.Event) {
		case hooks.Ignore:
			fmt.Fprintf(stdout, "ignored:  event type %s is not configured to trigger; answered 202, nothing runs\n", t.Event)
		case hooks.Resolve:
			fmt.Fprintf(stdout, "resolves: %s: its runs that have not started would not start\n", cmp.Or(t.Alert, t.Incident.ID))
		case hooks.Run:
			run = append(run, t)
		}
	}
	if len(run) == 0 {
		return nil
	}
	p, err := cfg.planParts(ctx)
	if err != nil {
		return err
	}
	r, err := runner.New(cfg.runnerOptions(p, newLogger(cfg, stderr)))
	if err != nil {
		return err
	}
	for _, t := range run {
		replayPlan(ctx, stdout, r, t)
	}
	fmt.Fprintln(stdout, "\nnothing was run")
	return nil
}

// parseAny parses body with the named source, or with the one source
// whose parser takes it.
func parseAny(srcs []hooks.Source, name string, body []byte) (hooks.Source, []hooks.Trigger, error) {
	req := func(src hooks.Source) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/hooks/"+src.Name(), bytes.NewReader(body))
		return r
	}
	var names []string
	for _, src := range srcs {
		names = append(names, src.Name())
		if name == src.Name() {
			ts, err := src.Parse(req(src), body)
			return src, ts, err
		}
	}
	if name != "" {
		return nil, nil, fmt.Errorf("no source %q; firstlook has %s", name, strings.Join(names, ", "))
	}
	var found []hooks.Source
	var tss [][]hooks.Trigger
	var errs []string
	for _, src := range srcs {
		ts, err := src.Parse(req(src), body)
		if _, ok := errors.AsType[*hooks.Answer](err); ok || err == nil {
			found, tss = append(found, src), append(tss, ts)
			if err != nil {
				return src, nil, err
			}
			continue
		}
		errs = append(errs, fmt.Sprintf("  %s: %v", src.Name(), err))
	}
	switch len(found) {
	case 0:
		return nil, nil, fmt.Errorf("no source recognises the payload:\n%s", strings.Join(errs, "\n"))
	case 1:
		return found[0], tss[0], nil
	}
	var fn []string
	for _, s := range found {
		fn = append(fn, s.Name())
	}
	return nil, nil, fmt.Errorf("the payload parses as %s: say which with -source", strings.Join(fn, " and "))
}

func replayPlan(ctx context.Context, stdout io.Writer, r *runner.Runner, t hooks.Trigger) {
	fmt.Fprintf(stdout, "\nevent:    %s\nincident: %s #%d %q\nservice:  %s (%s)\n", t.Event, t.Incident.ID, t.Incident.Number, t.Incident.Title, t.Incident.Service.Name, t.Incident.Service.ID)
	plan := r.Plan(ctx, t)
	fmt.Fprintf(stdout, "hints:    %s\n", strings.Join(plan.Hints, ", "))
	if plan.HintErr != nil {
		fmt.Fprintf(stdout, "          (alert lookup failed: %v)\n", plan.HintErr)
	}
	if len(plan.Runs) == 0 {
		fmt.Fprintln(stdout, "no playbook matches: nothing would run")
		return
	}
	for _, run := range plan.Runs {
		if run.Err != nil {
			fmt.Fprintf(stdout, "\n%s on %s: would not start: %v\n", run.Playbook.Name, run.Target, run.Err)
			continue
		}
		via := "directly"
		if run.Host.Bastion != nil {
			via = "via " + run.Host.Bastion.Name
		}
		fmt.Fprintf(stdout, "\n%s on %s (%s@%s %s):\n", run.Playbook.Name, run.Host.Name, run.Host.User, run.Host.Addr(), via)
		for i, c := range r.Commands(t, run) {
			if c.Err != nil {
				fmt.Fprintf(stdout, "  %d. %s: would fail: %v\n", i+1, c.Step, c.Err)
				continue
			}
			fmt.Fprintf(stdout, "  %d. %s: %s\n", i+1, c.Step, c.Line)
			if c.Stdin != nil {
				fmt.Fprintf(stdout, "     (script of %d bytes on stdin)\n", len(c.Stdin))
			}
		}
	}
}
