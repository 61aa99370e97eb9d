// Command firstlook turns a page into evidence: it receives incident
// webhooks, queues them durably, runs the matching playbooks on the
// affected host through the SSH bastion and stores what they print.
//
//	firstlook serve    -config firstlook.yaml
//	firstlook run      -config firstlook.yaml -host web-1 -playbook linux-baseline
//	firstlook validate [-config firstlook.yaml] [PATH…]
//	firstlook replay   -config firstlook.yaml payload.json
//	firstlook schema
//	firstlook demo
//	firstlook version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/firstlook/firstlook/playbooks"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `firstlook turns a page into evidence.

Usage:
  firstlook serve    -config firstlook.yaml          receive webhooks and run playbooks
  firstlook run      -config C -host H -playbook P   run one playbook on one host now
  firstlook validate [-config C] [PATH...]           check the config and playbooks
  firstlook replay   -config C FILE.json             show what a saved webhook would run
  firstlook replay   [-config C] -bundle DIR         show the findings a playbook raises on a saved run
  firstlook schema                                   print the playbook JSON Schema (for editors)
  firstlook demo                                     the whole path on this machine, no root
  firstlook version                                  print the version
`

// errUsage marks a command-line mistake (exit 2).
var errUsage = errors.New("usage")

// exitError carries an exit code without printing anything more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches a command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = serveCmd(ctx, rest, stderr)
	case "run":
		err = runCmd(ctx, rest, stdout, stderr)
	case "validate":
		err = validateCmd(rest, stdout, stderr)
	case "replay":
		err = replayCmd(ctx, rest, stdout, stderr)
	case "schema":
		_, err = stdout.Write(playbooks.JSONSchema())
	case "demo":
		err = demoCmd(ctx, rest, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "firstlook %s\n", version)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "firstlook: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var code exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		return 2
	default:
		fmt.Fprintf(stderr, "firstlook: %v\n", err)
		return 1
	}
}

// newFlags returns a FlagSet that reports its errors to stderr and as
// errUsage.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("firstlook "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}
