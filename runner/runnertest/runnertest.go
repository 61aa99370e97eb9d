// Package runnertest adapts plain functions to the runner's Dialer and
// Conn, for tests about what is queued, run and published rather than
// about SSH (runner/ssh has the real sshd tests).
package runnertest

import (
	"context"

	"github.com/firstlook/firstlook/runner"
	"github.com/firstlook/firstlook/runner/ssh"
)

// DialerFunc adapts a function to runner.Dialer.
type DialerFunc func(ctx context.Context, t ssh.Target) (runner.Conn, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, t ssh.Target) (runner.Conn, error) { return f(ctx, t) }

// ConnFunc adapts a function to runner.Conn; Close does nothing.
type ConnFunc func(ctx context.Context, cmd string, opts ssh.RunOptions) (ssh.Result, error)

// Run calls f.
func (f ConnFunc) Run(ctx context.Context, cmd string, opts ssh.RunOptions) (ssh.Result, error) {
	return f(ctx, cmd, opts)
}

// Close does nothing.
func (f ConnFunc) Close() error { return nil }
