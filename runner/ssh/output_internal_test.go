package ssh

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestCapture(t *testing.T) {
	tests := []struct {
		name      string
		max       int64
		writes    []string
		wantKept  string
		wantTotal int64
		wantTrunc bool
	}{
		{"under", 10, []string{"abc", "de"}, "abcde", 5, false},
		{"exact", 5, []string{"abc", "de"}, "abcde", 5, false},
		{"split write", 4, []string{"abc", "def", "g"}, "abcd", 7, true},
		{"nothing", 4, nil, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &capture{max: tt.max}
			for _, w := range tt.writes {
				if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write: got %d, %v, want %d, nil", n, err, len(w))
				}
			}
			kept, total, trunc := c.result()
			if string(kept) != tt.wantKept || total != tt.wantTotal || trunc != tt.wantTrunc {
				t.Errorf("result: got %q %d %v, want %q %d %v", kept, total, trunc, tt.wantKept, tt.wantTotal, tt.wantTrunc)
			}
		})
	}
}

func TestPIDFilter(t *testing.T) {
	tests := []struct {
		name    string
		writes  []string
		wantOut string
		wantPID int
	}{
		{"marker first", []string{"firstlook-pid=1234\nerr\n"}, "err\n", 1234},
		{"marker split across writes", []string{"firstlook-p", "id=77", "\nrest"}, "rest", 77},
		{"dotfile noise first", []string{"bashrc says hi\nfirstlook-pid=9\nx\n"}, "bashrc says hi\nx\n", 9},
		{"no marker", []string{"plain\n", "stderr"}, "plain\nstderr", 0},
		{"not a pid", []string{"firstlook-pid=abc\n"}, "firstlook-pid=abc\n", 0},
		{"second marker kept", []string{"firstlook-pid=5\nfirstlook-pid=6\n"}, "firstlook-pid=6\n", 5},
		{"noise beyond the limit", []string{strings.Repeat("x", pidScanLimit+10), "\nfirstlook-pid=5\n"},
			strings.Repeat("x", pidScanLimit+10) + "\nfirstlook-pid=5\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			f := newPIDFilter(&out)
			for _, w := range tt.writes {
				f.Write([]byte(w))
			}
			f.flush()
			if got := out.String(); got != tt.wantOut {
				t.Errorf("passed through: got %q, want %q", got, tt.wantOut)
			}
			if got := f.wait(time.Millisecond); got != tt.wantPID {
				t.Errorf("pid: got %d, want %d", got, tt.wantPID)
			}
		})
	}
}

func TestWrapCommand(t *testing.T) {
	got := wrapCommand("uptime")
	want := "printf 'firstlook-pid=%s\\n' \"$$\" >&2\nuptime"
	if got != want {
		t.Errorf("wrapCommand: got %q, want %q", got, want)
	}
}
