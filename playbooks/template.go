package playbooks

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
)

// stepTemplate is a step's template, parsed at load time, and what the
// load-time checks learned about each of its actions.
type stepTemplate struct {
	t       *template.Template
	actions []action
	// optionWords lists, for each command argument that begins with
	// templated values, the indexes of those leading actions: alert text
	// there must not begin with '-', or the program would take it for an
	// option (find's -delete, rsync's -e, bash printf's -v …).
	optionWords [][]int
}

// action is one {{ .Field }} in a step.
type action struct {
	field fieldRef
	off   int // offset of its "{{" in the step's source
	// path is set when the value is part of a file path (a fetch path, the
	// target of an input redirect): alert text there must not contain '/'
	// or be "." or "..", so it cannot walk to another file.
	path bool
}

// fieldRef is the field an action names, e.g. [Incident Title].
type fieldRef []string

func (f fieldRef) String() string { return "." + strings.Join(f, ".") }

// untrusted reports whether the field's value comes from the alert (or
// from cloud tags anyone with tagging rights can set) rather than from
// the people who configure firstlook. The structural checks apply to every
// field; some checks only matter for values an attacker can choose.
func (f fieldRef) untrusted() bool {
	switch f[0] {
	case "Params":
		return false
	case "Host":
		return f[1] == "Labels"
	}
	return true
}

// The fields templates may read; see Data.
var (
	topFields      = []string{"Source", "Event", "Incident", "Host", "Labels", "Params"}
	incidentFields = []string{"ID", "Number", "Title", "URL", "Service", "ServiceID", "Urgency", "Priority", "Status"}
	hostFields     = []string{"Name", "Address", "User", "Sudo", "Labels"}
)

const fieldList = ".Source, .Event, .Incident.{ID,Number,Title,URL,Service,ServiceID,Urgency,Priority,Status}, .Host.{Name,Address,User,Sudo}, .Host.Labels.<key>, .Labels.<key>, .Params.<name>"

// checkField reports what is wrong with a field reference, or "".
// declared says whether a parameter has a default for this step.
func checkField(f fieldRef, declared func(string) bool, params []string) string {
	unknown := func() string {
		s := fmt.Sprintf("unknown field %s;", f)
		if fixed := fixField(f); fixed != nil && checkField(fixed, declared, params) == "" {
			s = fmt.Sprintf("unknown field %s; did you mean %s?", f, fixed)
		}
		return s + " (fields: " + fieldList + ")"
	}
	noFields := func(n int) string {
		return fmt.Sprintf("%s has no field %q (fields: %s)", f[:n], f[n], fieldList)
	}
	switch f[0] {
	case "Source", "Event":
		if len(f) > 1 {
			return noFields(1)
		}
		return ""
	case "Incident":
		if len(f) == 1 {
			return ".Incident is a group of fields; name one, e.g. {{ .Incident.Title }}"
		}
		if !contains(incidentFields, f[1]) {
			return unknown()
		}
		if len(f) > 2 {
			return noFields(2)
		}
		return ""
	case "Host":
		if len(f) == 1 {
			return ".Host is a group of fields; name one, e.g. {{ .Host.Name }}"
		}
		if !contains(hostFields, f[1]) {
			return unknown()
		}
		if f[1] == "Labels" {
			if len(f) == 2 {
				return ".Host.Labels needs a key, e.g. {{ .Host.Labels.role }}"
			}
			if len(f) > 3 {
				return noFields(3)
			}
			return ""
		}
		if len(f) > 2 {
			return noFields(2)
		}
		return ""
	case "Labels":
		if len(f) == 1 {
			return ".Labels needs a key, e.g. {{ .Labels.env }}"
		}
		if len(f) > 2 {
			return noFields(2)
		}
		return ""
	case "Params":
		if len(f) == 1 {
			return ".Params needs a name, e.g. {{ .Params.unit }}"
		}
		if len(f) > 2 {
			return noFields(2)
		}
		if !declared(f[1]) {
			s := fmt.Sprintf("parameter %q has no default; declare it under params: (of the playbook or of this step), e.g. params: {%s: \"\"}", f[1], f[1])
			if c := suggest(f[1], params); c != "" {
				s = fmt.Sprintf("parameter %q has no default; did you mean .Params.%s? Or declare it under params: (of the playbook or of this step)", f[1], c)
			}
			return s
		}
		return ""
	}
	return unknown()
}

// fixField corrects the spelling of each part of f that has a fixed set
// of names, or returns nil.
func fixField(f fieldRef) fieldRef {
	fixed := fieldRef{suggest(f[0], topFields)}
	if fixed[0] == "" {
		return nil
	}
	for i := 1; i < len(f); i++ {
		var names []string
		switch {
		case i == 1 && fixed[0] == "Incident":
			names = incidentFields
		case i == 1 && fixed[0] == "Host":
			names = hostFields
		}
		part := f[i]
		if names != nil {
			if part = suggest(f[i], names); part == "" {
				return nil
			}
		}
		fixed = append(fixed, part)
	}
	return fixed
}

// segment is a piece of a step's source: literal text, or an action.
type segment struct {
	text   string
	action int // index into actions, or -1 for literal text
	srcOff int // offset in the source
}

// templateError is a problem at an offset in a step's source.
type templateError struct {
	off int
	msg string
}

var templateErrRE = regexp.MustCompile(`^template: step:(\d+): (.*)$`)

// parseTemplate parses src and checks that every action is a plain
// reference to a known field, or a string constant (so that `{{ "{{" }}`
// can write a literal "{{").
func parseTemplate(src string, declared func(string) bool, params []string) (*template.Template, []segment, []action, []templateError) {
	t, err := template.New("step").Option("missingkey=error").Parse(src)
	if err != nil {
		msg, off := err.Error(), 0
		if m := templateErrRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			off = lineOffset(src, line)
			msg = m[2]
		}
		return nil, nil, nil, []templateError{{off, "template: " + msg + "; templates are plain fields like {{ .Params.unit }} (write {{ \"{{\" }} for a literal {{)"}}
	}
	var errs []templateError
	if len(t.Templates()) > 1 {
		errs = append(errs, templateError{0, "{{ define }} and {{ block }} are not allowed: a step is one command with plain fields like {{ .Params.unit }}"})
	}
	var (
		segs    []segment
		actions []action
		nodes   []parse.Node
	)
	if t.Tree != nil && t.Tree.Root != nil {
		nodes = t.Tree.Root.Nodes
	}
	for _, n := range nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			segs = append(segs, segment{text: string(n.Text), action: -1, srcOff: int(n.Pos)})
		case *parse.ActionNode:
			off := actionStart(src, int(n.Pos))
			field, lit, msg := checkAction(n)
			switch {
			case msg != "":
				errs = append(errs, templateError{off, msg})
			case field == nil:
				segs = append(segs, segment{text: lit, action: -1, srcOff: off})
			default:
				if m := checkField(field, declared, params); m != "" {
					errs = append(errs, templateError{off, m})
					continue
				}
				segs = append(segs, segment{action: len(actions), srcOff: off})
				actions = append(actions, action{field: field, off: off})
			}
		default:
			errs = append(errs, templateError{actionStart(src, int(n.Position())), controlMsg(n)})
		}
	}
	if len(errs) == 0 && len(actions) == 0 {
		var text strings.Builder
		for _, s := range segs {
			text.WriteString(s.text)
		}
		if strings.TrimSpace(text.String()) == "" {
			errs = append(errs, templateError{0, "nothing is left once the template comments are removed; write the command"})
		}
	}
	return t, segs, actions, errs
}

const plainOnly = "only plain fields like {{ .Params.unit }} are allowed, because firstlook shell-quotes each value itself"

func controlMsg(n parse.Node) string {
	switch n.(type) {
	case *parse.IfNode:
		return "{{ if }} is not allowed: " + plainOnly + "; use when: for conditions on earlier steps, or write the test in shell"
	case *parse.RangeNode:
		return "{{ range }} is not allowed: " + plainOnly
	case *parse.WithNode:
		return "{{ with }} is not allowed: " + plainOnly
	case *parse.TemplateNode:
		return "{{ template }} is not allowed: " + plainOnly
	}
	return "this template construct is not allowed: " + plainOnly
}

// checkAction returns the field an action names, or the string constant it
// writes (field nil), or why it is not allowed.
func checkAction(n *parse.ActionNode) (field fieldRef, lit string, msg string) {
	p := n.Pipe
	if len(p.Decl) > 0 {
		return nil, "", "template variables ($x := …) are not allowed: " + plainOnly
	}
	if len(p.Cmds) != 1 {
		return nil, "", "pipelines ({{ .X | f }}) are not allowed: functions could cut a quoted value apart; " + plainOnly
	}
	args := p.Cmds[0].Args
	if id, ok := args[0].(*parse.IdentifierNode); ok {
		return nil, "", fmt.Sprintf("function %q is not allowed: functions such as printf, slice or index could cut a quoted value apart; %s", id.Ident, plainOnly)
	}
	if len(args) != 1 {
		return nil, "", "arguments are not allowed in a template action: " + plainOnly
	}
	switch a := args[0].(type) {
	case *parse.FieldNode:
		return fieldRef(a.Ident), "", ""
	case *parse.StringNode:
		return nil, a.Text, ""
	case *parse.VariableNode:
		return nil, "", "template variables ($) are not allowed: " + plainOnly
	case *parse.DotNode:
		return nil, "", "{{ . }} is all of the data: name a field, e.g. {{ .Host.Name }}"
	case *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
		return nil, "", "constants are not allowed in a template action: write the value in the command itself"
	}
	return nil, "", "this template expression is not allowed: " + plainOnly
}

// actionStart finds the "{{" that opens the action whose first token is at
// pos, so errors point at the start of the action.
func actionStart(src string, pos int) int {
	if pos > len(src) {
		pos = len(src)
	}
	if i := strings.LastIndex(src[:pos], "{{"); i >= 0 {
		return i
	}
	return pos
}

// lineOffset is the offset of the start of 1-based line in s.
func lineOffset(s string, line int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(s[off:], '\n')
		if i < 0 {
			return off
		}
		off += i + 1
	}
	return off
}
