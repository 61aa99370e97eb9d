package evidence

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// The built-in secret formats are gitleaks' default rule set, kept as data:
// redact_gitleaks.toml is config/gitleaks.toml of gitleaks at the version
// below, byte for byte (MIT; its licence is redact_gitleaks.LICENSE). To
// update: copy config/gitleaks.toml of a newer gitleaks release over it,
// change GitleaksVersion, run `go test ./evidence/`. The rules are read
// here with gitleaks' own mechanics (keywords, secretGroup, entropy,
// allowlists), without importing gitleaks, whose config package brings
// viper, a WebAssembly regexp engine and some forty other modules.

// GitleaksVersion is the gitleaks release redact_gitleaks.toml comes from.
const GitleaksVersion = "v8.30.1"

//go:embed redact_gitleaks.toml
var gitleaksTOML string

// gitleaksFile is the part of gitleaks' config format that holds content
// rules (the rest concerns files and commits).
type gitleaksFile struct {
	Allowlist  *gitleaksAllowlist  `toml:"allowlist"`
	Allowlists []gitleaksAllowlist `toml:"allowlists"`
	Rules      []struct {
		ID          string              `toml:"id"`
		Regex       string              `toml:"regex"`
		Path        string              `toml:"path"`
		SecretGroup int                 `toml:"secretGroup"`
		Entropy     float64             `toml:"entropy"`
		Keywords    []string            `toml:"keywords"`
		SkipReport  bool                `toml:"skipReport"`
		Required    []toml.Primitive    `toml:"required"`
		Allowlists  []gitleaksAllowlist `toml:"allowlists"`
	} `toml:"rules"`
}

type gitleaksAllowlist struct {
	Condition   string   `toml:"condition"`
	Paths       []string `toml:"paths"`
	Commits     []string `toml:"commits"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	StopWords   []string `toml:"stopwords"`
	TargetRules []string `toml:"targetRules"`
}

// allowlist exempts a finding, as gitleaks does: a regex matching the
// secret (or the whole match, or its line), or a stopword in the secret;
// unlike gitleaks, only a stopword that makes up a third of the secret or
// more ("changeme", "example_key"): a random token that happens to hold
// one of its 1,400 stopwords ("md5", "aria") is still a secret.
// With condition AND every listed check must hold; a check on paths or
// commits never holds for command output, so such a list exempts nothing.
type allowlist struct {
	and       bool
	never     bool
	target    string // "", "match" or "line"
	re        *regexp.Regexp
	stopwords []string
}

func (a *allowlist) allows(secret, match, line []byte) bool {
	if a.never {
		return false
	}
	target := secret
	switch a.target {
	case "match":
		target = match
	case "line":
		target = line
	}
	re := a.re != nil && a.re.Match(target)
	stop := false
	if len(a.stopwords) > 0 {
		low := strings.ToLower(string(secret))
		for _, w := range a.stopwords {
			if 3*len(w) >= len(low) && strings.Contains(low, w) {
				stop = true
				break
			}
		}
	}
	if a.and {
		return (a.re == nil || re) && (len(a.stopwords) == 0 || stop)
	}
	return re || stop
}

func compileAllowlist(g gitleaksAllowlist) (*allowlist, error) {
	a := &allowlist{target: g.RegexTarget}
	switch strings.ToUpper(g.Condition) {
	case "AND", "&&":
		a.and = true
		a.never = len(g.Paths) > 0 || len(g.Commits) > 0
	case "", "OR", "||":
	default:
		return nil, fmt.Errorf("unknown allowlist condition %q", g.Condition)
	}
	switch a.target {
	case "secret":
		a.target = ""
	case "", "match", "line":
	default:
		return nil, fmt.Errorf("unknown allowlist regexTarget %q", g.RegexTarget)
	}
	if len(g.Regexes) > 0 {
		re, err := regexp.Compile("(?:" + strings.Join(g.Regexes, ")|(?:") + ")")
		if err != nil {
			return nil, err
		}
		a.re = re
	}
	for _, w := range g.StopWords {
		a.stopwords = append(a.stopwords, strings.ToLower(w))
	}
	return a, nil
}

// gitleaksRules parses src (a gitleaks config) into rules, plus the global
// allowlist that also applies to firstlook's own rules. Rules that only
// look at file paths, or that only serve other rules (skipReport), are
// left out; a rule's path condition is ignored, since command output has
// no path and a secret is one wherever it appears.
func gitleaksRules(src string) (rules []rule, global []*allowlist, err error) {
	var f gitleaksFile
	if _, err := toml.Decode(src, &f); err != nil {
		return nil, nil, fmt.Errorf("parse gitleaks rules: %w", err)
	}
	targeted := map[string][]*allowlist{}
	gl := f.Allowlists
	if f.Allowlist != nil {
		gl = append(gl, *f.Allowlist)
	}
	for _, g := range gl {
		if len(g.Regexes) == 0 && len(g.StopWords) == 0 {
			continue // paths or commits only
		}
		a, err := compileAllowlist(g)
		if err != nil {
			return nil, nil, fmt.Errorf("parse gitleaks rules: global allowlist: %w", err)
		}
		if len(g.TargetRules) == 0 {
			global = append(global, a)
		}
		for _, id := range g.TargetRules {
			targeted[id] = append(targeted[id], a)
		}
	}
	for _, gr := range f.Rules {
		if gr.Regex == "" || gr.SkipReport {
			continue
		}
		re, err := regexp.Compile(gr.Regex)
		if err != nil {
			return nil, nil, fmt.Errorf("parse gitleaks rules: %s: %w", gr.ID, err)
		}
		if gr.SecretGroup > re.NumSubexp() {
			return nil, nil, fmt.Errorf("parse gitleaks rules: %s: secretGroup %d of %d groups", gr.ID, gr.SecretGroup, re.NumSubexp())
		}
		ru := rule{kind: gr.ID, re: re, group: gr.SecretGroup, entropy: gr.Entropy, allow: slices.Clip(global), back: lookBack}
		if strings.HasPrefix(gr.Regex, `(?i)[\w.-]{0,50}?(?:`) {
			ru.back = keyBack
		}
		// gitleaks' generated "semi-generic" rules: the keyword, up to 23
		// bytes of name and space, then an operator.
		if strings.Contains(gr.Regex, `)(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)`) {
			ru.opWithin, ru.ops = 20+3+1, "=>:|?,"
		}
		if gr.SecretGroup == 0 {
			ru.group = firstGroup
		}
		for _, k := range gr.Keywords {
			ru.keywords = append(ru.keywords, strings.ToLower(k))
		}
		for _, g := range gr.Allowlists {
			a, err := compileAllowlist(g)
			if err != nil {
				return nil, nil, fmt.Errorf("parse gitleaks rules: %s: %w", gr.ID, err)
			}
			ru.allow = append(ru.allow, a)
		}
		ru.allow = append(ru.allow, targeted[gr.ID]...)
		// Composite rules (required) report only next to their parts;
		// redacting the primary alone is the safe reading.
		if spansLines(gr.Regex) {
			ru.reach = multiReach
			if slices.Contains(ru.keywords, "-----begin") {
				ru.reach = keyReach
			}
		}
		rules = append(rules, ru)
	}
	return rules, global, nil
}

// spansLines tells whether a rule's match can run over several lines
// (private keys, curl commands continued with a backslash), so that its
// search window must reach past the keyword's line.
func spansLines(expr string) bool {
	return strings.Contains(expr, `\s\S`) || strings.Contains(expr, `(?s`) ||
		strings.Contains(expr, `\r\n`) || strings.Contains(expr, `\n]`)
}
