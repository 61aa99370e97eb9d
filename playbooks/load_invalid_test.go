package playbooks_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/playbooks"
)

// invalidCases is one file in testdata/invalid per way a playbook can be
// wrong, with every error Load must report for it: "line:column: start of
// the message" (0:0 when the position is unknown).
var invalidCases = []struct {
	file string
	want []string
}{
	{"bad-name.yaml", []string{"1:7: name: \"Linux Baseline\" is not a valid name"}},
	{"bool-yes.yaml", []string{"5:11: steps[0].sudo: want true or false, got the string \"yes\""}},
	{"concurrency-zero.yaml", []string{"4:16: targets.concurrency: 0 is out of range"}},
	{"duplicate-key.yaml", []string{"3:1: duplicate key \"timeout\" (first at line 2)"}},
	{"empty-steps.yaml", []string{"2:8: steps: a playbook needs at least one step"}},
	{"empty.yaml", []string{"0:0: empty file: a playbook needs at least name and steps"}},
	{"fetch-glob.yaml", []string{"4:27: steps[0].fetch: a fetch path is taken literally, so globs do not work"}},
	{"fetch-relative.yaml", []string{"4:12: steps[0].fetch: fetch needs an absolute path, starting with /: the login directory differs"}},
	{"many-errors.yaml", []string{"1:7: name: \"Bad Name\" is not a valid name", "2:10: timeout: must be more than 0, got 0s", "5:5: steps[0]: unknown key \"comand\"", "7:16: steps[1].run: parameter \"x\" has no default", "8:18: steps[1].when: unknown step \"zz\""}},
	{"match-bad-regexp.yaml", []string{"3:10: match.title: invalid regular expression: missing closing ): `(disk|cpu` (Go RE2 syntax: ht"}},
	{"match-empty-labels.yaml", []string{"3:11: match.labels: an empty mapping matches anything"}},
	{"match-empty-list.yaml", []string{"3:13: match.services: an empty list matches nothing"}},
	{"match-wrong-type.yaml", []string{"3:11: match.events: want a list of strings, got a mapping"}},
	{"max-bytes-on-run.yaml", []string{"5:5: steps[0]: max_bytes is for fetch steps"}},
	{"max-hosts-zero.yaml", []string{"4:14: targets.max_hosts: 0 is out of range"}},
	{"max-output-on-fetch.yaml", []string{"5:5: steps[0]: a fetch step keeps max_bytes of the file"}},
	{"merge-key.yaml", []string{"4:5: steps[1]: merge keys (<<) are not supported"}},
	{"missing-name.yaml", []string{"1:1: missing name: give the playbook a unique name, e.g. name: missing-name"}},
	{"missing-steps.yaml", []string{"1:1: missing steps: a playbook needs at least one step, e.g. steps: [{name: load, run: uptime}]"}},
	{"not-a-mapping.yaml", []string{"1:1: want a mapping with keys name, description, match, targets, params, timeout, parallel, ste"}},
	{"nul-in-run.yaml", []string{"4:10: steps[0].run: contains a NUL byte, which no shell argument can carry"}},
	{"parallel-when.yaml", []string{"7:5: steps[1]: when has no meaning in a parallel playbook, whose steps all run at once"}},
	{"params-bad-name.yaml", []string{"3:3: params: \"my-unit\" is not a usable parameter name: templates read params as {{ .Params.name"}},
	{"params-null.yaml", []string{"3:8: params.unit: needs a value (write \"\" for an empty string)"}},
	{"script-bash-only.yaml", []string{"6:7: steps[0].script: shell syntax (sh): [[ … ]] is bash"}},
	{"shell-syntax-block.yaml", []string{"7:7: steps[0].script: shell syntax (sh): `done` can only be used to end a loop"}},
	{"shell-syntax.yaml", []string{"5:15: steps[0].run: shell syntax: reached EOF without closing quote `'`"}},
	{"size-not-size.yaml", []string{"5:16: steps[0].max_bytes: unknown size unit \"megabyte\" in \"1 megabyte\""}},
	{"size-too-big.yaml", []string{"5:16: steps[0].max_bytes: 100MiB is more than the 64 MiB allowed"}},
	{"size-unit.yaml", []string{"5:16: steps[0].max_bytes: unknown size unit \"TiB\" in \"1TiB\""}},
	{"size-zero.yaml", []string{"5:17: steps[0].max_output: must be at least 1 byte, got 0"}},
	{"step-duplicate-name.yaml", []string{"5:11: steps[1].name: duplicate step name \"a\" (first at line 3)"}},
	{"step-empty-run.yaml", []string{"4:10: steps[0].run: must not be empty"}},
	{"step-missing-name.yaml", []string{"3:5: steps[0]: missing name: every step needs a name, unique in the playbook"}},
	{"step-no-action.yaml", []string{"3:5: steps[0]: a step needs one of run (a command), script (a sh script) or fetch (a file's tai"}},
	{"step-not-mapping.yaml", []string{"3:5: steps[0]: want a mapping with keys name, run, script, fetch, timeout, sudo, max_output, ma"}},
	{"step-timeout-exceeds.yaml", []string{"6:14: steps[0].timeout: 2m is longer than the playbook's timeout (1m), which would cut the step "}},
	{"step-two-actions.yaml", []string{"5:5: steps[0]: give exactly one of run, script or fetch, not run and script"}},
	{"sudo-not-posix.yaml", []string{"4:15: steps[0].run: shell syntax (sh): `<` must be followed by a word"}},
	{"tab-indent.yaml", []string{"3:1: invalid YAML: a tab in the indentation"}},
	{"targets-empty-selector.yaml", []string{"3:13: targets.selector: an empty selector would select every host"}},
	{"targets-hosts.yaml", []string{"3:10: targets.hosts: only \"incident\" is supported"}},
	{"targets-shorthand.yaml", []string{"2:10: targets: unknown shorthand \"web\""}},
	{"targets-two-kinds.yaml", []string{"4:3: targets: give one of hosts, group or selector, not group and selector"}},
	{"template-arithmetic-cmdsubst.yaml", []string{"4:26: steps[0].run: template in arithmetic ($((…)), ((…)), let, an array index, [[ … -eq … ]]): "}},
	{"template-arithmetic.yaml", []string{"5:19: steps[0].run: template in arithmetic ($((…)), ((…)), let, an array index, [[ … -eq … ]]): "}},
	{"template-backquotes.yaml", []string{"5:36: steps[0].run: template inside backquotes `…`: backslashes and backquotes in the value woul"}},
	{"template-backslash.yaml", []string{"5:16: steps[0].run: template right after a backslash: the backslash would escape the value's ope"}},
	{"template-command-after-sudo.yaml", []string{"5:23: steps[0].run: template as the command name: the value would choose which program runs"}},
	{"template-command-after-timeout.yaml", []string{"4:28: steps[0].run: template as the command name: the value would choose which program runs"}},
	{"template-command-cmdsubst.yaml", []string{"5:17: steps[0].run: template as the command name: the value would choose which program runs"}},
	{"template-command-name.yaml", []string{"5:11: steps[0].run: template as the command name: the value would choose which program runs"}},
	{"template-comment.yaml", []string{"7:15: steps[0].script: template inside a shell comment: a newline in the value would end the com"}},
	{"template-declare-int.yaml", []string{"5:24: steps[0].run: template assigned to a variable in a script that declares integer or nameref"}},
	{"template-define.yaml", []string{"4:10: steps[0].run: {{ define }} and {{ block }} are not allowed: a step is one command with pla"}},
	{"template-dot.yaml", []string{"4:15: steps[0].run: {{ . }} is all of the data: name a field, e.g. {{ .Host.Name }}"}},
	{"template-double-quotes.yaml", []string{"5:28: steps[0].run: template inside double quotes: the value's quotes would be literal and $, ` "}},
	{"template-eval-cmdsubst.yaml", []string{"4:23: steps[0].run: template in the arguments of eval, which runs them as shell code or uses the"}},
	{"template-eval.yaml", []string{"5:15: steps[0].run: template in the arguments of eval, which runs them as shell code or uses the"}},
	{"template-find-exec.yaml", []string{"5:34: steps[0].run: template as the command name: the value would choose which program runs"}},
	{"template-group-field.yaml", []string{"4:20: steps[0].run: .Incident is a group of fields"}},
	{"template-heredoc-delimiter.yaml", []string{"6:11: steps[0].script: shell syntax (sh): unclosed here-document `{{ … }}`"}},
	{"template-heredoc.yaml", []string{"7:12: steps[0].script: template inside a here-document: its text is not re-quoted, so $(…) in th"}},
	{"template-if.yaml", []string{"4:15: steps[0].run: {{ if }} is not allowed: only plain fields like {{ .Params.unit }} are allow"}},
	{"template-index.yaml", []string{"4:15: steps[0].run: function \"index\" is not allowed: functions such as printf, slice or index co"}},
	{"template-lowercase-field.yaml", []string{"4:20: steps[0].run: unknown field .incident.title"}},
	{"template-only-comment.yaml", []string{"4:11: steps[0].run: nothing is left once the template comments are removed"}},
	{"template-param-expansion.yaml", []string{"5:23: steps[0].run: template inside a parameter expansion ${…}: quoting does not hold there"}},
	{"template-param-other-step.yaml", []string{"7:27: steps[1].run: parameter \"unit\" has no default"}},
	{"template-parse-error.yaml", []string{"5:10: steps[0].run: template: unclosed action"}},
	{"template-pipeline.yaml", []string{"5:15: steps[0].run: pipelines ({{ .X | f }}) are not allowed: functions could cut a quoted value"}},
	{"template-printf.yaml", []string{"5:15: steps[0].run: function \"printf\" is not allowed: functions such as printf, slice or index c"}},
	{"template-range.yaml", []string{"4:15: steps[0].run: {{ range }} is not allowed: only plain fields like {{ .Params.unit }} are al"}},
	{"template-sh-c.yaml", []string{"4:16: steps[0].run: template in the arguments of sh, which runs them as shell code or uses them "}},
	{"template-single-quotes.yaml", []string{"5:20: steps[0].run: template inside single quotes: the value's own quoting would end them"}},
	{"template-slice.yaml", []string{"4:15: steps[0].run: function \"slice\" is not allowed: functions such as printf, slice or index co"}},
	{"template-test-v.yaml", []string{"5:17: steps[0].run: template in [[ -v … ]] or [[ -R … ]]: bash evaluates array subscripts in var"}},
	{"template-undeclared-param.yaml", []string{"5:27: steps[0].run: parameter \"unti\" has no default"}},
	{"template-unknown-field.yaml", []string{"4:20: steps[0].run: unknown field .Incident.Titel"}},
	{"template-var-name.yaml", []string{"5:11: steps[0].run: template as a name (of a variable, function, loop variable or file descripto"}},
	{"template-variable.yaml", []string{"5:15: steps[0].run: template variables ($x := …) are not allowed: only plain fields like {{ .Par", "5:39: steps[0].run: template variables ($) are not allowed: only plain fields like {{ .Params.un"}},
	{"template-with.yaml", []string{"4:15: steps[0].run: {{ with }} is not allowed: only plain fields like {{ .Params.unit }} are all"}},
	{"timeout-negative.yaml", []string{"3:37: steps[0].timeout: must be more than 0, got -5s"}},
	{"timeout-no-unit.yaml", []string{"2:10: timeout: 30 needs a unit: write 30s for seconds or 30m for minutes"}},
	{"timeout-not-duration.yaml", []string{"2:10: timeout: \"5 minutes\" is not a duration"}},
	{"timeout-too-long.yaml", []string{"2:10: timeout: 2h is longer than the 1h allowed"}},
	{"timeout-zero.yaml", []string{"2:10: timeout: must be more than 0, got 0s"}},
	{"two-documents.yaml", []string{"5:1: a second YAML document: put one playbook per file"}},
	{"unknown-key.yaml", []string{"2:1: unknown key \"descripton\""}},
	{"unknown-targets-key.yaml", []string{"4:3: targets: unknown key \"maxhosts\"; did you mean \"max_hosts\"? valid keys: hosts, group, selector, max_hosts, concurrency"}},
	{"unknown-when-key.yaml", []string{"6:21: steps[1].when: unknown key \"exitcode\"; did you mean \"exit_code\"? valid keys: step, exit_code, failed, finding, severity"}},
	{"unknown-match-key.yaml", []string{"3:3: match: unknown key \"service\""}},
	{"unknown-step-key-hint.yaml", []string{"4:5: steps[0]: unknown key \"cmd\""}},
	{"unknown-step-key.yaml", []string{"4:5: steps[0]: unknown key \"comand\""}},
	{"untrusted-assign.yaml", []string{"4:15: steps[0].run: alert text (.Labels.unit) cannot be assigned to a variable: a variable can r"}},
	{"untrusted-awk.yaml", []string{"4:14: steps[0].run: alert text (.Labels.prog) in the arguments of awk, which can run code found "}},
	{"untrusted-env-assign.yaml", []string{"4:25: steps[0].run: alert text (.Labels.lib) cannot be assigned to a variable: a variable can re"}},
	{"untrusted-for.yaml", []string{"5:16: steps[0].script: alert text (.Labels.unit) as a for-loop item: the loop variable would car"}},
	{"untrusted-redirect.yaml", []string{"4:24: steps[0].run: alert text (.Labels.file) as the target of an output redirection: it would c"}},
	{"finding-bad-capture.yaml", []string{
		"7:16: steps[0].findings[0].value: \"pct\" is not a named capture of the pattern; the pattern captures: mount, use",
		"11:18: steps[0].findings[0].message: map has no entry for key \"avail\"; the pattern captures: mount, use (and .threshold)",
	}},
	{"finding-threshold.yaml", []string{
		"10:23: steps[0].findings[0].above.warn: param \"warn_pct\" has the default \"high\", which is not a number",
		"10:39: steps[0].findings[0].above.crit: unknown param \"crit_pc\"; did you mean \"crit_pct\"? declare it under params",
	}},
	{"finding-kinds.yaml", []string{
		"6:9: steps[0].findings[0]: give exactly one of severity, above or below",
		"11:9: steps[0].findings[1]: above and below compare a value: add value: <a named capture of the pattern>",
		"16:18: steps[0].findings[2].pattern: invalid regular expression: missing closing ): `(x`",
	}},
	{"when-finding.yaml", []string{
		"10:18: steps[1].when: step \"df\" declares no finding \"ful\"; did you mean \"full\"? its findings: full",
		"13:36: steps[2].when: severity goes with finding: {step: df, finding: <name>, severity: crit}",
	}},
	{"when-both.yaml", []string{"6:11: steps[1].when: give exactly one of exit_code, failed or finding"}},
	{"when-exit-code-range.yaml", []string{"6:36: steps[1].when.exit_code: 256 is out of range"}},
	{"when-later-step.yaml", []string{"5:18: steps[0].when: step \"b\" comes later"}},
	{"when-neither.yaml", []string{"6:11: steps[1].when: give one of exit_code, failed or finding, e.g. {step: a, exit_code: 0}"}},
	{"when-self.yaml", []string{"5:18: steps[0].when: step \"a\" refers to itself"}},
	{"when-unknown-step.yaml", []string{"6:18: steps[1].when: unknown step \"fd\""}},
	{"yaml-syntax.yaml", []string{"5:4: invalid YAML: did not find expected '-' indicator; check this line's indentation"}},
}

func TestLoadInvalid(t *testing.T) {
	for _, tc := range invalidCases {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "invalid", tc.file)
			set, err := playbooks.Load(path)
			if set != nil {
				t.Errorf("Load(%s) returned a set, want none", path)
			}
			var list playbooks.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load(%s) error = %v (%T), want an ErrorList", path, err, err)
			}
			var got []string
			for _, e := range list {
				if e.File != path {
					t.Errorf("error file = %q, want %q", e.File, path)
				}
				got = append(got, fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("error %d:\ngot  %s\nwant %s…", i, got[i], tc.want[i])
				}
			}
			// The printed form is what `firstlook validate` shows.
			if first := list[0].Error(); !strings.HasPrefix(first, path+":") {
				t.Errorf("Error() = %q, want it to start with %q", first, path+":")
			}
		})
	}
}

// Every file in testdata/invalid has a case, and every case a file.
func TestInvalidCasesCoverTestdata(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "invalid", "*"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]bool{}
	for _, tc := range invalidCases {
		if cases[tc.file] {
			t.Errorf("case %s is listed twice", tc.file)
		}
		cases[tc.file] = true
	}
	for _, f := range files {
		if !cases[filepath.Base(f)] {
			t.Errorf("%s has no case in invalidCases", f)
		}
		delete(cases, filepath.Base(f))
	}
	for f := range cases {
		t.Errorf("case %s has no file in testdata/invalid", f)
	}
}

// Load reports the errors of every file at once, one per line, sorted.
func TestLoadCollectsEveryFile(t *testing.T) {
	_, err := playbooks.Load(filepath.Join("testdata", "invalid"))
	var list playbooks.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load error = %v, want an ErrorList", err)
	}
	files := map[string]bool{}
	for _, e := range list {
		files[e.File] = true
	}
	if len(files) != len(invalidCases) {
		t.Errorf("errors name %d files, want %d", len(files), len(invalidCases))
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(list) {
		t.Errorf("Error() has %d lines, want one per error (%d)", len(lines), len(list))
	}
	if !sort.SliceIsSorted(list, func(i, j int) bool {
		if list[i].File != list[j].File {
			return list[i].File < list[j].File
		}
		return list[i].Line < list[j].Line
	}) {
		t.Error("errors are not sorted by file and line")
	}
	if !errors.Is(err, list[0]) {
		t.Error("errors.Is(err, first error) = false, want true")
	}
}

func TestLoadDuplicateNames(t *testing.T) {
	_, err := playbooks.Load(filepath.Join("testdata", "duplicate"))
	want := filepath.Join("testdata", "duplicate", "sub", "b.yml") + `:2:7: name: playbook "same" is already defined in ` +
		filepath.Join("testdata", "duplicate", "a.yaml") + ":1:7; names must be unique"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
