package playbooks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"github.com/firstlook/firstlook/hooks"
)

// Data is what templates read when a playbook runs on one host. Every
// value reaches the command shell-quoted.
type Data struct {
	// Source is the alert source ("pagerduty"), Event its event type.
	Source, Event string
	Incident      Incident
	// Host is the host the run targets, as the inventory describes it.
	Host Host
	// Labels are the trigger's labels, read as {{ .Labels.key }}.
	Labels map[string]string
	// Params are per-service overrides of the playbook's params, from the
	// config; they win over playbook and step defaults. Names a playbook
	// does not declare are ignored.
	Params map[string]string
}

// Incident is the incident as templates see it: {{ .Incident.Title }}.
type Incident struct {
	ID        string
	Number    int
	Title     string
	URL       string
	Service   string // the service's name
	ServiceID string
	Urgency   string
	Priority  string
	Status    string
}

// Host is the target host as templates see it: {{ .Host.Name }},
// {{ .Host.Labels.role }}.
type Host struct {
	Name, Address, User string
	// Sudo is the inventory's opt-in to privilege: {{ .Host.Sudo }} is
	// true or false. The runner sends steps with sudo: true only where it
	// is true.
	Sudo   bool
	Labels map[string]string
}

// NewData is the template data for trigger t on host, with the per-service
// parameter overrides params.
func NewData(t hooks.Trigger, host Host, params map[string]string) Data {
	return Data{
		Source: t.Source,
		Event:  t.Event,
		Incident: Incident{
			ID:        t.Incident.ID,
			Number:    t.Incident.Number,
			Title:     t.Incident.Title,
			URL:       t.Incident.URL,
			Service:   t.Incident.Service.Name,
			ServiceID: t.Incident.Service.ID,
			Urgency:   t.Incident.Urgency,
			Priority:  t.Incident.Priority,
			Status:    t.Incident.Status,
		},
		Host:   host,
		Labels: t.Labels,
		Params: params,
	}
}

// Command is one step, rendered for one host.
type Command struct {
	Step string
	// Line is the exact command line to send (and to record as evidence).
	Line string
	// Stdin is the script of a script step, to be written to the
	// command's stdin; nil for other steps, whose stdin should be empty.
	Stdin []byte
	// Err is why the step could not be rendered (a label the incident
	// lacks, a value that is unsafe where it would go); the step then
	// fails with this error and is not sent.
	Err error
}

// ErrNUL is wrapped by errors about values that contain a NUL byte, which
// no command-line argument can carry.
var ErrNUL = errors.New("value contains a NUL byte, which no shell argument can carry")

// Quote returns s as one POSIX shell word that means exactly s: in single
// quotes, with each ' written as '\”. Nothing inside single quotes is
// special to a POSIX shell, so no value can end the word early.
func Quote(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", ErrNUL
	}
	return quote(s), nil
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Render renders every step for one host, in order. A step that cannot be
// rendered has Err set; the others are unaffected.
func (p *Playbook) Render(d Data) []Command {
	out := make([]Command, len(p.Steps))
	for i := range p.Steps {
		c, err := p.RenderStep(i, d)
		c.Err = err
		out[i] = c
	}
	return out
}

// RenderStep renders step i for one host.
func (p *Playbook) RenderStep(i int, d Data) (Command, error) {
	s := &p.Steps[i]
	c := Command{Step: s.Name}
	if s.tmpl == nil {
		return c, fmt.Errorf("render step %q: the playbook was not loaded with playbooks.Load", s.Name)
	}
	params := p.stepParams(i, d.Params)
	raw := newTemplateData(d, params, func(s string) string { return s })

	values := make([]string, len(s.tmpl.actions))
	largest := 0
	for k, a := range s.tmpl.actions {
		v, err := raw.lookup(a.field)
		if err != nil {
			return c, fmt.Errorf("render step %q: %w", s.Name, err)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return c, fmt.Errorf("render step %q: %s: %w", s.Name, a.field, ErrNUL)
		}
		if a.path && a.field.untrusted() && (strings.Contains(v, "/") || v == "." || v == "..") {
			return c, fmt.Errorf("render step %q: %s is part of a file path and contains '/' or is '.' or '..', which could reach another file; alert text may only name a file within the directory the playbook gives", s.Name, a.field)
		}
		values[k] = v
		if len(v) > len(values[largest]) {
			largest = k
		}
	}
	for _, lead := range s.tmpl.optionWords {
		for _, k := range lead {
			if values[k] == "" {
				continue
			}
			if a := s.tmpl.actions[k]; a.field.untrusted() && strings.HasPrefix(values[k], "-") {
				return c, fmt.Errorf("render step %q: %s starts with '-' at the start of an argument, where the program would read it as an option; put -- before it in the command, or start the word with literal text", s.Name, a.field)
			}
			break
		}
	}

	switch s.Kind {
	case Run:
		out, err := execute(s.tmpl.t, newTemplateData(d, params, quote))
		if err != nil {
			return c, fmt.Errorf("render step %q: %w", s.Name, err)
		}
		c.Line = out
		if s.Sudo {
			// The whole line runs as root, not only its first command:
			// sudo -n journalctl … | tail would run tail as the user.
			c.Line = "sudo -n sh -c " + quote(out)
		}
	case Script:
		out, err := execute(s.tmpl.t, newTemplateData(d, params, quote))
		if err != nil {
			return c, fmt.Errorf("render step %q: %w", s.Name, err)
		}
		c.Line = "sh -s"
		if s.Sudo {
			c.Line = "sudo -n sh -s"
		}
		c.Stdin = []byte(out)
	case Fetch:
		path, err := execute(s.tmpl.t, raw)
		if err != nil {
			return c, fmt.Errorf("render step %q: %w", s.Name, err)
		}
		if !strings.HasPrefix(path, "/") {
			return c, fmt.Errorf("render step %q: fetch path does not start with '/' once rendered; fetch needs an absolute path", s.Name)
		}
		c.Line = fetchLine(path, s.MaxBytes, s.Sudo)
	}
	if len(c.Line) > MaxLine {
		msg := fmt.Sprintf("render step %q: the command is %d bytes once rendered, more than the %d a host accepts as one command line", s.Name, len(c.Line), MaxLine)
		if len(values) > 0 {
			msg += fmt.Sprintf("; the largest value is %s (%d bytes)", s.tmpl.actions[largest].field, len(values[largest]))
		}
		return c, errors.New(msg)
	}
	return c, nil
}

// fetchScript reads the tail of "$1", at most "$2" bytes, and says plainly
// why it cannot. Exit status 66 (EX_NOINPUT) is a missing file or a
// directory, 77 (EX_NOPERM) an unreadable one.
const fetchScript = `if [ ! -e "$1" ]; then printf "fetch: %s: no such file\n" "$1" >&2; exit 66; fi; ` +
	`if [ -d "$1" ]; then printf "fetch: %s: is a directory\n" "$1" >&2; exit 66; fi; ` +
	`if [ ! -r "$1" ]; then printf "fetch: %s: permission denied (sudo: true reads it as root)\n" "$1" >&2; exit 77; fi; ` +
	`exec tail -c "$2" -- "$1"`

// fetchLine is the command of a fetch step. The path is an argument of a
// fixed script rather than part of it, so it is never parsed as shell.
func fetchLine(path string, maxBytes int64, sudo bool) string {
	line := "sh -c " + quote(fetchScript) + " firstlook-fetch " + quote(path) + " " + strconv.FormatInt(maxBytes, 10)
	if sudo {
		line = "sudo -n " + line
	}
	return line
}

func execute(t *template.Template, data templateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}

// templateData is what text/template executes against: every value a
// string, already passed through q (shell quoting, or none for a fetch
// path, which is quoted as a whole).
type templateData struct {
	Source, Event string
	Incident      templateIncident
	Host          templateHost
	Labels        map[string]string
	Params        map[string]string
}

type templateIncident struct {
	ID, Number, Title, URL, Service, ServiceID, Urgency, Priority, Status string
}

type templateHost struct {
	Name, Address, User, Sudo string
	Labels                    map[string]string
}

func newTemplateData(d Data, params map[string]string, q func(string) string) templateData {
	qmap := func(m map[string]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = q(v)
		}
		return out
	}
	return templateData{
		Source: q(d.Source),
		Event:  q(d.Event),
		Incident: templateIncident{
			ID:        q(d.Incident.ID),
			Number:    q(strconv.Itoa(d.Incident.Number)),
			Title:     q(d.Incident.Title),
			URL:       q(d.Incident.URL),
			Service:   q(d.Incident.Service),
			ServiceID: q(d.Incident.ServiceID),
			Urgency:   q(d.Incident.Urgency),
			Priority:  q(d.Incident.Priority),
			Status:    q(d.Incident.Status),
		},
		Host: templateHost{
			Name:    q(d.Host.Name),
			Address: q(d.Host.Address),
			User:    q(d.Host.User),
			Sudo:    q(strconv.FormatBool(d.Host.Sudo)),
			Labels:  qmap(d.Host.Labels),
		},
		Labels: qmap(d.Labels),
		Params: qmap(params),
	}
}

// lookup returns the (unquoted) value of field f.
func (t templateData) lookup(f fieldRef) (string, error) {
	switch f[0] {
	case "Source":
		return t.Source, nil
	case "Event":
		return t.Event, nil
	case "Labels":
		v, ok := t.Labels[f[1]]
		if !ok {
			return "", fmt.Errorf("%s: the incident has no label %q", f, f[1])
		}
		return v, nil
	case "Params":
		return t.Params[f[1]], nil
	case "Host":
		switch f[1] {
		case "Name":
			return t.Host.Name, nil
		case "Address":
			return t.Host.Address, nil
		case "User":
			return t.Host.User, nil
		case "Sudo":
			return t.Host.Sudo, nil
		case "Labels":
			v, ok := t.Host.Labels[f[2]]
			if !ok {
				return "", fmt.Errorf("%s: the host has no inventory label %q", f, f[2])
			}
			return v, nil
		}
	case "Incident":
		i := t.Incident
		v, ok := map[string]string{
			"ID": i.ID, "Number": i.Number, "Title": i.Title, "URL": i.URL, "Service": i.Service,
			"ServiceID": i.ServiceID, "Urgency": i.Urgency, "Priority": i.Priority, "Status": i.Status,
		}[f[1]]
		if ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: unknown field", f) // the loader rejects these
}
