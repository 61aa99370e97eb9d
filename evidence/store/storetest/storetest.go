// Package storetest is the contract every evidence.Store must keep, as one
// suite that each backend's tests run against a real instance.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
)

// Run runs the contract against stores made by open; each subtest gets a
// fresh, empty store.
func Run(t *testing.T, open func(t *testing.T) evidence.Store) {
	t.Run("PutGet", func(t *testing.T) {
		s, ctx := open(t), context.Background()
		body := []byte("load average: 0.01\x00\xff binary too\n")
		if err := s.Put(ctx, "a/b/c.txt", body); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "a/b/c.txt")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("got %q, want %q", got, body)
		}
	})
	t.Run("WriteOnce", func(t *testing.T) {
		s, ctx := open(t), context.Background()
		if err := s.Put(ctx, "k", []byte("first")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "k", []byte("second")); !errors.Is(err, evidence.ErrExists) {
			t.Fatalf("second put: got %v, want ErrExists", err)
		}
		got, _ := s.Get(ctx, "k")
		if string(got) != "first" {
			t.Fatalf("got %q after a refused overwrite, want %q", got, "first")
		}
	})
	t.Run("ConcurrentPutsOneWins", func(t *testing.T) {
		s, ctx := open(t), context.Background()
		var ok atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				if err := s.Put(ctx, "race", []byte{byte('a' + i)}); err == nil {
					ok.Add(1)
				} else if !errors.Is(err, evidence.ErrExists) {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if n := ok.Load(); n != 1 {
			t.Fatalf("got %d successful puts of one key, want 1", n)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		if _, err := s.Get(context.Background(), "nope/manifest.json"); !errors.Is(err, evidence.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	})
	t.Run("Link", func(t *testing.T) {
		s, ctx := open(t), context.Background()
		if err := s.Put(ctx, "x/y", []byte("z")); err != nil {
			t.Fatal(err)
		}
		l, err := s.Link(ctx, "x/y")
		if err != nil || l == "" {
			t.Fatalf("got %q, %v, want a link", l, err)
		}
	})
	t.Run("BundleRoundTrip", func(t *testing.T) {
		s, ctx := open(t), context.Background()
		start := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
		b := &evidence.Bundle{Manifest: evidence.Manifest{
			Schema:   evidence.ManifestSchema,
			RunID:    evidence.RunID(start, "web-1", "linux-baseline"),
			Incident: evidence.Incident{Source: "pagerduty", ID: "Q2CKYRLH85UNN4", Title: "Test", Event: "incident.triggered"},
			Host:     evidence.Host{Name: "web-1", Address: "10.0.0.2:22"},
			Playbook: evidence.Playbook{Name: "linux-baseline"},
			Status:   evidence.StatusOK, StartedAt: start, EndedAt: start.Add(time.Second),
		}}
		st := evidence.Step{Name: "load", Command: "uptime"}
		st.Stdout = b.SetOutput(evidence.StepFile(0, "load", "stdout"), []byte("up 3 days\n"), 10)
		st.Stderr = b.SetOutput(evidence.StepFile(0, "load", "stderr"), nil, 0)
		b.Manifest.Steps = append(b.Manifest.Steps, st)
		prefix, err := evidence.Write(ctx, s, b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := evidence.Read(ctx, s, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got.Manifest.RunID != b.Manifest.RunID || len(got.Manifest.Steps) != 1 {
			t.Fatalf("got manifest %+v, want %+v", got.Manifest, b.Manifest)
		}
		if out := got.Files[got.Manifest.Steps[0].Stdout.File]; string(out) != "up 3 days\n" {
			t.Fatalf("got stdout %q, want %q", out, "up 3 days\n")
		}
		if _, err := evidence.Write(ctx, s, b); err == nil {
			t.Fatal("writing the same run twice succeeded; the manifest must be write-once")
		}
	})
}
