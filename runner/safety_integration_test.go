package runner_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/playbooks"
	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/ssh"
	"github.com/firstlook/firstlook/runner/ssh/sshtest"
)

// pwned is where an injected command would leave its mark; the hosts in
// network namespaces share this machine's filesystem.
const pwned = "/tmp/firstlook-pwned"

// hostile are values an alert's author controls, each of which breaks a
// naive `sh -c "printf %s " + value`.
var hostile = []string{
	`plain`,
	`'; touch /tmp/firstlook-pwned; '`,
	`$(touch /tmp/firstlook-pwned)`,
	"`touch /tmp/firstlook-pwned`",
	`"; touch /tmp/firstlook-pwned; "`,
	`a && touch /tmp/firstlook-pwned`,
	`x | tee /tmp/firstlook-pwned`,
	`> /tmp/firstlook-pwned`,
	`$HOME ${PATH} $((1+1)) \$ \\ \`,
	"line one\nline two; touch /tmp/firstlook-pwned\n",
	"tab\there\rcarriage",
	`* ? [a-z] ~root ~ {a,b}`,
	"\u202egnp.exe\u202c RTL override",
	"zero\u200bwidth\ufeffBOM",
	"ＦＵＬＬ＇ｗｉｄｔｈ；quotes＂",
	"emoji 🔥 and \u00e9\u0301 combining",
	"\x7f\x1b[31mANSI red\x1b[0m",
	"not utf-8: \xff\xfe\xc3",
	strings.Repeat("long-", 20000), // 100 KB: under the 128 KiB line limit
}

// TestTemplateValuesArriveLiteral runs a playbook whose steps print every
// template field on a real host behind the bastion, with the fields set
// to hostile values, and checks the host printed exactly the value: alert
// text can fill quoted words, never write a command.
func TestTemplateValuesArriveLiteral(t *testing.T) {
	sshtest.Require(t)
	_ = os.Remove(pwned)
	n := sshtest.New(t, sshtest.Options{Hosts: []string{"host-1"}})
	b, h := n.Bastion(), n.Host("host-1")
	inv, err := inventory.New(inventory.Config{
		Bastions: []inventory.BastionConfig{{Name: b.Name, Address: strings.Split(b.Addr, ":")[0], User: b.User}},
		Hosts:    []inventory.HostConfig{{Name: h.Name, Address: strings.Split(h.Addr, ":")[0], User: h.User, Bastion: b.Name, Labels: map[string]string{"owner": "x"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := ssh.New(ssh.Config{KnownHosts: []string{n.KnownHostsFile}, IdentityFiles: []string{n.IdentityFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	set := loadPlaybooks(t, map[string]string{"p.yaml": `name: echo
params: {p: default}
steps:
  - {name: title, run: "printf '%s' {{ .Incident.Title }}", continue_on_error: true}
  - {name: service, run: "printf '%s' {{ .Incident.Service }}", continue_on_error: true}
  - {name: id, run: "printf '%s' {{ .Incident.ID }}", continue_on_error: true}
  - {name: label, run: "printf '%s' {{ .Labels.team }}", continue_on_error: true}
  - {name: param, run: "printf '%s' {{ .Params.p }}", continue_on_error: true}
  - {name: concat, run: "printf '%s' x{{ .Incident.Title }}y", continue_on_error: true}
  - name: script
    script: |
      printf '%s' {{ .Incident.Title }}
    continue_on_error: true
`})
	pb, _ := set.Get("echo")
	host, _ := inv.Resolve(context.Background(), "host-1")
	for _, v := range hostile {
		name := v
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			r, err := runner.New(runner.Options{
				Inventory: inv, Playbooks: set, Dialer: runner.SSH(d), Log: quiet(),
				Params: map[string]map[string]string{"svc": {"p": v}},
				// No redaction rule fires on these values; keep it on to
				// show it does not mangle them either.
			})
			if err != nil {
				t.Fatal(err)
			}
			tr := hooks.Trigger{Source: "pagerduty", Event: "incident.triggered", DeliveryID: "d",
				Incident: hooks.Incident{ID: v, Title: v, Service: hooks.Service{ID: "svc", Name: v}},
				Labels:   map[string]string{"team": v}}
			bd := r.Execute(context.Background(), tr, runner.Run{Playbook: pb, Host: host, Target: host.Name})
			if bd.Manifest.Status == evidence.StatusNotStarted {
				t.Fatalf("run did not start: %s", bd.Manifest.Error)
			}
			for i, st := range bd.Manifest.Steps {
				want := v
				if pb.Steps[i].Name == "concat" {
					want = "x" + v + "y"
				}
				got := string(bd.Files[st.Stdout.File])
				if st.ExitCode != 0 || got != want {
					t.Errorf("step %s: exit %d (%s), host printed %q, want %q", st.Name, st.ExitCode, st.Error, clipQ(got), clipQ(want))
				}
			}
			if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("an alert value ran a command on the host (%s exists)", pwned)
			}
		})
	}

	// Values no argument can carry fail their step, clearly, and run
	// nothing.
	for _, v := range []string{"nul\x00byte", "-n", strings.Repeat("x", playbooks.MaxLine)} {
		r, _ := runner.New(runner.Options{Inventory: inv, Playbooks: set, Dialer: runner.SSH(d), Log: quiet()})
		tr := hooks.Trigger{Source: "pagerduty", Incident: hooks.Incident{ID: "id", Title: v}, Labels: map[string]string{"team": "t"}}
		st := r.Execute(context.Background(), tr, runner.Run{Playbook: pb, Host: host, Target: host.Name}).Manifest.Steps[0]
		if st.Error == "" || st.ExitCode != -1 || st.Stdout.Bytes != 0 {
			t.Errorf("title %q: got step %+v, want it refused before running", clipQ(v), st)
		}
	}
}

func clipQ(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
