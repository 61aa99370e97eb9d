package slack

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Command is a parsed /firstlook command. Names in it are only syntax-
// checked here; the runner matches them against the inventory and the
// loaded playbooks, and nothing of them reaches a shell.
type Command struct {
	// Name is help, run, last, playbooks, page or digest.
	Name string
	// Playbook and Target are run's: a playbook name and a host or group.
	Playbook, Target string
	// Host is last's and playbooks' optional host.
	Host string
	// Service and Summary are page's.
	Service, Summary string
	// Hours is digest's window (0: the configured default).
	Hours int
}

// String is the command as a person would type it.
func (c Command) String() string {
	switch c.Name {
	case "run":
		return "run " + c.Playbook + " on " + c.Target
	case "last", "playbooks":
		return strings.TrimSpace(c.Name + " " + c.Host)
	case "page":
		return "page " + quoteService(c.Service) + " " + c.Summary
	case "digest":
		if c.Hours > 0 {
			return "digest " + strconv.Itoa(c.Hours)
		}
	}
	return c.Name
}

func quoteService(s string) string {
	if strings.ContainsAny(s, " \t") {
		return `"` + s + `"`
	}
	return s
}

// Usage is the syntax of every command.
var Usage = map[string]string{
	"help":      "help: what you may run here",
	"run":       "run PLAYBOOK on HOST|GROUP: run a playbook now",
	"last":      "last [HOST]: the latest evidence for this incident or host",
	"playbooks": "playbooks [HOST]: what can run, and where",
	"page":      `page SERVICE SUMMARY: page a PagerDuty service (quote a name with spaces: "Web (prod)")`,
	"digest":    "digest [HOURS]: the handover digest now",
}

// MaxDigestHours bounds digest's window: a week.
const MaxDigestHours = 168

// MaxSummary bounds page's summary (PagerDuty's incident title).
const MaxSummary = 1024

// nameRE is what a playbook, host or group name may look like: inventory
// names, group selectors (role=web) and instance ids all fit.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:=@/-]{0,252}$`)

// ErrUsage marks a command that does not parse; its message says how to
// write it.
var ErrUsage = errors.New("usage")

func usagef(name, format string, args ...any) error {
	return fmt.Errorf("%w: %s (%s)", ErrUsage, fmt.Sprintf(format, args...), Usage[name])
}

// ParseCommand parses the text after the slash command.
func ParseCommand(text string) (Command, error) {
	text = strings.TrimSpace(text)
	if !utf8.ValidString(text) {
		return Command{}, fmt.Errorf("%w: the command is not valid UTF-8", ErrUsage)
	}
	name, rest, _ := strings.Cut(text, " ")
	rest = strings.TrimSpace(rest)
	fields := strings.Fields(rest)
	c := Command{Name: strings.ToLower(name)}
	switch c.Name {
	case "", "help":
		c.Name = "help"
		return c, nil
	case "run":
		if len(fields) != 3 || strings.ToLower(fields[1]) != "on" {
			return Command{}, usagef("run", "want run PLAYBOOK on HOST")
		}
		c.Playbook, c.Target = fields[0], fields[2]
		if !nameRE.MatchString(c.Playbook) {
			return Command{}, usagef("run", "%q is not a playbook name", c.Playbook)
		}
		if !nameRE.MatchString(c.Target) {
			return Command{}, usagef("run", "%q is not a host or group name", c.Target)
		}
	case "last", "playbooks":
		switch len(fields) {
		case 0:
		case 1:
			if !nameRE.MatchString(fields[0]) {
				return Command{}, usagef(c.Name, "%q is not a host name", fields[0])
			}
			c.Host = fields[0]
		default:
			return Command{}, usagef(c.Name, "one host at most")
		}
	case "page":
		svc, summary, err := cutService(rest)
		if err != nil {
			return Command{}, usagef("page", "%v", err)
		}
		if summary == "" {
			return Command{}, usagef("page", "say what is wrong after the service")
		}
		if utf8.RuneCountInString(summary) > MaxSummary {
			return Command{}, usagef("page", "the summary is over %d characters", MaxSummary)
		}
		c.Service, c.Summary = svc, summary
	case "digest":
		switch len(fields) {
		case 0:
		case 1:
			h, err := strconv.Atoi(strings.TrimSuffix(strings.ToLower(fields[0]), "h"))
			if err != nil || h < 1 || h > MaxDigestHours {
				return Command{}, usagef("digest", "%q is not a number of hours between 1 and %d", fields[0], MaxDigestHours)
			}
			c.Hours = h
		default:
			return Command{}, usagef("digest", "one number of hours at most")
		}
	default:
		return Command{}, fmt.Errorf("%w: unknown command %q; try help", ErrUsage, name)
	}
	return c, nil
}

// cutService splits "SERVICE SUMMARY", where SERVICE may be quoted.
func cutService(s string) (svc, rest string, err error) {
	if s == "" {
		return "", "", errors.New("no service")
	}
	for _, q := range []string{`"`, "“", "'"} {
		if after, ok := strings.CutPrefix(s, q); ok {
			end := q
			if q == "“" {
				end = "”"
			}
			i := strings.Index(after, end)
			if i <= 0 {
				return "", "", errors.New("unterminated quoted service name")
			}
			return after[:i], strings.TrimSpace(after[i+len(end):]), nil
		}
	}
	svc, rest, _ = strings.Cut(s, " ")
	return svc, strings.TrimSpace(rest), nil
}
