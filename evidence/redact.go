package evidence

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
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

// firstGroup as a rule's group takes the first non-empty capture group as
// the secret, or the whole match when none took part (gitleaks' default).
const firstGroup = -1

// rule is one kind of secret: where it is, what part of the match is the
// secret, and what makes a match not one.
type rule struct {
	kind  string
	re    *regexp.Regexp
	group int // 0 = the whole match, n = group n, or firstGroup
	// entropy, when set, is the Shannon entropy (bits per character) a
	// secret must exceed.
	entropy float64
	// keywords (lowercase): the rule runs only near one of them; none =
	// over the whole text.
	keywords []string
	// back is how far before its keyword a match may start; reach how far
	// past its keyword's line it may run, for rules that match across
	// lines (0: they do not). See window.
	back, reach int
	// opWithin, when set, is how close after the keyword one of ops must
	// be for a match: rules of the form key name, operator, value.
	opWithin int
	ops      string
	allow    []*allowlist
	// check, when set, must accept the secret.
	check func(secret []byte) bool
}

// own are firstlook's rules beside gitleaks': credentials that are plain
// words rather than recognisable tokens (passwords in key=value pairs, in
// URLs and flags), PagerDuty's keys, which gitleaks does not know, and a
// looser net under the commonest token formats (AWS, Slack, private key
// blocks also when cut off by truncation), since a redactor had better
// catch a documentation key than miss a real one.
var own = []struct {
	kind, expr string
	keywords   []string
	check      func([]byte) bool
}{
	// A key block: its END line closes it; cut short (by truncation,
	// head), its lines of base64 and headers, literal "\n" in JSON too.
	{"private-key", `-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=:,\s\\-])*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----`, []string{"-----begin "}, keyBlock},
	{"private-key", `-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:\r?\n|(?:\\+r)?\\+n)(?:(?:[A-Za-z0-9+/=]+|[A-Za-z-]+: [^\r\n\\]*)?(?:\r?\n|(?:\\+r)?\\+n))*(?:[A-Za-z0-9+/=]+$)?`, []string{"-----begin "}, nil},
	{"aws-access-key", `\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|AKPA|ANPA|ANVA|APKA|AROA)[A-Z0-9]{16}\b`, []string{"akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "akpa", "anpa", "anva", "apka", "aroa"}, nil},
	{"aws-secret-key", `(?i)(?:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)["']?[ \t]*[:=][ \t]*["']?([A-Za-z0-9/+=]{40})`, []string{"secret"}, nil},
	{"slack-token", `\bxox[abposre]-[A-Za-z0-9-]{10,}`, []string{"xox"}, nil},
	{"slack-token", `\bxapp-\d-[A-Za-z0-9-]{10,}`, []string{"xapp-"}, nil},
	{"slack-webhook", `https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+`, []string{"hooks.slack.com"}, nil},
	{"pagerduty-token", `(?i)token token=([A-Za-z0-9_+\-]{20,})`, []string{"token token="}, nil},
	{"pagerduty-token", `\bu\+[A-Za-z0-9_-]{18}\b`, []string{"u+"}, nil},
	{"pagerduty-key", `(?i)(?:routing|integration|service)[_-]?key["']?[ \t]*[:=][ \t]*["']?([a-fA-F0-9]{32}|R[A-Z0-9]{31})\b`, []string{"routing_key", "routing-key", "routingkey", "integration_key", "integration-key", "integrationkey", "service_key", "service-key", "servicekey"}, nil},
	// A PEM private key in base64, as in a Kubernetes Secret's tls.key.
	{"private-key", `\bLS0tLS1CRUdJTi[A-Za-z0-9+/]{40,}={0,2}`, []string{"ls0tls1crudjti"}, encodedKey},
	{"azure-storage-key", `(?i)(?:account_?key|shared_?access_?key)[ \t]*[:=][ \t]*["']?([A-Za-z0-9+/]{20,}={0,2})`, []string{"accountkey", "account_key", "sharedaccesskey", "shared_access_key"}, nil},
	{"url-secret", `(?i)[?&](?:sig|signature|x-amz-signature|x-amz-security-token|x-goog-signature|access_token|id_token|token|api_?key|password|passwd|secret|client_secret)=([^&\s"'#]{8,})`, []string{"sig=", "signature=", "token=", "key=", "password=", "passwd=", "secret="}, nil},
	{"curl-user", `\bcurl\b[^\n]*?\s(?:-u|--user)(?:=|[ \t]+)["']?[^\s:"']*:([^\s"']{3,})`, []string{"curl"}, nil},
	{"bearer", `(?i)\bbearer[ \t]+([A-Za-z0-9._~+/=-]{8,})`, []string{"bearer"}, tokenLike},
	{"basic-auth", `(?i)\bbasic[ \t]+([A-Za-z0-9+/]{8,}={0,2})`, []string{"basic"}, tokenLike},
	{"url-password", `\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:([^/\s]+)@`, []string{"://"}, nil},
	{"password", `(?i)[\w.-]*(?:password|passwd|passphrase|secret|api[_-]?key|access[_-]?key|access[_-]?token|auth[_-]?token|refresh[_-]?token|private[_-]?key|_pass|_pwd)[\w.-]{0,40}["']?[ \t]{0,8}[:=][ \t]*(?:"([^"\r\n]{3,})"|'([^'\r\n]{3,})'|([^\s"',;]{3,}))`, []string{"pass", "pwd", "secret", "key", "token"}, nil},
	// Any key name ending in token, _pat or _key, with a value of letters
	// and digits (CI_JOB_TOKEN=, AZURE_DEVOPS_EXT_PAT=, SIGNING_KEY:).
	{"token", `(?i)[\w.-]*(?:token|[_-]pat|[_-]key)["']?[ \t]{0,8}[:=][ \t]*(?:"([^"\r\n]{8,})"|'([^'\r\n]{8,})'|([^\s"',;]{8,}))`, []string{"token", "_pat", "-pat", "_key", "-key"}, lettersAndDigits},
	{"password", `(?i)--[\w-]*(?:password|passwd|passphrase|secret|token|api-?key)[ \t]+([^\s"'-][^\s"']{2,})`, []string{"--"}, nil},
	{"password", `(?i)\b(?:mysql\w*|mariadb\w*|sshpass|(?:docker|podman|buildah|skopeo) login)\b[^\n]*?[ \t]-p[ \t]*(?:'([^'\n]+)'|"([^"\n]+)"|([^\s'"-][^\s'"]*))`, []string{"mysql", "mariadb", "sshpass", " login"}, nil},
	{"password", `(?i)\bredis-cli\b[^\n]*?[ \t](?:-a|--pass)[ \t]+(?:'([^'\n]+)'|"([^"\n]+)"|(\S+))`, []string{"redis-cli"}, nil},
	{"password", `(?i)\blogin[ \t]+\S+[ \t]+password[ \t]+(\S+)`, []string{"login"}, nil},
}

// ownAllow exempts key names that hold no secret (password_file=,
// token_path=, secret_name=…) from the key=value rules.
var ownAllow = &allowlist{target: "match", re: regexp.MustCompile(`(?i)^-*[\w.-]*(?:file|path|dir|length|len|size|policy|name|id|type|min|max|ttl|expiry|expires|url|uri|endpoint)["']?[ \t]*(?:[:=]|[ \t])`)}

// keyBlock accepts a key block whose lines between BEGIN and END are key
// material (base64, armour headers, also indented or with literal "\n"
// in JSON): a block cut short matches only up to the next block's END,
// and the output between them is not a secret.
func keyBlock(s []byte) bool {
	lines := bytes.Split(escapedNewline.ReplaceAll(s, []byte("\n")), []byte("\n"))
	for _, l := range lines[1 : len(lines)-1] {
		l = bytes.TrimSpace(l)
		if i := bytes.Index(l, []byte(": ")); i > 0 && bytes.IndexFunc(l[:i], notHeaderName) < 0 {
			continue
		}
		if bytes.IndexFunc(l, notBase64) >= 0 {
			return false
		}
	}
	return true
}

// escapedNewline is a newline escaped once or more (JSON in JSON).
var escapedNewline = regexp.MustCompile(`(?:\\+r)?\\+n`)

func notHeaderName(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || r == '-')
}

func notBase64(r rune) bool {
	return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '+' || r == '/' || r == '=')
}

// encodedKey accepts base64 whose text is a private key's BEGIN line.
func encodedKey(s []byte) bool {
	head := s[:min(len(s), 64)&^3]
	dec := make([]byte, base64.StdEncoding.DecodedLen(len(head)))
	n, _ := base64.StdEncoding.Decode(dec, head)
	return bytes.Contains(dec[:n], []byte("PRIVATE KEY"))
}

// lettersAndDigits accepts a value that looks generated: letters and
// digits, or 16 or more letters, a quarter to three quarters capitals,
// with the entropy of random text (not a CamelCase name).
func lettersAndDigits(s []byte) bool {
	has := func(lo, hi rune) bool {
		return bytes.IndexFunc(s, func(r rune) bool { return lo <= r && r <= hi }) >= 0
	}
	letters := has('a', 'z') || has('A', 'Z')
	if has('0', '9') {
		return letters
	}
	upper := 0
	for _, c := range s {
		if 'A' <= c && c <= 'Z' {
			upper++
		}
	}
	// CamelCase capitals start words: a fifth of the letters or fewer.
	return len(s) >= 16 && 4*upper >= len(s) && 4*upper <= 3*len(s) && entropy(s) > 3.5
}

// tokenLike rejects words that follow "Bearer" or "Basic" in prose.
func tokenLike(s []byte) bool {
	return len(s) >= 20 || bytes.ContainsAny(s, "0123456789")
}

// builtins are compiled once: config patterns, then gitleaks' rules,
// then firstlook's, then gitleaks' generic ones, which match a key name
// and a random-looking value and so come last (the earliest rule that
// finds a secret names it).
var builtins = sync.OnceValues(func() ([]rule, error) {
	gl, global, err := gitleaksRules(gitleaksTOML)
	if err != nil {
		return nil, err
	}
	var specific, generic []rule
	for _, ru := range gl {
		if ru.kind == "private-key" {
			ru.check = keyBlock
		}
		if bytes.Contains([]byte(ru.kind), []byte("generic")) {
			generic = append(generic, ru)
		} else {
			specific = append(specific, ru)
		}
	}
	out := specific
	for _, o := range own {
		re := regexp.MustCompile(o.expr)
		ru := rule{kind: o.kind, re: re, group: firstGroup, keywords: o.keywords, check: o.check,
			allow: global, back: lookBack}
		if o.kind == "private-key" {
			ru.reach = keyReach
		}
		switch {
		case o.kind == "password":
			ru.allow = append(slices.Clip(ru.allow), ownAllow)
			if strings.HasPrefix(o.expr, "(?i)[") {
				ru.opWithin, ru.ops = 40+1+8+1, ":="
			}
		case o.kind == "token":
			ru.allow = append(slices.Clip(ru.allow), ownAllow)
			ru.opWithin, ru.ops = 1+8+1, ":="
		}
		out = append(out, ru)
	}
	return append(out, generic...), nil
})

// Redactor replaces secrets in output with [REDACTED:<kind>]. It is the
// one redactor everything passes before it leaves the runner: the stored
// bundle, the PagerDuty note and the Slack message are all made from its
// output, so every sink shows the same text.
type Redactor struct {
	rules  []rule
	index  *keywordIndex
	byWord [][]int // keyword -> rules
	always []int   // rules without keywords
}

// NewRedactor returns a Redactor with cfg's patterns and the built-in
// rules.
func NewRedactor(cfg RedactConfig) (*Redactor, error) {
	extra, err := compileRules(cfg.Patterns)
	if err != nil {
		return nil, err
	}
	b, err := builtins()
	if err != nil {
		return nil, fmt.Errorf("load built-in redaction rules: %w", err)
	}
	r := &Redactor{rules: append(extra, b...)}
	words := map[string]int{}
	var list []string
	for i, ru := range r.rules {
		if len(ru.keywords) == 0 {
			r.always = append(r.always, i)
			continue
		}
		for _, k := range ru.keywords {
			w, ok := words[k]
			if !ok {
				w = len(list)
				words[k] = w
				list = append(list, k)
				r.byWord = append(r.byWord, nil)
			}
			if !slices.Contains(r.byWord[w], i) {
				r.byWord[w] = append(r.byWord[w], i)
			}
		}
	}
	r.index = newKeywordIndex(list)
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

// region is a part of the text: a search window, a secret, a marker.
type region struct{ start, end, rule int }

// Redact returns b with every secret replaced, and how many were.
// Redacting the result again changes nothing.
func (r *Redactor) Redact(b []byte) ([]byte, int) {
	if r == nil || len(b) == 0 {
		return b, 0
	}
	marks := markers(b)
	windows := make([][]region, len(r.rules))
	// reach[ri]: a keyword of rule ri before it adds nothing to the
	// rule's last window.
	reach := make([]int, len(r.rules))
	r.index.scan(b, func(w, p int) {
		for _, ri := range r.byWord[w] {
			if p < reach[ri] {
				continue
			}
			ru := &r.rules[ri]
			if ru.opWithin > 0 {
				after := p + len(r.index.words[w])
				if !bytes.ContainsAny(b[after:min(after+ru.opWithin, len(b))], ru.ops) {
					continue
				}
			}
			win, covered := window(b, p, ru.back, ru.reach)
			reach[ri] = covered
			ws := windows[ri]
			if n := len(ws); n > 0 && win.start <= ws[n-1].end {
				ws[n-1].start, ws[n-1].end = min(ws[n-1].start, win.start), max(ws[n-1].end, win.end)
				continue
			}
			windows[ri] = append(ws, win)
		}
	})
	for _, ri := range r.always {
		windows[ri] = []region{{0, len(b), 0}}
	}
	var found []region
	for ri := range r.rules {
		for _, w := range windows[ri] {
			found = r.find(found, ri, b, w, marks)
		}
	}
	if len(found) == 0 {
		return b, 0
	}
	// Overlapping findings become one redaction, named by the earliest
	// rule among them.
	sort.Slice(found, func(i, j int) bool { return found[i].start < found[j].start })
	merged := found[:1]
	for _, f := range found[1:] {
		last := &merged[len(merged)-1]
		if f.start < last.end {
			last.end = max(last.end, f.end)
			last.rule = min(last.rule, f.rule)
			continue
		}
		merged = append(merged, f)
	}
	out := make([]byte, 0, len(b))
	last := 0
	for _, f := range merged {
		out = append(out, b[last:f.start]...)
		out = append(out, markPrefix...)
		out = append(out, r.rules[f.rule].kind...)
		out = append(out, ']')
		last = f.end
	}
	return append(out, b[last:]...), len(merged)
}

// find appends rule ri's secrets in window w of b to found.
func (r *Redactor) find(found []region, ri int, b []byte, w region, marks []region) []region {
	ru := &r.rules[ri]
	for _, loc := range ru.re.FindAllSubmatchIndex(b[w.start:w.end], -1) {
		ms, me := loc[0]+w.start, loc[1]+w.start
		for ms < me && (b[ms] == '\n' || b[me-1] == '\n') {
			if b[ms] == '\n' {
				ms++
			} else {
				me--
			}
		}
		ss, se := ms, me
		switch g := ru.group; {
		case g > 0:
			if loc[2*g] < 0 {
				continue
			}
			ss, se = loc[2*g]+w.start, loc[2*g+1]+w.start
		case g == firstGroup:
			for i := 2; i < len(loc); i += 2 {
				if loc[i] >= 0 && loc[i+1] > loc[i] {
					ss, se = loc[i]+w.start, loc[i+1]+w.start
					break
				}
			}
		}
		if se <= ss || overlaps(marks, ss, se) {
			continue
		}
		secret := b[ss:se]
		if ru.entropy > 0 && entropy(secret) <= ru.entropy {
			continue
		}
		if ru.check != nil && !ru.check(secret) {
			continue
		}
		if allowed(ru.allow, secret, b[ms:me], b, ms, me) {
			continue
		}
		found = append(found, region{ss, se, ri})
	}
	return found
}

func allowed(lists []*allowlist, secret, match, b []byte, ms, me int) bool {
	var line []byte
	for _, a := range lists {
		if a.target == "line" && line == nil {
			ls := bytes.LastIndexByte(b[:ms], '\n') + 1
			le := bytes.IndexByte(b[me:], '\n')
			if le < 0 {
				le = len(b) - me
			}
			line = b[ls : me+le]
		}
		if a.allows(secret, match, line) {
			return true
		}
	}
	return false
}

// Search windows. A keyword is part of its rule's match, near its start
// (gitleaks' keywords are literal parts of the secret or of the key name
// before it, at most some 80 bytes into the match), so a rule that stays
// on one line runs from lookBack bytes before the keyword (keyBack for
// the rules that allow at most 50 bytes of key name before it) to the end
// of its line: this is what makes the full rule set cheap. Rules that run
// over lines (a curl command continued with backslashes, a YAML Secret)
// run on to the end of the sixth line after the keyword's (and at least
// 1 KiB), private key blocks 24 KiB (an RSA 16384-bit key is 12.5 KiB).
const (
	lookBack   = 256
	keyBack    = 64
	multiReach = 1 << 10
	keyReach   = 24 << 10
)

// lineCap bounds a one-line window after its keyword, so that a huge
// line (minified JSON) is searched in pieces rather than once per keyword.
const lineCap = 16 << 10

// window is where a rule runs for its keyword at p. Keywords before
// covered are left to this window: those on the same line, or when the
// window ends before the line or spans lines, those at least half its
// reach before its end. Every scan for a line end is bounded.
func window(b []byte, p, back, reach int) (w region, covered int) {
	// lineStart is the start of i's line, or lo if that is before lo.
	lineStart := func(i, lo int) int {
		lo = max(lo, 0)
		return lo + bytes.LastIndexByte(b[lo:i], '\n') + 1
	}
	// lineEnd is the end of i's line, or hi if that is after hi.
	lineEnd := func(i, hi int) int {
		hi = min(hi, len(b))
		if e := bytes.IndexByte(b[i:hi], '\n'); e >= 0 {
			return i + e
		}
		return hi
	}
	if reach == 0 {
		end := lineEnd(p, p+lineCap)
		covered = end
		if end < len(b) && b[end] != '\n' {
			covered = p + lineCap/2
		}
		return region{lineStart(p, p-back), end, 0}, covered
	}
	from := max(p-back, 0)
	start := lineStart(from, from-lineCap)
	end := lineEnd(min(p+reach, len(b)), p+reach+lineCap)
	if reach == multiReach {
		e := lineEnd(p, p+8*reach)
		for range 6 {
			if e < min(p+8*reach, len(b)) {
				e = lineEnd(e+1, p+8*reach)
			}
		}
		end = max(end, e)
	}
	return region{start, end, 0}, p + 1 + (end-p)/2
}

// markers are the [REDACTED:…] marks already in b; no secret is found in
// one, so redacting twice changes nothing.
func markers(b []byte) []region {
	var out []region
	for i := 0; ; {
		j := bytes.Index(b[i:], markPrefix)
		if j < 0 {
			return out
		}
		s := i + j
		e := bytes.IndexByte(b[s:], ']')
		if e < 0 {
			return append(out, region{s, len(b), 0})
		}
		out = append(out, region{s, s + e + 1, 0})
		i = s + e + 1
	}
}

func overlaps(marks []region, s, e int) bool {
	i := sort.Search(len(marks), func(i int) bool { return marks[i].end > s })
	return i < len(marks) && marks[i].start < e
}

// entropy is the Shannon entropy of s in bits per character, computed as
// gitleaks does (characters counted as runes, divided by the byte length).
func entropy(s []byte) float64 {
	if len(s) == 0 {
		return 0
	}
	counts := map[rune]int{}
	for rest := s; len(rest) > 0; {
		c, n := utf8.DecodeRune(rest)
		counts[c]++
		rest = rest[n:]
	}
	var e float64
	for _, c := range counts {
		f := float64(c) / float64(len(s))
		e -= f * math.Log2(f)
	}
	return e
}

// RedactString is Redact for strings.
func (r *Redactor) RedactString(s string) (string, int) {
	b, n := r.Redact([]byte(s))
	return string(b), n
}

// RedactBundle redacts every output file, command, error, finding and
// the incident title in b, in place, and records each step's count in
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
		for j := range st.Findings {
			st.Findings[j].Message, k = r.RedactString(st.Findings[j].Message)
			n += k
		}
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
