package playbooks

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// checkShell parses a run command or a script with every action replaced
// by a unique placeholder word, so that a shell syntax error is a load
// error, and checks that each placeholder sits where a single-quoted word
// means exactly the value: an argument, a redirection target, an
// assignment value, a case subject. posix is set for scripts and sudo
// steps, which run under sh.
//
// It returns the argument words that begin with templates (see
// stepTemplate.optionWords) and marks actions that are part of a path.
func checkShell(segs []segment, actions []action, posix bool) ([][]int, []templateError) {
	var lits strings.Builder
	for _, s := range segs {
		lits.WriteString(s.text)
	}
	prefix := "FLTPL"
	for strings.Contains(lits.String(), prefix) {
		prefix += "Q"
	}
	c := &shellCheck{
		re:       regexp.MustCompile(prefix + `([0-9]+)Z`),
		actions:  actions,
		found:    make([]bool, len(actions)),
		reported: make([]bool, len(actions)),
	}
	var recon strings.Builder
	for _, s := range segs {
		c.offs = append(c.offs, offMap{recon.Len(), s.srcOff, s.action})
		if s.action >= 0 {
			recon.WriteString(prefix + strconv.Itoa(s.action) + "Z")
		} else {
			recon.WriteString(s.text)
		}
	}
	src := recon.String()

	parse := func(lang syntax.LangVariant) *syntax.File {
		f, err := syntax.NewParser(syntax.Variant(lang), syntax.KeepComments(true)).Parse(strings.NewReader(src), "")
		if err != nil {
			c.parseError(err, lang)
			return nil
		}
		return f
	}
	if posix && parse(syntax.LangPOSIX) == nil {
		return nil, c.errs
	}
	// Bash is the login shell of nearly every host, and what it accepts is
	// a superset of sh: checking its reading of the line covers both.
	f := parse(syntax.LangBash)
	if f == nil {
		return nil, c.errs
	}
	c.intVars = declaresIntegers(f)
	if posix {
		c.bashOnly(f)
	}
	syntax.Walk(f, c.visit)
	for i, ok := range c.found {
		if !ok && !c.reported[i] {
			c.reject(i, "template in a place firstlook cannot check; use it as a plain command argument")
		}
	}
	c.optionWords(f)
	return c.words, c.errs
}

type offMap struct{ recon, src, action int }

type shellCheck struct {
	re       *regexp.Regexp
	actions  []action
	offs     []offMap
	stack    []syntax.Node
	found    []bool
	reported []bool
	intVars  bool
	words    [][]int
	errs     []templateError
}

// srcOff maps an offset in the placeholder text back to the step source.
func (c *shellCheck) srcOff(recon int) int {
	src := 0
	for _, m := range c.offs {
		if m.recon > recon {
			break
		}
		if m.action >= 0 {
			src = m.src
		} else {
			src = m.src + recon - m.recon
		}
	}
	return src
}

var shellPosRE = regexp.MustCompile(`^(\d+:\d+: )`)

func (c *shellCheck) parseError(err error, lang syntax.LangVariant) {
	var off int
	switch e := err.(type) {
	case syntax.ParseError:
		off = int(e.Pos.Offset())
	case syntax.LangError:
		off = int(e.Pos.Offset())
	}
	msg := shellPosRE.ReplaceAllString(err.Error(), "")
	msg = c.re.ReplaceAllString(msg, "{{ … }}")
	if lang == syntax.LangPOSIX {
		msg = "shell syntax (sh): " + msg + "; scripts and sudo steps run under sh, so they must be POSIX sh"
	} else {
		msg = "shell syntax: " + msg
	}
	c.errs = append(c.errs, templateError{c.srcOff(off), msg})
}

// bashOnly flags bash constructs that the POSIX parser reads as ordinary
// commands, for steps that run under sh.
func (c *shellCheck) bashOnly(f *syntax.File) {
	syntax.Walk(f, func(n syntax.Node) bool {
		var what string
		switch n := n.(type) {
		case *syntax.TestClause:
			what = "[[ … ]] is bash; use [ … ]"
		case *syntax.ArithmCmd:
			what = "(( … )) is bash; use [ $(( … )) -ne 0 ]"
		case *syntax.LetClause:
			what = "let is bash; use $(( … ))"
		case *syntax.DeclClause:
			if v := n.Variant.Value; v == "declare" || v == "typeset" || v == "nameref" {
				what = v + " is bash"
			}
		}
		if what != "" {
			c.errs = append(c.errs, templateError{c.srcOff(int(n.Pos().Offset())), "shell syntax (sh): " + what + "; scripts and sudo steps run under sh, so they must be POSIX sh"})
		}
		return true
	})
}

func (c *shellCheck) visit(n syntax.Node) bool {
	if n == nil {
		c.stack = c.stack[:len(c.stack)-1]
		return true
	}
	c.stack = append(c.stack, n)
	switch n := n.(type) {
	case *syntax.Lit:
		for _, i := range c.placeholders(n.Value) {
			if c.afterBackslash(n.Value, i) {
				c.reject(i, "template right after a backslash: the backslash would escape the value's opening quote; remove it")
				continue
			}
			c.context(i)
		}
	case *syntax.SglQuoted:
		for _, i := range c.placeholders(n.Value) {
			c.reject(i, "template inside single quotes: the value's own quoting would end them; remove the surrounding quotes, firstlook quotes values itself")
		}
	case *syntax.Comment:
		for _, i := range c.placeholders(n.Text) {
			c.reject(i, "template inside a shell comment: a newline in the value would end the comment and run the rest; remove it from the comment")
		}
	}
	return true
}

// placeholders returns the actions whose placeholders occur in s, marking
// them found.
func (c *shellCheck) placeholders(s string) []int {
	var out []int
	for _, m := range c.re.FindAllStringSubmatch(s, -1) {
		i, err := strconv.Atoi(m[1])
		if err != nil || i >= len(c.found) {
			continue
		}
		c.found[i] = true
		out = append(out, i)
	}
	return out
}

// afterBackslash reports whether action i's placeholder in s follows a
// backslash.
func (c *shellCheck) afterBackslash(s string, i int) bool {
	for _, loc := range c.re.FindAllStringSubmatchIndex(s, -1) {
		if n, _ := strconv.Atoi(s[loc[2]:loc[3]]); n == i {
			return loc[0] > 0 && s[loc[0]-1] == '\\'
		}
	}
	return false
}

func (c *shellCheck) reject(i int, msg string) {
	if c.reported[i] {
		return
	}
	c.reported[i] = true
	c.errs = append(c.errs, templateError{c.actions[i].off, msg})
}

const (
	msgDouble    = "template inside double quotes: the value's quotes would be literal and $, ` and \\ in it would still be special; remove the surrounding quotes, firstlook quotes values itself"
	msgParam     = "template inside a parameter expansion ${…}: quoting does not hold there; use the value as a word of its own"
	msgHeredoc   = "template inside a here-document: its text is not re-quoted, so $(…) in the value would run; pass the value as an argument, or on stdin with printf '%s\\n' {{ … }} | cmd"
	msgDelimiter = "template as a here-document delimiter: write the delimiter literally"
	msgBackquote = "template inside backquotes `…`: backslashes and backquotes in the value would be reinterpreted; use $(…) instead"
	msgArithm    = "template in arithmetic ($((…)), ((…)), let, an array index, [[ … -eq … ]]): bash evaluates a value like a[$(cmd)] there as code; compare it as a string, or leave the arithmetic to a program"
	msgCommand   = "template as the command name: the value would choose which program runs; write the command literally and pass the value as an argument"
	msgName      = "template as a name (of a variable, function, loop variable or file descriptor): names must be written literally"
	msgUnknown   = "template in a shell construct firstlook cannot check (%s); use it as a plain command argument"
)

// context checks the placeholder of action i, in the *syntax.Lit on top of
// the stack, against every enclosing node.
func (c *shellCheck) context(i int) {
	st := c.stack
	untrusted := c.actions[i].field.untrusted()
	field := c.actions[i].field.String()
	w, ok := st[len(st)-2].(*syntax.Word)
	if !ok {
		switch st[len(st)-2].(type) {
		case *syntax.DblQuoted:
			c.reject(i, msgDouble)
		case *syntax.ParamExp:
			c.reject(i, msgParam)
		case *syntax.ExtGlob:
			c.reject(i, "template inside an extended glob pattern: quoting does not hold there")
		default:
			c.reject(i, msgName)
		}
		return
	}
	// fresh is set once the walk leaves a $(…) or <(…): a new command
	// context where quoting works again. Arithmetic, backquotes,
	// here-documents and the positions that run code still count above it:
	// the output of the substitution lands there.
	fresh := false
	var child syntax.Node = w
	for j := len(st) - 3; j >= 0; j-- {
		switch n := st[j].(type) {
		case *syntax.File, *syntax.Stmt, *syntax.BinaryCmd, *syntax.Block, *syntax.Subshell,
			*syntax.IfClause, *syntax.WhileClause, *syntax.ForClause, *syntax.CaseClause, *syntax.CaseItem,
			*syntax.FuncDecl, *syntax.TimeClause, *syntax.TestClause, *syntax.ParenTest, *syntax.ArrayExpr, *syntax.Word:
		case *syntax.DblQuoted:
			if !fresh {
				c.reject(i, msgDouble)
				return
			}
		case *syntax.SglQuoted:
			c.reject(i, "template inside single quotes")
			return
		case *syntax.CmdSubst:
			if n.Backquotes {
				c.reject(i, msgBackquote)
				return
			}
			fresh = true
		case *syntax.ProcSubst:
			fresh = true
		case *syntax.ParamExp:
			if child == n.Index || (n.Slice != nil && (child == n.Slice.Offset || child == n.Slice.Length)) {
				c.reject(i, msgArithm)
				return
			}
			if !fresh {
				c.reject(i, msgParam)
				return
			}
		case *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.LetClause, *syntax.BinaryArithm, *syntax.UnaryArithm,
			*syntax.ParenArithm, *syntax.FlagsArithm, *syntax.CStyleLoop:
			c.reject(i, msgArithm)
			return
		case *syntax.BinaryTest:
			switch n.Op {
			case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
				c.reject(i, msgArithm)
				return
			}
		case *syntax.UnaryTest:
			if n.Op == syntax.TsVarSet || n.Op == syntax.TsRefVar {
				c.reject(i, "template in [[ -v … ]] or [[ -R … ]]: bash evaluates array subscripts in variable names as code; test the value another way")
				return
			}
		case *syntax.Redirect:
			if child == n.Hdoc {
				c.reject(i, msgHeredoc)
				return
			}
			switch n.Op {
			case syntax.Hdoc, syntax.DashHdoc:
				c.reject(i, msgDelimiter)
				return
			case syntax.WordHdoc:
			case syntax.RdrIn:
				if !fresh {
					c.actions[i].path = true
				}
			default:
				if untrusted {
					c.reject(i, fmt.Sprintf("alert text (%s) as the target of an output redirection: it would choose which file is written; write the path literally or use a parameter", field))
					return
				}
			}
		case *syntax.CallExpr:
			if a, ok := child.(*syntax.Assign); ok && slices.Contains(n.Assigns, a) {
				break // checked at the Assign
			}
			cw, _ := child.(*syntax.Word)
			idx := slices.Index(n.Args, cw)
			if idx < 0 {
				c.reject(i, fmt.Sprintf(msgUnknown, "command"))
				return
			}
			role, cmd := classify(c.wordsOf(n.Args), idx)
			switch role {
			case roleCommand:
				c.reject(i, msgCommand)
				return
			case roleCode:
				c.reject(i, fmt.Sprintf("template in the arguments of %s, which runs them as shell code or uses them as variable names; pass the value as data instead, e.g. sh -c 'cmd \"$1\"' sh {{ … }}", cmd))
				return
			case roleInterp:
				if untrusted {
					c.reject(i, fmt.Sprintf("alert text (%s) in the arguments of %s, which can run code found in its arguments; feed the value on stdin instead, e.g. printf '%%s\\n' {{ … }} | %s …", field, cmd, cmd))
					return
				}
			case roleAssign:
				if untrusted {
					c.reject(i, assignMsg(field))
					return
				}
			}
		case *syntax.Assign:
			if child == n.Index {
				c.reject(i, msgArithm)
				return
			}
			if untrusted {
				c.reject(i, assignMsg(field))
				return
			}
			if c.intVars {
				c.reject(i, "template assigned to a variable in a script that declares integer or nameref variables (declare/local -i/-n): bash evaluates their values as arithmetic or names; use the value directly")
				return
			}
		case *syntax.ArrayElem:
			if child == n.Index {
				c.reject(i, msgArithm)
				return
			}
		case *syntax.DeclClause:
			if a, ok := child.(*syntax.Assign); ok && a.Naked {
				c.reject(i, fmt.Sprintf("template as an argument of %s, which takes variable names and options: write them literally", n.Variant.Value))
				return
			}
			if n.Variant.Value == "nameref" {
				c.reject(i, "template assigned to a nameref variable: bash would use the value as a variable name")
				return
			}
		case *syntax.WordIter:
			if untrusted {
				c.reject(i, fmt.Sprintf("alert text (%s) as a for-loop item: the loop variable would carry it where firstlook cannot follow; use {{ %s }} directly where it is needed", field, field))
				return
			}
		case *syntax.CoprocClause:
			if child == n.Name {
				c.reject(i, msgName)
				return
			}
		default:
			c.reject(i, fmt.Sprintf(msgUnknown, strings.TrimPrefix(fmt.Sprintf("%T", n), "*syntax.")))
			return
		}
		child = st[j]
	}
}

func assignMsg(field string) string {
	return fmt.Sprintf("alert text (%s) cannot be assigned to a variable: a variable can reach eval, arithmetic or the environment (PATH, LD_PRELOAD…) where firstlook cannot follow it; use {{ %s }} directly where the value is needed", field, field)
}

// wordsOf describes each word for classify.
func (c *shellCheck) wordsOf(args []*syntax.Word) []word {
	out := make([]word, len(args))
	for k, w := range args {
		out[k] = c.describe(w)
	}
	return out
}

func (c *shellCheck) describe(w *syntax.Word) word {
	var b strings.Builder
	static := true
	prefix := ""
	done := false
	for _, p := range w.Parts {
		var s string
		switch p := p.(type) {
		case *syntax.Lit:
			s = unescape(p.Value)
		case *syntax.SglQuoted:
			if p.Dollar {
				static = false
			}
			s = p.Value
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				if l, ok := q.(*syntax.Lit); ok {
					s += l.Value
				} else {
					static = false
				}
			}
		default:
			static = false
		}
		if loc := c.re.FindStringIndex(s); loc != nil {
			static = false
			if !done {
				prefix += s[:loc[0]]
				done = true
			}
		}
		if !static && !done {
			done = true
		}
		if !done {
			prefix += s
		}
		b.WriteString(s)
	}
	return word{lit: b.String(), static: static, prefix: prefix}
}

// unescape removes the backslashes of an unquoted literal.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// declaresIntegers reports whether the script declares integer or nameref
// variables, whose assignments bash evaluates.
func declaresIntegers(f *syntax.File) bool {
	found := false
	syntax.Walk(f, func(n syntax.Node) bool {
		d, ok := n.(*syntax.DeclClause)
		if !ok {
			return !found
		}
		if d.Variant.Value == "nameref" {
			found = true
		}
		for _, a := range d.Args {
			if a.Naked && a.Value != nil {
				if s := a.Value.Lit(); len(s) > 1 && (s[0] == '-' || s[0] == '+') && strings.ContainsAny(s[1:], "in") {
					found = true
				}
			}
		}
		return !found
	})
	return found
}

// optionWords records, for every argument of every simple command that
// starts with templates, which actions lead it. Arguments after a literal
// "--" are skipped: programs take no options there.
func (c *shellCheck) optionWords(f *syntax.File) {
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		for k, w := range call.Args {
			if k == 0 {
				continue
			}
			if w.Lit() == "--" {
				break
			}
			lit, ok := w.Parts[0].(*syntax.Lit)
			if !ok {
				continue
			}
			var lead []int
			rest := lit.Value
			for {
				loc := c.re.FindStringSubmatchIndex(rest)
				if loc == nil || loc[0] != 0 {
					break
				}
				a, _ := strconv.Atoi(rest[loc[2]:loc[3]])
				lead = append(lead, a)
				rest = rest[loc[1]:]
			}
			if len(lead) > 0 {
				c.words = append(c.words, lead)
			}
		}
		return true
	})
}
