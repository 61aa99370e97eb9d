// Package hookstest serves every alert source to tests and benchmarks: the
// real sample payloads in testdata/webhooks, requests built and signed the
// way each sender does, an in-memory queue, and Run, the contract every
// source keeps. SNS messages are signed by hooks/sns/snstest, which plays
// SNS (its certificates need a test CA and a TLS server).
package hookstest

import (
	"bytes"
	"embed"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/hooks/pagerduty"
)

// fixtures holds the real sample payloads, copied into the repository
// with a note of where each came from (testdata/webhooks/SOURCES.md).
//
//go:embed testdata/webhooks
var fixtures embed.FS

// Fixture returns the raw bytes of testdata/webhooks/<source>/<name>.
func Fixture(tb testing.TB, source, name string) []byte {
	tb.Helper()
	b, err := fixtures.ReadFile(path.Join("testdata", "webhooks", source, name))
	if err != nil {
		tb.Fatalf("fixtures: %v", err)
	}
	return b
}

// Sign returns an X-PagerDuty-Signature header value for body under secret.
func Sign(body []byte, secret string) string { return pagerduty.Sign(body, secret) }

// Vectors is signature-test-vectors.json from the PagerDuty fixtures.
type Vectors struct {
	Sets []struct {
		Source  string `json:"source"`
		Secret  string `json:"secret"`
		Vectors []struct {
			File      string `json:"file"`
			EventType string `json:"event_type"`
			Signature string `json:"x_pagerduty_signature"`
		} `json:"vectors"`
		Negative struct {
			File      string `json:"file"`
			Signature string `json:"x_pagerduty_signature"`
		} `json:"negative"`
	} `json:"sets"`
	Rotation struct {
		Signature string `json:"x_pagerduty_signature"`
	} `json:"rotation_example"`
}

// PagerDutyVectors loads the PagerDuty signature test vectors.
func PagerDutyVectors(tb testing.TB) Vectors {
	tb.Helper()
	var v Vectors
	if err := json.Unmarshal(Fixture(tb, "pagerduty-v3", "signature-test-vectors.json"), &v); err != nil {
		tb.Fatal(err)
	}
	if len(v.Sets) == 0 || v.Rotation.Signature == "" {
		tb.Fatal("fixtures: signature-test-vectors.json has no sets")
	}
	return v
}

// CapturedSecret is the secret the real captured PagerDuty deliveries
// (incident.triggered.json, …) were signed with. It is a public test
// secret from the fixture's source repository, not a credential.
func CapturedSecret(tb testing.TB) string {
	tb.Helper()
	return PagerDutyVectors(tb).Sets[0].Secret
}

// PagerDutyRequest returns a POST of body to /hooks/pagerduty signed with
// secret, as PagerDuty sends it.
func PagerDutyRequest(body []byte, secret, delivery string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/pagerduty", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-PagerDuty-Signature", pagerduty.Sign(body, secret))
	r.Header.Set("X-Webhook-Id", delivery)
	return r
}

// AlertmanagerRequest returns a POST of body to /hooks/alertmanager as
// Alertmanager sends it, with auth as its http_config sets it: a bearer
// token, or "user:password" for basic auth.
func AlertmanagerRequest(body []byte, bearer, userPassword string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/alertmanager", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Alertmanager/0.31.1")
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	if user, pw, ok := strings.Cut(userPassword, ":"); ok {
		r.SetBasicAuth(user, pw)
	}
	return r
}

// MackerelRequest returns a POST of body as a Mackerel webhook channel
// sends it to https://<host>/hooks/mackerel/<token> (token may be empty).
func MackerelRequest(body []byte, token string) *http.Request {
	path := "/hooks/mackerel"
	if token != "" {
		path += "/" + token
	}
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// RunAgainRequest returns a POST of body as a PagerDuty Custom Incident
// Action sends it, with its custom header set to secret.
func RunAgainRequest(body []byte, header, secret, delivery string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/"+pagerduty.RunAgainName, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(header, secret)
	r.Header.Set("X-Webhook-Id", delivery)
	return r
}
