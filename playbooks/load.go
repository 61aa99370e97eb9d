package playbooks

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/playbooks/yamlfile"
)

// maxFileSize bounds a playbook file; anything bigger is not a playbook.
const maxFileSize = 1 << 20

// Load reads playbooks from files and directories. A directory is searched
// recursively for *.yaml and *.yml files, skipping hidden files and
// directories; a file named explicitly is read whatever its name. Every
// problem in every file is reported: the error is an ErrorList.
func Load(paths ...string) (*Set, error) {
	if len(paths) == 0 {
		return nil, ErrorList{{Msg: "no playbook files or directories given"}}
	}
	var (
		files []file
		errs  ErrorList
	)
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: fmt.Sprintf("read playbooks: %v", unwrapPath(err))})
			continue
		}
		if !info.IsDir() {
			files = append(files, file{name: filepath.Clean(p)})
			continue
		}
		found := 0
		err = filepath.WalkDir(p, func(name string, e fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, &Error{File: name, Msg: fmt.Sprintf("read playbooks: %v", unwrapPath(err))})
				return nil
			}
			if name != p && strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !e.IsDir() && isPlaybookFile(name) {
				files = append(files, file{name: filepath.Clean(name)})
				found++
			}
			return nil
		})
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: fmt.Sprintf("read playbooks: %v", err)})
		}
		if found == 0 {
			errs = append(errs, &Error{File: p, Msg: "no playbooks here: looked for *.yaml and *.yml files"})
		}
	}
	for i := range files {
		files[i].data, files[i].err = readLimited(func() (io.ReadCloser, error) { return os.Open(files[i].name) })
	}
	return build(files, errs)
}

// LoadFS is Load for a file system, so that a library of playbooks can be
// embedded in the binary (embed.FS). root is a directory, searched like
// Load searches one, or a file; use "." for the whole fsys.
func LoadFS(fsys fs.FS, root string) (*Set, error) {
	var (
		files []file
		errs  ErrorList
	)
	info, err := fs.Stat(fsys, root)
	if err != nil {
		return nil, ErrorList{{File: root, Msg: fmt.Sprintf("read playbooks: %v", unwrapPath(err))}}
	}
	if info.IsDir() {
		err = fs.WalkDir(fsys, root, func(name string, e fs.DirEntry, err error) error {
			if err != nil {
				errs = append(errs, &Error{File: name, Msg: fmt.Sprintf("read playbooks: %v", unwrapPath(err))})
				return nil
			}
			if name != root && strings.HasPrefix(e.Name(), ".") {
				if e.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !e.IsDir() && isPlaybookFile(name) {
				files = append(files, file{name: name})
			}
			return nil
		})
		if err != nil {
			errs = append(errs, &Error{File: root, Msg: fmt.Sprintf("read playbooks: %v", err)})
		}
		if len(files) == 0 {
			errs = append(errs, &Error{File: root, Msg: "no playbooks here: looked for *.yaml and *.yml files"})
		}
	} else {
		files = append(files, file{name: root})
	}
	for i := range files {
		files[i].data, files[i].err = readLimited(func() (io.ReadCloser, error) { return fsys.Open(files[i].name) })
	}
	return build(files, errs)
}

type file struct {
	name string
	data []byte
	err  error
}

func isPlaybookFile(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

func readLimited(open func() (io.ReadCloser, error)) ([]byte, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d KiB; a playbook file is much smaller", maxFileSize>>10)
	}
	return data, nil
}

// unwrapPath drops the *fs.PathError wrapping, whose path the Error
// already shows.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// build parses every file and assembles the set.
func build(files []file, errs ErrorList) (*Set, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	set := &Set{byName: map[string]*Playbook{}}
	seen := map[string]bool{}
	namePos := map[string]Pos{}
	for _, f := range files {
		if seen[f.name] {
			continue
		}
		seen[f.name] = true
		if f.err != nil {
			errs = append(errs, &Error{File: f.name, Msg: fmt.Sprintf("read playbook: %v", unwrapPath(f.err))})
			continue
		}
		pb, ferrs, nameNode := parseFile(f.name, f.data)
		errs = append(errs, ferrs...)
		if pb == nil {
			continue
		}
		if prev, dup := set.byName[pb.Name]; dup {
			errs = append(errs, &Error{File: f.name, Line: nameNode.Line, Column: nameNode.Column,
				Msg: fmt.Sprintf("name: playbook %q is already defined in %s:%d:%d; names must be unique", pb.Name, prev.File, namePos[pb.Name].Line, namePos[pb.Name].Column)})
			continue
		}
		namePos[pb.Name] = Pos{nameNode.Line, nameNode.Column}
		set.byName[pb.Name] = pb
		set.list = append(set.list, pb)
	}
	if len(errs) > 0 {
		errs.Sort()
		return nil, errs
	}
	sort.Slice(set.list, func(i, j int) bool { return set.list[i].Name < set.list[j].Name })
	return set, nil
}

// parseFile decodes and checks one playbook file. It returns the playbook
// only if the file has no error, and the node of its name for reporting
// duplicates.
func parseFile(name string, data []byte) (*Playbook, ErrorList, *yaml.Node) {
	d := &decoder{file: name, lines: strings.Split(string(data), "\n")}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(nil, "", "empty file: a playbook needs at least name and steps")
		} else {
			d.yamlError(err, data)
		}
		return nil, d.errs, nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		d.fail(at, "", "a second YAML document: put one playbook per file")
	case !errors.Is(err, io.EOF):
		d.yamlError(err, data)
	}
	if len(doc.Content) == 0 {
		d.fail(&doc, "", "empty document: a playbook needs at least name and steps")
		return nil, d.errs, nil
	}
	draft := &playbookDraft{node: resolve(doc.Content[0])}
	draft.entries = decodeMapping(d, "", draft.node, playbookKeys, draft)
	if draft.entries != nil {
		d.finish(draft, data)
	}
	if len(d.errs) > 0 {
		return nil, d.errs, nil
	}
	return &draft.pb, nil, draft.entries["name"].val
}

func (d *decoder) yamlError(err error, data []byte) {
	d.errs = append(d.errs, yamlfile.SyntaxError(d.file, data, err))
}

// finish applies defaults and checks what spans several keys, then
// compiles every step's template.
func (d *decoder) finish(t *playbookDraft, data []byte) {
	pb := &t.pb
	pb.File = d.file
	sum := sha256.Sum256(data)
	pb.SHA256 = hex.EncodeToString(sum[:])
	pb.Pos = Pos{t.node.Line, t.node.Column}
	if _, ok := t.entries["name"]; !ok {
		base := strings.TrimSuffix(path.Base(filepath.ToSlash(d.file)), path.Ext(d.file))
		d.fail(t.node, "", "missing name: give the playbook a unique name, e.g. name: %s", slug(base))
	}
	if _, ok := t.entries["steps"]; !ok {
		d.fail(t.node, "", "missing steps: a playbook needs at least one step, e.g. steps: [{name: load, run: uptime}]")
	}
	if pb.Timeout == 0 {
		pb.Timeout = DefaultTimeout
	}
	if pb.Targets.Kind == 0 {
		pb.Targets.Kind = TargetIncident
	}
	if pb.Targets.MaxHosts == 0 {
		pb.Targets.MaxHosts = DefaultMaxHosts
	}
	if pb.Targets.Concurrency == 0 {
		pb.Targets.Concurrency = DefaultConcurrency
	}
	if len(pb.Match.Events) == 0 {
		pb.Match.Events = []string{DefaultEvent}
	}

	index := map[string]int{}
	for i, sd := range t.steps {
		s := &sd.step
		if _, ok := sd.entries["name"]; !ok {
			d.fail(sd.node, sd.where, "missing name: every step needs a name, unique in the playbook")
		} else if first, dup := index[s.Name]; dup {
			d.fail(sd.entries["name"].val, sd.where+".name", "duplicate step name %q (first at line %d); step names must be unique in a playbook", s.Name, t.steps[first].node.Line)
		} else if s.Name != "" {
			index[s.Name] = i
		}
		switch len(sd.kinds) {
		case 0:
			if !sd.unknownKeys { // the unknown key's error says what was meant
				d.fail(sd.node, sd.where, "a step needs one of run (a command), script (a sh script) or fetch (a file's tail)")
			}
		case 1:
		default:
			d.fail(sd.entries[sd.kinds[1]].key, sd.where, "give exactly one of run, script or fetch, not %s", strings.Join(sd.kinds, " and "))
		}
		if e, ok := sd.entries["max_bytes"]; ok && s.Kind != Fetch && len(sd.kinds) == 1 {
			d.fail(e.key, sd.where, "max_bytes is for fetch steps; use max_output to cap a command's output")
		}
		if e, ok := sd.entries["max_output"]; ok && s.Kind == Fetch {
			d.fail(e.key, sd.where, "a fetch step keeps max_bytes of the file; use max_bytes instead of max_output")
		}
		if s.Timeout == 0 {
			s.Timeout = min(DefaultStepTimeout, pb.Timeout)
		} else if s.Timeout > pb.Timeout {
			d.fail(sd.entries["timeout"].val, sd.where+".timeout", "%s is longer than the playbook's timeout (%s), which would cut the step short; shorten it or raise the playbook's timeout", fmtDuration(s.Timeout), fmtDuration(pb.Timeout))
		}
		if s.Kind == Fetch {
			if s.MaxBytes == 0 {
				s.MaxBytes = DefaultMaxBytes
			}
			s.MaxOutput = s.MaxBytes
		}
		if pb.Parallel {
			for _, k := range []string{"when", "continue_on_error"} {
				if e, ok := sd.entries[k]; ok {
					d.fail(e.key, sd.where, "%s has no meaning in a parallel playbook, whose steps all run at once; remove it or remove parallel: true", k)
				}
			}
		}
		if s.When != nil {
			for k, c := range s.When.Conditions {
				j, ok := index[c.Step]
				switch {
				case c.Step == s.Name:
					d.fail(sd.conds[k], sd.where+".when", "step %q refers to itself; when looks at earlier steps", c.Step)
				case !ok && stepIndex(t.steps, c.Step) > i:
					d.fail(sd.conds[k], sd.where+".when", "step %q comes later; steps run in order, so when can only look at earlier steps", c.Step)
				case !ok:
					d.fail(sd.conds[k], sd.where+".when", "unknown step %q%s; earlier steps are: %s", c.Step, didYouMean(c.Step, earlierNames(t.steps[:i])), strings.Join(earlierNames(t.steps[:i]), ", "))
				case j >= i:
					d.fail(sd.conds[k], sd.where+".when", "step %q comes later; when can only look at earlier steps", c.Step)
				case c.Finding != "":
					var names []string
					for _, fd := range t.steps[j].findings {
						names = append(names, fd.rule.Name)
					}
					if !slices.Contains(names, c.Finding) {
						d.fail(sd.conds[k], sd.where+".when", "step %q declares no finding %q%s its findings: %s", c.Step, c.Finding, orSemicolon(didYouMean(c.Finding, names)), listOrNone(names))
					}
				}
			}
		}
		if len(sd.kinds) == 1 && sd.text != nil {
			d.compile(pb, sd)
		}
		d.finishFindings(pb, sd)
		pb.Steps = append(pb.Steps, *s)
	}
}

// finishFindings checks the step's finding rules and keeps them.
func (d *decoder) finishFindings(pb *Playbook, sd *stepDraft) {
	declared := func(name string) (string, bool) {
		if v, ok := sd.step.Params[name]; ok {
			return v, true
		}
		v, ok := pb.Params[name]
		return v, ok
	}
	var params []string
	for k := range pb.Params {
		params = append(params, k)
	}
	for k := range sd.step.Params {
		params = append(params, k)
	}
	sort.Strings(params)
	seen := map[string]int{}
	for _, fd := range sd.findings {
		if first, dup := seen[fd.rule.Name]; dup && fd.rule.Name != "" {
			d.fail(fd.entries["name"].val, fd.where+".name", "duplicate finding name %q (first at line %d); finding names must be unique in a step", fd.rule.Name, first)
		}
		seen[fd.rule.Name] = fd.node.Line
		d.compileFinding(fd.where, fd, declared, params)
		sd.step.Findings = append(sd.step.Findings, fd.rule)
	}
}

func stepIndex(steps []*stepDraft, name string) int {
	for i, sd := range steps {
		if sd.step.Name == name {
			return i
		}
	}
	return -1
}

func earlierNames(steps []*stepDraft) []string {
	names := make([]string, 0, len(steps))
	for _, sd := range steps {
		names = append(names, sd.step.Name)
	}
	if len(names) == 0 {
		return []string{"(none)"}
	}
	return names
}

// compile parses the step's template and checks where each action sits.
func (d *decoder) compile(pb *Playbook, sd *stepDraft) {
	s := &sd.step
	where := sd.where + "." + s.Kind.String()
	declared := func(name string) bool {
		_, a := pb.Params[name]
		_, b := s.Params[name]
		return a || b
	}
	var params []string
	for k := range pb.Params {
		params = append(params, k)
	}
	for k := range s.Params {
		params = append(params, k)
	}
	sort.Strings(params)
	report := func(errs []templateError) {
		for _, e := range errs {
			d.failAt(d.offsetPos(sd.text, e.off), where, "%s", e.msg)
		}
	}
	t, segs, actions, errs := parseTemplate(s.Source, declared, params)
	if len(errs) > 0 {
		report(errs)
		return
	}
	st := &stepTemplate{t: t, actions: actions}
	switch s.Kind {
	case Run, Script:
		words, errs := checkShell(segs, st.actions, s.Kind == Script || s.Sudo)
		if len(errs) > 0 {
			report(errs)
			return
		}
		st.optionWords = words
	case Fetch:
		if errs := checkFetch(segs); len(errs) > 0 {
			report(errs)
			return
		}
		for i := range st.actions {
			st.actions[i].path = true
		}
	}
	s.tmpl = st
}

// checkFetch checks the literal parts of a fetch path, which is quoted as
// a whole: nothing in it expands on the host.
func checkFetch(segs []segment) []templateError {
	var errs []templateError
	if segs[0].action < 0 && !strings.HasPrefix(segs[0].text, "/") {
		errs = append(errs, templateError{segs[0].srcOff, "fetch needs an absolute path, starting with /: the login directory differs from host to host, and ~ is not expanded"})
	}
	for _, s := range segs {
		if s.action >= 0 {
			continue
		}
		if i := strings.IndexAny(s.text, "*?$\n"); i >= 0 {
			what := map[byte]string{'*': "globs", '?': "globs", '$': "variables", '\n': "newlines"}[s.text[i]]
			errs = append(errs, templateError{s.srcOff + i, fmt.Sprintf("a fetch path is taken literally, so %s do not work; name one file, or use a run step such as `tail -n 200 /var/log/app/*.log`", what)})
			break
		}
	}
	return errs
}

// fmtDuration writes d as a playbook would: 2m rather than 2m0s.
func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
