package pagerduty

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNote(t *testing.T) {
	const marker = "run-01J9Z"
	last := markerPrefix + marker
	long := strings.Repeat("load average: 0.42\n", 100)
	tests := []struct {
		name    string
		body    string
		max     int
		want    string // exact, when set
		prefix  string // the body's start that must survive
		cut     bool
		wantErr string
	}{
		{name: "fits", body: "all good\n", max: 300, want: "all good\n\n" + last},
		{name: "empty body", body: " \n", max: 300, want: last},
		{name: "exact fit", body: strings.Repeat("x", 300-2-len(last)), max: 300, want: strings.Repeat("x", 300-2-len(last)) + "\n\n" + last},
		{name: "one byte over", body: strings.Repeat("x", 301-2-len(last)), max: 300, prefix: "xxxx", cut: true},
		{name: "long", body: long, max: 500, prefix: "load average: 0.42\nload", cut: true},
		{name: "two-byte characters", body: strings.Repeat("é", 400), max: 301, prefix: "éé", cut: true},
		{name: "three-byte characters", body: strings.Repeat("界", 400), max: 302, prefix: "界界", cut: true},
		{name: "four-byte characters", body: strings.Repeat("🔥", 400), max: 303, prefix: "🔥🔥", cut: true},
		{name: "invalid UTF-8 replaced", body: "ok \xff\xfe done", max: 300, want: "ok \uFFFD done\n\n" + last},
		{name: "no room for the body", body: long, max: len(last) + 10, want: last},
		{name: "marker only fits", body: "", max: len(last), want: last},
		{name: "marker too long", body: "x", max: len(last) - 1, wantErr: "more than max_note"},
		{name: "marker with newline", body: "x", max: 300, wantErr: "not one non-blank line"},
		{name: "empty marker", body: "x", max: 300, wantErr: "not one non-blank line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := marker
			switch tt.name {
			case "marker with newline":
				m = "run\nforged"
			case "empty marker":
				m = ""
			}
			got, err := note(tt.body, m, tt.max)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("note: got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("note: %v", err)
			}
			if len(got) > tt.max {
				t.Errorf("got %d bytes, want at most %d", len(got), tt.max)
			}
			if !utf8.ValidString(got) {
				t.Errorf("got invalid UTF-8: %q", got)
			}
			if !strings.HasSuffix(got, "\n"+last) && got != last {
				t.Errorf("got last line of %q, want %q", got[max(0, len(got)-40):], last)
			}
			if !hasMarker(got, marker) {
				t.Errorf("hasMarker(note) = false, want true")
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if !strings.HasPrefix(got, tt.prefix) {
				t.Errorf("got %q…, want it to start with %q", got[:min(len(got), 40)], tt.prefix)
			}
			if c := strings.Contains(got, cutNotice); c != tt.cut {
				t.Errorf("cut notice present: got %v, want %v", c, tt.cut)
			}
			if tt.cut && len(got) < tt.max-4 {
				// A cut note uses the room it has, but for the bytes of
				// one split character.
				t.Errorf("cut note has %d bytes, want close to %d", len(got), tt.max)
			}
		})
	}
}

func TestHasMarker(t *testing.T) {
	tests := []struct {
		content string
		want    bool
	}{
		{"summary\n\nfirstlook run M1", true},
		{"summary\n\nfirstlook run M1\n", true},
		{"summary\r\n\r\nfirstlook run M1\r\n", true},
		{"firstlook run M1", true},
		{"summary\n\nfirstlook run M1   ", true},
		{"summary\n\nfirstlook run M10", false},
		{"summary\n\nfirstlook run M", false},
		{"firstlook run M1\nlater text", false},
		{"output quoted: firstlook run M1", false},
		{"", false},
		{"Firefighters are on the scene.", false},
	}
	for _, tt := range tests {
		if got := hasMarker(tt.content, "M1"); got != tt.want {
			t.Errorf("hasMarker(%q, M1) = %v, want %v", tt.content, got, tt.want)
		}
	}
}
