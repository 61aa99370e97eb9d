package queue_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/runner/queue"
)

// validKey is the JetStream key-value key syntax (nats.go jetstream/kv.go).
var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func keyValid(k string) bool {
	return validKey.MatchString(k) && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") && !strings.Contains(k, "..")
}

func TestKey(t *testing.T) {
	tests := []struct {
		parts []string
		want  string
	}{
		{[]string{"Q1ABC"}, "Q1ABC"},
		{[]string{"Q1ABC", "web-1", "linux_baseline"}, "Q1ABC.web-1.linux_baseline"},
		{[]string{"Q1ABC", "web-1.example.com"}, "Q1ABC.web-1=2Eexample=2Ecom"},
		{[]string{"linux baseline"}, "linux=20baseline"},
		{[]string{"a=b", "c/d"}, "a=3Db.c/d"},
		{[]string{"", "x", ""}, "=.x.="},
		{[]string{"*", ">"}, "=2A.=3E"},
		{[]string{"héllo"}, "h=C3=A9llo"},
		{[]string{"10.0.0.1:22"}, "10=2E0=2E0=2E1=3A22"},
		{[]string{"\x00\xff"}, "=00=FF"},
	}
	for _, tt := range tests {
		got := queue.Key(tt.parts...)
		if got != tt.want {
			t.Errorf("Key(%q): got %q, want %q", tt.parts, got, tt.want)
		}
		if !keyValid(got) {
			t.Errorf("Key(%q) = %q: not a valid key", tt.parts, got)
		}
		back, err := queue.SplitKey(got)
		if err != nil || !reflect.DeepEqual(back, tt.parts) {
			t.Errorf("SplitKey(%q): got (%q, %v), want %q", got, back, err, tt.parts)
		}
	}
	if got := queue.Key(); got != "" {
		t.Errorf("Key(): got %q, want empty", got)
	}
}

func TestSplitKeyRejects(t *testing.T) {
	for _, k := range []string{
		"",       // nothing
		"a..b",   // empty part not spelled "="
		".a",     // leading separator
		"a=4",    // short escape
		"a=4g",   // not hex
		"a=2e",   // lower-case hex: not the canonical spelling
		"a=41",   // escaped literal 'A': not the canonical spelling
		"a b",    // not a key byte
		"a==20b", // escape of nothing
	} {
		if parts, err := queue.SplitKey(k); err == nil {
			t.Errorf("SplitKey(%q): got %q, want an error", k, parts)
		}
	}
}

func FuzzKey(f *testing.F) {
	f.Add("Q1ABC", "web-1.example.com", "linux baseline")
	f.Add("", "=", ".")
	f.Add("a=2E", "\x00", "héllo/wörld")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		parts := []string{a, b, c}
		k := queue.Key(parts...)
		if !keyValid(k) {
			t.Fatalf("Key(%q) = %q: not a valid key", parts, k)
		}
		back, err := queue.SplitKey(k)
		if err != nil || !reflect.DeepEqual(back, parts) {
			t.Fatalf("SplitKey(Key(%q)) = (%q, %v)", parts, back, err)
		}
		// Keys are canonical: whatever SplitKey accepts, Key rebuilds.
		if p, err := queue.SplitKey(a); err == nil && queue.Key(p...) != a {
			t.Fatalf("Key(SplitKey(%q)) = %q", a, queue.Key(p...))
		}
	})
}
