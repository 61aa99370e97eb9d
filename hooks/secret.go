package hooks

import (
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
)

// Secret is a credential in a source's configuration (a token, a
// password): it prints as "<secret>" in every format, so that printing a
// configuration or an error never shows one.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "<secret>"
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML hides the value from YAML.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText hides the value from JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Value is the secret itself.
func (s Secret) Value() string { return string(s) }

// ReadSecrets returns the non-empty values, followed by the contents of
// each file (without its trailing newline). field names the setting in
// errors; a file that is missing or empty is an error.
func ReadSecrets(field string, values []Secret, files []string) ([]string, error) {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, string(v))
		}
	}
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s_files[%d]: %w", field, i, err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return nil, fmt.Errorf("%s_files[%d]: %s is empty", field, i, f)
		}
		out = append(out, s)
	}
	return out, nil
}

// MatchAny reports whether got equals one of want, comparing every one in
// constant time so that the answer's timing says nothing about which came
// close.
func MatchAny(got string, want []string) bool {
	ok := 0
	for _, w := range want {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(w))
	}
	return ok == 1 && got != ""
}
