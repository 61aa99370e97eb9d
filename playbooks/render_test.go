package playbooks_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
)

// sampleData is what the rendering tests feed templates.
func sampleData() playbooks.Data {
	return playbooks.Data{
		Source: "pagerduty",
		Event:  "incident.triggered",
		Incident: playbooks.Incident{
			ID: "Q1ABC", Number: 42, Title: "Disk full on web-1", URL: "https://x.pagerduty.com/incidents/Q1ABC",
			Service: "Web (prod)", ServiceID: "PWEB123", Urgency: "high", Priority: "P1", Status: "triggered",
		},
		Host:   playbooks.Host{Name: "web-1", Address: "10.0.0.5", User: "ops", Labels: map[string]string{"role": "web"}},
		Labels: map[string]string{"unit": "nginx", "quote": "it's", "dash": "-rf", "empty": ""},
	}
}

// fetchCmd is the command of a fetch step, in full, so that a change to it
// is a deliberate one.
const fetchCmd = `sh -c 'if [ ! -e "$1" ]; then printf "fetch: %s: no such file\n" "$1" >&2; exit 66; fi; ` +
	`if [ -d "$1" ]; then printf "fetch: %s: is a directory\n" "$1" >&2; exit 66; fi; ` +
	`if [ ! -r "$1" ]; then printf "fetch: %s: permission denied (sudo: true reads it as root)\n" "$1" >&2; exit 77; fi; ` +
	`exec tail -c "$2" -- "$1"' firstlook-fetch `

func TestRender(t *testing.T) {
	tests := []struct {
		name   string
		params string // playbook-level params
		step   string // one step, as YAML flow or block under "- "
		data   func(*playbooks.Data)
		want   playbooks.Command
	}{
		{"plain", "", "{name: s, run: uptime}", nil, playbooks.Command{Step: "s", Line: "uptime"}},
		{"param default", "{unit: nginx, since: -15min}", "{name: s, run: 'journalctl -u {{ .Params.unit }} --since {{ .Params.since }} --no-pager'}", nil,
			playbooks.Command{Step: "s", Line: "journalctl -u 'nginx' --since '-15min' --no-pager"}},
		{"step param overrides playbook param", "{unit: nginx}", "{name: s, run: 'systemctl status -- {{ .Params.unit }}', params: {unit: haproxy}}", nil,
			playbooks.Command{Step: "s", Line: "systemctl status -- 'haproxy'"}},
		{"service override wins, undeclared overrides ignored", "{unit: nginx}", "{name: s, run: 'systemctl status -- {{ .Params.unit }}', params: {unit: haproxy}}",
			func(d *playbooks.Data) { d.Params = map[string]string{"unit": "envoy", "other": "x"} },
			playbooks.Command{Step: "s", Line: "systemctl status -- 'envoy'"}},
		{"concatenation", "{unit: nginx}", "{name: s, run: 'tail -n 5 /var/log/{{ .Params.unit }}.log --since={{ .Params.unit }}'}", nil,
			playbooks.Command{Step: "s", Line: "tail -n 5 /var/log/'nginx'.log --since='nginx'"}},
		{"every incident field", "", "{name: s, run: 'logger -- {{ .Incident.ID }} {{ .Incident.Number }} {{ .Incident.Title }} {{ .Incident.URL }} {{ .Incident.Service }} {{ .Incident.ServiceID }} {{ .Incident.Urgency }} {{ .Incident.Priority }} {{ .Incident.Status }} {{ .Source }} {{ .Event }}'}", nil,
			playbooks.Command{Step: "s", Line: "logger -- 'Q1ABC' '42' 'Disk full on web-1' 'https://x.pagerduty.com/incidents/Q1ABC' 'Web (prod)' 'PWEB123' 'high' 'P1' 'triggered' 'pagerduty' 'incident.triggered'"}},
		{"host and labels", "", "{name: s, run: 'logger -- {{ .Host.Name }} {{ .Host.Address }} {{ .Host.User }} {{ .Host.Labels.role }} {{ .Labels.unit }} {{ .Labels.quote }} {{ .Labels.empty }}'}", nil,
			playbooks.Command{Step: "s", Line: `logger -- 'web-1' '10.0.0.5' 'ops' 'web' 'nginx' 'it'\''s' ''`}},
		{"sudo runs the whole line as root", "{unit: nginx}", "{name: s, run: 'journalctl -u {{ .Params.unit }} | tail -n 5', sudo: true}", nil,
			playbooks.Command{Step: "s", Line: `sudo -n sh -c 'journalctl -u '\''nginx'\'' | tail -n 5'`}},
		{"literal braces", "", `{name: s, run: 'docker ps --format {{ "{{.Names}}" }}'}`, nil,
			playbooks.Command{Step: "s", Line: "docker ps --format {{.Names}}"}},
		{"text that looks like a placeholder", "{p: v}", "{name: s, run: 'echo FLTPL0Z {{ .Params.p }} FLTPLQ0Z'}", nil,
			playbooks.Command{Step: "s", Line: "echo FLTPL0Z 'v' FLTPLQ0Z"}},
		{"script", "{n: 5}", "name: s\n    script: |\n      uptime\n      ps aux | head -n {{ .Params.n }}\n", nil,
			playbooks.Command{Step: "s", Line: "sh -s", Stdin: []byte("uptime\nps aux | head -n '5'\n")}},
		{"sudo script", "", "{name: s, script: id, sudo: true}", nil,
			playbooks.Command{Step: "s", Line: "sudo -n sh -s", Stdin: []byte("id")}},
		{"fetch", "", "{name: s, fetch: /var/log/syslog}", nil,
			playbooks.Command{Step: "s", Line: fetchCmd + "'/var/log/syslog' 1048576"}},
		{"fetch with a template, sudo and max_bytes", "{dir: /var/log/my app}", "{name: s, fetch: '{{ .Params.dir }}/{{ .Labels.unit }}.log', sudo: true, max_bytes: 2KiB}", nil,
			playbooks.Command{Step: "s", Line: "sudo -n " + fetchCmd + "'/var/log/my app/nginx.log' 2048"}},
		{"fetch path with a quote", "", `{name: s, fetch: "/tmp/{{ .Labels.quote }}"}`, nil,
			playbooks.Command{Step: "s", Line: fetchCmd + `'/tmp/it'\''s' 1048576`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "name: x\n"
			if tc.params != "" {
				src += "params: " + tc.params + "\n"
			}
			src += "steps:\n  - " + tc.step + "\n"
			p := mustLoadOne(t, src)
			d := sampleData()
			if tc.data != nil {
				tc.data(&d)
			}
			got := p.Render(d)
			if len(got) != 1 {
				t.Fatalf("Render returned %d commands, want 1", len(got))
			}
			if !reflect.DeepEqual(got[0], tc.want) {
				t.Errorf("Render:\ngot  %#v\nwant %#v", got[0], tc.want)
			}
		})
	}
}

func TestRenderStepErrors(t *testing.T) {
	tests := []struct {
		name   string
		params string
		step   string
		data   func(*playbooks.Data)
		want   string // "" for no error
		is     error
	}{
		{"missing label", "", "{name: s, run: 'systemctl status -- {{ .Labels.nope }}'}", nil,
			`render step "s": .Labels.nope: the incident has no label "nope"`, nil},
		{"missing host label", "", "{name: s, run: 'echo -- {{ .Host.Labels.nope }}'}", nil,
			`render step "s": .Host.Labels.nope: the host has no inventory label "nope"`, nil},
		{"NUL in a label", "", "{name: s, run: 'echo -- {{ .Labels.unit }}'}", func(d *playbooks.Data) { d.Labels["unit"] = "a\x00b" },
			`render step "s": .Labels.unit: value contains a NUL byte`, playbooks.ErrNUL},
		{"NUL in an override", "{p: x}", "{name: s, script: 'echo -- {{ .Params.p }}'}", func(d *playbooks.Data) { d.Params = map[string]string{"p": "\x00"} },
			`render step "s": .Params.p: value contains a NUL byte`, playbooks.ErrNUL},
		{"NUL in a fetch path", "", "{name: s, fetch: '/tmp/{{ .Incident.Title }}'}", func(d *playbooks.Data) { d.Incident.Title = "\x00" },
			`render step "s": .Incident.Title: value contains a NUL byte`, playbooks.ErrNUL},
		{"NUL in an unused field is fine", "", "{name: s, run: uptime}", func(d *playbooks.Data) { d.Incident.Title = "\x00" }, "", nil},
		{"alert text that looks like an option", "", "{name: s, run: 'grep -c {{ .Labels.dash }} /var/log/syslog'}", nil,
			`render step "s": .Labels.dash starts with '-' at the start of an argument, where the program would read it as an option`, nil},
		{"leading empty value does not hide an option", "{e: ''}", "{name: s, run: 'grep -c {{ .Labels.empty }}{{ .Incident.Title }} /var/log/syslog'}", func(d *playbooks.Data) { d.Incident.Title = "--help" },
			`render step "s": .Incident.Title starts with '-'`, nil},
		{"option-like value after --", "", "{name: s, run: 'grep -c -- {{ .Labels.dash }} /var/log/syslog'}", nil, "", nil},
		{"option-like value after literal text", "", "{name: s, run: 'grep -c x{{ .Labels.dash }} /var/log/syslog'}", nil, "", nil},
		{"option-like parameter", "{since: -15min}", "{name: s, run: 'journalctl --since {{ .Params.since }}'}", nil, "", nil},
		{"alert text walking out of a fetch directory", "", "{name: s, fetch: '/var/log/{{ .Labels.unit }}.log'}", func(d *playbooks.Data) { d.Labels["unit"] = "../../etc/shadow" },
			`render step "s": .Labels.unit is part of a file path and contains '/'`, nil},
		{"alert text as ..", "", "{name: s, fetch: '/var/log/{{ .Labels.unit }}'}", func(d *playbooks.Data) { d.Labels["unit"] = ".." },
			`render step "s": .Labels.unit is part of a file path`, nil},
		{"alert text in an input redirect", "", "{name: s, run: 'wc -l < /var/log/{{ .Labels.unit }}'}", func(d *playbooks.Data) { d.Labels["unit"] = "../../etc/shadow" },
			`render step "s": .Labels.unit is part of a file path`, nil},
		{"parameters may hold paths", "{p: nginx/error.log}", "{name: s, fetch: '/var/log/{{ .Params.p }}'}", nil, "", nil},
		{"fetch path that is not absolute once rendered", "{p: var/log/x}", "{name: s, fetch: '{{ .Params.p }}'}", nil,
			`render step "s": fetch path does not start with '/' once rendered`, nil},
		{"too long for a command line", "", "{name: s, run: 'logger -- {{ .Incident.Title }}'}", func(d *playbooks.Data) { d.Incident.Title = strings.Repeat("x", playbooks.MaxLine) },
			`render step "s": the command is 131083 bytes once rendered, more than the 131071 a host accepts as one command line; the largest value is .Incident.Title (131071 bytes)`, nil},
		{"a long script is fine", "", "{name: s, script: 'logger -- {{ .Incident.Title }}'}", func(d *playbooks.Data) { d.Incident.Title = strings.Repeat("x", 1<<20) }, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "name: x\n"
			if tc.params != "" {
				src += "params: " + tc.params + "\n"
			}
			src += "steps:\n  - {name: before, run: uptime}\n  - " + tc.step + "\n  - {name: after, run: uptime}\n"
			p := mustLoadOne(t, src)
			d := sampleData()
			if tc.data != nil {
				tc.data(&d)
			}
			cmds := p.Render(d)
			if cmds[0].Err != nil || cmds[2].Err != nil || cmds[0].Line != "uptime" || cmds[2].Line != "uptime" {
				t.Errorf("the other steps were affected: %+v, %+v", cmds[0], cmds[2])
			}
			err := cmds[1].Err
			if tc.want == "" {
				if err != nil {
					t.Errorf("Err = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Err = %v\nwant %s…", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if _, err2 := p.RenderStep(1, d); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("RenderStep error = %v, want the same as Render's", err2)
			}
		})
	}
}

// Render is called for many hosts at once.
func TestRenderConcurrent(t *testing.T) {
	p := mustLoadOne(t, "name: x\nsteps: [{name: s, run: 'echo -- {{ .Host.Name }}'}]\n")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("web-%d", i)
			for range 100 {
				c := p.Render(playbooks.Data{Host: playbooks.Host{Name: name}})
				if want := "echo -- '" + name + "'"; c[0].Line != want {
					t.Errorf("got %q, want %q", c[0].Line, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRenderUnloadedPlaybook(t *testing.T) {
	p := &playbooks.Playbook{Steps: []playbooks.Step{{Name: "s", Kind: playbooks.Run, Source: "uptime"}}}
	if _, err := p.RenderStep(0, playbooks.Data{}); err == nil {
		t.Error("RenderStep of a playbook not made by Load succeeded")
	}
}

func TestNewData(t *testing.T) {
	tr := hooks.Trigger{
		Source: "pagerduty", Event: "incident.triggered",
		Incident: hooks.Incident{ID: "Q1", Number: 7, Title: "t", URL: "u", Service: hooks.Service{ID: "PS", Name: "svc"},
			Urgency: "high", Priority: "P1", Status: "triggered"},
		Labels: map[string]string{"a": "b"},
	}
	host := playbooks.Host{Name: "h"}
	got := playbooks.NewData(tr, host, map[string]string{"p": "v"})
	want := playbooks.Data{
		Source: "pagerduty", Event: "incident.triggered",
		Incident: playbooks.Incident{ID: "Q1", Number: 7, Title: "t", URL: "u", Service: "svc", ServiceID: "PS",
			Urgency: "high", Priority: "P1", Status: "triggered"},
		Host: host, Labels: map[string]string{"a": "b"}, Params: map[string]string{"p": "v"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NewData:\ngot  %+v\nwant %+v", got, want)
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"abc", "'abc'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{`$(x) "y" \z`, `'$(x) "y" \z'`},
	}
	for _, tc := range tests {
		if got, err := playbooks.Quote(tc.in); err != nil || got != tc.want {
			t.Errorf("Quote(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := playbooks.Quote("a\x00b"); !errors.Is(err, playbooks.ErrNUL) {
		t.Errorf("Quote with NUL error = %v, want ErrNUL", err)
	}
}

func TestWhenEval(t *testing.T) {
	codes := map[string]int{"ok": 0, "one": 1, "timeout": -1}
	tests := []struct {
		cond playbooks.Condition
		want bool
	}{
		{playbooks.Condition{Step: "ok", ExitCodes: []int{0}}, true},
		{playbooks.Condition{Step: "one", ExitCodes: []int{0}}, false},
		{playbooks.Condition{Step: "one", ExitCodes: []int{0, 1}}, true},
		{playbooks.Condition{Step: "ok", Failed: true}, false},
		{playbooks.Condition{Step: "one", Failed: true}, true},
		{playbooks.Condition{Step: "timeout", Failed: true}, true},
		{playbooks.Condition{Step: "timeout", Failed: false}, false},
		{playbooks.Condition{Step: "ok", Failed: false}, true},
		{playbooks.Condition{Step: "skipped", Failed: true}, false},
		{playbooks.Condition{Step: "skipped", Failed: false}, false},
	}
	for _, tc := range tests {
		if got := tc.cond.Eval(codes); got != tc.want {
			t.Errorf("%s.Eval = %v, want %v", tc.cond, got, tc.want)
		}
	}
	var none *playbooks.When
	if !none.Eval(codes) {
		t.Error("nil When does not hold")
	}
	both := &playbooks.When{Conditions: []playbooks.Condition{tests[0].cond, tests[2].cond}}
	if !both.Eval(codes) {
		t.Error("When with two holding conditions does not hold")
	}
	both.Conditions = append(both.Conditions, tests[1].cond)
	if both.Eval(codes) {
		t.Error("When with a failing condition holds")
	}
}

func TestShouldRun(t *testing.T) {
	p := mustLoadOne(t, `name: x
steps:
  - {name: a, run: "true"}
  - {name: b, run: "false", continue_on_error: true}
  - {name: c, run: "false"}
  - {name: d, run: "true"}
  - {name: e, run: "true", when: {step: c, failed: true}}
  - {name: f, run: "true", when: {step: d, exit_code: 0}}
  - {name: g, run: "true", continue_on_error: true}
`)
	type result struct {
		run    bool
		reason string
	}
	codes := map[string]int{}
	var got []result
	// Run the playbook as the runner would, with b and c failing.
	exit := map[string]int{"a": 0, "b": 1, "c": 2, "d": 0, "e": 0, "f": 0, "g": 0}
	for i, s := range p.Steps {
		run, reason := p.ShouldRun(i, codes)
		got = append(got, result{run, reason})
		if run {
			codes[s.Name] = exit[s.Name]
		}
	}
	want := []result{
		{true, ""},
		{true, ""},
		{true, ""}, // b failed, but continues on error
		{false, `step "c" failed (exit 2) and has no continue_on_error`},
		{true, ""}, // its when says to run after c failed
		{false, `when {step: "d", exit_code: [0]} does not hold: step "d" did not run`},
		{false, `step "c" failed (exit 2) and has no continue_on_error`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ShouldRun:\ngot  %+v\nwant %+v", got, want)
	}
	if run, reason := p.ShouldRun(5, map[string]int{"d": 3}); run || reason != `when {step: "d", exit_code: [0]} does not hold: step "d" exited 3` {
		t.Errorf("ShouldRun(f) = %v, %q", run, reason)
	}

	par := mustLoadOne(t, "name: x\nparallel: true\nsteps: [{name: a, run: 'false'}, {name: b, run: 'true'}]\n")
	if run, _ := par.ShouldRun(1, map[string]int{"a": 1}); !run {
		t.Error("a parallel playbook skipped a step")
	}
}
