package playbooks

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/playbooks/yamlfile"
)

// decoder walks yaml.v3 nodes of one file by hand. yaml.v3 forgets
// KnownFields inside custom UnmarshalYAML (go-yaml/yaml#460), and its type
// errors carry a line but no column, so every key is checked here and every
// error points at the node it is about.
type decoder struct {
	file  string
	lines []string // the file's lines, for positions inside block scalars
	errs  ErrorList
	// unknownKeys counts unknown keys, so that a step whose "comand" was
	// rejected is not also told it lacks a run.
	unknownKeys int
}

// fail records an error at n, prefixed with where ("steps[2].timeout").
func (d *decoder) fail(n *yaml.Node, where, format string, args ...any) {
	var line, col int
	if n != nil {
		line, col = n.Line, n.Column
	}
	d.failAt(Pos{line, col}, where, format, args...)
}

func (d *decoder) failAt(p Pos, where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: p.Line, Column: p.Column, Msg: msg})
}

// key is one key of a YAML mapping in the playbook language: its
// documentation, its JSON Schema, and how to decode its value into T. The
// loader's known keys and the JSON Schema's properties both come from
// these tables, so they cannot drift apart.
type key[T any] struct {
	name   string
	doc    string
	schema func() jsonObject
	decode func(d *decoder, where string, v *yaml.Node, t *T)
}

// entry is a key and its value as they appear in the file.
type entry struct{ key, val *yaml.Node }

// keyHints maps common mistakes to the key that was meant, when the
// spelling alone would not suggest it.
var keyHints = map[string]string{
	"command": "run", "cmd": "run", "shell": "run", "exec": "run", "commands": "steps",
	"file": "fetch", "path": "fetch", "tail": "fetch", "get": "fetch",
	"vars": "params", "variables": "params", "env": "params", "args": "params",
	"ignore_errors": "continue_on_error", "ignore_error": "continue_on_error", "continue": "continue_on_error",
	"if": "when", "condition": "when", "only_if": "when",
	"become": "sudo", "root": "sudo",
	"desc": "description", "summary": "description",
	"target": "targets", "host": "targets", "on": "match", "trigger": "match", "triggers": "match",
	"tasks": "steps", "actions": "steps",
	"service": "services", "event": "events", "label": "labels",
	"exitcode": "exit_code", "exit_codes": "exit_code", "status": "exit_code", "rc": "exit_code",
	"max_size": "max_bytes", "limit": "max_bytes", "output_limit": "max_output",
	"parallelism": "concurrency", "limit_hosts": "max_hosts",
}

func keyNames[T any](keys []key[T]) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.name
	}
	return names
}

// decodeMapping decodes the mapping n with keys, rejecting unknown and
// duplicate keys, and returns what was present by name (nil if n is not a
// mapping).
func decodeMapping[T any](d *decoder, where string, n *yaml.Node, keys []key[T], t *T) map[string]entry {
	n = resolve(n)
	names := keyNames(keys)
	if n.Kind != yaml.MappingNode {
		d.fail(n, where, "want a mapping with keys %s, got %s", strings.Join(names, ", "), kindName(n))
		return nil
	}
	seen := make(map[string]entry, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, where, "a key must be a plain name, got %s", kindName(k))
			continue
		}
		name := k.Value
		if name == "<<" {
			d.fail(k, where, "merge keys (<<) are not supported; write the keys out, or share values with anchors (&x) and aliases (*x)")
			d.unknownKeys++
			continue
		}
		if prev, dup := seen[name]; dup {
			d.fail(k, where, "duplicate key %q (first at line %d); remove one", name, prev.key.Line)
			continue
		}
		seen[name] = entry{k, v}
		var kd *key[T]
		for i := range keys {
			if keys[i].name == name {
				kd = &keys[i]
				break
			}
		}
		if kd == nil {
			hint := unknownKeyHint(name, names)
			d.fail(k, where, "unknown key %q%s valid keys: %s", name, orSemicolon(hint), strings.Join(names, ", "))
			d.unknownKeys++
			continue
		}
		kd.decode(d, join(where, name), v, t)
	}
	return seen
}

// unknownKeyHint suggests the key that was probably meant: a known
// mistake ("cmd" for run), a near spelling of a valid key, or a near
// spelling of a known mistake ("comand").
func unknownKeyHint(name string, valid []string) string {
	lower := strings.ToLower(name)
	if h, ok := keyHints[lower]; ok && contains(valid, h) {
		return fmt.Sprintf("; did you mean %q?", h)
	}
	if c := suggest(name, valid); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	mistakes := make([]string, 0, len(keyHints))
	for k, h := range keyHints {
		if contains(valid, h) {
			mistakes = append(mistakes, k)
		}
	}
	sort.Strings(mistakes)
	if m := suggest(lower, mistakes); m != "" {
		return fmt.Sprintf("; did you mean %q?", keyHints[m])
	}
	return ""
}

func orSemicolon(hint string) string { return yamlfile.OrSemicolon(hint) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func join(where, name string) string { return yamlfile.Join(where, name) }

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node { return yamlfile.Resolve(n) }

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string { return yamlfile.KindName(n) }

// str decodes a string. Any scalar but null is accepted, so that
// `name: 2024` or `unit: 80` mean what they look like.
func (d *decoder) str(where string, n *yaml.Node) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.fail(n, where, "want a string, got %s", kindName(n))
		return "", false
	}
	if isNull(n) {
		d.fail(n, where, "needs a value (write \"\" for an empty string)")
		return "", false
	}
	if strings.ContainsRune(n.Value, 0) {
		d.fail(n, where, "contains a NUL byte, which no shell argument can carry")
		return "", false
	}
	return n.Value, true
}

// nonEmpty decodes a string that must not be empty or blank.
func (d *decoder) nonEmpty(where string, n *yaml.Node) (string, bool) {
	s, ok := d.str(where, n)
	if ok && strings.TrimSpace(s) == "" {
		d.fail(n, where, "must not be empty")
		return "", false
	}
	return s, ok
}

// strList decodes a list of non-empty strings; a single string is a list of
// one.
func (d *decoder) strList(where string, n *yaml.Node) ([]string, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		s, ok := d.nonEmpty(where, n)
		return []string{s}, ok
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, where, "want a list of strings, got %s", kindName(n))
		return nil, false
	}
	if len(n.Content) == 0 {
		d.fail(n, where, "an empty list matches nothing; remove the key to match any value")
		return nil, false
	}
	ok := true
	out := make([]string, 0, len(n.Content))
	for i, item := range n.Content {
		s, ok1 := d.nonEmpty(fmt.Sprintf("%s[%d]", where, i), item)
		ok = ok && ok1
		out = append(out, s)
	}
	return out, ok
}

// strMap decodes a mapping of string keys to string values.
func (d *decoder) strMap(where string, n *yaml.Node) (map[string]string, bool) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.fail(n, where, "want a mapping of names to values, got %s", kindName(n))
		return nil, false
	}
	ok := true
	out := make(map[string]string, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		name, ok1 := d.nonEmpty(where, k)
		if !ok1 {
			ok = false
			continue
		}
		if first, dup := lines[name]; dup {
			d.fail(k, where, "duplicate key %q (first at line %d); remove one", name, first)
			ok = false
			continue
		}
		lines[name] = k.Line
		val, ok2 := d.str(join(where, name), v)
		ok = ok && ok2
		out[name] = val
	}
	return out, ok
}

func (d *decoder) boolean(where string, n *yaml.Node) (bool, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.fail(n, where, "want true or false, got %s", kindName(n))
		return false, false
	}
	b, err := strconv.ParseBool(n.Value)
	if err != nil {
		d.fail(n, where, "want true or false, got %s", kindName(n))
		return false, false
	}
	return b, true
}

// integer decodes an integer in [lo, hi].
func (d *decoder) integer(where string, n *yaml.Node, lo, hi int) (int, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.fail(n, where, "want a whole number, got %s", kindName(n))
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 0, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		d.fail(n, where, "%s is out of range; want %d to %d", n.Value, lo, hi)
		return 0, false
	}
	return int(v), true
}

// duration decodes a positive Go duration ("30s", "2m", "1m30s") of at
// most hi.
func (d *decoder) duration(where string, n *yaml.Node, hi time.Duration) (time.Duration, bool) {
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		d.fail(n, where, "%s needs a unit: write %ss for seconds or %sm for minutes", n.Value, n.Value, n.Value)
		return 0, false
	}
	s, ok := d.str(where, n)
	if !ok {
		return 0, false
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		d.fail(n, where, "%q is not a duration; write e.g. 10s, 2m or 1m30s", s)
		return 0, false
	}
	if v <= 0 {
		d.fail(n, where, "must be more than 0, got %s", s)
		return 0, false
	}
	if v > hi {
		d.fail(n, where, "%s is longer than the %s allowed", s, fmtDuration(hi))
		return 0, false
	}
	return v, true
}

// size decodes a positive byte size of at most MaxSize: an integer, or a
// string with a unit ("512KiB").
func (d *decoder) size(where string, n *yaml.Node) (int64, bool) {
	n = resolve(n)
	var v int64
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		i, err := strconv.ParseInt(n.Value, 0, 64)
		if err != nil {
			d.fail(n, where, "%s is not a byte size", n.Value)
			return 0, false
		}
		v = i
	} else {
		s, ok := d.str(where, n)
		if !ok {
			return 0, false
		}
		i, err := parseSize(s)
		if err != nil {
			d.fail(n, where, "%v", err)
			return 0, false
		}
		v = i
	}
	if v <= 0 {
		d.fail(n, where, "must be at least 1 byte, got %s", n.Value)
		return 0, false
	}
	if v > MaxSize {
		d.fail(n, where, "%s is more than the %d MiB allowed", n.Value, MaxSize>>20)
		return 0, false
	}
	return v, true
}

// offsetPos maps a byte offset in the value of scalar n to its position in
// the file. It is exact for plain and quoted single-line scalars and for
// literal (|) blocks; for folded or escaped scalars it is close.
func (d *decoder) offsetPos(n *yaml.Node, off int) Pos {
	start := Pos{n.Line, n.Column}
	if n.Line < 1 || n.Line > len(d.lines) {
		return start
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		// The block's content starts on the line after the indicator, at
		// the indentation of its first non-blank line.
		indent := -1
		for l := n.Line; l < len(d.lines); l++ {
			if t := strings.TrimLeft(d.lines[l], " "); t != "" {
				indent = len(d.lines[l]) - len(t)
				break
			}
		}
		if indent < 0 {
			return start
		}
		for l := n.Line; l < len(d.lines); l++ {
			content := ""
			if len(d.lines[l]) > indent {
				content = d.lines[l][indent:]
			}
			if off <= len(content) {
				return Pos{l + 1, indent + runeCol(content, off)}
			}
			off -= len(content) + 1
		}
		return start
	}
	// Flow scalars: the value starts at the node's column (after the quote
	// if quoted); continuation lines start at their first non-space, and
	// each line break folds into one character.
	line := n.Line - 1
	j := byteIndex(d.lines[line], n.Column-1)
	quoted := n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
	if quoted {
		j++
	}
	for {
		text := strings.TrimRight(d.lines[line], "\r")
		for j < len(text) && off > 0 {
			raw, val := scalarStep(text[j:], n.Style)
			if val > off {
				break
			}
			j += raw
			off -= val
		}
		if off == 0 || j < len(text) || line+1 >= len(d.lines) {
			if j > len(text) {
				j = len(text)
			}
			return Pos{line + 1, runeCol(text, j)}
		}
		off-- // the line break
		line++
		j = len(d.lines[line]) - len(strings.TrimLeft(d.lines[line], " \t"))
	}
}

// scalarStep reads one character of a flow scalar's source text: how many
// bytes of source it takes and how many bytes of value it makes.
func scalarStep(s string, style yaml.Style) (raw, val int) {
	switch {
	case style&yaml.DoubleQuotedStyle != 0 && s[0] == '\\' && len(s) > 1:
		switch s[1] {
		case 'x':
			return min(4, len(s)), 1
		case 'u':
			return min(6, len(s)), utf8Len(s[2:min(6, len(s))])
		case 'U':
			return min(10, len(s)), utf8Len(s[2:min(10, len(s))])
		case 'N', '_':
			return 2, 2
		case 'L', 'P':
			return 2, 3
		}
		return 2, 1
	case style&yaml.SingleQuotedStyle != 0 && strings.HasPrefix(s, "''"):
		return 2, 1
	}
	return 1, 1
}

// utf8Len is the UTF-8 length of the code point written in hex.
func utf8Len(hex string) int {
	r, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return 1
	}
	if n := utf8.RuneLen(rune(r)); n > 0 {
		return n
	}
	return 1
}

// runeCol is the 1-based column of byte offset off in s, counted in runes
// like yaml.v3 counts.
func runeCol(s string, off int) int {
	if off > len(s) {
		off = len(s)
	}
	return len([]rune(s[:off])) + 1
}

// byteIndex is the byte offset of the rune at index r in s.
func byteIndex(s string, r int) int {
	i := 0
	for b := range s {
		if i == r {
			return b
		}
		i++
	}
	return len(s)
}
