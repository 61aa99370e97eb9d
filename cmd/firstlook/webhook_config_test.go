package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestWebhookSink: the webhook section turns the sink on, its secret comes
// from the environment and is never printed, and a url without a secret is
// refused.
func TestWebhookSink(t *testing.T) {
	const secret = "wh-s3cr3t-0123456789abcdef"
	t.Setenv("FL_TEST_SECRET", "s")
	t.Setenv("FL_TEST_TOKEN", "t")
	t.Setenv("FL_TEST_WEBHOOK", secret)
	d := configDir(t)
	cfg, err := ParseConfig([]byte(minimal+"webhook:\n  url: https://hooks.example.com/firstlook\n  secret: ${FL_TEST_WEBHOOK}\n"), d)
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := cfg.publishers(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var sinks []string
	for _, p := range pubs {
		sinks = append(sinks, p.Sink())
	}
	if strings.Join(sinks, ",") != "webhook" {
		t.Errorf("got sinks %v, want [webhook]", sinks)
	}
	if s := fmt.Sprintf("%+v", cfg); strings.Contains(s, secret) {
		t.Errorf("printing the config shows the webhook secret: %s", s)
	}
	_, err = ParseConfig([]byte(minimal+"webhook:\n  url: https://hooks.example.com/firstlook\n"), d)
	if err == nil || !strings.Contains(err.Error(), "webhook.secret: required") {
		t.Errorf("url without a secret: got %v", err)
	}
}
