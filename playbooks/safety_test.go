package playbooks_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/playbooks"
)

// hostileValues are what an attacker who can write an alert title or a
// label might send, and what careless data looks like.
var hostileValues = []string{
	"", " ", "  two  spaces  ", "plain", "a b",
	";", "semi;colon", "a && b", "a || b", "a | b", "a & b", "> /tmp/firstlook-pwned", "< /etc/passwd", "2>&1",
	"$(touch /tmp/firstlook-pwned)", "`touch /tmp/firstlook-pwned`", "${HOME}", "$HOME", "$((1+1))", "$[1+1]", "$'\\x41'",
	"'", "''", "it's", "'\\''", `'"'"'`, "'; touch /tmp/firstlook-pwned; '", `"`, `"double"`, `\`, `\\`, `a\'b`, `\n`, "\\\n",
	"*", "?", "[a-z]*", "/*", "~", "~root", "~/x", "{a,b}", "{1..3}", "!", "!!", "!$", "#", "# comment", "a=b", "@(x)",
	"-", "-n", "-e", "--", "--help", "-v x", "-rf /",
	"new\nline", "\n", "\r\n", "tab\there", "\x1b[31mred\x1b[0m", "\x07\x08\x7f",
	"%s%n%d", "%%", "{{ .Host.Name }}", "{{", "}}",
	"\u202eevil\u202c", "zero\u200bwidth\u200d", "\ufeffbom", "nb\u00a0sp", "\u2028line\u2029sep",
	"\uff07fullwidth apostrophe\uff07", "\uff02fullwidth quote\uff02", "\u2018smart\u2019 \u201cquotes\u201d", "\u02bcmodifier",
	"emoji 🔥💥", "日本語", "\xff\xfe invalid", "\xc0\xaf overlong", "\xed\xa0\x80 surrogate",
	strings.Repeat("'", 100), strings.Repeat("a'b\"c\\d$e`f", 1000),
}

// templateField is a field a template can read and how to set it.
type templateField struct {
	ref string
	set func(d *playbooks.Data, v string)
}

var templateFields = []templateField{
	{".Source", func(d *playbooks.Data, v string) { d.Source = v }},
	{".Event", func(d *playbooks.Data, v string) { d.Event = v }},
	{".Incident.ID", func(d *playbooks.Data, v string) { d.Incident.ID = v }},
	{".Incident.Title", func(d *playbooks.Data, v string) { d.Incident.Title = v }},
	{".Incident.URL", func(d *playbooks.Data, v string) { d.Incident.URL = v }},
	{".Incident.Service", func(d *playbooks.Data, v string) { d.Incident.Service = v }},
	{".Incident.ServiceID", func(d *playbooks.Data, v string) { d.Incident.ServiceID = v }},
	{".Incident.Urgency", func(d *playbooks.Data, v string) { d.Incident.Urgency = v }},
	{".Incident.Priority", func(d *playbooks.Data, v string) { d.Incident.Priority = v }},
	{".Incident.Status", func(d *playbooks.Data, v string) { d.Incident.Status = v }},
	{".Host.Name", func(d *playbooks.Data, v string) { d.Host.Name = v }},
	{".Host.Address", func(d *playbooks.Data, v string) { d.Host.Address = v }},
	{".Host.User", func(d *playbooks.Data, v string) { d.Host.User = v }},
	{".Host.Labels.k", func(d *playbooks.Data, v string) { d.Host.Labels = map[string]string{"k": v} }},
	{".Labels.k", func(d *playbooks.Data, v string) { d.Labels = map[string]string{"k": v} }},
	{".Params.p", func(d *playbooks.Data, v string) { d.Params = map[string]string{"p": v} }},
}

// localShell runs rendered commands with /bin/sh (and bash, the usual
// login shell) as sshd would, `$SHELL -c line`, with a fake sudo that
// checks for -n and runs the rest.
type localShell struct {
	shells []string
	env    []string
}

func newLocalShell(t testing.TB) *localShell {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		if os.Getenv("FIRSTLOOK_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("no /bin/sh: %v", err)
		}
		t.Skipf("no /bin/sh to run rendered commands: %v", err)
	}
	dir := t.TempDir()
	sudo := "#!/bin/sh\n[ \"$1\" = -n ] || { echo 'fake sudo: want -n first' >&2; exit 99; }\nshift\nexec \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "sudo"), []byte(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	ls := &localShell{shells: []string{"/bin/sh"}, env: []string{"PATH=" + dir + ":/usr/bin:/bin", "LC_ALL=C"}}
	if _, err := os.Stat("/bin/bash"); err == nil {
		ls.shells = append(ls.shells, "/bin/bash")
	}
	return ls
}

func (ls *localShell) run(shell string, c playbooks.Command) (stdout, stderr string, err error) {
	cmd := exec.Command(shell, "-c", c.Line)
	cmd.Stdin = bytes.NewReader(c.Stdin)
	cmd.Env = ls.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// safetyPlaybook puts field where a template may go. Every field goes
// through the steps the shell runs in-process; the steps that start more
// processes (sudo, a script on stdin, sh -c, $(…)) run for a trusted and
// two untrusted fields, which share the same quoting, to keep the suite
// fast on small machines.
func safetyPlaybook(ref string) string {
	s := fmt.Sprintf(`name: safety
params: {p: default}
steps:
  - name: run
    run: printf -- %%s {{ %[1]s }}
  - name: concatenated
    run: printf -- %%s x{{ %[1]s }}y
`, ref)
	switch ref {
	case ".Params.p", ".Labels.k", ".Incident.Title":
		s += fmt.Sprintf(`  - name: sudo
    run: printf -- %%s {{ %[1]s }}
    sudo: true
  - name: script
    script: |
      printf -- %%s {{ %[1]s }}
  - name: positional
    run: sh -c 'printf %%s "${1#x}"' sh x{{ %[1]s }}
  - name: substitution
    run: printf -- %%s "$(printf -- %%s {{ %[1]s }})"
`, ref)
	}
	return s
}

// wantOutput is what each step of safetyPlaybook must print for v.
func wantOutput(step, v string) string {
	switch step {
	case "concatenated":
		return "x" + v + "y"
	case "substitution":
		return strings.TrimRight(v, "\n") // $(…) drops trailing newlines
	}
	return v
}

// Every value, through every field, reaches the program as exactly the
// text it was, whatever shell runs the line. To keep the suite fast, the
// commands of one field run as one batch per shell, each followed by a NUL
// separator: a value that broke out of its quoting would derail the rest of
// the batch, which fails the test all the same.
func TestSafetyRoundTrip(t *testing.T) {
	ls := newLocalShell(t)
	sentinel := "/tmp/firstlook-pwned"
	os.Remove(sentinel)
	for _, f := range templateFields {
		t.Run(f.ref, func(t *testing.T) {
			t.Parallel()
			p := mustLoadOne(t, safetyPlaybook(f.ref))
			for _, shell := range ls.shells {
				var (
					batch strings.Builder
					want  []string
					what  []string
				)
				for _, v := range hostileValues {
					d := playbooks.Data{}
					f.set(&d, v)
					for _, c := range p.Render(d) {
						if c.Err != nil {
							t.Errorf("%s %s %q: %v", f.ref, c.Step, v, c.Err)
							continue
						}
						if shell != "/bin/sh" && c.Step != "run" && c.Step != "concatenated" {
							continue // the other steps start sh themselves
						}
						batch.WriteString(batchCommand(c))
						batch.WriteString("printf '\\000'\n")
						want = append(want, wantOutput(c.Step, v))
						what = append(what, fmt.Sprintf("step %s, value %q, line %q", c.Step, v, c.Line))
					}
				}
				out, errOut, err := ls.run(shell, playbooks.Command{Line: "exec " + shell + " -s", Stdin: []byte(batch.String())})
				got := strings.Split(out, "\x00")
				if err != nil || len(got) != len(want)+1 {
					t.Fatalf("%s under %s: %d outputs, want %d (err %v, stderr %q)", f.ref, shell, len(got)-1, len(want), err, errOut)
				}
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("%s under %s, %s:\ngot  %q\nwant %q", f.ref, shell, what[i], got[i], want[i])
					}
				}
			}
		})
	}
	t.Cleanup(func() {
		if _, err := os.Stat(sentinel); err == nil {
			t.Errorf("%s exists: a value was executed", sentinel)
		}
	})
}

// batchCommand is c as one command of a batch script: its line, with its
// stdin (a script step's script) given as a quoted here-document, which
// passes it through untouched.
func batchCommand(c playbooks.Command) string {
	if c.Stdin == nil {
		return c.Line + "\n"
	}
	delim := "FIRSTLOOK_EOF"
	for bytes.Contains(c.Stdin, []byte(delim)) {
		delim += "_"
	}
	body := string(c.Stdin)
	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	return c.Line + " <<'" + delim + "'\n" + body + delim + "\n"
}

// NUL cannot be passed in an argument: every step that would carry it
// fails clearly instead of dropping it.
func TestSafetyNUL(t *testing.T) {
	for _, f := range templateFields {
		p := mustLoadOne(t, safetyPlaybook(f.ref))
		d := playbooks.Data{}
		f.set(&d, "before\x00after")
		for _, c := range p.Render(d) {
			if !errors.Is(c.Err, playbooks.ErrNUL) || !strings.Contains(c.Err.Error(), f.ref) {
				t.Errorf("%s step %s: Err = %v, want ErrNUL naming the field", f.ref, c.Step, c.Err)
			}
			if c.Line != "" || c.Stdin != nil {
				t.Errorf("%s step %s: a failed step still has a command: %q", f.ref, c.Step, c.Line)
			}
		}
	}
}

// A 1 MiB value cannot fit in a command line (Linux caps one exec argument
// at 128 KiB, and sshd runs `$SHELL -c line`): run steps fail clearly; a
// script, sent on stdin, carries it intact.
func TestSafetyHugeValue(t *testing.T) {
	ls := newLocalShell(t)
	huge := strings.Repeat("x'$(y)\"`\\", 1<<20/10)
	for _, f := range templateFields {
		p := mustLoadOne(t, safetyPlaybook(f.ref))
		d := playbooks.Data{}
		f.set(&d, huge)
		for _, c := range p.Render(d) {
			if c.Step != "script" {
				if c.Err == nil || !strings.Contains(c.Err.Error(), "more than the 131071 a host accepts") {
					t.Errorf("%s step %s: Err = %v, want the command-line limit", f.ref, c.Step, c.Err)
				}
				continue
			}
			if c.Err != nil {
				t.Fatalf("%s script: %v", f.ref, c.Err)
			}
			out, errOut, err := ls.run("/bin/sh", c)
			if err != nil || out != huge {
				t.Errorf("%s script: got %d bytes (err %v, %s), want the %d-byte value", f.ref, len(out), err, errOut, len(huge))
			}
		}
	}
}

// Fetch paths are quoted as a whole: every value that can be a file name
// reads exactly that file.
func TestSafetyFetch(t *testing.T) {
	ls := newLocalShell(t)
	dir := t.TempDir()
	var names []string
	for _, v := range hostileValues {
		if v == "" || v == "." || v == ".." || strings.ContainsAny(v, "/\x00") || len(v) > 255 {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, v), []byte("content of "+v), 0o600); err != nil {
			t.Fatalf("create %q: %v", v, err)
		}
		names = append(names, v)
	}
	for _, ref := range []string{".Labels.k", ".Params.p"} {
		f := fieldByRef(t, ref)
		p := mustLoadOne(t, fmt.Sprintf("name: x\nparams: {p: d}\nsteps:\n  - {name: plain, fetch: '%[1]s/{{ %[2]s }}'}\n  - {name: sudo, fetch: '%[1]s/{{ %[2]s }}', sudo: true}\n", dir, ref))
		var (
			batch strings.Builder
			want  []string
		)
		for _, v := range names {
			d := playbooks.Data{}
			f.set(&d, v)
			for _, c := range p.Render(d) {
				if c.Err != nil {
					t.Errorf("%s %q: %v", ref, v, c.Err)
					continue
				}
				batch.WriteString(c.Line + "\nprintf '\\000'\n")
				want = append(want, "content of "+v)
			}
		}
		out, errOut, err := ls.run("/bin/sh", playbooks.Command{Line: "exec /bin/sh -s", Stdin: []byte(batch.String())})
		got := strings.Split(out, "\x00")
		if err != nil || len(got) != len(want)+1 {
			t.Fatalf("fetch %s: %d outputs, want %d (err %v, stderr %q)", ref, len(got)-1, len(want), err, errOut)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("fetch %s: got %q, want %q", ref, got[i], want[i])
			}
		}
	}
}

func fieldByRef(t *testing.T, ref string) templateField {
	for _, f := range templateFields {
		if f.ref == ref {
			return f
		}
	}
	t.Fatalf("no field %s", ref)
	return templateField{}
}

// A fetch degrades with a clear message and a distinct exit status.
func TestFetchMessages(t *testing.T) {
	ls := newLocalShell(t)
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789"), 300)
	if err := os.WriteFile(filepath.Join(dir, "big.log"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	p := mustLoadOne(t, fmt.Sprintf(`name: x
steps:
  - {name: tail, fetch: '%[1]s/big.log', max_bytes: 1KiB}
  - {name: missing, fetch: '%[1]s/nope.log'}
  - {name: directory, fetch: '%[1]s'}
`, dir))
	cmds := p.Render(playbooks.Data{})
	out, _, err := ls.run("/bin/sh", cmds[0])
	if err != nil || out != string(big[len(big)-1024:]) {
		t.Errorf("tail: got %d bytes (err %v), want the last 1024", len(out), err)
	}
	for _, tc := range []struct {
		c      playbooks.Command
		status int
		msg    string
	}{
		{cmds[1], 66, "fetch: " + dir + "/nope.log: no such file\n"},
		{cmds[2], 66, "fetch: " + dir + ": is a directory\n"},
	} {
		_, errOut, err := ls.run("/bin/sh", tc.c)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.status || errOut != tc.msg {
			t.Errorf("%s: err %v, stderr %q; want exit %d and %q", tc.c.Step, err, errOut, tc.status, tc.msg)
		}
	}
}

// FuzzRenderQuoting checks that any value, as a parameter or as alert
// text, reaches the program as exactly itself, or fails clearly.
func FuzzRenderQuoting(f *testing.F) {
	for _, v := range hostileValues {
		f.Add(v)
	}
	f.Add("a\x00b")
	ls := newLocalShell(f)
	set, err := playbooks.LoadFS(fstestFS("name: fuzz\nparams: {v: d}\nsteps:\n"+
		"  - {name: param, run: 'printf -- %s {{ .Params.v }}'}\n"+
		"  - {name: label, run: 'sh -c ''printf %s \"$1\"'' sh {{ .Labels.v }}'}\n"+
		"  - {name: script, script: 'printf -- %s {{ .Labels.v }}{{ .Params.v }}', sudo: true}\n"), ".")
	if err != nil {
		f.Fatal(err)
	}
	p := set.All()[0]
	f.Fuzz(func(t *testing.T, v string) {
		d := playbooks.Data{Labels: map[string]string{"v": v}, Params: map[string]string{"v": v}}
		for _, c := range p.Render(d) {
			want := v
			if c.Step == "script" {
				want = v + v
			}
			switch {
			case strings.ContainsRune(v, 0):
				if !errors.Is(c.Err, playbooks.ErrNUL) {
					t.Fatalf("%s: value with NUL: Err = %v, want ErrNUL", c.Step, c.Err)
				}
				continue
			case c.Step == "label" && strings.HasPrefix(v, "-"):
				if c.Err == nil || !strings.Contains(c.Err.Error(), "starts with '-'") {
					t.Fatalf("label %q: Err = %v, want the option error", v, c.Err)
				}
				continue
			case len(c.Line) > playbooks.MaxLine || (c.Err != nil && len(v) > playbooks.MaxLine/2):
				continue
			case c.Err != nil:
				t.Fatalf("%s %q: %v", c.Step, v, c.Err)
			}
			out, errOut, err := ls.run("/bin/sh", c)
			if err != nil || out != want {
				t.Fatalf("%s %q: line %q: got %q (err %v, %s)", c.Step, v, c.Line, out, err, errOut)
			}
		}
	})
}
