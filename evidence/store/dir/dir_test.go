package dir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/dir"
	"github.com/firstlook/firstlook/evidence/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) evidence.Store {
		s, err := dir.New(dir.Config{Path: filepath.Join(t.TempDir(), "evidence")})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestKeysStayUnderRoot(t *testing.T) {
	s, err := dir.New(dir.Config{Path: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "a/"} {
		if err := s.Put(context.Background(), key, []byte("x")); err == nil || !strings.Contains(err.Error(), "invalid key") {
			t.Errorf("Put(%q): got %v, want an invalid key error", key, err)
		}
	}
}

func TestNoTempFilesLeft(t *testing.T) {
	root := t.TempDir()
	s, err := dir.New(dir.Config{Path: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = s.Put(ctx, "a/b", []byte("1"))
	_ = s.Put(ctx, "a/b", []byte("2"))
	entries, _ := os.ReadDir(filepath.Join(root, "a"))
	if len(entries) != 1 || entries[0].Name() != "b" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("got %v in the directory, want only [b]", names)
	}
}
