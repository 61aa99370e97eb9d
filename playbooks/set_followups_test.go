package playbooks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/playbooks"
)

// Follow-ups name playbooks of the merged set: one from another set (the
// library) is fine, an unknown one is refused at its playbook.
func TestFollowUps(t *testing.T) {
	load := func(files map[string]string) *playbooks.Set {
		t.Helper()
		d := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		s, err := playbooks.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	site := load(map[string]string{"a.yaml": "name: a\nfollow_ups: [b, lib]\nsteps:\n  - {name: x, run: uptime}\n", "b.yaml": "name: b\nsteps:\n  - {name: x, run: uptime}\n"})
	lib := load(map[string]string{"lib.yaml": "name: lib\nsteps:\n  - {name: x, run: uptime}\n"})
	set, err := playbooks.Merge(site, lib)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := set.Get("a"); strings.Join(a.FollowUps, ",") != "b,lib" {
		t.Errorf("got follow-ups %v", a.FollowUps)
	}
	if _, err := playbooks.Merge(site); err == nil || !strings.Contains(err.Error(), `a.yaml:1:1: follow_ups: no playbook "lib" is loaded`) {
		t.Errorf("got %v, want the unknown follow-up refused at its playbook", err)
	}
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "c.yaml"), []byte("name: c\nfollow_ups: [\"rm -rf\"]\nsteps:\n  - {name: x, run: uptime}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := playbooks.Load(d); err == nil || !strings.Contains(err.Error(), `"rm -rf" is not a playbook name`) {
		t.Errorf("got %v", err)
	}
}
