package pagerduty_test

import (
	"os"
	"sync"
	"testing"

	"github.com/firstlook/firstlook/evidence/pagerduty/pdtest"
)

// prism is one Prism mock serving PagerDuty's REST spec for the whole
// test binary: started by the first test that needs it, stopped by
// TestMain.
var prism struct {
	once sync.Once
	p    *pdtest.Prism
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	prism.p.Close()
	os.Exit(code)
}

// prismURL returns the base URL of the Prism mock, starting it on first
// use; without Prism the test skips, or fails under
// FIRSTLOOK_REQUIRE_INTEGRATION=1.
func prismURL(t *testing.T) string {
	t.Helper()
	prism.once.Do(func() { prism.p, prism.err = pdtest.Mock() })
	if prism.err != nil {
		pdtest.RequireIntegration(t, prism.err)
	}
	return prism.p.URL
}
