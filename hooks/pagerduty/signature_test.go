package pagerduty_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/PagerDuty/go-pagerduty/webhookv3"

	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// libraryVerify is go-pagerduty's own check of the same header and body.
func libraryVerify(secret, header string, body []byte) error {
	r, _ := http.NewRequest(http.MethodPost, "http://x/", bytes.NewReader(body))
	r.Header.Set("X-PagerDuty-Signature", header)
	return webhookv3.VerifySignature(r, secret)
}

// The intake's signature check gives go-pagerduty's answer, error for
// error, on PagerDuty's own test vectors (every signature in them, the
// rotation header with two, the negative ones) and on hand-made edge cases.
func TestVerifyMatchesWebhookv3(t *testing.T) {
	v := hookstest.PagerDutyVectors(t)
	type tc struct {
		secret, header string
		body           []byte
		want           error
	}
	var cases []tc
	for _, set := range v.Sets {
		for _, vec := range set.Vectors {
			cases = append(cases, tc{set.Secret, vec.Signature, hookstest.Fixture(t, "pagerduty-v3", vec.File), nil})
		}
		if set.Negative.File != "" {
			cases = append(cases, tc{set.Secret, set.Negative.Signature, hookstest.Fixture(t, "pagerduty-v3", set.Negative.File), webhookv3.ErrNoValidSignatures})
		}
	}
	body := hookstest.Fixture(t, "pagerduty-v3", "incident.triggered.json")
	secret := hookstest.CapturedSecret(t)
	good := pagerduty.Sign(body, secret)
	cases = append(cases,
		tc{secret, v.Rotation.Signature, body, nil},
		tc{secret, "v1=00," + good, body, nil},
		tc{secret, good + ",v1=zz", body, nil},
		tc{secret, good, nil, webhookv3.ErrMalformedBody},
		tc{secret, "", body, webhookv3.ErrMalformedHeader},
		tc{secret, "v2=" + good[3:], body, webhookv3.ErrMalformedHeader},
		tc{secret, "v1=abc", body, webhookv3.ErrMalformedHeader},
		tc{secret, "v1=", body, webhookv3.ErrNoValidSignatures},
		tc{secret, good[:len(good)-2], body, webhookv3.ErrNoValidSignatures},
		tc{secret, " " + good, body, webhookv3.ErrMalformedHeader},
		tc{"another secret", good, body, webhookv3.ErrNoValidSignatures},
	)
	for i, c := range cases {
		got, lib := pagerduty.Verify(c.secret, c.header, c.body), libraryVerify(c.secret, c.header, c.body)
		if !errors.Is(got, c.want) || !errors.Is(lib, c.want) {
			t.Errorf("case %d (header %.40q…): got %v, go-pagerduty %v, want %v", i, c.header, got, lib, c.want)
		}
	}
}

// FuzzVerifyMatchesWebhookv3: for any header, body and secret, the
// intake's check and go-pagerduty's give the same answer.
func FuzzVerifyMatchesWebhookv3(f *testing.F) {
	body := hookstest.Fixture(f, "pagerduty-v3", "incident.triggered.json")
	secret := hookstest.CapturedSecret(f)
	good := pagerduty.Sign(body, secret)
	f.Add(secret, good, body)
	f.Add(secret, "v1=00,"+good, body)
	f.Add(secret, "v1=,v1=zz,v2=1", []byte("x"))
	f.Add("", good, body)
	f.Fuzz(func(t *testing.T, secret, header string, body []byte) {
		got, lib := pagerduty.Verify(secret, header, body), libraryVerify(secret, header, body)
		if (got == nil) != (lib == nil) || (got != nil && !errors.Is(got, lib)) {
			t.Fatalf("header %q, body %q: got %v, go-pagerduty %v", header, body, got, lib)
		}
	})
}
