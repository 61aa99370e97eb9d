package yamlfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	goccy "github.com/goccy/go-yaml"
	goccyparser "github.com/goccy/go-yaml/parser"
	"go.yaml.in/yaml/v3"
)

// Decoder reads one file and collects every problem in it.
type Decoder struct {
	// File names the file in errors.
	File string
	// Env looks up ${VAR} in values; nil leaves values as written.
	Env func(name string) (string, bool)
	// Errs is what was found so far, warnings included.
	Errs List
}

// Fail records an error at n, prefixed with the key path where
// ("runner.workers").
func (d *Decoder) Fail(n *yaml.Node, where, format string, args ...any) {
	d.add(n, false, where, format, args...)
}

// Warn records a warning at n.
func (d *Decoder) Warn(n *yaml.Node, where, format string, args ...any) {
	d.add(n, true, where, format, args...)
}

func (d *Decoder) add(n *yaml.Node, warn bool, where, format string, args ...any) {
	e := &Error{File: d.File, Msg: fmt.Sprintf(format, args...), Warning: warn}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	if where != "" {
		e.Msg = where + ": " + e.Msg
	}
	d.Errs = append(d.Errs, e)
}

// Parse parses data as one YAML document and returns its root node (nil
// for an empty file). A syntax error is recorded at its real position.
func (d *Decoder) Parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.Errs = append(d.Errs, SyntaxError(d.File, data, err))
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		at := &extra
		if len(extra.Content) > 0 {
			at = extra.Content[0]
		}
		d.Fail(at, "", "a second YAML document; remove the --- line, one document per file")
	case !errors.Is(err, io.EOF):
		d.Errs = append(d.Errs, SyntaxError(d.File, data, err))
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

var (
	yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	tabLineRE  = regexp.MustCompile(`(?m)^ *\t`)
)

// SyntaxError turns a yaml.v3 syntax error in data into an Error at the
// real position. yaml.v3 reports the line where the enclosing block began
// (and no column), so the position comes from a second parser,
// goccy/go-yaml, whose errors carry the token at fault.
func SyntaxError(file string, data []byte, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if strings.Contains(msg, "cannot start any token") {
		if loc := tabLineRE.FindIndex(data); loc != nil {
			e.Line = bytes.Count(data[:loc[0]], []byte("\n")) + 1
			e.Column = loc[1] - loc[0]
			e.Msg = "invalid YAML: a tab in the indentation; YAML indents with spaces only"
			return e
		}
	}
	var se *goccy.SyntaxError
	if _, gerr := goccyparser.ParseBytes(data, 0); errors.As(gerr, &se) && se.Token != nil && se.Token.Position != nil {
		e.Line, e.Column = se.Token.Position.Line, se.Token.Position.Column
		// yaml.v3's words are the familiar ones, except where it ran to
		// the end of the file looking for what was never closed.
		if strings.Contains(msg, "end of stream") || msg == "" {
			msg = se.Message
		}
	}
	e.Msg = "invalid YAML: " + msg + syntaxHint(msg)
	return e
}

// syntaxHint says what to do about a syntax error.
func syntaxHint(msg string) string {
	switch {
	case strings.Contains(msg, "quote"), strings.Contains(msg, "quoted"):
		return "; close the quote"
	case strings.Contains(msg, "']'"), strings.Contains(msg, "'}'"), strings.Contains(msg, "flow"):
		return "; close the bracket, or write the list or mapping one item per line"
	case strings.Contains(msg, "anchor"):
		return "; define the anchor (&name) before its alias (*name)"
	}
	return "; check this line's indentation against the lines above (keys of one mapping line up; list items start with '- ')"
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Expand replaces ${VAR} in s with d.Env, and returns the variables that
// are not set (they expand to "").
func (d *Decoder) Expand(s string) (string, []string) {
	if d.Env == nil {
		return s, nil
	}
	var unset []string
	out := envRef.ReplaceAllStringFunc(s, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		v, ok := d.Env(name)
		if !ok {
			unset = append(unset, name)
		}
		return v
	})
	return out, unset
}

// Unmarshaler is a type that decodes itself from a node with the
// decoder's help (positions, env expansion), such as a secret.
type Unmarshaler interface {
	UnmarshalYAMLFile(d *Decoder, where string, n *yaml.Node)
}

var (
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// Decode decodes n into v (a pointer), as yaml.v3 would, but records every
// problem instead of stopping at the first: unknown keys (with the valid
// keys and a suggestion), values of the wrong type (naming the key path),
// and unset environment variables. Keys are never expanded.
func (d *Decoder) Decode(n *yaml.Node, where string, v any) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("yamlfile: Decode needs a non-nil pointer")
	}
	if n == nil {
		return
	}
	d.decode(n, where, rv.Elem())
}

func (d *Decoder) decode(n *yaml.Node, where string, v reflect.Value) {
	n = resolve(n)
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		v.Addr().Interface().(Unmarshaler).UnmarshalYAMLFile(d, where, n)
		return
	}
	t := v.Type()
	if isNull(n) {
		return // as yaml.v3: null leaves the zero value
	}
	switch {
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.decode(n, where, v.Elem())
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, where, v)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.Fail(n, where, "want a list, got %s; write [a, b] or one '- item' per line", KindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, fmt.Sprintf("%s[%d]", where, i), s.Index(i))
		}
		v.Set(s)
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.Fail(n, where, "want a mapping of names to values, got %s", KindName(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := resolve(n.Content[i])
			key := reflect.New(t.Key()).Elem()
			if t.Key().Kind() != reflect.String || k.Kind != yaml.ScalarNode {
				d.Fail(k, where, "a key must be a plain name, got %s", KindName(k))
				continue
			}
			key.SetString(k.Value)
			val := reflect.New(t.Elem()).Elem()
			d.decode(n.Content[i+1], Join(where, k.Value), val)
			v.SetMapIndex(key, val)
		}
	default:
		d.decodeScalar(n, where, v)
	}
}

// Fields maps the yaml keys of struct t (with ,inline fields merged) to
// their field index paths.
func Fields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case name == "-":
			continue
		case strings.Contains(opts, "inline"):
			for k, idx := range Fields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		case name == "":
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func (d *Decoder) decodeStruct(n *yaml.Node, where string, v reflect.Value) {
	fields := Fields(v.Type())
	names := slices.Sorted(maps.Keys(fields))
	if n.Kind != yaml.MappingNode {
		d.Fail(n, where, "want a mapping with keys %s, got %s", strings.Join(names, ", "), KindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.Fail(k, where, "a key must be a plain name, got %s", KindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.Fail(k, where, "duplicate key %q (first at line %d); remove one", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		idx, ok := fields[k.Value]
		if !ok {
			d.Fail(k, OrTop(where), "unknown key %q%s valid keys: %s", k.Value, OrSemicolon(DidYouMean(k.Value, names)), strings.Join(names, ", "))
			continue
		}
		d.decode(n.Content[i+1], Join(where, k.Value), v.FieldByIndex(idx))
	}
}

// decodeScalar decodes a scalar after expanding ${VAR} in it.
func (d *Decoder) decodeScalar(n *yaml.Node, where string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.Fail(n, where, "want %s, got %s", want(v.Type()), KindName(n))
		return
	}
	value, unset := d.Expand(n.Value)
	if len(unset) > 0 {
		d.Fail(n, where, "environment variable %s is not set; export it, or write the value here", unset[0])
		return
	}
	tag := n.ShortTag()
	if value != n.Value {
		// Let an unquoted value resolve as if written in place, so that
		// port: ${PORT} is a number.
		c := *n
		c.Value = value
		if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			c.Tag = ""
		}
		tag = c.ShortTag()
	}
	shown := strconv.Quote(value)
	t := v.Type()
	switch {
	case t == durationType:
		if tag == "!!int" || tag == "!!float" {
			d.Fail(n, where, "want a duration, got %s; write %ss for seconds or %sm for minutes", value, value, value)
			return
		}
		dur, err := time.ParseDuration(value)
		if err != nil {
			d.Fail(n, where, "want a duration, got %s; write e.g. 10s, 2m or 1m30s", shown)
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.String:
		v.SetString(value)
	case t.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(value)
		if tag != "!!bool" || err != nil {
			d.Fail(n, where, "want true or false, got %s", shown)
			return
		}
		v.SetBool(b)
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(value, "_", ""), 0, 64)
		if tag != "!!int" || err != nil {
			d.Fail(n, where, "want an integer, got %s", shown)
			return
		}
		if v.OverflowInt(i) {
			d.Fail(n, where, "%d is out of range for this key", i)
			return
		}
		v.SetInt(i)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		i, err := strconv.ParseUint(strings.ReplaceAll(value, "_", ""), 0, 64)
		if tag != "!!int" || err != nil {
			d.Fail(n, where, "want a whole number (0 or more), got %s", shown)
			return
		}
		if v.OverflowUint(i) {
			d.Fail(n, where, "%d is out of range for this key", i)
			return
		}
		v.SetUint(i)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(value, 64)
		if (tag != "!!int" && tag != "!!float") || err != nil {
			d.Fail(n, where, "want a number, got %s", shown)
			return
		}
		v.SetFloat(f)
	default:
		c := *n
		c.Value = value
		if err := c.Decode(v.Addr().Interface()); err != nil {
			d.Fail(n, where, "%s", strings.TrimPrefix(err.Error(), "yaml: unmarshal errors:\n  "))
		}
	}
}

func want(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a single value"
}

// Node returns the node at the key path (dot-separated keys, [i] for list
// items) under root, and how much of the path it found; root when nothing
// matched.
func Node(root *yaml.Node, path string) (*yaml.Node, string) {
	n, found := root, ""
	if n == nil {
		return nil, ""
	}
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		next := mappingValue(resolve(n), key)
		if next == nil {
			return n, found
		}
		n, found = next, Join(found, key)
		for rest != "" {
			is, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(is)
			s := resolve(n)
			if err != nil || s.Kind != yaml.SequenceNode || i < 0 || i >= len(s.Content) {
				return n, found
			}
			n, found = s.Content[i], found+"["+is+"]"
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return n, found
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// KeyNode returns the key node of the last key of path, or the value node
// when path ends in a list index or is not found.
func KeyNode(root *yaml.Node, path string) *yaml.Node {
	n, found := Node(root, path)
	if found == "" || strings.HasSuffix(found, "]") {
		return n
	}
	parentPath, key := "", found
	if i := strings.LastIndexAny(found, ".]"); i >= 0 {
		parentPath, key = strings.TrimSuffix(found[:i+1], "."), found[i+1:]
	}
	parent := root
	if parentPath != "" {
		parent, _ = Node(root, parentPath)
	}
	parent = resolve(parent)
	if parent != nil && parent.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(parent.Content); i += 2 {
			if parent.Content[i].Value == key {
				return parent.Content[i]
			}
		}
	}
	return n
}

// At places err, which names a key path at its start ("runner.workers:
// must be at least 1", as Validate methods write them), at that key in
// root: the longest prefix of "a: b: c: msg" that is a path in the file.
func (d *Decoder) At(root *yaml.Node, err error) {
	msg := err.Error()
	path, n := "", root
	rest := msg
	for {
		key, after, ok := strings.Cut(rest, ": ")
		if !ok || strings.ContainsAny(key, " \"'") {
			break
		}
		cand := Join(path, key)
		m, found := Node(root, cand)
		if found != cand {
			break
		}
		path, n, rest = cand, m, after
	}
	if path != "" {
		n = KeyNode(root, path)
	}
	d.Fail(n, "", "%s", msg)
}

// Join appends key to the key path where.
func Join(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

// OrTop names the top level when where is empty.
func OrTop(where string) string {
	if where == "" {
		return "top level"
	}
	return where
}

// OrSemicolon is hint, or ";" when there is none, to go before "valid
// keys: …".
func OrSemicolon(hint string) string {
	if hint == "" {
		return ";"
	}
	return hint
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// Resolve follows an alias to the node it names.
func Resolve(n *yaml.Node) *yaml.Node { return resolve(n) }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// KindName describes n for "want X, got Y" messages.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!bool":
			return "true/false " + strconv.Quote(n.Value)
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return "the string " + strconv.Quote(n.Value)
	}
	return "an empty document"
}
