package evidence

import (
	"strings"
	"testing"
)

// TestGitleaksRules: the vendored gitleaks rule set loads whole, with the
// mechanics the redactor relies on, and a broken one is an error.
func TestGitleaksRules(t *testing.T) {
	rules, global, err := gitleaksRules(gitleaksTOML)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(gitleaksTOML, "\n[[rules]]"); len(rules) < n-2 || len(rules) < 200 {
		t.Errorf("loaded %d rules of the %d in the file", len(rules), n)
	}
	if len(global) == 0 {
		t.Error("no global allowlist")
	}
	kinds := map[string]rule{}
	for _, ru := range rules {
		kinds[ru.kind] = ru
		for _, k := range ru.keywords {
			if k != strings.ToLower(k) {
				t.Errorf("%s: keyword %q not lowercase", ru.kind, k)
			}
		}
	}
	for _, id := range []string{"aws-access-token", "github-pat", "gitlab-pat", "slack-bot-token", "stripe-access-token", "jwt", "private-key", "generic-api-key"} {
		if _, ok := kinds[id]; !ok {
			t.Errorf("no rule %s", id)
		}
	}
	if g := kinds["generic-api-key"]; g.entropy == 0 || len(g.allow) < 3 || g.opWithin == 0 || g.back != keyBack {
		t.Errorf("generic-api-key lost its entropy, allowlists or prefilter: %+v", g)
	}
	if k := kinds["private-key"]; k.reach != keyReach {
		t.Errorf("private-key: reach %d, want %d", k.reach, keyReach)
	}
	for _, bad := range []string{"[[rules]]\nid = 'x'\nregex = '('\n", "not toml = = ", "[[rules]]\nid = 'x'\nregex = 'a'\nsecretGroup = 2\n"} {
		if _, _, err := gitleaksRules(bad); err == nil {
			t.Errorf("%q: got no error", bad)
		}
	}
}
