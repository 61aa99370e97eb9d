package slack_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

func TestChannelName(t *testing.T) {
	long := "Elevated 5xx error rate on checkout-api in eu-west-1 after deploy of build 20240611.3 and database failover"
	cases := []struct {
		name   string
		prefix string
		inc    evidence.Incident
		want   string
	}{
		{"simple", "", evidence.Incident{Number: 4242, Title: "Disk full on db-1"}, "inc-4242-disk-full-on-db-1"},
		{"prefix", "sev", evidence.Incident{Number: 7, Title: "CPU"}, "sev-7-cpu"},
		{"punctuation", "", evidence.Incident{Number: 12, Title: "[FIRING:1] CPU > 90% on web-01 (prod)!!"}, "inc-12-firing-1-cpu-90-on-web-01-prod"},
		{"underscores and dots", "", evidence.Incident{Number: 3, Title: "disk_full on db_1.example.com"}, "inc-3-disk-full-on-db-1-example-com"},
		{"accents", "", evidence.Incident{Number: 5, Title: "Café: réplica Ünterbrochen, straße Łódź"}, "inc-5-cafe-replica-unterbrochen-strasse-lodz"},
		{"upper case", "", evidence.Incident{Number: 6, Title: "HIGH LATENCY"}, "inc-6-high-latency"},
		{"non-Latin title falls back to service", "", evidence.Incident{Number: 8, Title: "データベース障害", Service: "Payments DB"}, "inc-8-payments-db"},
		{"emoji only", "", evidence.Incident{Number: 9, Title: "🔥🔥🔥"}, "inc-9"},
		{"empty title", "", evidence.Incident{Number: 10}, "inc-10"},
		{"only punctuation", "", evidence.Incident{Number: 11, Title: "--- !!! ___"}, "inc-11"},
		{"no number: id", "", evidence.Incident{ID: "Q0RIAJJL8PXYZ", Title: "Disk full"}, "inc-q0riajjl8pxyz-disk-full"},
		{"number wins over id", "", evidence.Incident{ID: "Q0RIAJJL8PXYZ", Number: 1, Title: "x"}, "inc-1-x"},
		{"long title cut at a word", "", evidence.Incident{Number: 123456, Title: long},
			"inc-123456-elevated-5xx-error-rate-on-checkout-api-in-eu-west-1-after-deploy-of"},
		{"long word cut hard", "", evidence.Incident{Number: 1, Title: strings.Repeat("a", 200)}, "inc-1-" + strings.Repeat("a", 74)},
		{"numbers", "", evidence.Incident{Number: 2, Title: "500 502 503"}, "inc-2-500-502-503"},
		{"leading and trailing separators", "", evidence.Incident{Number: 4, Title: "  -- Disk --  "}, "inc-4-disk"},
		{"control characters", "", evidence.Incident{Number: 13, Title: "a\tb\nc\x00d"}, "inc-13-a-b-c-d"},
		{"huge id", "", evidence.Incident{ID: strings.Repeat("X", 100), Title: "disk"}, "inc-xxxxxxxxxxxxxxxxx-" + hash6(strings.Repeat("X", 100)) + "-disk"},
		{"lossy id", "", evidence.Incident{ID: `{}:{alertname="HighCPU"}`, Title: "HighCPU"}, "inc-alertname-highcpu-" + hash6(`{}:{alertname="HighCPU"}`) + "-highcpu"},
		{"id of symbols", "", evidence.Incident{ID: "{}", Title: "x"}, "inc-" + hash6("{}") + "-x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := slack.ChannelName(tc.prefix, tc.inc)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if code := slacktest.NameError(got); code != "" {
				t.Errorf("%q: Slack would answer %s", got, code)
			}
			if len(got) > 80 {
				t.Errorf("%q: %d characters, want at most 80", got, len(got))
			}
		})
	}
}

func hash6(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:3])
}

// TestChannelNameDistinctIDs: ids that slugify alike name two channels.
func TestChannelNameDistinctIDs(t *testing.T) {
	a := slack.ChannelName("", evidence.Incident{ID: `{}:{alertname="HighCPU"}`})
	b := slack.ChannelName("", evidence.Incident{ID: `{}/{alertname="HighCPU"}`})
	if a == b {
		t.Errorf("both ids name %q", a)
	}
}

func FuzzChannelName(f *testing.F) {
	f.Add("inc", 4242, "Q0RIAJJL8", "Disk full on db-1", "Web (prod)")
	f.Add("sev_1", 0, "", "データベース障害", "")
	f.Add("x", 0, "ID-1", strings.Repeat("ab-", 40), "svc")
	f.Fuzz(func(t *testing.T, prefix string, n int, id, title, service string) {
		if (slack.Config{ChannelPrefix: prefix}).Validate() != nil {
			return
		}
		if n <= 0 && id == "" {
			return
		}
		got := slack.ChannelName(prefix, evidence.Incident{Number: max(n, 0), ID: id, Title: title, Service: service})
		if code := slacktest.NameError(got); code != "" {
			t.Fatalf("%q: Slack would answer %s", got, code)
		}
		if strings.Contains(got, "--") || strings.HasSuffix(got, "-") || strings.HasPrefix(got, "-") {
			t.Fatalf("%q: stray hyphens", got)
		}
	})
}
