package evidence_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/redacttest"
)

// TestRedactPlantedSecrets plants every kind of secret redacttest makes,
// each alone and all together in one output, for several seeds, and
// requires every one redacted whole, counted, and "key=" context kept.
// (The benchmark checks some 2,000 more.)
func TestRedactPlantedSecrets(t *testing.T) {
	r, err := evidence.NewRedactor(evidence.RedactConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for seed := range uint64(3) {
		secrets := redacttest.Plant(seed)
		if k := redacttest.Kinds(secrets); k < 30 {
			t.Fatalf("planted %d kinds, want at least 30", k)
		}
		for _, s := range secrets {
			if seed > 0 {
				break // each alone once; together for every seed
			}
			got, n := r.RedactString(s.Text)
			if leaks := redacttest.Leaks(got, []redacttest.Secret{s}); len(leaks) > 0 || n == 0 {
				t.Errorf("seed %d, %s: %d redactions, leaked %v:\n%s", seed, s.Kind, n, leaks, got)
			}
		}
		out := redacttest.Output(secrets)
		got, n := r.RedactString(out)
		if leaks := redacttest.Leaks(got, secrets); len(leaks) > 0 {
			t.Errorf("seed %d, all together: leaked %d:\n%s", seed, len(leaks), strings.Join(leaks, "\n"))
		}
		if n < len(secrets) {
			t.Errorf("seed %d: %d redactions of %d secrets", seed, n, len(secrets))
		}
		if again, n := r.RedactString(got); again != got || n != 0 {
			t.Errorf("seed %d: redacting twice changed the text (%d)", seed, n)
		}
	}
}

// TestRedactKeepsContext: only the secret part goes; the key, the scheme
// and the user stay readable.
func TestRedactKeepsContext(t *testing.T) {
	r, _ := evidence.NewRedactor(evidence.RedactConfig{})
	for _, s := range redacttest.Plant(7) {
		got, _ := r.RedactString(s.Text)
		for _, keep := range []string{"password=", "DATABASE_URL=postgres://orders_app:", "MYSQL_ROOT_PASSWORD=", "Authorization: Bearer ", "  secret: ", "aws_secret_access_key = "} {
			if strings.HasPrefix(s.Text, keep) && !strings.HasPrefix(got, keep+"[REDACTED:") {
				t.Errorf("%s: got %q, want it to start %q and a marker", s.Kind, got, keep)
			}
		}
	}
}

// TestRedactLongLine: secrets in one huge line (minified JSON, a keyword
// every few bytes) are found wherever they are; the line is searched in
// bounded pieces.
func TestRedactLongLine(t *testing.T) {
	r, _ := evidence.NewRedactor(evidence.RedactConfig{})
	var planted []redacttest.Secret
	for _, s := range redacttest.Plant(3) {
		if !strings.Contains(s.Text, "\n") {
			planted = append(planted, s)
		}
	}
	var b strings.Builder
	b.WriteString("[")
	for i := 0; b.Len() < 64<<10 || i%100 != 1; i++ {
		fmt.Fprintf(&b, `{"id":%d,"api_version":"v1","key_name":"k%d","auth":"none","token_type":"access"},`, i, i)
		if i%100 == 0 {
			fmt.Fprintf(&b, "%q,", planted[i/100].Text)
		}
	}
	b.WriteString("{}]")
	got, n := r.RedactString(b.String())
	if lines := strings.Count(got, "\n") + 1; lines != 1 || n < 2 {
		t.Fatalf("got %d redactions, %d lines", n, lines)
	}
	want := planted[:(b.Len()/80)/100+1]
	if leaks := redacttest.Leaks(got, want); len(leaks) > 0 {
		t.Errorf("leaked %d of %d:\n%s", len(leaks), len(want), strings.Join(leaks, "\n"))
	}
}
