package playbooks_test

import (
	"strings"
	"testing"
)

// placementYAML is a playbook with one step whose command is line.
func placementYAML(kind, line string, sudo bool) string {
	var b strings.Builder
	b.WriteString("name: x\nparams: {p: v, n: '1', v: X, unit: nginx, user: ops, units: a b, tool: t, f: f, out: o, db: d, dir: /}\nsteps:\n  - name: s\n")
	if sudo {
		b.WriteString("    sudo: true\n")
	}
	b.WriteString("    " + kind + ": |-\n")
	for _, l := range strings.Split(line, "\n") {
		b.WriteString("      " + l + "\n")
	}
	return b.String()
}

// Templates where a quoted word means exactly the value must load: the
// checks must not get in the way of what a responder types.
func TestPlacementAllowed(t *testing.T) {
	lines := []string{
		"journalctl -u {{ .Params.unit }} --since -15min --no-pager | tail -n 200",
		"ls -l /var/log/{{ .Params.unit }}.log",
		"journalctl --since={{ .Params.p }} -u {{ .Labels.unit }}",
		`echo "$(systemctl is-active {{ .Params.unit }})"`,
		`x=$(systemctl is-active {{ .Params.unit }}); echo "$x"`,
		"UNIT={{ .Params.unit }} systemctl status",
		"case {{ .Labels.env }} in prod) echo p;; esac",
		"[[ {{ .Labels.env }} == prod ]] && echo p",
		"[ {{ .Labels.env }} = prod ] && echo p",
		"timeout 10 journalctl -u {{ .Labels.unit }}",
		"timeout -k 5 10s nice -n 5 journalctl -u {{ .Labels.unit }}",
		"sudo -u {{ .Params.user }} id",
		`sh -c 'printf %s "$1"' sh {{ .Labels.x }}`,
		`bash -ec 'echo "$1"' -- {{ .Incident.Title }}`,
		"sh -s -- {{ .Incident.Title }} < /dev/null",
		`printf '%s\n' {{ .Incident.Title }} | awk '{print length($0)}'`,
		"awk -v unit={{ .Params.unit }} '$1 == unit' /etc/passwd",
		"cat <<< {{ .Labels.x }}",
		"wc -l < /var/log/{{ .Labels.unit }}.log",
		"find /var/log -name {{ .Labels.pattern }} -mmin -60",
		"find /var/log -name x -exec ls -l {{ .Params.p }} {} +",
		"env FOO={{ .Params.p }} printenv FOO",
		`for u in {{ .Params.units }}; do echo "$u"; done`,
		`echo {{ "{{" }} {{ "}}" }}`,
		"test -f /etc/{{ .Params.f }} && echo yes",
		"echo {{ .Host.Name }} > /tmp/{{ .Params.out }}",
		"diff <(ls {{ .Params.dir }}) <(ls /)",
		"command -v {{ .Params.tool }}",
		"xargs -n 1 echo < /tmp/{{ .Params.f }}",
		`f() { echo "$1"; }; f {{ .Labels.x }}`,
		`f() { local x={{ .Params.p }}; echo "$x"; }; f`,
		"psql -c 'select 1' -- {{ .Params.db }}",
		"journalctl \\\n  -u {{ .Params.unit }} \\\n  -n 100",
		"echo ${HOME} {{ .Params.p }}",
		"nice -n 10 du -sh {{ .Params.dir }}",
		"kubectl logs {{ .Labels.pod }} --tail=100",
		"ps -o pid= -p {{ .Labels.pid }} || echo gone",
		"if grep -q -- {{ .Labels.x }} /etc/hosts; then echo yes; else echo no; fi",
		"echo ~{{ .Params.user }}",
		"systemctl status -- {{ .Params.unit }}{{ .Labels.suffix }}",
		"echo FLTPL0Z FLTPLQ1Z {{ .Params.p }} FLTPLQQ", // looks like firstlook's placeholders
	}
	for _, line := range lines {
		t.Run(line, func(t *testing.T) {
			if _, err := loadOne(t, placementYAML("run", line, false)); err != nil {
				t.Errorf("run %q: %v", line, err)
			}
		})
	}
	scripts := []string{
		"set -eu\nunit={{ .Params.unit }}\nsystemctl status -- \"$unit\"\njournalctl -u \"$unit\" -n 50",
		"if [ -f /etc/{{ .Params.f }} ]; then\n  cat /etc/{{ .Params.f }}\nfi",
		"for f in /var/log/*.log; do\n  tail -n 5 \"$f\"\ndone\necho {{ .Incident.ID }}",
	}
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			if _, err := loadOne(t, placementYAML("script", s, false)); err != nil {
				t.Errorf("script %q: %v", s, err)
			}
			if _, err := loadOne(t, placementYAML("run", s, true)); err != nil {
				t.Errorf("sudo run %q: %v", s, err)
			}
		})
	}
}

// Templates where quoting would not hold, or where the value would run as
// code, are load errors that say why.
func TestPlacementRejected(t *testing.T) {
	tests := []struct{ line, want string }{
		{`echo "{{ .Params.p }}"`, "template inside double quotes"},
		{`echo "prefix {{ .Params.p }} suffix"`, "template inside double quotes"},
		{`echo "$(echo "{{ .Params.p }}")"`, "template inside double quotes"},
		{`echo '{{ .Params.p }}'`, "template inside single quotes"},
		{`echo $'{{ .Params.p }}'`, "template inside single quotes"},
		{`echo ${x:-{{ .Params.p }}}`, "template inside a parameter expansion"},
		{`echo $(( {{ .Params.n }} ))`, "template in arithmetic"},
		{`(( {{ .Params.n }} > 1 ))`, "template in arithmetic"},
		{`let x={{ .Params.n }}`, "template in arithmetic"},
		{`a[{{ .Params.n }}]=1`, "template in arithmetic"},
		{`echo ${a[{{ .Params.n }}]}`, "template in arithmetic"},
		{`echo ${a:{{ .Params.n }}}`, "template in arithmetic"},
		{`for (( i={{ .Params.n }}; i<3; i++ )); do :; done`, "template in arithmetic"},
		{`[[ {{ .Params.n }} -gt 1 ]]`, "template in arithmetic"},
		{`[[ $(echo {{ .Labels.n }}) -eq 1 ]]`, "template in arithmetic"},
		{`[[ -v {{ .Params.v }} ]]`, "template in [[ -v"},
		{`test -v {{ .Params.v }}`, "template in the arguments of test"},
		{`printf -v {{ .Params.v }} x`, "template in the arguments of printf"},
		{`read {{ .Params.v }} < /dev/null`, "template in the arguments of read"},
		{`unset {{ .Params.v }}`, "template in the arguments of unset"},
		{`export {{ .Params.v }}`, "template as a name"},
		{`export {{ .Params.v }}-x`, "template as an argument of export"},
		{`declare -n r={{ .Params.v }}`, "integer or nameref"},
		{"echo `echo {{ .Params.p }}`", "template inside backquotes"},
		{"echo `echo $(echo {{ .Params.p }})`", "template inside backquotes"},
		{"cat <<EOF\n{{ .Params.p }}\nEOF", "template inside a here-document"},
		{"cat <<EOF\n$(echo {{ .Params.p }})\nEOF", "template inside a here-document"},
		{"cat <<'EOF'\n{{ .Params.p }}\nEOF", "template inside a here-document"},
		{`echo x # {{ .Params.p }}`, "template inside a shell comment"},
		{`echo \{{ .Params.p }}`, "template right after a backslash"},
		{`{{ .Params.p }}`, "template as the command name"},
		{`x{{ .Params.p }} arg`, "template as the command name"},
		{`$(echo {{ .Params.p }}) arg`, "template as the command name"},
		{`echo | {{ .Params.p }}`, "template as the command name"},
		{`sudo {{ .Params.p }}`, "template as the command name"},
		{`sudo -u root -- {{ .Params.p }}`, "template as the command name"},
		{`env A=1 {{ .Params.p }}`, "template as the command name"},
		{`nohup {{ .Params.p }} &`, "template as the command name"},
		{`timeout 5 {{ .Params.p }}`, "template as the command name"},
		{`/usr/bin/timeout -s KILL 5 {{ .Params.p }}`, "template as the command name"},
		{`xargs -I{} {{ .Params.p }} < /dev/null`, "template as the command name"},
		{`find . -exec {{ .Params.p }} \;`, "template as the command name"},
		{`find . -name x -execdir sh -c {{ .Params.p }} \;`, "template in the arguments of sh"},
		{`exec {{ .Params.p }}`, "template as the command name"},
		{`command {{ .Params.p }}`, "template as the command name"},
		{`sudo -s {{ .Params.p }}`, "template in the arguments of sudo"},
		{`eval {{ .Params.p }}`, "template in the arguments of eval"},
		{`. {{ .Params.p }}`, "template in the arguments of ."},
		{`source {{ .Params.p }}`, "template in the arguments of source"},
		{`bash {{ .Params.p }}`, "template in the arguments of bash"},
		{`bash -c {{ .Params.p }}`, "template in the arguments of bash"},
		{`bash -o {{ .Params.p }} script.sh`, "template in the arguments of bash"},
		{`sh -c "$(echo {{ .Params.p }})"`, "template in the arguments of sh"},
		{`trap {{ .Params.p }} EXIT`, "template in the arguments of trap"},
		{`watch {{ .Params.p }}`, "template in the arguments of watch"},
		{`ssh host {{ .Params.p }}`, "template in the arguments of ssh"},
		{`su -c {{ .Params.p }}`, "template in the arguments of su"},
		{`flock /tmp/l -c {{ .Params.p }}`, "template in the arguments of flock"},
		{`env -S {{ .Params.p }}`, "template in the arguments of env"},
		{`awk {{ .Labels.x }}`, "alert text (.Labels.x) in the arguments of awk"},
		{`sed -n {{ .Incident.Title }} /etc/hosts`, "alert text (.Incident.Title) in the arguments of sed"},
		{`sudo python3 -c {{ .Labels.x }}`, "alert text (.Labels.x) in the arguments of python3"},
		{`X={{ .Labels.x }}; echo "$X"`, "alert text (.Labels.x) cannot be assigned to a variable"},
		{`X=$(echo {{ .Labels.x }})`, "alert text (.Labels.x) cannot be assigned to a variable"},
		{`f() { local x={{ .Labels.x }}; }`, "alert text (.Labels.x) cannot be assigned to a variable"},
		{`env LD_PRELOAD={{ .Host.Labels.lib }} id`, "alert text (.Host.Labels.lib) cannot be assigned to a variable"},
		{`for x in {{ .Labels.x }}; do :; done`, "alert text (.Labels.x) as a for-loop item"},
		{`echo hi > {{ .Labels.x }}`, "alert text (.Labels.x) as the target of an output redirection"},
		{`echo hi >> /tmp/{{ .Labels.x }}`, "as the target of an output redirection"},
		{`echo hi &> /tmp/{{ .Incident.ID }}`, "as the target of an output redirection"},
		{`{{ .Params.v }}=1`, "template as a name"},
		{`f{{ .Params.v }}() { :; }`, "template as a name"},
		{`for {{ .Params.v }} in a; do :; done`, "template as a name"},
		{`echo $x{{ .Params.v }}`, "template inside a parameter expansion"},
		{`echo @({{ .Params.v }})`, "extended glob"},
		{`echo 'unterminated {{ .Params.p }}`, "shell syntax: reached EOF without closing quote"},
		{`echo {{ .Params.p }} )`, "shell syntax"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			_, err := loadOne(t, placementYAML("run", tc.line, false))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run %q: error = %v\nwant one containing %q", tc.line, err, tc.want)
			}
		})
	}
}

// Scripts and sudo steps run under sh: bash-only syntax is a load error.
func TestPlacementPOSIX(t *testing.T) {
	tests := []struct{ line, want string }{
		{"[[ -f /etc/hosts ]]", "[[ … ]] is bash"},
		{"((1 + 1))", "(( … )) is bash"},
		{"let x=1", "let is bash"},
		{"declare x=1", "declare is bash"},
		{"diff <(ls) <(ls /)", "shell syntax (sh)"},
		{"a=(1 2)", "shell syntax (sh): arrays are a bash"},
		{"echo ${x:1:2}", "shell syntax (sh): slicing"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			for _, src := range []string{placementYAML("script", tc.line, false), placementYAML("run", tc.line, true)} {
				if _, err := loadOne(t, src); err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error = %v\nwant one containing %q", err, tc.want)
				}
			}
			if _, err := loadOne(t, placementYAML("run", tc.line, false)); err != nil {
				t.Errorf("a run step without sudo is bash, and should load: %v", err)
			}
		})
	}
}
