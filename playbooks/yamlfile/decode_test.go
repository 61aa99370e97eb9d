package yamlfile_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/playbooks/yamlfile"
)

type inner struct {
	Workers int           `yaml:"workers"`
	Grace   time.Duration `yaml:"grace"`
	On      bool          `yaml:"on"`
	Names   []string      `yaml:"names"`
}

type Base struct {
	Listen string `yaml:"listen"`
}

type outer struct {
	Base   `yaml:",inline"`
	Runner inner             `yaml:"runner"`
	Ptr    *inner            `yaml:"ptr"`
	Params map[string]string `yaml:"params"`
}

func decode(t *testing.T, src string, env map[string]string) (outer, yamlfile.List) {
	t.Helper()
	d := &yamlfile.Decoder{File: "f.yaml", Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}
	var o outer
	d.Decode(d.Parse([]byte(src)), "", &o)
	return o, d.Errs
}

// TestDecode: values land where yaml.v3 would put them, inline fields and
// env expansion included.
func TestDecode(t *testing.T) {
	o, errs := decode(t, "listen: ${ADDR}\nrunner:\n  workers: ${N}\n  grace: 30s\n  on: true\n  names: [a, b]\nptr: {workers: 2}\nparams: {x: \"${ADDR}\"}\n",
		map[string]string{"ADDR": "127.0.0.1:1", "N": "7"})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if o.Listen != "127.0.0.1:1" || o.Runner.Workers != 7 || o.Runner.Grace != 30*time.Second || !o.Runner.On ||
		strings.Join(o.Runner.Names, ",") != "a,b" || o.Ptr == nil || o.Ptr.Workers != 2 || o.Params["x"] != "127.0.0.1:1" {
		t.Errorf("got %+v %+v", o, o.Ptr)
	}
}

// TestDecodeErrors: every problem, each at its line and column, naming
// the key path and saying what to do.
func TestDecodeErrors(t *testing.T) {
	src := `listn: x
runner:
  workers: four
  grace: 30
  on: maybe
  names: a
ptr:
  wrkers: 1
listen: ${UNSET}
`
	_, errs := decode(t, src, nil)
	want := []string{
		`f.yaml:1:1: top level: unknown key "listn"; did you mean "listen"? valid keys: listen, params, ptr, runner`,
		`f.yaml:3:12: runner.workers: want an integer, got "four"`,
		`f.yaml:4:10: runner.grace: want a duration, got 30; write 30s for seconds or 30m for minutes`,
		`f.yaml:5:7: runner.on: want true or false, got "maybe"`,
		`f.yaml:6:10: runner.names: want a list, got the string "a"; write [a, b] or one '- item' per line`,
		`f.yaml:8:3: ptr: unknown key "wrkers"; did you mean "workers"? valid keys: grace, names, on, workers`,
		`f.yaml:9:9: listen: environment variable UNSET is not set; export it, or write the value here`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, e := range errs {
		if e.Error() != want[i] {
			t.Errorf("error %d:\ngot  %s\nwant %s", i, e.Error(), want[i])
		}
	}
}

// TestSyntaxErrorPosition: a syntax error is at the line and column at
// fault, not where the enclosing block began (yaml.v3 says line 2 here).
func TestSyntaxErrorPosition(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"name: x\nsteps:\n  - name: a\n    run: b\n\n\n   - name: c\n", "f.yaml:7:4: invalid YAML: did not find expected '-' indicator; check this line's indentation"},
		{"a: 'open\nb: 2\n", "f.yaml:1:4: invalid YAML: could not find end character of single-quoted text; close the quote"},
		{"a:\n\tb: 1\n", "f.yaml:2:1: invalid YAML: a tab in the indentation; YAML indents with spaces only"},
	} {
		d := &yamlfile.Decoder{File: "f.yaml"}
		d.Parse([]byte(tc.src))
		if len(d.Errs) != 1 || !strings.HasPrefix(d.Errs[0].Error(), tc.want) {
			t.Errorf("%q: got %v, want %s…", tc.src, d.Errs, tc.want)
		}
	}
}

// TestAt: a Validate error that starts with a key path is placed at that
// key.
func TestAt(t *testing.T) {
	d := &yamlfile.Decoder{File: "f.yaml"}
	root := d.Parse([]byte("runner:\n  hints:\n    title: [{pattern: x}]\n  workers: 2\n"))
	d.At(root, errors.New("runner: workers: too many"))
	d.At(root, errors.New("runner.hints.title[0]: bad pattern"))
	d.At(root, errors.New("log_level: missing"))
	got := d.Errs.Error()
	want := "f.yaml:4:3: runner: workers: too many\nf.yaml:3:13: runner.hints.title[0]: bad pattern\nf.yaml:1:1: log_level: missing"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestExcerpt: the line, numbered, with a caret under the column.
func TestExcerpt(t *testing.T) {
	e := &yamlfile.Error{File: "f.yaml", Line: 2, Column: 12, Msg: "x"}
	got := e.Excerpt([]byte("runner:\n  workers: four\n"))
	want := " 2 |   workers: four\n   |            ^\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if (&yamlfile.Error{Line: 9}).Excerpt([]byte("a\n")) != "" {
		t.Error("a line past the end should give no excerpt")
	}
}
