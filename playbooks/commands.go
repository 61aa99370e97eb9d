package playbooks

import (
	"path"
	"strings"
)

// This file knows which programs treat their arguments as code or as a
// command to run. Quoting guarantees that a templated value reaches a
// program as exactly one literal argument; it cannot stop a program from
// executing that argument. So a template may not be the command name
// (also after wrappers such as sudo or timeout), nor an argument of a
// program that runs its arguments as shell code, and alert text may not
// reach interpreters. The lists are not exhaustive — a program firstlook
// does not know can still run its arguments — and docs/playbooks.md says
// so.

type cmdKind int

const (
	// cmdWrapper runs a command given as its operands: sudo, env, timeout…
	cmdWrapper cmdKind = iota + 1
	// cmdShell runs a script given as its first operand (or -c string);
	// the operands after it are data ($1, $2…).
	cmdShell
	// cmdCode treats every argument as code or as a variable name.
	cmdCode
	// cmdInterp may run code it finds in its arguments: alert text may not
	// reach them.
	cmdInterp
)

type cmdSpec struct {
	kind cmdKind
	// valueOpts take the next word as their value.
	valueOpts []string
	// operands is how many operands come before the command (timeout's
	// duration, chroot's directory).
	operands int
	// stopOpts mean no command follows (command -v).
	stopOpts []string
	// codeOpts make the rest of the words shell code (sudo -s, flock -c).
	codeOpts []string
	// assigns: NAME=value words come before the command (env).
	assigns bool
}

func opts(s string) []string { return strings.Fields(s) }

var commands = map[string]cmdSpec{
	// Wrappers.
	"sudo": {kind: cmdWrapper,
		valueOpts: opts("-u -g -h -p -C -D -R -r -t -T -U --user --group --host --prompt --close-from --chdir --chroot --role --type --command-timeout --other-user"),
		stopOpts:  opts("-l -e -v -k -K -V --list --edit --validate --reset-timestamp --remove-timestamp --version"),
		codeOpts:  opts("-s -i --shell --login")},
	"doas":    {kind: cmdWrapper, valueOpts: opts("-u -C"), codeOpts: opts("-s")},
	"env":     {kind: cmdWrapper, valueOpts: opts("-u -C --unset --chdir"), codeOpts: opts("-S --split-string"), assigns: true},
	"nohup":   {kind: cmdWrapper},
	"setsid":  {kind: cmdWrapper},
	"time":    {kind: cmdWrapper, valueOpts: opts("-f -o --format --output")},
	"nice":    {kind: cmdWrapper, valueOpts: opts("-n --adjustment")},
	"ionice":  {kind: cmdWrapper, valueOpts: opts("-c -n --class --classdata"), stopOpts: opts("-p -P -u --pid --pgid --uid")},
	"stdbuf":  {kind: cmdWrapper, valueOpts: opts("-i -o -e --input --output --error")},
	"timeout": {kind: cmdWrapper, valueOpts: opts("-s -k --signal --kill-after"), operands: 1},
	"chroot":  {kind: cmdWrapper, valueOpts: opts("--userspec --groups"), operands: 1},
	"chrt":    {kind: cmdWrapper, stopOpts: opts("-p --pid"), operands: 1},
	"taskset": {kind: cmdWrapper, stopOpts: opts("-p --pid"), operands: 1},
	"flock":   {kind: cmdWrapper, valueOpts: opts("-w -E --timeout --conflict-exit-code"), codeOpts: opts("-c --command"), operands: 1},
	"xargs": {kind: cmdWrapper,
		valueOpts: opts("-a -d -E -I -L -n -P -s --arg-file --delimiter --max-lines --max-args --max-procs --max-chars --process-slot-var")},
	"exec":        {kind: cmdWrapper, valueOpts: opts("-a")},
	"command":     {kind: cmdWrapper, stopOpts: opts("-v -V")},
	"builtin":     {kind: cmdWrapper},
	"busybox":     {kind: cmdWrapper},
	"nsenter":     {kind: cmdWrapper, valueOpts: opts("-t -S -G --target --setuid --setgid")},
	"unshare":     {kind: cmdWrapper, valueOpts: opts("--setuid --setgid --propagation")},
	"strace":      {kind: cmdWrapper, valueOpts: opts("-e -o -p -s -u -E -a -b -I -O -P -X")},
	"ltrace":      {kind: cmdWrapper, valueOpts: opts("-e -o -p -s -u -a -n")},
	"systemd-run": {kind: cmdWrapper, valueOpts: opts("-p -u -E -M -H --unit --property --setenv --description --slice --uid --gid --nice --working-directory --machine --host")},

	// Shells: the script (or -c string) is code, the operands after it data.
	"sh": {kind: cmdShell}, "bash": {kind: cmdShell}, "dash": {kind: cmdShell}, "ash": {kind: cmdShell},
	"ksh": {kind: cmdShell}, "mksh": {kind: cmdShell}, "zsh": {kind: cmdShell}, "yash": {kind: cmdShell},

	// Arguments are code, commands or variable names.
	"eval": {kind: cmdCode}, ".": {kind: cmdCode}, "source": {kind: cmdCode}, "trap": {kind: cmdCode},
	"alias": {kind: cmdCode}, "read": {kind: cmdCode}, "mapfile": {kind: cmdCode}, "readarray": {kind: cmdCode},
	"getopts": {kind: cmdCode}, "unset": {kind: cmdCode}, "let": {kind: cmdCode}, "enable": {kind: cmdCode},
	"bind": {kind: cmdCode}, "complete": {kind: cmdCode}, "compgen": {kind: cmdCode}, "fc": {kind: cmdCode},
	"declare": {kind: cmdCode}, "typeset": {kind: cmdCode}, "local": {kind: cmdCode}, "export": {kind: cmdCode},
	"readonly": {kind: cmdCode}, "nameref": {kind: cmdCode}, "coproc": {kind: cmdCode},
	"csh": {kind: cmdCode}, "tcsh": {kind: cmdCode}, "fish": {kind: cmdCode},
	"su": {kind: cmdCode}, "runuser": {kind: cmdCode}, "ssh": {kind: cmdCode}, "watch": {kind: cmdCode},
	"script": {kind: cmdCode}, "tmux": {kind: cmdCode}, "screen": {kind: cmdCode}, "parallel": {kind: cmdCode},
	"at": {kind: cmdCode}, "batch": {kind: cmdCode}, "crontab": {kind: cmdCode},

	// Interpreters: they can run code found in their arguments.
	"awk": {kind: cmdInterp}, "gawk": {kind: cmdInterp}, "mawk": {kind: cmdInterp}, "nawk": {kind: cmdInterp},
	"sed": {kind: cmdInterp}, "perl": {kind: cmdInterp}, "python": {kind: cmdInterp}, "python2": {kind: cmdInterp},
	"python3": {kind: cmdInterp}, "ruby": {kind: cmdInterp}, "node": {kind: cmdInterp}, "nodejs": {kind: cmdInterp},
	"php": {kind: cmdInterp}, "lua": {kind: cmdInterp}, "tclsh": {kind: cmdInterp}, "expect": {kind: cmdInterp},
	"jq": {kind: cmdInterp}, "psql": {kind: cmdInterp}, "mysql": {kind: cmdInterp}, "sqlite3": {kind: cmdInterp},
	"redis-cli": {kind: cmdInterp}, "ed": {kind: cmdInterp}, "ex": {kind: cmdInterp}, "vi": {kind: cmdInterp},
	"vim": {kind: cmdInterp}, "gdb": {kind: cmdInterp}, "m4": {kind: cmdInterp}, "dc": {kind: cmdInterp},
	"make": {kind: cmdInterp}, "git": {kind: cmdInterp}, "tar": {kind: cmdInterp}, "rsync": {kind: cmdInterp},
	"openssl": {kind: cmdInterp},
}

type argRole int

const (
	roleArg argRole = iota
	// roleCommand: the word names the program to run.
	roleCommand
	// roleCode: the word is run as shell code or used as a variable name.
	roleCode
	// roleInterp: the word is an argument of an interpreter.
	roleInterp
	// roleAssign: the word is a NAME=value given to env.
	roleAssign
)

// word is what classify needs to know of one word of a simple command.
type word struct {
	// lit is the word's value when static is true (it has no
	// expansions and no templates).
	lit    string
	static bool
	// prefix is the literal text before the word's first expansion or
	// template.
	prefix string
}

// classify says what args[idx] is to the simple command args, and which
// program it is an argument of.
func classify(args []word, idx int) (argRole, string) {
	cmd := 0
	for {
		if idx == cmd {
			return roleCommand, ""
		}
		name, ok := args[cmd].lit, args[cmd].static
		if !ok {
			return roleArg, "" // a command chosen at run time; nothing more is known
		}
		base := path.Base(name)
		spec, known := commands[base]
		if base == "find" {
			return classifyFind(args, cmd, idx)
		}
		if !known {
			if conditionalCode(base, args[cmd+1:]) {
				return roleCode, base
			}
			return roleArg, base
		}
		switch spec.kind {
		case cmdCode:
			return roleCode, base
		case cmdInterp:
			return roleInterp, base
		case cmdShell:
			return classifyShell(args, cmd, idx), base
		}
		next, code, stop := skipWrapper(spec, args, cmd)
		switch {
		case code >= 0 && idx >= code:
			return roleCode, base
		case spec.assigns && idx < next && isAssignment(args[idx].prefix):
			return roleAssign, base
		case stop || idx < next:
			return roleArg, base
		case next >= len(args):
			return roleArg, base
		}
		cmd = next
	}
}

// skipWrapper finds the command a wrapper runs: the index of its first
// word, the index from which the words are shell code (-1 if none), and
// whether no command follows at all.
func skipWrapper(spec cmdSpec, args []word, cmd int) (next, code int, stop bool) {
	operands := spec.operands
	i := cmd + 1
	for i < len(args) {
		s, ok := args[i].lit, args[i].static
		if ok && s == "--" {
			i++
			// Only operands and then the command follow.
			i += min(operands, len(args)-i)
			break
		}
		if ok && len(s) > 1 && s[0] == '-' {
			if optMatches(s, spec.stopOpts) {
				return i + 1, -1, true
			}
			if optMatches(s, spec.codeOpts) {
				return len(args), i + 1, false
			}
			if takesValue(s, spec.valueOpts) {
				i += 2
			} else {
				i++
			}
			continue
		}
		if spec.assigns && isAssignment(args[i].prefix) {
			i++
			continue
		}
		// Options may follow operands (flock FILE -c CMD), as GNU getopt
		// allows, until the command starts.
		if operands > 0 {
			operands--
			i++
			continue
		}
		break
	}
	return i, -1, false
}

// classifyShell: options and the script (the -c string, or the script
// file) are code; the operands after it are data, and so is everything
// after -s (the script comes from stdin).
func classifyShell(args []word, cmd, idx int) argRole {
	i := cmd + 1
	stdin := false
	for i < len(args) {
		s, ok := args[i].lit, args[i].static
		if !ok || len(s) < 2 || (s[0] != '-' && s[0] != '+') {
			break
		}
		i++
		if s == "--" || s == "-" {
			break
		}
		switch s {
		case "-o", "+o", "-O", "+O", "--rcfile", "--init-file":
			i++
			continue
		}
		if s[1] != '-' && strings.ContainsRune(s[1:], 's') && !strings.ContainsRune(s[1:], 'c') {
			stdin = true
		}
	}
	switch {
	case idx < i:
		return roleCode // an option: -c, -o, --rcfile … choose what runs
	case stdin:
		return roleArg
	case idx == i:
		return roleCode // the -c string or the script file
	}
	return roleArg
}

// classifyFind treats the words after -exec, -execdir, -ok and -okdir, up
// to ";" or "+", as a command of their own.
func classifyFind(args []word, cmd, idx int) (argRole, string) {
	for j := cmd + 1; j < len(args); j++ {
		s, ok := args[j].lit, args[j].static
		if !ok || (s != "-exec" && s != "-execdir" && s != "-ok" && s != "-okdir") {
			continue
		}
		end := j + 1
		for end < len(args) {
			if t, ok := args[end].lit, args[end].static; ok && (t == ";" || t == "+") {
				break
			}
			end++
		}
		if idx > j && idx < end {
			return classify(args[j+1:end], idx-j-1)
		}
		j = end
	}
	return roleArg, "find"
}

// conditionalCode covers commands whose arguments become variable names
// only with some option: bash's printf -v, test -v/-R, wait -p.
func conditionalCode(base string, rest []word) bool {
	for i, w := range rest {
		s, ok := w.lit, w.static
		if !ok {
			continue
		}
		switch base {
		case "printf":
			if i == 0 && s == "-v" {
				return true
			}
		case "test", "[":
			if s == "-v" || s == "-R" {
				return true
			}
		case "wait":
			if s == "-p" {
				return true
			}
		}
	}
	return false
}

// optMatches reports whether the option word s is, or (as a cluster of
// short options like -Es) contains, one of list.
func optMatches(s string, list []string) bool {
	if len(list) == 0 {
		return false
	}
	if strings.HasPrefix(s, "--") {
		name, _, _ := strings.Cut(s, "=")
		return contains(list, name)
	}
	for _, r := range s[1:] {
		if contains(list, "-"+string(r)) {
			return true
		}
	}
	return false
}

// takesValue reports whether the option word s consumes the next word.
func takesValue(s string, valueOpts []string) bool {
	if strings.HasPrefix(s, "--") {
		return !strings.Contains(s, "=") && contains(valueOpts, s)
	}
	for i, r := range s[1:] {
		if contains(valueOpts, "-"+string(r)) {
			return i == len(s[1:])-1 // the last letter takes the next word; otherwise the value is attached
		}
	}
	return false
}

// isAssignment reports whether a word starting with the literal prefix s
// is NAME=value.
func isAssignment(s string) bool {
	name, _, ok := strings.Cut(s, "=")
	return ok && name != "" && paramRE.MatchString(name)
}
