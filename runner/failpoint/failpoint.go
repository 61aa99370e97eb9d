// Package failpoint lets a test stop a job dead at a named point, as if its
// worker had been killed there: the tests that prove exactly-once
// publishing across a crash kill the worker between storing a run and
// recording each publish. It is not configuration: no option struct carries
// it, and nothing outside tests calls With. The runner reads it from the
// context Run is given.
//
// Points: "store:after", "publish:<sink>:before", "publish:<sink>:after".
package failpoint

import "context"

type key struct{}

// With returns ctx carrying hit, which reports whether the job stops dead
// at the named point.
func With(ctx context.Context, hit func(point string) bool) context.Context {
	return context.WithValue(ctx, key{}, hit)
}

// From returns the failpoints ctx carries, or nil.
func From(ctx context.Context) func(point string) bool {
	hit, _ := ctx.Value(key{}).(func(string) bool)
	return hit
}
