package library_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// The read-only check. Every command a library playbook sends is parsed
// as shell (bash for run lines, POSIX sh for scripts, recursively into
// `sh -c` scripts) and every simple command in it, after wrappers such as
// timeout, sudo -n, xargs and the playbooks' own priv function, must be on
// a list of commands reviewed as read-only, used in a read-only way:
// systemctl status but not systemctl restart, sed without -i, find without
// -delete or -exec, awk without system() or output redirection. Output
// may be redirected to /dev/null or another descriptor only. A command
// that is not on the list fails the check until someone reviews it.

// denied says why commands that change a host are refused, by name.
var denied = func() map[string]string {
	m := map[string]string{}
	for why, names := range map[string][]string{
		"removes or renames files":      {"rm", "rmdir", "mv", "unlink", "shred"},
		"writes files":                  {"cp", "ln", "mkdir", "touch", "tee", "truncate", "dd", "install", "mkfifo", "mknod", "logrotate"},
		"changes ownership or mode":     {"chmod", "chown", "chgrp", "chattr", "setfacl", "chcon"},
		"signals or stops processes":    {"kill", "pkill", "killall", "skill", "renice"},
		"stops the machine":             {"reboot", "shutdown", "halt", "poweroff", "init", "telinit"},
		"changes mounts or disks":       {"mount", "umount", "swapon", "swapoff", "mkfs", "fdisk", "parted", "wipefs", "fsck", "blockdev", "hdparm"},
		"installs or removes software":  {"apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "zypper", "apk", "pip", "pip3", "npm", "gem", "snap", "flatpak"},
		"changes users or schedules":    {"useradd", "userdel", "usermod", "passwd", "chpasswd", "crontab", "at", "visudo"},
		"changes the network or kernel": {"iptables", "ip6tables", "nft", "tc", "ethtool", "ifdown", "ifup", "modprobe", "rmmod", "insmod", "hostnamectl", "sysctl"},
		"runs arbitrary code":           {"eval", "source", ".", "bash", "zsh", "python", "python3", "perl", "ruby", "node"},
	} {
		for _, n := range names {
			m[n] = why
		}
	}
	return m
}()

// commandCheck checks the arguments of one reviewed command; it returns
// why they are not read-only, or "".
type commandCheck func(args []word) string

// readOnly lists the reviewed commands; nil means any arguments.
var readOnly = map[string]commandCheck{
	// Shell builtins and plain readers.
	":": nil, "true": nil, "false": nil, "echo": nil, "test": nil, "[": nil, "exit": nil, "return": nil,
	"shift": nil, "continue": nil, "break": nil, "read": nil, "cd": nil, "wait": nil,
	"cat": nil, "grep": nil, "egrep": nil, "cut": nil, "tr": nil, "wc": nil, "sleep": nil, "id": nil,
	"uname": nil, "nproc": nil, "uptime": nil, "free": nil, "df": nil, "du": nil, "ps": nil, "lsof": nil,
	"readlink": nil, "stat": nil, "vmstat": nil, "mpstat": nil, "iostat": nil, "pidstat": nil,
	"getconf": nil, "getent": nil, "ulimit": onlyOpts("-n", "-Sn", "-Hn"),
	"openssl":     verbs("x509", "version"),
	"chronyc":     verbs("tracking", "sources", "sourcestats"),
	"timedatectl": verbs("show", "status", "timesync-status", "show-timesync"),
	"ntpq":        onlyOpts("-p", "-n", "-pn", "-c", "rv"),
	"head":        nil,
	"printf":      refuseOpts("-v"),
	"tail":        refuseOpts("-f", "-F", "--follow", "--retry"),
	"sort":        refuseOpts("-o", "--output"),
	"uniq":        maxOperands(1, "a second operand is uniq's output file"),
	"date":        refuseOpts("-s", "--set"),
	"hostname":    onlyOpts("-f", "-s", "-i", "-I", "-A", "-d"),
	"dmesg":       refuseOpts("-c", "-C", "--clear", "--read-clear", "-D", "--console-off", "-E", "--console-on", "-n", "--console-level"),
	"journalctl": refuseOpts("--vacuum-size", "--vacuum-time", "--vacuum-files", "--rotate", "--flush", "--sync",
		"--relinquish-var", "--smart-relinquish-var", "--update-catalog", "--setup-keys"),
	"find":      refuseOpts("-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls"),
	"ss":        refuseOpts("-K", "--kill", "-D", "--diag"),
	"conntrack": onlyOpts("-S", "--stats", "-C", "--count", "-L", "--dump"),
	"nginx":     onlyOpts("-v", "-V"),
	"sed":       checkSed,
	"awk":       checkAwk,
	"ip":        checkIP,
	"curl":      checkCurl,
	"systemctl": verbs("status", "show", "list-units", "list-unit-files", "list-timers", "is-active", "is-failed", "is-enabled", "cat"),
	"docker":    verbs("ps", "info", "inspect", "events", "version", "logs"),
	"podman":    verbs("ps", "info", "inspect", "events", "version", "logs"),
	"crictl":    verbs("ps", "pods", "info", "inspect", "inspectp", "version", "logs", "stats"),
}

// wrappers run their operands as a command; skip returns the index of
// that command in args (args[0] is the wrapper), or why it refuses.
var wrappers = map[string]func(args []word) (int, string){
	"sudo": func(args []word) (int, string) {
		i := 1
		for ; i < len(args) && strings.HasPrefix(args[i].s, "-"); i++ {
			if args[i].s != "-n" {
				return 0, "sudo " + args[i].s + ": only sudo -n COMMAND"
			}
		}
		return i, ""
	},
	"timeout": func(args []word) (int, string) {
		i := 1
		for ; i < len(args) && strings.HasPrefix(args[i].s, "-"); i++ {
			if args[i].s == "-s" || args[i].s == "-k" || args[i].s == "--signal" || args[i].s == "--kill-after" {
				i++
			}
		}
		return i + 1, "" // the duration
	},
	"xargs": func(args []word) (int, string) {
		i := 1
		for ; i < len(args) && strings.HasPrefix(args[i].s, "-"); i++ {
			switch args[i].s {
			case "-r", "--no-run-if-empty", "-0", "--null":
			case "-n", "-L", "-P", "-d":
				i++
			default:
				return 0, "xargs " + args[i].s + ": not reviewed"
			}
		}
		return i, ""
	},
	"exec": func([]word) (int, string) { return 1, "" },
	"nice": func(args []word) (int, string) {
		if len(args) > 2 && args[1].s == "-n" {
			return 3, ""
		}
		return 1, ""
	},
	"command": func(args []word) (int, string) {
		if len(args) > 1 && (args[1].s == "-v" || args[1].s == "-V") {
			return len(args), "" // a lookup, runs nothing
		}
		return 1, ""
	},
}

// word is one shell word: its value when it is literal.
type word struct {
	s   string
	lit bool
	// param names the variable when the word is just $x or "$x".
	param string
	// quoted is set for "$x": it stays one word when empty.
	quoted bool
}

// readOnlyProblems parses src as shell of the given variant and returns
// why it is not read-only; nothing when it is.
func readOnlyProblems(src string, lang syntax.LangVariant) []string {
	f, err := syntax.NewParser(syntax.Variant(lang)).Parse(strings.NewReader(src), "")
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	c := &checker{lang: lang, loops: map[string][]string{}, wrapperFuncs: map[string]bool{}}
	// Functions whose body runs "$@" are wrappers, as priv is.
	syntax.Walk(f, func(n syntax.Node) bool {
		if fd, ok := n.(*syntax.FuncDecl); ok {
			syntax.Walk(fd.Body, func(m syntax.Node) bool {
				if ce, ok := m.(*syntax.CallExpr); ok && len(ce.Args) > 0 && words(ce.Args[:1])[0].param == "@" {
					c.wrapperFuncs[fd.Name.Value] = true
				}
				return true
			})
			c.funcs = append(c.funcs, fd.Name.Value)
		}
		if fc, ok := n.(*syntax.ForClause); ok {
			if wi, ok := fc.Loop.(*syntax.WordIter); ok {
				var items []string
				for _, w := range words(wi.Items) {
					if !w.lit {
						items = nil
						break
					}
					items = append(items, w.s)
				}
				for _, it := range items {
					if !slices.Contains(c.loops[wi.Name.Value], it) {
						c.loops[wi.Name.Value] = append(c.loops[wi.Name.Value], it)
					}
				}
			}
		}
		return true
	})
	syntax.Walk(f, c.visit)
	return c.problems
}

type checker struct {
	lang         syntax.LangVariant
	funcs        []string
	wrapperFuncs map[string]bool
	// loops maps a for-loop variable to its literal items, so that
	// `for rt in docker podman; do "$rt" ps; done` checks both.
	loops    map[string][]string
	problems []string
}

func (c *checker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) visit(n syntax.Node) bool {
	switch n := n.(type) {
	case *syntax.Redirect:
		c.redirect(n)
	case *syntax.CallExpr:
		if len(n.Args) > 0 {
			c.command(words(n.Args))
		}
	}
	return true
}

func (c *checker) redirect(r *syntax.Redirect) {
	switch r.Op {
	case syntax.RdrIn, syntax.DplIn, syntax.Hdoc, syntax.DashHdoc, syntax.WordHdoc:
		return
	case syntax.DplOut:
		if w := words([]*syntax.Word{r.Word})[0]; w.lit && regexp.MustCompile(`^([0-9]+|-)$`).MatchString(w.s) {
			return
		}
	case syntax.RdrOut, syntax.AppOut, syntax.RdrAll, syntax.AppAll, syntax.RdrClob:
		if w := words([]*syntax.Word{r.Word})[0]; w.lit && w.s == "/dev/null" {
			return
		}
	}
	c.fail("redirection %s writes a file; only /dev/null or another descriptor", r.Op)
}

// command checks one simple command (and what its wrappers run).
func (c *checker) command(args []word) {
	for len(args) > 0 {
		name := args[0]
		if !name.lit {
			switch {
			case name.param == "@":
				return // a wrapper function's "$@": its callers are checked
			case name.param == "sudo" && !name.quoted:
				// $sudo is "" or "sudo -n", set where the inventory
				// opted the host in: what follows is the command.
				args = args[1:]
				continue
			case c.loops[name.param] != nil:
				for _, item := range c.loops[name.param] {
					c.command(append([]word{{s: item, lit: true}}, args[1:]...))
				}
				return
			}
			c.fail("command name %q is not literal; the check cannot see what runs", name.s)
			return
		}
		if c.wrapperFuncs[name.s] {
			args = args[1:]
			continue
		}
		if skip, ok := wrappers[name.s]; ok {
			i, why := skip(args)
			if why != "" {
				c.fail("%s", why)
				return
			}
			if i >= len(args) {
				return
			}
			args = args[i:]
			continue
		}
		if (name.s == "sh" || name.s == "dash") && len(args) > 1 {
			c.shell(args)
			return
		}
		if slices.Contains(c.funcs, name.s) {
			return // its body is checked where it is declared
		}
		if why, ok := denied[name.s]; ok {
			c.fail("%s: %s", name.s, why)
			return
		}
		check, ok := readOnly[name.s]
		if !ok {
			c.fail("%s: not on the list of commands reviewed as read-only", name.s)
			return
		}
		if check != nil {
			if why := check(args); why != "" {
				c.fail("%s: %s", name.s, why)
			}
		}
		return
	}
}

// shell checks sh -s (its script is checked on its own) and sh -c SCRIPT,
// whose script is parsed and checked here.
func (c *checker) shell(args []word) {
	switch {
	case args[1].s == "-s":
		return
	case args[1].s == "-c" && len(args) > 2 && args[2].lit:
		for _, p := range readOnlyProblems(args[2].s, syntax.LangPOSIX) {
			c.fail("sh -c: %s", p)
		}
	default:
		c.fail("sh %s: only sh -s or sh -c with a literal script", args[1].s)
	}
}

// words returns the values of the literal words and marks the others.
func words(ws []*syntax.Word) []word {
	out := make([]word, len(ws))
	for i, w := range ws {
		var b strings.Builder
		lit := true
		var part func(p syntax.WordPart)
		part = func(p syntax.WordPart) {
			switch p := p.(type) {
			case *syntax.Lit:
				b.WriteString(p.Value)
			case *syntax.SglQuoted:
				b.WriteString(p.Value)
			case *syntax.DblQuoted:
				for _, q := range p.Parts {
					part(q)
				}
			case *syntax.ParamExp:
				lit = false
				b.WriteString("$" + p.Param.Value)
			default:
				lit = false
				b.WriteString("…")
			}
		}
		for _, p := range w.Parts {
			part(p)
		}
		_, dq := w.Parts[0].(*syntax.DblQuoted)
		out[i] = word{s: b.String(), lit: lit, param: paramOnly(w), quoted: dq}
	}
	return out
}

// paramOnly returns x when w is just $x or "$x", else "".
func paramOnly(w *syntax.Word) string {
	if len(w.Parts) != 1 {
		return ""
	}
	p := w.Parts[0]
	if dq, ok := p.(*syntax.DblQuoted); ok {
		if len(dq.Parts) != 1 {
			return ""
		}
		p = dq.Parts[0]
	}
	pe, ok := p.(*syntax.ParamExp)
	if !ok || pe.Param == nil || pe.Exp != nil || pe.Repl != nil || pe.Slice != nil || pe.Index != nil || pe.Length || pe.Excl {
		return ""
	}
	return pe.Param.Value
}

// refuseOpts refuses the given options, also as --opt=value, and any
// option that is not literal.
func refuseOpts(opts ...string) commandCheck {
	return func(args []word) string {
		for _, a := range args[1:] {
			name, _, _ := strings.Cut(a.s, "=")
			if slices.Contains(opts, name) {
				return "option " + a.s + " is not read-only"
			}
		}
		return ""
	}
}

// onlyOpts allows the command with these options and nothing else.
func onlyOpts(opts ...string) commandCheck {
	return func(args []word) string {
		for _, a := range args[1:] {
			if !slices.Contains(opts, a.s) {
				return fmt.Sprintf("argument %q: only %s", a.s, strings.Join(opts, ", "))
			}
		}
		return ""
	}
}

func maxOperands(n int, why string) commandCheck {
	return func(args []word) string {
		operands := 0
		for _, a := range args[1:] {
			if !strings.HasPrefix(a.s, "-") || a.s == "-" {
				operands++
			}
		}
		if operands > n {
			return why
		}
		return ""
	}
}

// verbs allows the command's subcommands that only read; options may come
// before the verb.
func verbs(allowed ...string) commandCheck {
	return func(args []word) string {
		for _, a := range args[1:] {
			if a.s == "--version" {
				return ""
			}
			if strings.HasPrefix(a.s, "-") {
				continue
			}
			if !a.lit || !slices.Contains(allowed, a.s) {
				return fmt.Sprintf("verb %q: only %s", a.s, strings.Join(allowed, ", "))
			}
			return ""
		}
		return ""
	}
}

// checkIP allows ip's show forms: OBJECT [show|list] with options.
func checkIP(args []word) string {
	var rest []string
	for _, a := range args[1:] {
		if !strings.HasPrefix(a.s, "-") {
			rest = append(rest, a.s)
		}
	}
	if len(rest) == 0 {
		return ""
	}
	if !slices.Contains([]string{"addr", "address", "a", "link", "l", "route", "r", "neigh", "n", "rule"}, rest[0]) {
		return "object " + rest[0] + " is not reviewed"
	}
	if len(rest) > 1 && !slices.Contains([]string{"show", "list", "ls", "s"}, rest[1]) {
		return "only ip OBJECT show"
	}
	return ""
}

// checkCurl allows a plain GET of one URL with a time limit.
func checkCurl(args []word) string {
	for i := 1; i < len(args); i++ {
		switch a := args[i].s; {
		case a == "-f" || a == "-s" || a == "-S" || a == "-fsS" || a == "-sS":
		case a == "--max-time" || a == "-m" || a == "--connect-timeout":
			i++
		case strings.HasPrefix(a, "-"):
			return "option " + a + " is not reviewed (curl may only GET)"
		}
	}
	return ""
}

// checkSed allows substitutions and printing, without -i, script files or
// the w and e commands and flags. The first operand is the script (or
// each -e's), the others are files.
func checkSed(args []word) string {
	script := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a.s == "-n" || a.s == "-E" || a.s == "-r":
			continue
		case a.s == "-e" && i+1 < len(args):
			i++
			a, script = args[i], true
		case strings.HasPrefix(a.s, "-"):
			return "option " + a.s + " is not reviewed (sed -i writes files)"
		case script:
			continue // a file
		default:
			script = true
		}
		if !a.lit {
			return "a script that is not literal"
		}
		if !sedSubstRE.MatchString(a.s) {
			return fmt.Sprintf("script %q: only s/…/…/ with flags g, p, i or a number", a.s)
		}
	}
	return ""
}

// sedSubstRE matches one s command whose delimiter is '/' or '#'.
var sedSubstRE = regexp.MustCompile(`^s(?:/(?:[^/\\]|\\.)*/(?:[^/\\]|\\.)*/|#(?:[^#\\]|\\.)*#(?:[^#\\]|\\.)*#)[gpiI0-9]*$`)

// checkAwk checks the program: no system(), no command pipes, no getline
// from commands, and no print or printf redirected to a file or command
// (a bare > in a print statement is a redirection, not a comparison).
func checkAwk(args []word) string {
	prog := ""
	for i := 1; i < len(args); i++ {
		switch a := args[i].s; {
		case a == "-F" || a == "-v":
			i++
		case strings.HasPrefix(a, "-F") || strings.HasPrefix(a, "-v"):
		case strings.HasPrefix(a, "-"):
			return "option " + a + " is not reviewed (-f reads the program from a file)"
		default:
			if !args[i].lit {
				return "a program that is not literal"
			}
			prog = a
			i = len(args)
		}
	}
	if strings.Contains(prog, "system(") || strings.Contains(prog, "getline") || strings.Contains(prog, "|&") {
		return "the program runs commands (system, getline or |&)"
	}
	return awkPrintRedirect(prog)
}

var awkPrintRE = regexp.MustCompile(`\bprintf?\b`)

// awkPrintRedirect finds a > or | at the top level of a print or printf
// statement, outside strings and parentheses.
func awkPrintRedirect(prog string) string {
	for _, loc := range awkPrintRE.FindAllStringIndex(prog, -1) {
		depth, inStr := 0, false
	scan:
		for i := loc[1]; i < len(prog); i++ {
			ch := prog[i]
			switch {
			case inStr && ch == '\\':
				i++
			case ch == '"':
				inStr = !inStr
			case inStr:
			case ch == '(':
				depth++
			case ch == ')':
				if depth == 0 {
					break scan
				}
				depth--
			case ch == ';' || ch == '}' || ch == '\n':
				break scan
			case depth == 0 && (ch == '>' || ch == '|'):
				return fmt.Sprintf("print redirected with %q in %q: parenthesize comparisons", ch, strings.TrimSpace(prog[loc[0]:min(len(prog), i+10)]))
			}
		}
	}
	return ""
}
