package hooks_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/firstlook/firstlook/hooks"
)

func TestCheckBasic(t *testing.T) {
	creds := []hooks.BasicAuth{{Username: "am", Password: "s3cret"}}
	for _, tc := range []struct {
		name          string
		user, pw      string
		set           bool
		present, fail bool
	}{
		{name: "none"},
		{name: "match", user: "am", pw: "s3cret", set: true, present: true},
		{name: "wrong password", user: "am", pw: "nope", set: true, present: true, fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/hooks/x", nil)
			if tc.set {
				r.SetBasicAuth(tc.user, tc.pw)
			}
			present, err := hooks.CheckBasic(r, creds)
			var he *hooks.Error
			if present != tc.present || (err != nil) != tc.fail || (err != nil && (!errors.As(err, &he) || he.Status != http.StatusUnauthorized)) {
				t.Errorf("CheckBasic = %v, %v; want present %v, a 401 %v", present, err, tc.present, tc.fail)
			}
		})
	}
}

func TestTriggeredOrResolved(t *testing.T) {
	for event, want := range map[string]hooks.Action{
		hooks.EventTriggered:    hooks.Run,
		hooks.EventResolved:     hooks.Resolve,
		"incident.acknowledged": hooks.Ignore,
		"":                      hooks.Ignore,
	} {
		if got := hooks.TriggeredOrResolved(event); got != want {
			t.Errorf("TriggeredOrResolved(%q) = %v, want %v", event, got, want)
		}
	}
}
