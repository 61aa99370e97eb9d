package evidence

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// Store keeps bundles. Keys are slash-separated relative paths; an object
// is written once and never replaced.
type Store interface {
	// Put writes body under key, or returns ErrExists if key was written
	// before.
	Put(ctx context.Context, key string, body []byte) error
	// Get returns what Put wrote under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Link returns where a person opens key: a path, a file:// URL or a
	// (presigned) https URL.
	Link(ctx context.Context, key string) (string, error)
}

var (
	// ErrExists is returned by Store.Put for a key already written.
	ErrExists = errors.New("object exists")
	// ErrNotFound is returned by Store.Get for a key never written.
	ErrNotFound = errors.New("object not found")
)

// ErrInvalidKey is wrapped by the error a Store returns for a key outside
// the rules of ValidKey.
var ErrInvalidKey = errors.New("invalid key")

// ValidKey checks the key rules every Store keeps: a relative,
// slash-separated path with no empty, "." or ".." elements. A local store
// must not be led outside its root, and a key one store refuses must not
// work in another, or a change of store would break it.
func ValidKey(key string) error {
	if key == "" || strings.HasSuffix(key, "/") || path.Clean("/"+key) != "/"+key {
		return fmt.Errorf("%w %q", ErrInvalidKey, key)
	}
	return nil
}

// ManifestFile is the name of the manifest inside a bundle's prefix. It is
// written last: a prefix without it is an incomplete bundle.
const ManifestFile = "manifest.json"

// Prefix is where a run's bundle lives in a Store:
// <source>/<incident id>/<run id>/.
func Prefix(m Manifest) string {
	return path.Join(keyPart(m.Incident.Source), keyPart(m.Incident.ID), keyPart(m.RunID)) + "/"
}

var unsafeKey = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// keyPart makes s safe as one path element of a key in every store.
func keyPart(s string) string {
	s = unsafeKey.ReplaceAllString(s, "_")
	s = strings.Trim(s, ".")
	if s == "" {
		return "_"
	}
	return s
}

// RunID names one run: when it started, where and what, readable in a
// listing and unique per incident.
func RunID(started time.Time, host, playbook string) string {
	return started.UTC().Format("20060102T150405.000Z") + "-" + keyPart(host) + "-" + keyPart(playbook)
}

// Write stores the bundle's files, then its manifest, and returns the
// prefix it used. Because the manifest goes last, a reader that finds a
// manifest finds every file it names.
func Write(ctx context.Context, s Store, b *Bundle) (string, error) {
	prefix := Prefix(b.Manifest)
	for name, body := range b.Files {
		if err := s.Put(ctx, prefix+name, body); err != nil && !errors.Is(err, ErrExists) {
			return "", fmt.Errorf("store %s: %w", prefix+name, err)
		}
	}
	// The page goes before the manifest too: a bundle with a manifest
	// has its page.
	page, err := Page(b)
	if err != nil {
		return "", err
	}
	if err := s.Put(ctx, prefix+PageFile, page); err != nil && !errors.Is(err, ErrExists) {
		return "", fmt.Errorf("store %s: %w", prefix+PageFile, err)
	}
	m, err := json.MarshalIndent(b.Manifest, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode manifest: %w", err)
	}
	if err := s.Put(ctx, prefix+ManifestFile, append(m, '\n')); err != nil {
		return "", fmt.Errorf("store %s: %w", prefix+ManifestFile, err)
	}
	return prefix, nil
}

// Read loads the bundle stored under prefix.
func Read(ctx context.Context, s Store, prefix string) (*Bundle, error) {
	raw, err := s.Get(ctx, strings.TrimSuffix(prefix, "/")+"/"+ManifestFile)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Files: map[string][]byte{}}
	if err := json.Unmarshal(raw, &b.Manifest); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	for _, st := range b.Manifest.Steps {
		for _, o := range []Output{st.Stdout, st.Stderr} {
			if o.File == "" {
				continue
			}
			body, err := s.Get(ctx, strings.TrimSuffix(prefix, "/")+"/"+o.File)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w", o.File, err)
			}
			b.Files[o.File] = body
		}
	}
	return b, nil
}

// SetOutput records a captured stream in the bundle: it stores the kept
// bytes under file (when there are any) and returns the Output that
// describes them.
func (b *Bundle) SetOutput(file string, kept []byte, total int64) Output {
	o := Output{Bytes: total, Kept: int64(len(kept)), Truncated: total > int64(len(kept))}
	if len(kept) == 0 {
		return o
	}
	if b.Files == nil {
		b.Files = map[string][]byte{}
	}
	sum := sha256.Sum256(kept)
	o.File = file
	o.SHA256 = hex.EncodeToString(sum[:])
	b.Files[file] = kept
	return o
}

// StepFile names a step's output file: steps/<nn>-<name>.<stream>.
func StepFile(index int, step, stream string) string {
	return fmt.Sprintf("steps/%02d-%s.%s", index+1, keyPart(step), stream)
}
