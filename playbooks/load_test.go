package playbooks_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/firstlook/firstlook/playbooks"
)

func loadValid(t *testing.T) *playbooks.Set {
	t.Helper()
	set, err := playbooks.Load(filepath.Join("testdata", "valid"))
	if err != nil {
		t.Fatalf("Load(testdata/valid): %v", err)
	}
	return set
}

// loadOne loads a single playbook from YAML text.
func loadOne(t *testing.T, src string) (*playbooks.Playbook, error) {
	t.Helper()
	set, err := playbooks.LoadFS(fstest.MapFS{"p.yaml": {Data: []byte(src)}}, ".")
	if err != nil {
		return nil, err
	}
	return set.All()[0], nil
}

func mustLoadOne(t *testing.T, src string) *playbooks.Playbook {
	t.Helper()
	p, err := loadOne(t, src)
	if err != nil {
		t.Fatalf("load:\n%s\nerror: %v", src, err)
	}
	return p
}

func TestLoadValid(t *testing.T) {
	set := loadValid(t)
	var names []string
	for _, p := range set.All() {
		names = append(names, p.Name)
	}
	want := []string{"disk-full", "fs-findings", "linux-baseline", "linux-memory", "minimal", "service.status_v2"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("All() names = %v, want %v (sorted by name, subdirectories included)", names, want)
	}
	for _, p := range set.All() {
		data, err := os.ReadFile(p.File)
		if err != nil {
			t.Fatalf("read %s: %v", p.File, err)
		}
		sum := sha256.Sum256(data)
		if p.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: SHA256 = %s, want the digest of the file", p.Name, p.SHA256)
		}
		if got, ok := set.Get(p.Name); !ok || got != p {
			t.Errorf("Get(%q) = %v, %v; want the playbook", p.Name, got, ok)
		}
	}
	if _, ok := set.Get("nope"); ok {
		t.Error(`Get("nope") found a playbook`)
	}
}

func TestLoadValidDetails(t *testing.T) {
	set := loadValid(t)
	disk, _ := set.Get("disk-full")
	if disk.File != filepath.Join("testdata", "valid", "disk.yml") {
		t.Errorf("File = %q", disk.File)
	}
	if got, want := disk.Pos, (playbooks.Pos{Line: 1, Column: 1}); got != want {
		t.Errorf("Pos = %v, want %v", got, want)
	}
	m := disk.Match
	if !reflect.DeepEqual(m.Events, []string{"incident.triggered", "incident.escalated"}) ||
		!reflect.DeepEqual(m.Urgency, []string{"high"}) ||
		!reflect.DeepEqual(m.Priority, []string{"P1", "P2"}) ||
		!reflect.DeepEqual(m.Labels, map[string]string{"team": "sre"}) ||
		m.Title == nil || m.Title.String() != "(?i)disk|inode|no space" {
		t.Errorf("Match = %+v", m)
	}
	if want := (playbooks.Targets{Kind: playbooks.TargetGroup, Group: "web", MaxHosts: 3, Concurrency: 2}); !reflect.DeepEqual(disk.Targets, want) {
		t.Errorf("Targets = %+v, want %+v", disk.Targets, want)
	}
	if want := map[string]string{"mount": "/", "lines": "20"}; !reflect.DeepEqual(disk.Params, want) {
		t.Errorf("Params = %v, want %v", disk.Params, want)
	}
	if disk.Timeout != 2*time.Minute || disk.Parallel {
		t.Errorf("Timeout, Parallel = %v, %v", disk.Timeout, disk.Parallel)
	}
	type stepSummary struct {
		Name            string
		Kind            playbooks.StepKind
		Timeout         time.Duration
		Sudo            bool
		MaxOutput       int64
		ContinueOnError bool
		When            *playbooks.When
		Pos             playbooks.Pos
	}
	var got []stepSummary
	for _, s := range disk.Steps {
		got = append(got, stepSummary{s.Name, s.Kind, s.Timeout, s.Sudo, s.MaxOutput, s.ContinueOnError, s.When, s.Pos})
	}
	codes0 := &playbooks.When{Conditions: []playbooks.Condition{{Step: "df", ExitCodes: []int{0}}}}
	want := []stepSummary{
		{"df", playbooks.Run, 30 * time.Second, false, 0, true, nil, playbooks.Pos{Line: 18, Column: 5}},
		{"inodes", playbooks.Run, 30 * time.Second, false, 0, false, codes0, playbooks.Pos{Line: 21, Column: 5}},
		{"biggest dirs", playbooks.Run, time.Minute, true, 256 << 10, false, codes0, playbooks.Pos{Line: 24, Column: 5}},
		{"deleted but open", playbooks.Script, 30 * time.Second, true, 0, false,
			&playbooks.When{Conditions: []playbooks.Condition{{Step: "df", Failed: false}}}, playbooks.Pos{Line: 30, Column: 5}},
		{"df failed", playbooks.Run, 30 * time.Second, false, 0, false,
			&playbooks.When{Conditions: []playbooks.Condition{{Step: "df", Failed: true}}}, playbooks.Pos{Line: 41, Column: 5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("steps:\ngot  %+v\nwant %+v", got, want)
	}

	base, _ := set.Get("linux-baseline")
	if base.Timeout != 90*time.Second {
		t.Errorf("linux-baseline Timeout = %v", base.Timeout)
	}
	if want := (playbooks.Targets{Kind: playbooks.TargetIncident, MaxHosts: playbooks.DefaultMaxHosts, Concurrency: playbooks.DefaultConcurrency}); !reflect.DeepEqual(base.Targets, want) {
		t.Errorf("linux-baseline Targets = %+v, want %+v", base.Targets, want)
	}
	fetch := base.Steps[3]
	if fetch.Kind != playbooks.Fetch || fetch.MaxBytes != 1<<20 || fetch.MaxOutput != 1<<20 || fetch.Source != "/var/log/nginx/error.log" {
		t.Errorf("fetch step = %+v", fetch)
	}
	if s := base.Steps[2]; s.Timeout != 10*time.Second || !reflect.DeepEqual(s.Params, map[string]string{"unit": "nginx"}) {
		t.Errorf("service log step = %+v", s)
	}

	svc, _ := set.Get("service.status_v2")
	if want := (playbooks.Targets{Kind: playbooks.TargetSelector, Selector: map[string]string{"role": "api", "env": "prod"}, MaxHosts: 20, Concurrency: playbooks.DefaultConcurrency}); !reflect.DeepEqual(svc.Targets, want) {
		t.Errorf("service Targets = %+v, want %+v", svc.Targets, want)
	}
	if !svc.Parallel || svc.Steps[0].MaxOutput != 65536 || svc.Steps[3].MaxBytes != 512<<10 {
		t.Errorf("service = %+v", svc)
	}

	min, _ := set.Get("minimal")
	if min.Timeout != playbooks.DefaultTimeout || !reflect.DeepEqual(min.Match.Events, []string{playbooks.DefaultEvent}) ||
		min.Steps[0].Timeout != playbooks.DefaultStepTimeout || min.Targets.Kind != playbooks.TargetIncident {
		t.Errorf("minimal defaults = %+v", min)
	}
}

func TestLoadDefaultsAndForms(t *testing.T) {
	tests := []struct {
		name  string
		src   string
		check func(t *testing.T, p *playbooks.Playbook)
	}{
		{"step timeout defaults to at most the playbook's", "name: x\ntimeout: 10s\nsteps: [{name: a, run: uptime}]\n",
			func(t *testing.T, p *playbooks.Playbook) {
				if p.Steps[0].Timeout != 10*time.Second {
					t.Errorf("step timeout = %v, want 10s", p.Steps[0].Timeout)
				}
			}},
		{"string list as one string", "name: x\nmatch: {events: incident.resolved, services: web}\nsteps: [{name: a, run: uptime}]\n",
			func(t *testing.T, p *playbooks.Playbook) {
				if !reflect.DeepEqual(p.Match.Events, []string{"incident.resolved"}) || !reflect.DeepEqual(p.Match.Services, []string{"web"}) {
					t.Errorf("Match = %+v", p.Match)
				}
			}},
		{"targets mapping without a kind is the incident", "name: x\ntargets: {max_hosts: 2}\nsteps: [{name: a, run: uptime}]\n",
			func(t *testing.T, p *playbooks.Playbook) {
				if p.Targets.Kind != playbooks.TargetIncident || p.Targets.MaxHosts != 2 {
					t.Errorf("Targets = %+v", p.Targets)
				}
			}},
		{"hosts: incident", "name: x\ntargets: {hosts: incident, concurrency: 1}\nsteps: [{name: a, run: uptime}]\n",
			func(t *testing.T, p *playbooks.Playbook) {
				if p.Targets.Kind != playbooks.TargetIncident || p.Targets.Concurrency != 1 {
					t.Errorf("Targets = %+v", p.Targets)
				}
			}},
		{"sizes", "name: x\nsteps:\n- {name: a, run: uptime, max_output: 1000}\n- {name: b, run: uptime, max_output: 2KB}\n- {name: c, fetch: /x, max_bytes: 3 KiB}\n- {name: d, fetch: /x, max_bytes: 1mib}\n- {name: e, run: uptime, max_output: 7B}\n",
			func(t *testing.T, p *playbooks.Playbook) {
				got := []int64{p.Steps[0].MaxOutput, p.Steps[1].MaxOutput, p.Steps[2].MaxBytes, p.Steps[3].MaxBytes, p.Steps[4].MaxOutput}
				if want := []int64{1000, 2000, 3072, 1 << 20, 7}; !reflect.DeepEqual(got, want) {
					t.Errorf("sizes = %v, want %v", got, want)
				}
			}},
		{"when list and exit code list", "name: x\nsteps:\n- {name: a, run: df}\n- {name: b, run: df}\n- name: c\n  run: uptime\n  when: [{step: a, exit_code: [1, 2]}, {step: b, failed: true}]\n",
			func(t *testing.T, p *playbooks.Playbook) {
				want := &playbooks.When{Conditions: []playbooks.Condition{{Step: "a", ExitCodes: []int{1, 2}}, {Step: "b", Failed: true}}}
				if !reflect.DeepEqual(p.Steps[2].When, want) {
					t.Errorf("When = %+v, want %+v", p.Steps[2].When, want)
				}
			}},
		{"anchors and aliases", "name: x\nparams: &p {unit: nginx}\nsteps:\n- {name: a, run: 'systemctl status {{ .Params.unit }}', params: *p}\n",
			func(t *testing.T, p *playbooks.Playbook) {
				if p.Steps[0].Params["unit"] != "nginx" {
					t.Errorf("step params = %v", p.Steps[0].Params)
				}
			}},
		{"scalar params keep their text", "name: x\nparams: {n: 010, b: true, f: 1.50}\nsteps: [{name: a, run: uptime}]\n",
			func(t *testing.T, p *playbooks.Playbook) {
				if want := map[string]string{"n": "010", "b": "true", "f": "1.50"}; !reflect.DeepEqual(p.Params, want) {
					t.Errorf("Params = %v, want %v", p.Params, want)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, mustLoadOne(t, tc.src))
		})
	}
}

func TestLoadFS(t *testing.T) {
	ok := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("name: " + name + "\nsteps: [{name: a, run: uptime}]\n")}
	}
	fsys := fstest.MapFS{
		"library/a.yaml":         ok("a"),
		"library/deep/b.yml":     ok("b"),
		"library/README.md":      {Data: []byte("# not a playbook")},
		"library/.hidden.yaml":   {Data: []byte("garbage: [")},
		"library/.git/c.yaml":    {Data: []byte("garbage: [")},
		"library/notes.txt.yaml": ok("c"),
		"other/d.yaml":           ok("d"),
		"empty/README":           {Data: []byte("nothing")},
	}
	set, err := playbooks.LoadFS(fsys, "library")
	if err != nil {
		t.Fatalf("LoadFS: %v", err)
	}
	var got []string
	for _, p := range set.All() {
		got = append(got, p.Name+"="+p.File)
	}
	want := []string{"a=library/a.yaml", "b=library/deep/b.yml", "c=library/notes.txt.yaml"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadFS(library) = %v, want %v", got, want)
	}

	set, err = playbooks.LoadFS(fsys, "other/d.yaml")
	if err != nil || len(set.All()) != 1 {
		t.Errorf("LoadFS(a file) = %v, %v", set, err)
	}

	for root, wantErr := range map[string]string{
		"missing": "missing: read playbooks: file does not exist",
		"empty":   "empty: no playbooks here: looked for *.yaml and *.yml files",
	} {
		if _, err := playbooks.LoadFS(fsys, root); err == nil || err.Error() != wantErr {
			t.Errorf("LoadFS(%s) error = %v, want %q", root, err, wantErr)
		}
	}
}

func TestLoadPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.txt"), []byte("name: x\nsteps: [{name: a, run: uptime}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file named explicitly is read whatever its extension.
	set, err := playbooks.Load(filepath.Join(dir, "x.txt"), filepath.Join("testdata", "valid", "minimal.yaml"), filepath.Join("testdata", "valid", "minimal.yaml"))
	if err != nil || len(set.All()) != 2 {
		t.Fatalf("Load(files) = %v, %v; want 2 playbooks (duplicate paths read once)", set, err)
	}

	_, err = playbooks.Load(filepath.Join(dir, "nope"), dir)
	var list playbooks.ErrorList
	if !errors.As(err, &list) || len(list) != 2 {
		t.Fatalf("Load(missing, dir without playbooks) = %v, want 2 errors", err)
	}
	if !strings.Contains(err.Error(), "nope: read playbooks: no such file or directory") ||
		!strings.Contains(err.Error(), dir+": no playbooks here") {
		t.Errorf("error = %v", err)
	}

	if _, err := playbooks.Load(); err == nil {
		t.Error("Load() with no paths succeeded")
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("name: x\n"+strings.Repeat("#", 2<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := playbooks.Load(big); err == nil || !strings.Contains(err.Error(), "larger than 1024 KiB") {
		t.Errorf("Load(2 MiB file) error = %v", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  playbooks.Error
		want string
	}{
		{playbooks.Error{File: "a.yaml", Line: 3, Column: 5, Msg: "m"}, "a.yaml:3:5: m"},
		{playbooks.Error{File: "a.yaml", Line: 3, Msg: "m"}, "a.yaml:3: m"},
		{playbooks.Error{File: "a.yaml", Msg: "m"}, "a.yaml: m"},
		{playbooks.Error{Msg: "m"}, "m"},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	list := playbooks.ErrorList{&tests[0].err, &tests[1].err}
	if got, want := list.Error(), "a.yaml:3:5: m\na.yaml:3: m"; got != want {
		t.Errorf("ErrorList.Error() = %q, want %q", got, want)
	}
}

func fstestFS(src string) fstest.MapFS {
	return fstest.MapFS{"p.yaml": {Data: []byte(src)}}
}

// Errors inside a step's text point at the template, whatever the YAML
// style of the string.
func TestTemplateErrorPositions(t *testing.T) {
	const bad = "{{ .Nope }}"
	tests := []struct {
		name, step string
		want       string // line:column
	}{
		{"plain", "run: echo a " + bad, "4:17"},
		{"single quoted", "run: 'echo ''a'' " + bad + "'", "4:22"},
		{"double quoted with escapes", `run: "echo \"a\" \u00e9 \x41 ` + bad + `"`, "4:34"},
		{"literal block", "script: |\n      uptime\n      echo " + bad, "6:12"},
		{"literal block, more indented line", "script: |\n      if true; then\n        echo " + bad + "\n      fi", "6:14"},
		{"folded block", "run: >\n      echo a\n      " + bad, "6:7"},
		{"plain on two lines", "run: echo a\n      b " + bad, "5:9"},
		{"flow mapping", `{run: "echo ` + bad + `"}`, "5:26"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "name: x\nsteps:\n  - name: s\n    " + tc.step + "\n"
			if strings.HasPrefix(tc.step, "{") {
				src = "name: x\nsteps:\n  - name: s\n    run: uptime\n  - {name: t, " + strings.TrimPrefix(tc.step, "{") + "\n"
			}
			_, err := loadOne(t, src)
			var list playbooks.ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("error = %v, want one", err)
			}
			got := list[0]
			if pos := fmt.Sprintf("%d:%d", got.Line, got.Column); pos != tc.want || !strings.Contains(got.Msg, "unknown field .Nope") {
				t.Errorf("got %s: %s\nwant %s: unknown field .Nope\n%s", pos, got.Msg, tc.want, src)
			}
		})
	}
}
