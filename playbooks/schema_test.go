package playbooks_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/playbooks"
)

func parseSchema(t *testing.T) map[string]any {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal(playbooks.JSONSchema(), &s); err != nil {
		t.Fatalf("JSONSchema() is not valid JSON: %v", err)
	}
	return s
}

func TestJSONSchemaShape(t *testing.T) {
	s := parseSchema(t)
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" || s["type"] != "object" {
		t.Errorf("$schema, type = %v, %v", s["$schema"], s["type"])
	}
	if !reflect.DeepEqual(s["required"], []any{"name", "steps"}) {
		t.Errorf("required = %v", s["required"])
	}
	// Every property says what it is, for editors to show.
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for k, p := range props {
					if d, _ := p.(map[string]any)["description"].(string); d == "" {
						t.Errorf("%s.%s has no description", path, k)
					}
				}
			}
			for k, c := range v {
				walk(path+"/"+k, c)
			}
		case []any:
			for i, c := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	walk("#", s)
}

// The schema's keys and the loader's keys are the same at every level.
func TestJSONSchemaMatchesLoader(t *testing.T) {
	s := parseSchema(t)
	for obj, keys := range playbooks.KeySets() {
		def := s
		if obj != "playbook" {
			def = resolveDef(t, s, obj)
		}
		props := def["properties"].(map[string]any)
		var got []string
		for k := range props {
			got = append(got, k)
		}
		sort.Strings(got)
		want := append([]string(nil), keys...)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: schema keys %v, loader keys %v", obj, got, want)
		}
		if def["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties = %v, want false like the loader", obj, def["additionalProperties"])
		}
	}
}

// resolveDef finds the object schema of a $defs entry (targets is a oneOf
// of the shorthand and the object).
func resolveDef(t *testing.T, s map[string]any, name string) map[string]any {
	def := s["$defs"].(map[string]any)[name].(map[string]any)
	if _, ok := def["properties"]; ok {
		return def
	}
	for _, alt := range def["oneOf"].([]any) {
		if m := alt.(map[string]any); m["properties"] != nil {
			return m
		}
	}
	t.Fatalf("no object schema for %s", name)
	return nil
}

// The valid examples conform to the schema, and together they use every
// key the schema (and so the loader) knows.
func TestJSONSchemaValidatesExamples(t *testing.T) {
	s := parseSchema(t)
	v := &validator{root: s, used: map[string]bool{}}
	files, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.y*ml"))
	sub, _ := filepath.Glob(filepath.Join("testdata", "valid", "*", "*.y*ml"))
	files = append(files, sub...)
	if len(files) < 4 {
		t.Fatalf("found %d examples", len(files))
	}
	for _, f := range files {
		doc := readYAML(t, f)
		if errs := v.validate("#", doc, s); len(errs) > 0 {
			t.Errorf("%s does not conform to the schema:\n%s", f, strings.Join(errs, "\n"))
		}
		v.recordRoot(doc)
	}
	for obj, keys := range playbooks.KeySets() {
		for _, k := range keys {
			if !v.used[obj+"."+k] {
				t.Errorf("no example in testdata/valid uses %s.%s; add one", obj, k)
			}
		}
	}
}

// The schema rejects what the loader rejects structurally, so the
// validator above is not vacuous.
func TestJSONSchemaRejects(t *testing.T) {
	s := parseSchema(t)
	docs := map[string]string{
		"unknown key":           "name: x\ncomand: y\nsteps: [{name: a, run: b}]",
		"missing steps":         "name: x",
		"bad name":              "name: Bad Name\nsteps: [{name: a, run: b}]",
		"empty steps":           "name: x\nsteps: []",
		"two actions":           "name: x\nsteps: [{name: a, run: b, script: c}]",
		"no action":             "name: x\nsteps: [{name: a}]",
		"bad duration":          "name: x\ntimeout: 5 minutes\nsteps: [{name: a, run: b}]",
		"duration without unit": "name: x\ntimeout: 30\nsteps: [{name: a, run: b}]",
		"bad size":              "name: x\nsteps: [{name: a, fetch: /x, max_bytes: 1 megabyte}]",
		"zero size":             "name: x\nsteps: [{name: a, run: b, max_output: 0}]",
		"two target kinds":      "name: x\ntargets: {group: a, selector: {b: c}}\nsteps: [{name: a, run: b}]",
		"targets shorthand":     "name: x\ntargets: web\nsteps: [{name: a, run: b}]",
		"max_hosts 0":           "name: x\ntargets: {group: a, max_hosts: 0}\nsteps: [{name: a, run: b}]",
		"when both":             "name: x\nsteps: [{name: a, run: b}, {name: c, run: d, when: {step: a, failed: true, exit_code: 1}}]",
		"exit code 256":         "name: x\nsteps: [{name: a, run: b}, {name: c, run: d, when: {step: a, exit_code: 256}}]",
		"param name":            "name: x\nparams: {my-unit: a}\nsteps: [{name: a, run: b}]",
		"empty service list":    "name: x\nmatch: {services: []}\nsteps: [{name: a, run: b}]",
		"finding no message":    "name: x\nsteps: [{name: a, run: b, findings: [{name: f, pattern: x, severity: warn}]}]",
		"finding two kinds":     "name: x\nsteps: [{name: a, run: b, findings: [{name: f, pattern: x, severity: warn, above: {crit: 1}, value: v, message: m}]}]",
		"finding bad threshold": "name: x\nsteps: [{name: a, run: b, findings: [{name: f, pattern: x, value: v, above: {critical: 1}, message: m}]}]",
	}
	for name, src := range docs {
		var doc any
		if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
			t.Fatal(err)
		}
		v := &validator{root: s, used: map[string]bool{}}
		if errs := v.validate("#", doc, s); len(errs) == 0 {
			t.Errorf("%s: the schema accepts\n%s", name, src)
		}
	}
}

func readYAML(t *testing.T, path string) any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

// validator implements the part of JSON Schema 2020-12 that JSONSchema
// uses. It records which object keys the documents use, by definition.
type validator struct {
	root map[string]any
	used map[string]bool
}

func (v *validator) validate(path string, doc any, s map[string]any) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/$defs/")
		return v.validateDef(path, doc, name)
	}
	if typ, ok := s["type"]; ok && !hasType(doc, typ) {
		fail("want type %v, got %T", typ, doc)
		return errs
	}
	if c, ok := s["const"]; ok && !reflect.DeepEqual(doc, c) {
		fail("want %v", c)
	}
	if str, ok := doc.(string); ok {
		if n, ok := s["minLength"].(float64); ok && float64(len([]rune(str))) < n {
			fail("shorter than %v", n)
		}
		if n, ok := s["maxLength"].(float64); ok && float64(len([]rune(str))) > n {
			fail("longer than %v", n)
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	}
	if n, ok := number(doc); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v < minimum %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v > maximum %v", n, m)
		}
	}
	if arr, ok := doc.([]any); ok {
		if n, ok := s["minItems"].(float64); ok && float64(len(arr)) < n {
			fail("fewer than %v items", n)
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, it := range arr {
				errs = append(errs, v.validate(fmt.Sprintf("%s[%d]", path, i), it, items)...)
			}
		}
	}
	if obj, ok := doc.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := obj[r.(string)]; !ok {
				fail("missing %s", r)
			}
		}
		if n, ok := s["minProperties"].(float64); ok && float64(len(obj)) < n {
			fail("fewer than %v keys", n)
		}
		for k, val := range obj {
			if pn, ok := s["propertyNames"].(map[string]any); ok {
				errs = append(errs, v.validate(path+"/"+k+" (name)", k, pn)...)
			}
			if p, ok := props[k]; ok {
				errs = append(errs, v.validate(path+"/"+k, val, p.(map[string]any))...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("unknown key %q", k)
				}
			case map[string]any:
				errs = append(errs, v.validate(path+"/"+k, val, ap)...)
			}
		}
	}
	if alts, ok := s["oneOf"].([]any); ok {
		var match []map[string]any
		for _, a := range alts {
			if len(v.dry(path, doc, a.(map[string]any))) == 0 {
				match = append(match, a.(map[string]any))
			}
		}
		if len(match) != 1 {
			fail("matches %d of the oneOf alternatives, want exactly 1", len(match))
		} else {
			v.validate(path, doc, match[0]) // again, to record the keys used
		}
	}
	if alts, ok := s["anyOf"].([]any); ok {
		n := 0
		for _, a := range alts {
			if len(v.dry(path, doc, a.(map[string]any))) == 0 {
				n++
			}
		}
		if n == 0 {
			fail("matches none of the anyOf alternatives")
		}
	}
	if not, ok := s["not"].(map[string]any); ok && len(v.dry(path, doc, not)) == 0 {
		fail("matches a schema it must not")
	}
	return errs
}

// validateDef validates against a $defs entry and records the keys used.
func (v *validator) validateDef(path string, doc any, name string) []string {
	def := v.root["$defs"].(map[string]any)[name].(map[string]any)
	errs := v.validate(path, doc, def)
	if obj, ok := doc.(map[string]any); ok && len(errs) == 0 {
		for k := range obj {
			v.used[name+"."+k] = true
		}
	}
	return errs
}

// dry validates without recording keys, for alternatives.
func (v *validator) dry(path string, doc any, s map[string]any) []string {
	saved := v.used
	v.used = map[string]bool{}
	defer func() { v.used = saved }()
	return v.validate(path, doc, s)
}

func (v *validator) recordRoot(doc any) {
	if obj, ok := doc.(map[string]any); ok {
		for k := range obj {
			v.used["playbook."+k] = true
		}
	}
}

func asList(x any) []any { l, _ := x.([]any); return l }

func number(x any) (float64, bool) {
	switch n := x.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func hasType(doc, typ any) bool {
	if list, ok := typ.([]any); ok {
		for _, t := range list {
			if hasType(doc, t) {
				return true
			}
		}
		return false
	}
	switch typ {
	case "object":
		_, ok := doc.(map[string]any)
		return ok
	case "array":
		_, ok := doc.([]any)
		return ok
	case "string":
		_, ok := doc.(string)
		return ok
	case "boolean":
		_, ok := doc.(bool)
		return ok
	case "integer":
		n, ok := number(doc)
		return ok && n == math.Trunc(n)
	case "number":
		_, ok := number(doc)
		return ok
	}
	return false
}

// docs/playbooks.md documents every key the loader accepts, in a table row.
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "playbooks.md"))
	if err != nil {
		t.Fatalf("read the reference: %v", err)
	}
	for obj, keys := range playbooks.KeySets() {
		for _, k := range keys {
			if !strings.Contains(string(doc), "| `"+k+"` |") {
				t.Errorf("docs/playbooks.md has no table row for %s key %q", obj, k)
			}
		}
	}
}
