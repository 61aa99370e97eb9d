package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/playbooks/yamlfile"
)

// Secret is a configuration value that must never be shown: it prints as
// "<secret>" in every format (fmt verbs, YAML, JSON, text, slog). Every
// secret in the configuration is a Secret, written one of three ways:
//
//	api_token: ${PAGERDUTY_API_TOKEN}           # from the environment
//	api_token: {env: PAGERDUTY_API_TOKEN}       # the same
//	api_token: {file: /etc/firstlook/pd-token}  # a file's content, without its trailing newline
//	api_token: {file: "${CREDENTIALS_DIRECTORY}/pd-token"}  # ${VAR} in the path is expanded
//
// or inline (api_token: "abc…"), which puts the secret in the file. A new
// secret is a field of this type: decoding, files, redaction and the
// "unset" warning come with it.
type Secret struct {
	value string
	// env and file are where the value comes from, for messages.
	env, file string
	// unset is set when the variable named is not set: the secret is
	// empty, and validate warns.
	unset bool
	// where and node place messages about the secret.
	where string
	node  *yaml.Node
}

// newFileSecret is a secret read from path, for the *_file keys.
func newFileSecret(where, path string, n *yaml.Node) Secret {
	return Secret{file: path, where: where, node: n}
}

// UnmarshalYAMLFile decodes any of the three forms.
func (s *Secret) UnmarshalYAMLFile(d *yamlfile.Decoder, where string, n *yaml.Node) {
	*s = Secret{where: where, node: n}
	switch {
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null":
	case n.Kind == yaml.ScalarNode:
		v, unset := d.Expand(n.Value)
		if m := envRefOnly(n.Value); m != "" {
			s.env = m
		}
		if len(unset) > 0 {
			s.unset = true
			s.env = unset[0]
			d.Warn(n, where, "environment variable %s is not set, so this secret is empty; export it if you use this feature", unset[0])
			return
		}
		s.value = v
	case n.Kind == yaml.MappingNode && len(n.Content) == 2 && n.Content[1].Kind == yaml.ScalarNode && n.Content[1].Value != "":
		k, v := n.Content[0].Value, n.Content[1].Value
		switch k {
		case "env":
			s.env = v
			val, ok := "", false
			if d.Env != nil {
				val, ok = d.Env(v)
			}
			if !ok {
				s.unset = true
				d.Warn(n.Content[1], where, "environment variable %s is not set, so this secret is empty; export it if you use this feature", v)
				return
			}
			s.value = val
		case "file":
			// ${VAR} in the path is expanded, as in the *_file keys:
			// {file: "${CREDENTIALS_DIRECTORY}/pd-token"} under systemd.
			path, unset := d.Expand(v)
			if len(unset) > 0 {
				d.Fail(n.Content[1], where, "environment variable %s in the secret's file path is not set; export it, or write the path out", unset[0])
				return
			}
			s.file = path
		default:
			d.Fail(n.Content[0], where, "unknown key %q%s valid keys: env, file", k, yamlfile.OrSemicolon(yamlfile.DidYouMean(k, []string{"env", "file"})))
		}
	default:
		d.Fail(n, where, "want a secret: \"${VAR}\", {env: VAR} or {file: path}, got %s", yamlfile.KindName(n))
	}
}

// envRefOnly is VAR when s is exactly "${VAR}".
func envRefOnly(s string) string {
	if strings.HasPrefix(s, "${") && strings.HasSuffix(s, "}") && !strings.Contains(s[2:], "$") {
		return s[2 : len(s)-1]
	}
	return ""
}

// resolve reads a file secret, relative to base. Errors name the key and
// the file, never the content.
func (s *Secret) resolve(d *yamlfile.Decoder, base string) {
	if s.file == "" {
		return
	}
	if !filepath.IsAbs(s.file) {
		s.file = filepath.Join(base, s.file)
	}
	b, err := os.ReadFile(s.file)
	if err != nil {
		d.Fail(s.node, s.where, "read secret: %v; create the file or fix the path", unwrapPathError(err))
		return
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		d.Fail(s.node, s.where, "secret file %s is empty; write the secret in it", s.file)
		return
	}
	s.value = v
}

// IsSet reports whether the secret has a value.
func (s Secret) IsSet() bool { return s.value != "" }

// Value is the secret itself, for the one call that needs it.
func (s Secret) Value() string { return s.value }

func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return "<secret>"
}

// Format prints "<secret>" for every verb, %#v included.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// GoString is String.
func (s Secret) GoString() string { return s.String() }

// MarshalYAML hides the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText hides the value (JSON and anything textual).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalJSON hides the value.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// LogValue hides the value from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

var secretType = reflect.TypeFor[Secret]()

// secrets returns every Secret in v (a pointer to a struct), wherever it
// sits, so that no secret can be forgotten by the code that reads files.
func secrets(v any) []*Secret {
	var out []*Secret
	var walk func(reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			if v.Type() == secretType {
				out = append(out, v.Addr().Interface().(*Secret))
				return
			}
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(v))
	return out
}

// unwrapPathError drops the operation from a *PathError: "open x: no such
// file" reads better as "x: no such file".
func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}
