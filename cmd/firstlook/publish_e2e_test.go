package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/slack/slacktest"
	"github.com/firstlook/firstlook/runner/failpoint"
)

// TestServePublishesExactlyOnce: serve with the real PagerDuty and Slack
// publishers, the worker stopped dead at each point between storing a run
// and recording its last publish; after redelivery the incident has one
// note, its Slack channel one message with one file, and one bundle.
func TestServePublishesExactlyOnce(t *testing.T) {
	e := newEnv(t, "host-1")
	slk := slacktest.NewServer()
	t.Cleanup(slk.Close)
	e.write("slack.txt", slacktest.Token+"\n")
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("firstlook.yaml", string(cfg)+"slack:\n  bot_token_file: slack.txt\n  api_url: "+slk.URL+"\n")

	var mu sync.Mutex
	armed, fired := "", false
	fail := func(point string) bool {
		mu.Lock()
		defer mu.Unlock()
		if point == armed && !fired {
			fired = true
			return true
		}
		return false
	}
	c, err := LoadConfig(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := &lineLog{next: &testLog{t: t}}
	log := slog.New(slog.NewTextHandler(lines, &slog.HandlerOptions{Level: slog.LevelDebug}))
	url, stop := startServeCtx(t, failpoint.With(context.Background(), fail), ServeOptions{Config: c, Log: log})
	t.Cleanup(func() { _ = stop() })
	e.url = url

	points := []string{"", "store:after", "publish:pagerduty:before", "publish:pagerduty:after", "publish:slack:before", "publish:slack:after"}
	for i, point := range points {
		name := point
		if name == "" {
			name = "no stop"
		}
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			armed, fired = point, false
			mu.Unlock()
			posts, files := slk.Posts(), len(slk.Files())
			id := "INCX" + strings.Repeat("Y", i)
			e.send(id, "load on host-1 case "+strings.Repeat("x", i+1))
			// The job is done when its (last) delivery is acked: only then
			// has every redelivery had its chance to post twice.
			deadline := time.Now().Add(60 * time.Second)
			for !lines.has(`msg="job done"`, "incident="+id) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			mu.Lock()
			wasFired := fired
			mu.Unlock()
			if point != "" && !wasFired {
				t.Fatalf("the worker never reached %s", point)
			}
			if n := len(e.notesFor(id)); n != 1 {
				t.Errorf("got %d PagerDuty notes, want 1", n)
			}
			if n := slk.Posts() - posts; n != 1 {
				t.Errorf("got %d Slack messages, want 1", n)
			}
			if n := len(slk.Files()) - files; n != 1 {
				t.Errorf("got %d files in the thread, want 1", n)
			}
			if ms, _ := filepath.Glob(filepath.Join(e.evidence, "pagerduty", id, "*", "manifest.json")); len(ms) != 1 {
				t.Errorf("got %d bundles, want 1", len(ms))
			}
		})
	}
	if len(slk.Channels()) != len(points) {
		t.Errorf("got %d Slack channels, want one per incident (%d)", len(slk.Channels()), len(points))
	}
}

// lineLog keeps the log lines it passes on, so a test can wait for one.
type lineLog struct {
	next  *testLog
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.lines = append(l.lines, string(p))
	l.mu.Unlock()
	return l.next.Write(p)
}

// has reports whether a line holds every one of parts.
func (l *lineLog) has(parts ...string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return true
		}
	}
	return false
}
