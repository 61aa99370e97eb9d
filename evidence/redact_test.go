package evidence_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
)

func TestRedact(t *testing.T) {
	r, err := evidence.NewRedactor(evidence.RedactConfig{Patterns: []string{`vault:v1:(?P<secret>[A-Za-z0-9+/=]+)`, `INTERNAL-[0-9]{6}`}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, want string
		n              int
	}{
		{"aws access key", "key AKIAIOSFODNN7EXAMPLE in env", "key [REDACTED:aws-access-key] in env", 1},
		{"aws sts key", "ASIAY34FZKBOKMUTVV7A", "[REDACTED:aws-access-token]", 1},
		{"aws secret key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [REDACTED:aws-secret-key]", 1},
		{"aws secret key json", `"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"`, `"SecretAccessKey": "[REDACTED:aws-secret-key]"`, 1},
		{"bearer", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "Authorization: Bearer [REDACTED:bearer]", 1},
		{"basic", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic [REDACTED:basic-auth]", 1},
		{"url password", "DATABASE_URL=postgres://app:hunter2hunter2@db:5432/app", "DATABASE_URL=postgres://app:[REDACTED:url-password]@db:5432/app", 1},
		{"private key", "a\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\nz", "a\n[REDACTED:private-key]\nz", 1},
		{"cut private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA", "[REDACTED:private-key]", 1},
		{"slack bot token", "SLACK_TOKEN xoxb-1234567890-abcdefghijkl", "SLACK_TOKEN [REDACTED:slack-token]", 1},
		{"slack webhook", "curl https://hooks.slack.com/services/T000/B000/XXXXXXXX -d", "curl [REDACTED:slack-webhook] -d", 1},
		{"pagerduty header", "Authorization: Token token=y_NbAkKc66ryYTWUXYEu", "Authorization: Token token=[REDACTED:pagerduty-token]", 1},
		{"pagerduty user token", "u+abcdefghijklmnopqr", "[REDACTED:pagerduty-token]", 1},
		{"pagerduty routing key", "routing_key: 0123456789abcdef0123456789abcdef", "routing_key: [REDACTED:pagerduty-key]", 1},
		{"password flag", "java -jar app.jar --db.password=s3cr3t! --port=8080", "java -jar app.jar --db.password=[REDACTED:password] --port=8080", 1},
		{"env secret", "MYSQL_ROOT_PASSWORD=changeme\nPATH=/usr/bin", "MYSQL_ROOT_PASSWORD=[REDACTED:password]\nPATH=/usr/bin", 1},
		{"custom with group", "token vault:v1:AbCd+/== end", "token vault:v1:[REDACTED:custom] end", 1},
		{"custom whole", "ticket INTERNAL-123456", "ticket [REDACTED:custom]", 1},
		{"several", "AKIAIOSFODNN7EXAMPLE AKIAIOSFODNN7EXAMPLF", "[REDACTED:aws-access-key] [REDACTED:aws-access-token]", 2},
		{"nothing", " 10:04:01 up 3 days,  load average: 0.52, 0.58, 0.59\nFilesystem Use% /dev/sda1 97%", " 10:04:01 up 3 days,  load average: 0.52, 0.58, 0.59\nFilesystem Use% /dev/sda1 97%", 0},
		{"not an access key", "XAKIAIOSFODNN7EXAMPLE1 and AKIA12", "XAKIAIOSFODNN7EXAMPLE1 and AKIA12", 0},
		{"a 40-char string alone", "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709", "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := r.RedactString(tc.in)
			if got != tc.want || n != tc.n {
				t.Errorf("got %q (%d), want %q (%d)", got, n, tc.want, tc.n)
			}
			again, n2 := r.RedactString(got)
			if again != got || n2 != 0 {
				t.Errorf("redacting twice changed the text: %q (%d)", again, n2)
			}
		})
	}
}

func TestRedactConfig(t *testing.T) {
	for _, p := range []string{"(", "a*"} {
		if err := (evidence.RedactConfig{Patterns: []string{p}}).Validate(); err == nil {
			t.Errorf("pattern %q: got no error", p)
		}
	}
}

func TestRedactBundle(t *testing.T) {
	r, _ := evidence.NewRedactor(evidence.RedactConfig{})
	b := &evidence.Bundle{}
	out := []byte("env:\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nok\n")
	st := evidence.Step{Name: "env", Command: "env | grep -i key", Error: "curl https://u:pw123456@x/"}
	st.Findings = []evidence.Finding{{Rule: "r", Severity: evidence.SeverityWarn, Message: "token leaked: xoxb-1234567890-abcdefghijkl"}}
	st.Stdout = b.SetOutput("steps/01-env.stdout", out, 3<<20)
	st.Stdout.Truncated = true
	b.Manifest.Steps = []evidence.Step{st}
	b.Manifest.Incident.Title = "leaked xoxb-1234567890-abcdefghijkl in logs"
	r.RedactBundle(b)
	got := b.Manifest.Steps[0]
	file := b.Files[got.Stdout.File]
	if bytes.Contains(file, []byte("AKIAIOSFODNN7EXAMPLE")) || got.Redactions != 3 {
		t.Fatalf("got %q with %d redactions, want the key, the URL password and the finding's token redacted", file, got.Redactions)
	}
	sum := sha256.Sum256(file)
	if got.Stdout.SHA256 != hex.EncodeToString(sum[:]) || got.Stdout.Kept != int64(len(file)) {
		t.Errorf("manifest describes the unredacted file: %+v", got.Stdout)
	}
	if got.Stdout.Bytes != 3<<20 || !got.Stdout.Truncated {
		t.Errorf("lost the stream's size or truncation: %+v", got.Stdout)
	}
	if strings.Contains(got.Findings[0].Message, "xoxb-") {
		t.Errorf("finding %q not redacted", got.Findings[0].Message)
	}
	if strings.Contains(b.Manifest.Incident.Title, "xoxb-") || strings.Contains(got.Error, "pw123456") {
		t.Errorf("title %q or error %q not redacted", b.Manifest.Incident.Title, got.Error)
	}
}

func FuzzRedactIdempotent(f *testing.F) {
	f.Add("password=abcd AKIAIOSFODNN7EXAMPLE Bearer abcdefgh")
	f.Add("-----BEGIN PRIVATE KEY-----\nx")
	r, _ := evidence.NewRedactor(evidence.RedactConfig{})
	f.Fuzz(func(t *testing.T, s string) {
		once, _ := r.RedactString(s)
		twice, n := r.RedactString(once)
		if twice != once || n != 0 {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, once, twice)
		}
	})
}

// TestRedactTokenValues: under a key name ending in token, _pat or _key,
// a generated-looking value goes, a word or a number stays.
func TestRedactTokenValues(t *testing.T) {
	r, _ := evidence.NewRedactor(evidence.RedactConfig{})
	for in, want := range map[string]string{
		"CI_JOB_TOKEN=dMmYqAnNsMEQQrpbuJmy": "CI_JOB_TOKEN=[REDACTED:token]",
		"CI_JOB_TOKEN=4kd93ndk2kd9dj3kd9s2": "CI_JOB_TOKEN=[REDACTED:token]",
		"sort_key=created_at":               "sort_key=created_at",
		"max_token: 40960000":               "max_token: 40960000",
		"token_type=access":                 "token_type=access",
		"provider_key: TokenProviderImpl":   "provider_key: TokenProviderImpl",
	} {
		if got, _ := r.RedactString(in); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}
