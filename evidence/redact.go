package evidence

import (
	"bytes"
	"fmt"
	"regexp"
)

// RedactConfig adds site-specific patterns to the built-in ones.
type RedactConfig struct {
	// Patterns are Go regular expressions. A match is replaced whole,
	// or only its (?P<secret>…) group when it has one, so context such
	// as "password=" stays readable.
	Patterns []string `yaml:"patterns"`
}

// Validate compiles the patterns.
func (c RedactConfig) Validate() error {
	_, err := compileRules(c.Patterns)
	return err
}

// rule is one kind of secret: where it is, and what part of the match is
// the secret (group; 0 = the whole match).
type rule struct {
	kind  string
	re    *regexp.Regexp
	group int
}

// builtin are the secrets redacted everywhere. Each is anchored on a
// shape or a key name that makes false positives rare: a 40-character
// base64 string alone is not taken for an AWS secret key, but one after
// aws_secret_access_key is.
var builtin = []struct{ kind, expr string }{
	{"private-key", `-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\z)`},
	{"aws-access-key", `\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|AKPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}\b`},
	{"aws-secret-key", `(?i)(?:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+=]{40})`},
	{"slack-token", `\bxox[abposre]-[A-Za-z0-9-]{10,}`},
	{"slack-token", `\bxapp-\d-[A-Za-z0-9-]{10,}`},
	{"slack-webhook", `https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+`},
	{"pagerduty-token", `(?i)token token=(?P<secret>[A-Za-z0-9_+\-]{20,})`},
	{"pagerduty-token", `\bu\+[A-Za-z0-9_-]{18}\b`},
	{"pagerduty-key", `(?i)(?:routing_key|integration_key|service_key)["']?\s*[:=]\s*["']?(?P<secret>[a-f0-9]{32})`},
	{"bearer", `(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})`},
	{"basic-auth", `(?i)\bbasic\s+(?P<secret>[A-Za-z0-9+/]{8,}={0,2})`},
	{"url-password", `\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:(?P<secret>[^/\s@]+)@`},
	{"password", `(?i)\b[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|api_?key|access_?token|auth_?token)[A-Za-z0-9_.-]*["']?\s*[:=]\s*["']?(?P<secret>[^\s"',;]{4,})`},
}

// Redactor replaces secrets in output with [REDACTED:<kind>]. It is the
// one redactor everything passes before it leaves the runner: the stored
// bundle, the PagerDuty note and the Slack message are all made from its
// output, so every sink shows the same text.
type Redactor struct {
	rules []rule
}

// NewRedactor returns a Redactor with the built-in rules and cfg's.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	extra, err := compileRules(cfg.Patterns)
	if err != nil {
		return nil, err
	}
	r := &Redactor{}
	for _, b := range builtin {
		re := regexp.MustCompile(b.expr)
		r.rules = append(r.rules, rule{kind: b.kind, re: re, group: max(re.SubexpIndex("secret"), 0)})
	}
	r.rules = append(r.rules, extra...)
	return r, nil
}

func compileRules(patterns []string) ([]rule, error) {
	var out []rule
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("patterns[%d]: %v", i, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("patterns[%d]: %q matches the empty string", i, p)
		}
		out = append(out, rule{kind: "custom", re: re, group: max(re.SubexpIndex("secret"), 0)})
	}
	return out, nil
}

var markPrefix = []byte("[REDACTED:")

// Redact returns b with every secret replaced, and how many were.
func (r *Redactor) Redact(b []byte) ([]byte, int) {
	if r == nil || len(b) == 0 {
		return b, 0
	}
	n := 0
	for _, ru := range r.rules {
		locs := ru.re.FindAllSubmatchIndex(b, -1)
		if len(locs) == 0 {
			continue
		}
		mark := []byte("[REDACTED:" + ru.kind + "]")
		out := make([]byte, 0, len(b))
		last := 0
		for _, loc := range locs {
			start, end := loc[2*ru.group], loc[2*ru.group+1]
			// An earlier, more specific rule already took this secret
			// (or this is a second pass): keep its mark.
			if start < 0 || start < last || bytes.Contains(b[start:end], markPrefix) {
				continue
			}
			out = append(out, b[last:start]...)
			out = append(out, mark...)
			last = end
			n++
		}
		b = append(out, b[last:]...)
	}
	return b, n
}

// RedactString is Redact for strings.
func (r *Redactor) RedactString(s string) (string, int) {
	b, n := r.Redact([]byte(s))
	return string(b), n
}

// RedactBundle redacts every output file, command, error and the
// incident title in b, in place, and records each step's count in
// Step.Redactions. Checksums and kept sizes describe the redacted files,
// which are what is stored.
func (r *Redactor) RedactBundle(b *Bundle) {
	m := &b.Manifest
	m.Incident.Title, _ = r.RedactString(m.Incident.Title)
	m.Error, _ = r.RedactString(m.Error)
	for i := range m.Steps {
		st := &m.Steps[i]
		var n, k int
		st.Command, k = r.RedactString(st.Command)
		n += k
		st.Error, k = r.RedactString(st.Error)
		n += k
		st.Script, k = r.RedactString(st.Script)
		n += k
		for _, o := range []*Output{&st.Stdout, &st.Stderr} {
			if o.File == "" {
				continue
			}
			red, k := r.Redact(b.Files[o.File])
			n += k
			if k > 0 {
				total, truncated := o.Bytes, o.Truncated
				*o = b.SetOutput(o.File, red, 0)
				o.Bytes, o.Truncated = total, truncated
			}
		}
		st.Redactions = n
	}
}
