package slack_test

import (
	"errors"
	"testing"

	"github.com/firstlook/firstlook/hooks/slack"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		text string
		want slack.Command
		err  bool
	}{
		{"", slack.Command{Name: "help"}, false},
		{"help", slack.Command{Name: "help"}, false},
		{"run disk-usage on web-1", slack.Command{Name: "run", Playbook: "disk-usage", Target: "web-1"}, false},
		{"  RUN disk-usage ON role=web ", slack.Command{Name: "run", Playbook: "disk-usage", Target: "role=web"}, false},
		{"run disk-usage web-1", slack.Command{}, true},
		{"run disk;rm on web-1", slack.Command{}, true},
		{"run disk on $(reboot)", slack.Command{}, true},
		{"run disk on `id`", slack.Command{}, true},
		{"last", slack.Command{Name: "last"}, false},
		{"last web-1", slack.Command{Name: "last", Host: "web-1"}, false},
		{"last web-1 web-2", slack.Command{}, true},
		{"playbooks i-0abc123", slack.Command{Name: "playbooks", Host: "i-0abc123"}, false},
		{"page web-prod disk full on web-1", slack.Command{Name: "page", Service: "web-prod", Summary: "disk full on web-1"}, false},
		{`page "Web (prod)" latency is up`, slack.Command{Name: "page", Service: "Web (prod)", Summary: "latency is up"}, false},
		{"page “Web (prod)” latency", slack.Command{Name: "page", Service: "Web (prod)", Summary: "latency"}, false},
		{"page web-prod", slack.Command{}, true},
		{`page "Web (prod) latency`, slack.Command{}, true},
		{"digest", slack.Command{Name: "digest"}, false},
		{"digest 12", slack.Command{Name: "digest", Hours: 12}, false},
		{"digest 24h", slack.Command{Name: "digest", Hours: 24}, false},
		{"digest 0", slack.Command{}, true},
		{"digest 1000", slack.Command{}, true},
		{"reboot web-1", slack.Command{}, true},
		{"run \xff on web-1", slack.Command{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := slack.ParseCommand(tt.text)
			if tt.err {
				if !errors.Is(err, slack.ErrUsage) {
					t.Fatalf("got %+v, %v; want a usage error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			again, err := slack.ParseCommand(got.String())
			if err != nil || again != got {
				t.Errorf("String %q parses as %+v, %v", got.String(), again, err)
			}
		})
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"run a on b", `page "x y" z`, "digest 3", "last h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := slack.ParseCommand(s)
		if err != nil {
			return
		}
		again, err := slack.ParseCommand(c.String())
		if err != nil || again != c {
			t.Errorf("%q: %+v does not round-trip: %+v, %v", s, c, again, err)
		}
	})
}
