package failpoint_test

import (
	"context"
	"testing"

	"github.com/firstlook/firstlook/runner/failpoint"
)

func TestWithFrom(t *testing.T) {
	if failpoint.From(context.Background()) != nil {
		t.Fatal("a plain context carries failpoints")
	}
	ctx := failpoint.With(context.Background(), func(p string) bool { return p == "store:after" })
	hit := failpoint.From(context.WithoutCancel(ctx))
	if hit == nil || !hit("store:after") || hit("publish:slack:before") {
		t.Fatal("failpoints lost or wrong through a derived context")
	}
}
