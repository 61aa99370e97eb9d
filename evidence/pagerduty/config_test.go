package pagerduty_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/evidence/pagerduty"
)

func TestConfigValidate(t *testing.T) {
	ok := pagerduty.Config{From: "firstlook-bot@example.com"}
	tests := []struct {
		name    string
		edit    func(*pagerduty.Config)
		wantErr string
	}{
		{"minimal", func(*pagerduty.Config) {}, ""},
		{"all set", func(c *pagerduty.Config) {
			c.APIURL, c.MaxNote, c.Attempts = "https://api.eu.pagerduty.com/", 4000, 3
			c.Backoff, c.MaxWait, c.Timeout = 2*time.Second, 30*time.Second, 5*time.Second
		}, ""},
		{"plus address", func(c *pagerduty.Config) { c.From = "sre+firstlook@corp.example.co.uk" }, ""},
		{"loopback http", func(c *pagerduty.Config) { c.APIURL = "http://127.0.0.1:4010" }, ""},
		{"localhost http", func(c *pagerduty.Config) { c.APIURL = "http://localhost:4010" }, ""},
		{"no from", func(c *pagerduty.Config) { c.From = "" }, "from: required"},
		{"from not an email", func(c *pagerduty.Config) { c.From = "firstlook" }, "from: \"firstlook\" is not an email"},
		{"from with a name", func(c *pagerduty.Config) { c.From = "Bot <bot@example.com>" }, "is not an email"},
		{"from without a domain dot", func(c *pagerduty.Config) { c.From = "bot@localhost" }, "is not an email"},
		{"from with a space", func(c *pagerduty.Config) { c.From = "bot @example.com" }, "is not an email"},
		{"api_url not a URL", func(c *pagerduty.Config) { c.APIURL = "api.pagerduty.com" }, "api_url: \"api.pagerduty.com\" is not an http(s) URL"},
		{"api_url ftp", func(c *pagerduty.Config) { c.APIURL = "ftp://api.pagerduty.com" }, "is not an http(s) URL"},
		{"api_url plain http", func(c *pagerduty.Config) { c.APIURL = "http://api.pagerduty.com" }, "in the clear"},
		{"api_url with credentials", func(c *pagerduty.Config) { c.APIURL = "https://u:p@api.pagerduty.com" }, "scheme, host and path only"},
		{"max_note too small", func(c *pagerduty.Config) { c.MaxNote = 100 }, "max_note: 100 is outside 256..65535"},
		{"max_note too large", func(c *pagerduty.Config) { c.MaxNote = 70000 }, "max_note: 70000 is outside"},
		{"attempts negative", func(c *pagerduty.Config) { c.Attempts = -1 }, "attempts: -1 is negative"},
		{"backoff negative", func(c *pagerduty.Config) { c.Backoff = -time.Second }, "backoff: -1s is negative"},
		{"max_wait negative", func(c *pagerduty.Config) { c.MaxWait = -time.Second }, "max_wait: -1s is negative"},
		{"timeout negative", func(c *pagerduty.Config) { c.Timeout = -time.Second }, "timeout: -1s is negative"},
		{"backoff over max_wait", func(c *pagerduty.Config) { c.Backoff, c.MaxWait = time.Minute, time.Second }, "backoff: 1m0s is longer than max_wait 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
from: firstlook-bot@example.com
api_url: https://api.pagerduty.com
oauth: true
max_note: 8000
attempts: 4
backoff: 2s
max_wait: 45s
timeout: 5s
`
	var got pagerduty.Config
	if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := pagerduty.Config{
		From: "firstlook-bot@example.com", APIURL: "https://api.pagerduty.com", OAuth: true, MaxNote: 8000,
		Attempts: 4, Backoff: 2 * time.Second, MaxWait: 45 * time.Second, Timeout: 5 * time.Second,
	}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := pagerduty.New(pagerduty.Config{}, "tok"); err == nil || !strings.Contains(err.Error(), "from: required") {
		t.Errorf("no from: got %v, want the Validate error", err)
	}
	if _, err := pagerduty.New(pagerduty.Config{From: "bot@example.com"}, " "); err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Errorf("no token: got %v, want \"no API token\"", err)
	}
}

func TestSink(t *testing.T) {
	p, err := pagerduty.New(pagerduty.Config{From: "bot@example.com"}, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Sink(); got != "pagerduty" {
		t.Errorf("got %q, want %q: the sink name is recorded in incident state and must not change", got, "pagerduty")
	}
}
