package pagerduty

import (
	"context"
	"time"
)

// WithSleep replaces the wait between attempts, so that tests see the
// waits asked for without spending them.
func WithSleep(f func(context.Context, time.Duration) error) Option {
	return func(o *options) { o.sleep = f }
}
