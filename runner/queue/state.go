package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Errors that State's callers branch on.
var (
	// ErrNotFound: the key has no value (never set, deleted or expired).
	ErrNotFound = errors.New("queue: state: not found")
	// ErrExists: Create found the key already set.
	ErrExists = errors.New("queue: state: already exists")
	// ErrConflict: the key changed since the revision given to Update or
	// Delete was read.
	ErrConflict = errors.New("queue: state: revision conflict")
)

// State is per-incident state in the JetStream key-value bucket. Every
// write returns the key's new revision; Update and Delete take the revision
// the caller read, and fail with ErrConflict if another writer got there
// first, so read-modify-write is safe across workers and nodes. Build keys
// with Key.
type State struct {
	kv jetstream.KeyValue
}

// Get returns the key's value and revision, or ErrNotFound.
func (s *State) Get(ctx context.Context, key string) (value []byte, revision uint64, err error) {
	e, err := s.kv.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, 0, fmt.Errorf("queue: state: get %s: %w", key, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("queue: state: get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create sets the key only if it has no value, and returns its revision;
// ErrExists otherwise. It is how one worker of many claims an incident.
func (s *State) Create(ctx context.Context, key string, value []byte) (revision uint64, err error) {
	rev, err := s.kv.Create(ctx, key, value)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("queue: state: create %s: %w", key, ErrExists)
		}
		return 0, fmt.Errorf("queue: state: create %s: %w", key, err)
	}
	return rev, nil
}

// Update sets the key if its revision is still revision, and returns the
// new revision; ErrConflict otherwise.
func (s *State) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := s.kv.Update(ctx, key, value, revision)
	if err != nil {
		return 0, fmt.Errorf("queue: state: update %s: %w", key, mapConflict(err))
	}
	return rev, nil
}

// Delete removes the key's value. With revision 0 it deletes whatever is
// there; otherwise only that revision, or fails with ErrConflict.
func (s *State) Delete(ctx context.Context, key string, revision uint64) error {
	var opts []jetstream.KVDeleteOpt
	if revision != 0 {
		opts = append(opts, jetstream.LastRevision(revision))
	}
	if err := s.kv.Delete(ctx, key, opts...); err != nil {
		return fmt.Errorf("queue: state: delete %s: %w", key, mapConflict(err))
	}
	return nil
}

func mapConflict(err error) error {
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrConflict
	}
	return err
}

// keyEscape starts an escaped byte in a key part; keySep separates parts.
const (
	keyEscape = '='
	keySep    = '.'
	hexDigits = "0123456789ABCDEF"
)

// literal reports whether b stands for itself in a key part. Key
// characters are [-/_=.a-zA-Z0-9]; '=' escapes and '.' separates.
func literal(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
		b == '-' || b == '_' || b == '/'
}

// Key builds a state key from parts (incident id, host name, playbook
// name…), which may hold any bytes. Parts are joined with '.', so a
// bucket watch can match on them; in a part, every byte outside
// [-/_a-zA-Z0-9] becomes =XX (two upper-case hex digits), and an empty part
// becomes a lone "=". SplitKey reverses it. Key of no parts is "", which
// no State method accepts.
func Key(parts ...string) string {
	n := len(parts)
	for _, p := range parts {
		n += 3 * len(p)
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(keySep)
		}
		if p == "" {
			b.WriteByte(keyEscape)
			continue
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			if literal(c) {
				b.WriteByte(c)
				continue
			}
			b.WriteByte(keyEscape)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
	return b.String()
}

// SplitKey returns the parts a key was built from with Key.
func SplitKey(key string) ([]string, error) {
	if key == "" {
		return nil, errors.New("queue: split key: empty")
	}
	var parts []string
	for tok := range strings.SplitSeq(key, string(keySep)) {
		if tok == string(keyEscape) {
			parts = append(parts, "")
			continue
		}
		if tok == "" {
			return nil, fmt.Errorf("queue: split key %q: empty part", key)
		}
		var b strings.Builder
		for i := 0; i < len(tok); i++ {
			c := tok[i]
			switch {
			case literal(c):
				b.WriteByte(c)
			case c == keyEscape && i+2 < len(tok):
				hi, lo := unhex(tok[i+1]), unhex(tok[i+2])
				if hi < 0 || lo < 0 || literal(byte(hi<<4|lo)) {
					return nil, fmt.Errorf("queue: split key %q: bad escape at %d", key, i)
				}
				b.WriteByte(byte(hi<<4 | lo))
				i += 2
			default:
				return nil, fmt.Errorf("queue: split key %q: bad byte at %d", key, i)
			}
		}
		parts = append(parts, b.String())
	}
	return parts, nil
}

// unhex decodes an upper-case hex digit, or returns -1: only the canonical
// spelling is accepted, so every key has one set of parts and back.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// Keys returns the keys that match any of filters, NATS subject patterns
// over Key's parts ("*" one part, ">" the rest: "run.*.*.web-1.>"), each
// once, in no particular order. Build literal parts with Key.
func (s *State) Keys(ctx context.Context, filters ...string) ([]string, error) {
	kl, err := s.kv.ListKeysFiltered(ctx, filters...)
	if err != nil {
		return nil, fmt.Errorf("queue: state: list %v: %w", filters, err)
	}
	defer func() { _ = kl.Stop() }()
	seen := map[string]bool{}
	var out []string
	for k := range kl.Keys() {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("queue: state: list %v: %w", filters, err)
	}
	return out, nil
}
