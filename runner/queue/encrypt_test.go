package queue_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/firstlook/firstlook/runner/queue"
)

// plantedTitle is an alert title carrying a secret, as webhook bodies can.
const plantedTitle = "db-7 down: password=Hunter2-planted-4c1e9a"

// storeHolds reports whether any file under dir contains s.
func storeHolds(t *testing.T, dir, s string) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			found = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// putPlanted stores a job and a state entry holding the planted title,
// finishes another job (its id goes to the deliveries bucket), and closes
// the queue so every write is on disk.
func putPlanted(t *testing.T, cfg queue.Config) {
	t.Helper()
	q := open(t, cfg)
	tr := trigger("secret-1")
	tr.Incident.Title = plantedTitle
	if _, err := q.Put(testCtx(t, 30*time.Second), tr); err != nil {
		t.Fatal(err)
	}
	if _, err := q.State().Create(testCtx(t, 10*time.Second), queue.Key("note", "secret-1"), []byte(plantedTitle)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptionAtRest: with a key file, nothing the queue writes to disk
// holds an alert title in clear (without one, it does: the check can
// fail); the reopened queue reads its jobs back; a wrong key or no key
// cannot open the store; and a rotation reads with the previous key and
// writes with the new one.
func TestEncryptionAtRest(t *testing.T) {
	keys := t.TempDir()
	key := filepath.Join(keys, "key")
	newKey := filepath.Join(keys, "new-key")
	wrong := filepath.Join(keys, "wrong")
	for path, k := range map[string]string{key: "first-key-0123456789abcdef\n", newKey: "second-key-0123456789abcdef\n", wrong: "wrong-key-0123456789abcdef\n"} {
		if err := os.WriteFile(path, []byte(k), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("clear without a key", func(t *testing.T) {
		cfg := queue.Config{DataDir: t.TempDir(), Logger: quietLogger()}
		putPlanted(t, cfg)
		if !storeHolds(t, cfg.DataDir, plantedTitle) {
			t.Fatal("the planted title is not in the unencrypted store: this test cannot see it")
		}
	})

	for _, cipher := range []string{"", "aes"} {
		t.Run("encrypted cipher="+cipher, func(t *testing.T) {
			dir := t.TempDir()
			cfg := queue.Config{DataDir: dir, Embedded: queue.EmbeddedConfig{KeyFile: key, Cipher: cipher}, Logger: quietLogger()}
			putPlanted(t, cfg)
			if storeHolds(t, dir, plantedTitle) {
				t.Fatal("the planted title is on disk in clear")
			}
			q := open(t, cfg)
			if j := next(t, q); j.Trigger.Incident.Title != plantedTitle {
				t.Fatalf("reopened: got title %q", j.Trigger.Incident.Title)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}

			// The wrong key, or none, is refused: not an empty queue
			// over the unreadable one.
			for _, bad := range []queue.EmbeddedConfig{{KeyFile: wrong, Cipher: cipher}, {}} {
				bcfg := cfg
				bcfg.Embedded = bad
				q, err := queue.Open(testCtx(t, 30*time.Second), bcfg)
				if err == nil {
					q.Close()
					t.Fatalf("opened with key file %q: got no error", bad.KeyFile)
				}
				if !strings.Contains(err.Error(), "could not load") {
					t.Errorf("opened with key file %q: got %v, want could not load", bad.KeyFile, err)
				}
			}
			// The right key still reads it after the refusals.
			q = open(t, cfg)
			if st := stats(t, q); st.Stored != 1 {
				t.Fatalf("reopened with the key after refusals: got %d jobs, want 1", st.Stored)
			}
		})
	}

	t.Run("rotation", func(t *testing.T) {
		dir := t.TempDir()
		cfg := queue.Config{DataDir: dir, Embedded: queue.EmbeddedConfig{KeyFile: key}, Logger: quietLogger()}
		putPlanted(t, cfg)
		cfg.Embedded = queue.EmbeddedConfig{KeyFile: newKey, PreviousKeyFile: key}
		q := open(t, cfg)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
		cfg.Embedded = queue.EmbeddedConfig{KeyFile: newKey}
		q = open(t, cfg)
		if j := next(t, q); j.Trigger.Incident.Title != plantedTitle {
			t.Fatalf("after rotation: got title %q", j.Trigger.Incident.Title)
		}
		if storeHolds(t, dir, plantedTitle) {
			t.Fatal("the planted title is on disk in clear after rotation")
		}
	})
}
