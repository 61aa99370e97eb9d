package webhook

import (
	"context"
	"time"
)

// WithSleep replaces the wait between attempts, so that tests see the
// waits without spending them.
func WithSleep(f func(context.Context, time.Duration) error) Option {
	return func(o *options) { o.sleep = f }
}

// Classify is classify, for the status table.
var Classify = classify
