package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Source is one place hosts are found: the static inventory, or a cloud
// lookup such as runner/inventory/ec2.
type Source interface {
	// Resolve returns the host a hint names; a hint the source does not
	// know is an error wrapping ErrUnknownHost.
	Resolve(ctx context.Context, hint string) (Host, error)
	// Select returns the hosts in group (when not empty) that carry every
	// label in labels.
	Select(ctx context.Context, group string, labels map[string]string) ([]Host, error)
}

var (
	_ Source = (*Inventory)(nil)
	_ Source = Chain(nil)
)

// Chain asks its sources in order, the static inventory first: what the
// operators wrote down wins over what a cloud API reports.
type Chain []Source

// Resolve returns the first source's answer for hint. When no source
// knows it, the error wraps ErrUnknownHost and carries every source's
// reason (an EC2 instance that is stopped says so). When a source could
// not answer (its API is down), the error is that failure and does not
// wrap ErrUnknownHost: the host may well exist.
func (c Chain) Resolve(ctx context.Context, hint string) (Host, error) {
	var unknown, failed chainError
	for _, s := range c {
		h, err := s.Resolve(ctx, hint)
		switch {
		case err == nil:
			return h, nil
		case errors.Is(err, ErrUnknownHost):
			unknown = append(unknown, err)
		default:
			failed = append(failed, err)
		}
	}
	switch {
	case len(failed) > 0:
		return Host{}, failed
	case len(unknown) > 0:
		return Host{}, unknown
	}
	return Host{}, fmt.Errorf("host %q: %w", hint, ErrUnknownHost)
}

// Select returns the selected hosts of every source, in source order,
// leaving out a host an earlier source already returned under the same
// name or address. A source that fails does not hide the others' hosts:
// the hosts found are returned with the failures.
func (c Chain) Select(ctx context.Context, group string, labels map[string]string) ([]Host, error) {
	var (
		out    []Host
		failed []error
		names  = map[string]bool{}
		addrs  = map[string]bool{}
	)
	for _, s := range c {
		hs, err := s.Select(ctx, group, labels)
		if err != nil {
			failed = append(failed, err)
		}
		for _, h := range hs {
			if names[h.Name] || addrs[h.Address] {
				continue
			}
			names[h.Name], addrs[h.Address] = true, true
			out = append(out, h)
		}
	}
	return out, errors.Join(failed...)
}

// chainError is the reasons of several sources, on one line: it ends up
// in an incident note as the reason diagnostics could not run.
type chainError []error

func (e chainError) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e chainError) Unwrap() []error { return e }
