package evidence_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
)

// TestRedactCleanOutput runs normal diagnostic output (ps, df, journalctl,
// dmesg, ss, free, vmstat, ip, systemctl status, nginx errors, env, ids and
// digests) through the default redactor: nothing in it is a secret.
func TestRedactCleanOutput(t *testing.T) {
	r, err := evidence.NewRedactor(evidence.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/redact/clean/*")
	if len(files) < 13 {
		t.Fatalf("found %d sample files, want the 13 of testdata/redact/clean", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, n := r.Redact(b)
		if n != 0 {
			t.Errorf("%s: %d redaction(s):\n%s", f, n, diffLines(string(b), string(got)))
		}
	}
}

// diffLines shows the lines of got that differ from in.
func diffLines(in, got string) string {
	a, b := strings.Split(in, "\n"), strings.Split(got, "\n")
	var out []string
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			out = append(out, "  - "+a[i], "  + "+b[i])
		}
	}
	return strings.Join(out, "\n")
}
