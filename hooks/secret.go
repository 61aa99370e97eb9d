package hooks

import (
	"crypto/subtle"
	"fmt"
	"net/http"
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

// BasicAuth is one accepted basic-auth username and password, as a
// source's configuration lists them (several while rotating).
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// ValidateBasicAuth reports an entry without a username, or without
// exactly one of password and password_file.
func ValidateBasicAuth(field string, list []BasicAuth) error {
	for i, b := range list {
		switch {
		case b.Username == "":
			return fmt.Errorf("%s[%d].username: required", field, i)
		case (b.Password == "") == (b.PasswordFile == ""):
			return fmt.Errorf("%s[%d]: set password or password_file, one of them", field, i)
		}
	}
	return nil
}

// BasicAuthPaths applies abs to the password files of list.
func BasicAuthPaths(list []BasicAuth, abs func(string) string) {
	for i := range list {
		list[i].PasswordFile = abs(list[i].PasswordFile)
	}
}

// BasicCredentials reads list (password files included) into the form
// MatchBasic compares.
func BasicCredentials(field string, list []BasicAuth) ([]string, error) {
	var out []string
	for i, b := range list {
		var files []string
		if b.PasswordFile != "" {
			files = []string{b.PasswordFile}
		}
		pw, err := ReadSecrets(fmt.Sprintf("%s[%d].password", field, i), []Secret{b.Password}, files)
		if err != nil {
			return nil, err
		}
		if len(pw) == 0 {
			return nil, fmt.Errorf("%s[%d]: empty password", field, i)
		}
		out = append(out, b.Username+"\x00"+pw[0])
	}
	return out, nil
}

// MatchBasic reports whether r carries basic-auth credentials at all, and
// whether they are one of creds (from BasicCredentials), compared in
// constant time.
func MatchBasic(r *http.Request, creds []string) (present, ok bool) {
	user, pw, present := r.BasicAuth()
	if !present {
		return false, false
	}
	return true, MatchAny(user+"\x00"+pw, creds)
}
