package runner_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
)

// Findings are evaluated on the redacted output, a when can test one,
// and a sudo step reaches only a host that opted in to sudo.
func TestExecuteFindings(t *testing.T) {
	set := loadPlaybooks(t, map[string]string{"p.yaml": `name: disk
params: {crit_pct: "95"}
steps:
  - name: df
    run: df -hP
    findings:
      - name: full
        pattern: '(?m)^(?P<dev>\S+) (?P<use>\d+)% (?P<mount>/\S*)$'
        value: use
        above: {warn: 80, crit: crit_pct}
        message: "{{ .mount }} {{ .use }}% full on {{ .dev }}"
  - name: du
    run: du -xk -d1 /
    when: {step: df, finding: full, severity: crit}
  - name: root only
    run: lsof +L1
    sudo: true
    continue_on_error: true
`})
	var mu sync.Mutex
	var sent []string
	d := dialerFunc(func(_ context.Context, tg ssh.Target) (runner.Conn, error) {
		return connFunc(func(_ context.Context, cmd string, _ ssh.RunOptions) (ssh.Result, error) {
			mu.Lock()
			sent = append(sent, tg.Name+": "+cmd)
			mu.Unlock()
			out := []byte("T-991 97% /\n/dev/vdb 50% /data\n")
			if tg.Name == "web-2" {
				out = []byte("/dev/vda 85% /\n")
			}
			return ssh.Result{Stdout: out, StdoutBytes: int64(len(out))}, nil
		}), nil
	})
	red, err := evidence.NewRedactor(evidence.RedactConfig{Patterns: []string{`T-\d+`}})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.New(inventory.Config{
		Defaults: inventory.Defaults{User: "firstlook"},
		Hosts: []inventory.HostConfig{
			{Name: "web-1", Address: "10.0.0.1", Sudo: new(true)},
			{Name: "web-2", Address: "10.0.0.2"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := runner.New(runner.Options{Inventory: inv, Playbooks: set, Dialer: d, Redactor: red, Log: quiet()})
	pb, _ := set.Get("disk")
	run := func(name string) evidence.Manifest {
		host, _ := inv.Resolve(context.Background(), name)
		return r.Execute(context.Background(), trigger("I9", "x"), runner.Run{Playbook: pb, Host: host, Target: host.Name}).Manifest
	}

	m := run("web-1")
	df := m.Steps[0]
	if len(df.Findings) != 1 || df.Findings[0].Severity != evidence.SeverityCrit || df.Findings[0].Message != "/ 97% full on [REDACTED:custom]" {
		t.Errorf("web-1 findings: %+v", df.Findings)
	}
	if df.Values["full"] != 97 {
		t.Errorf("web-1 values: %v", df.Values)
	}
	if m.Steps[1].Skipped || m.Steps[2].Error != "" {
		t.Errorf("web-1: du skipped %v, root only error %q; want both run", m.Steps[1].Skipped, m.Steps[2].Error)
	}
	if got := evidence.Headline(m); got != "CRIT web-1: / 97% full on [REDACTED:custom]" {
		t.Errorf("headline %q", got)
	}

	m = run("web-2")
	if f := m.Steps[0].Findings; len(f) != 1 || f[0].Severity != evidence.SeverityWarn {
		t.Errorf("web-2 findings: %+v", f)
	}
	if !m.Steps[1].Skipped || m.Steps[1].Error != "" {
		t.Errorf("web-2: du: skipped %v error %q, want skipped by its condition", m.Steps[1].Skipped, m.Steps[1].Error)
	}
	if st := m.Steps[2]; !strings.Contains(st.Error, "did not opt in to sudo") || st.ExitCode != -1 {
		t.Errorf("web-2: sudo step: exit %d error %q, want not sent", st.ExitCode, st.Error)
	}
	for _, c := range sent {
		if strings.HasPrefix(c, "web-2: sudo") {
			t.Errorf("sent to a host that did not opt in to sudo: %q", c)
		}
	}
}
