// Package dir is the local-directory evidence store, firstlook's default:
// each object is a file under the root, written once and atomically.
package dir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/firstlook/firstlook/evidence"
)

// Config is the directory store's configuration.
type Config struct {
	// Path is the root directory; it is created if missing.
	Path string `yaml:"path"`
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("path: required")
	}
	return nil
}

// Store keeps objects as files under a root directory.
type Store struct {
	root string
}

var _ evidence.Store = (*Store)(nil)

// New returns a Store rooted at cfg.Path, creating the directory.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("dir: %w", err)
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("dir: create root: %w", err)
	}
	return &Store{root: root}, nil
}

// Root is the store's absolute root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) path(key string) (string, error) {
	if err := evidence.ValidKey(key); err != nil {
		return "", fmt.Errorf("dir: %w", err)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes body under key. The file appears complete or not at all, and
// an existing key is never replaced (ErrExists).
func (s *Store) Put(ctx context.Context, key string, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("dir: put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return fmt.Errorf("dir: put %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return fmt.Errorf("dir: put %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("dir: put %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("dir: put %s: %w", key, err)
	}
	// link(2) fails when the name exists, which makes the write-once
	// check and the publication one atomic step.
	if err := os.Link(tmp.Name(), p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("dir: put %s: %w", key, evidence.ErrExists)
		}
		return fmt.Errorf("dir: put %s: %w", key, err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Get returns the object under key.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dir: get %s: %w", key, evidence.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("dir: get %s: %w", key, err)
	}
	return b, nil
}

// Link returns the object's file:// URL.
func (s *Store) Link(_ context.Context, key string) (string, error) {
	p, err := s.path(key)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}
