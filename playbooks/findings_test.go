package playbooks_test

import (
	"path/filepath"
	"reflect"
	"testing"

	"github.com/firstlook/firstlook/playbooks"
)

func findingsPlaybook(t *testing.T) *playbooks.Playbook {
	t.Helper()
	set, err := playbooks.Load(filepath.Join("testdata", "valid", "findings.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := set.Get("fs-findings")
	return p
}

const dfOut = `Filesystem      Size  Used Avail Use% Mounted on
/dev/vda1        40G   38G  1.2G  97% /
/dev/vdb1       100G   88G   12G  88% /data
/dev/vdc1       100G   10G   90G  10% /srv
`

func TestFindings(t *testing.T) {
	p := findingsPlaybook(t)
	got, measures := p.Findings(0, []byte(dfOut), nil)
	want := []playbooks.Finding{
		{Rule: "filesystem full", Severity: playbooks.Crit, Message: "/ 97% full, 1.2 GiB free", Value: 97, HasValue: true},
		{Rule: "filesystem full", Severity: playbooks.Warn, Message: "/data 88% full, 12 GiB free", Value: 88, HasValue: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\ngot  %+v\nwant %+v", got, want)
	}
	if want := []playbooks.Measure{{Rule: "filesystem full", Value: 97}}; !reflect.DeepEqual(measures, want) {
		t.Errorf("measures = %+v, want %+v", measures, want)
	}

	// A service raises the threshold: 97% is now only a warning.
	got, _ = p.Findings(0, []byte(dfOut), map[string]string{"fs_crit_pct": "98", "fs_warn_pct": "90"})
	if len(got) != 1 || got[0].Severity != playbooks.Warn || got[0].Message != "/ 97% full, 1.2 GiB free" {
		t.Errorf("with overrides: %+v", got)
	}
	// A threshold that is not a number says so, as a finding.
	got, _ = p.Findings(0, []byte(dfOut), map[string]string{"fs_crit_pct": "lots"})
	if len(got) != 1 || got[0].Severity != playbooks.Warn || got[0].Message != `filesystem full: threshold fs_crit_pct = "lots" is not a number; fix the params` {
		t.Errorf("bad override: %+v", got)
	}

	// Fixed severity, and a template function.
	got, _ = p.Findings(1, []byte("43008000\t/\n42991616\t/var\n"), nil)
	if len(got) != 1 || got[0].Severity != playbooks.Info || got[0].Message != "largest /var 41 GiB" {
		t.Errorf("du: %+v", got)
	}
	// below: lower is worse.
	got, measures = p.Findings(2, []byte("5 days\n"), nil)
	if len(got) != 1 || got[0].Severity != playbooks.Crit || got[0].Message != "certificate expires in 5 days (threshold 7)" {
		t.Errorf("below: %+v", got)
	}
	if len(measures) != 1 || measures[0].Value != 5 {
		t.Errorf("below measures: %+v", measures)
	}
	if got, _ := p.Findings(2, []byte("90 days\n"), nil); len(got) != 0 {
		t.Errorf("90 days: %+v, want none", got)
	}
}

func TestWhenFinding(t *testing.T) {
	p := findingsPlaybook(t)
	crit, _ := p.Findings(0, []byte(dfOut), nil)
	warn, _ := p.Findings(0, []byte(dfOut), map[string]string{"fs_crit_pct": "99"})
	for _, tc := range []struct {
		results map[string]playbooks.Result
		run     bool
		why     string
	}{
		{map[string]playbooks.Result{"df": {ExitCode: 0, Findings: crit}}, true, ""},
		{map[string]playbooks.Result{"df": {ExitCode: 0, Findings: warn}}, false, `when {step: "df", finding: "filesystem full", severity: crit} does not hold: step "df" raised no such finding`},
		{map[string]playbooks.Result{}, false, `when {step: "df", finding: "filesystem full", severity: crit} does not hold: step "df" did not run`},
	} {
		run, why := p.Decide(1, tc.results)
		if run != tc.run || why != tc.why {
			t.Errorf("Decide(%v) = %v, %q; want %v, %q", tc.results, run, why, tc.run, tc.why)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for in, want := range map[string]float64{
		"97": 97, "97%": 97, "0.75": 0.75, "1.5G": 1.5 * (1 << 30), "41GiB": 41 * (1 << 30), "512K": 512 << 10,
		"10MB": 10 << 20, "1.2M": 1.2 * (1 << 20), "120ms": 0.12, "3s": 3, "2m": 120, "-3": -3,
	} {
		if got, ok := playbooks.ParseNumber(in); !ok || got != want {
			t.Errorf("ParseNumber(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-", "abc", "1.2.3", "n/a"} {
		if _, ok := playbooks.ParseNumber(in); ok {
			t.Errorf("ParseNumber(%q) ok, want not a number", in)
		}
	}
}
