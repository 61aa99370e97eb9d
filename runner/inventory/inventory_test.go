package inventory_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/runner/inventory"
)

func TestResolve(t *testing.T) {
	inv, err := inventory.Load("testdata/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		hint, name, addr, user, bastion string
	}{
		{"web-1", "web-1", "10.1.0.11:22", "firstlook", "bastion-1"},
		{"WEB-1", "web-1", "10.1.0.11:22", "firstlook", "bastion-1"},
		{"web-1.prod.example.com", "web-1", "10.1.0.11:22", "firstlook", "bastion-1"},
		{"10.1.0.12", "web-2", "10.1.0.12:2222", "firstlook", "bastion-1"},
		{" web-2 ", "web-2", "10.1.0.12:2222", "firstlook", "bastion-1"},
		{"fd00::21", "db-1", "[fd00::21]:22", "root", ""},
		{"FD00:0:0::21", "db-1", "[fd00::21]:22", "root", ""},
	}
	for _, tc := range tests {
		h, err := inv.Resolve(ctx, tc.hint)
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.hint, err)
			continue
		}
		bastion := ""
		if h.Bastion != nil {
			bastion = h.Bastion.Name
			if h.Bastion.User != "jump" || h.Bastion.Addr() != "192.0.2.10:22" {
				t.Errorf("Resolve(%q): got bastion %+v", tc.hint, h.Bastion)
			}
		}
		if h.Name != tc.name || h.Addr() != tc.addr || h.User != tc.user || bastion != tc.bastion {
			t.Errorf("Resolve(%q): got %s %s %s via %q, want %s %s %s via %q", tc.hint, h.Name, h.Addr(), h.User, bastion, tc.name, tc.addr, tc.user, tc.bastion)
		}
	}
	for _, hint := range []string{"web-3", "web", "10.1.0.1", "web-1.prod", "", "192.0.2.10", "bastion-1", "web-1; rm -rf /"} {
		if _, err := inv.Resolve(ctx, hint); !errors.Is(err, inventory.ErrUnknownHost) {
			t.Errorf("Resolve(%q): got %v, want ErrUnknownHost", hint, err)
		}
	}
}

func TestSelect(t *testing.T) {
	inv, err := inventory.Load("testdata/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := func(hs []inventory.Host) string {
		var n []string
		for _, h := range hs {
			n = append(n, h.Name)
		}
		return strings.Join(n, ",")
	}
	ctx := context.Background()
	tests := []struct {
		group  string
		labels map[string]string
		want   string
	}{
		{"web", nil, "web-1,web-2"},
		{"", map[string]string{"env": "prod"}, "web-1,web-2,db-1"},
		{"", map[string]string{"role": "db"}, "db-1"},
		{"web", map[string]string{"role": "db"}, ""},
		{"nope", nil, ""},
	}
	for _, tc := range tests {
		hs, _ := inv.Select(ctx, tc.group, tc.labels)
		if got := names(hs); got != tc.want {
			t.Errorf("Select(%q, %v): got %q, want %q", tc.group, tc.labels, got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "hosts:\n  - name: a\n    adress: 10.0.0.1\n", `x.yaml:3:5: hosts[0]: unknown key "adress"; did you mean "address"? valid keys: address, aliases,`},
		{"no address", "defaults: {user: u}\nhosts:\n  - name: a\n", `x.yaml:3:5: hosts[0]: host a has no address; add address:`},
		{"no user", "hosts:\n  - name: a\n    address: 10.0.0.1\n", `hosts[0]: host a has no user`},
		{"unknown bastion", "defaults: {user: u}\nhosts:\n  - name: a\n    address: 10.0.0.1\n  - name: b\n    address: 10.0.0.2\n    bastion: jump\n", `x.yaml:5:5: hosts[1]: host b: bastion "jump" is not among the bastions; add it`},
		{"duplicate name", "defaults: {user: u}\nhosts:\n  - {name: a, address: 10.0.0.1}\n  - {name: a, address: 10.0.0.2}\n", `x.yaml:4:5: hosts[1]: "a" already names host a`},
		{"duplicate address", "defaults: {user: u}\nhosts:\n  - {name: a, address: 10.0.0.1}\n  - {name: b, address: 10.0.0.1}\n", `"10.0.0.1" already names host a`},
		{"bad name", "defaults: {user: u}\nhosts:\n  - {name: 'a b', address: 10.0.0.1}\n", `name "a b"`},
		{"bad port", "defaults: {user: u}\nhosts:\n  - {name: a, address: 10.0.0.1, port: 70000}\n", `x.yaml:3:5: hosts[0]: port 70000 is out of range; use 1 to 65535`},
		{"default bastion", "defaults: {user: u, bastion: x}\nhosts:\n  - {name: a, address: 10.0.0.1, bastion: none}\n", `x.yaml:1:21: defaults.bastion: "x" is not among the bastions`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := inventory.Parse("x.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	if _, err := inventory.New(inventory.Config{}); err == nil || !strings.Contains(err.Error(), "no hosts") {
		t.Errorf("empty config: got %v", err)
	}
	if _, err := inventory.New(inventory.Config{File: "x", Hosts: []inventory.HostConfig{{Name: "a"}}}); err == nil {
		t.Error("file and inline: got no error")
	}
	inv, err := inventory.New(inventory.Config{Defaults: inventory.Defaults{User: "u"}, Hosts: []inventory.HostConfig{{Name: "a", Address: "10.0.0.1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if h, err := inv.Resolve(context.Background(), "a"); err != nil || h.Bastion != nil || h.Port != 22 {
		t.Errorf("got %+v, %v", h, err)
	}
}

func TestSudoOptIn(t *testing.T) {
	inv, err := inventory.Parse("inv.yaml", []byte(`
defaults: {user: fl}
sudo_groups: [db]
hosts:
  - {name: web-1, address: 10.0.0.1}
  - {name: db-1, address: 10.0.0.2, groups: [db]}
  - {name: db-2, address: 10.0.0.3, groups: [db], sudo: false}
  - {name: app-1, address: 10.0.0.4, sudo: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"web-1": false, "db-1": true, "db-2": false, "app-1": true}
	for _, h := range inv.Hosts() {
		if h.Sudo != want[h.Name] {
			t.Errorf("%s: Sudo = %v, want %v", h.Name, h.Sudo, want[h.Name])
		}
	}
	inv, err = inventory.Parse("inv.yaml", []byte("defaults: {user: fl, sudo: true}\nhosts: [{name: a, address: 10.0.0.1}]\n"))
	if err != nil || !inv.Hosts()[0].Sudo {
		t.Errorf("defaults.sudo: %v, %+v", err, inv)
	}
}
