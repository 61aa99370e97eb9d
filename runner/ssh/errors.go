package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Hop kinds used in HopError.Hop and HostKeyError.Hop.
const (
	HopBastion = "bastion"
	HopHost    = "host"
)

// Operations used in HopError.Op.
const (
	OpDial      = "dial"      // TCP connect, or the bastion's direct-tcpip to the host
	OpHandshake = "handshake" // SSH version and key exchange (not host key checks)
	OpAuth      = "auth"      // user authentication
	OpQueue     = "queue"     // waiting for a max_sessions_per_bastion slot
)

// Sentinel errors for errors.Is. The typed errors below match them.
var (
	// ErrHostKeyUnknown: no known_hosts line (or CA) covers the hop.
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrHostKeyChanged: known_hosts holds other keys for the hop.
	ErrHostKeyChanged = errors.New("host key changed")
	// ErrHostKeyRevoked: the key is marked @revoked.
	ErrHostKeyRevoked = errors.New("host key revoked")
	// ErrBastionUnreachable: the bastion could not be connected to (dial or
	// handshake failed, or timed out). Auth and host-key failures on the
	// bastion are not "unreachable": they need a person, not a retry.
	ErrBastionUnreachable = errors.New("bastion unreachable")
	// ErrHostUnreachable: the host could not be connected to, directly or
	// through a working bastion.
	ErrHostUnreachable = errors.New("host unreachable")
	// ErrAuthFailed: a hop refused every key offered.
	ErrAuthFailed = errors.New("auth failed")
	// ErrClosed: the Dialer or Client was closed.
	ErrClosed = errors.New("ssh: closed")
	// ErrNotStopped: Run's context ended and the remote command could not
	// be confirmed stopped; it may still be running on the host.
	ErrNotStopped = errors.New("remote command not confirmed stopped")
)

// HopError is a failure to connect to one hop (bastion or host) other than a
// host key problem, which is a *HostKeyError.
type HopError struct {
	Hop  string // HopBastion or HopHost
	Name string // the hop's name (may be empty)
	Addr string // host:port dialled
	Via  string // for a host reached through a bastion, the bastion's name
	User string // the user authenticating on this hop
	Op   string // OpDial, OpHandshake or OpAuth
	Err  error
}

func (e *HopError) Error() string {
	var b strings.Builder
	b.WriteString(hopLabel(e.Hop, e.Name, e.Addr, e.Via))
	b.WriteString(": ")
	cause := "<nil>"
	if e.Err != nil {
		cause = e.Err.Error()
		// net.OpError repeats "dial tcp <addr>", which the label already says.
		var op *net.OpError
		if errors.As(e.Err, &op) && op.Err != nil {
			cause = op.Err.Error()
			// And os.SyscallError adds "connect: ".
			var sys *os.SyscallError
			if errors.As(op.Err, &sys) && sys.Err != nil {
				cause = sys.Err.Error()
			}
		}
	}
	if e.Op == OpAuth {
		fmt.Fprintf(&b, "auth failed for user %s: %s", e.User, cause)
	} else {
		fmt.Fprintf(&b, "%s: %s", e.Op, cause)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *HopError) Unwrap() error { return e.Err }

// Is makes errors.Is match ErrBastionUnreachable, ErrHostUnreachable and
// ErrAuthFailed.
func (e *HopError) Is(target error) bool {
	switch target {
	case ErrBastionUnreachable:
		return e.Hop == HopBastion && (e.Op == OpDial || e.Op == OpHandshake)
	case ErrHostUnreachable:
		return e.Hop == HopHost && (e.Op == OpDial || e.Op == OpHandshake)
	case ErrAuthFailed:
		return e.Op == OpAuth
	}
	return false
}

// HostKeyKind says what is wrong with a presented host key.
type HostKeyKind string

// Host key problems.
const (
	HostKeyUnknown HostKeyKind = "unknown"
	HostKeyChanged HostKeyKind = "changed"
	HostKeyRevoked HostKeyKind = "revoked"
	// HostKeyBadCertificate: a CA covers the hop but its certificate was
	// rejected (expired, wrong principal, unknown signer, bad signature).
	HostKeyBadCertificate HostKeyKind = "bad certificate"
)

// HostKeyError is a host key check failure on one hop. The connection was
// refused before any credential was sent.
type HostKeyError struct {
	Hop       string // HopBastion or HopHost
	Name      string
	Addr      string // host:port dialled
	Via       string // for a host reached through a bastion, the bastion's name
	Kind      HostKeyKind
	KeyType   string   // type of the presented key, e.g. "ssh-ed25519"
	Presented string   // SHA256 fingerprint of the presented key
	Known     []string // the known_hosts entries for the hop, "type SHA256:… (file:line)"
	// KnownAt lists the file:line of the entries in Known.
	KnownAt []string
	Err     error // the knownhosts or certificate error
}

func (e *HostKeyError) Error() string {
	var b strings.Builder
	b.WriteString(hopLabel(e.Hop, e.Name, e.Addr, e.Via))
	host, port, err := net.SplitHostPort(e.Addr)
	if err != nil {
		host, port = e.Addr, "22"
	}
	switch e.Kind {
	case HostKeyUnknown:
		fmt.Fprintf(&b, ": host key unknown: the server presented %s %s, which no known_hosts entry covers; verify this fingerprint out of band, then add it with %q",
			e.KeyType, e.Presented, keyscanCommand(host, port, e.KeyType))
		if e.Via != "" {
			fmt.Fprintf(&b, " (run it on bastion %s, which can reach the host)", e.Via)
		}
	case HostKeyChanged:
		if e.Presented == "" {
			fmt.Fprintf(&b, ": host key changed: the server offers none of the key types known_hosts holds for it (%s); possible man-in-the-middle, or the host was rebuilt; verify and update known_hosts %s",
				strings.Join(e.Known, "; "), lineWord(e.KnownAt))
		} else {
			fmt.Fprintf(&b, ": host key changed: the server presented %s %s, known_hosts has %s; possible man-in-the-middle, or the host was rebuilt; verify the new fingerprint out of band and update known_hosts %s",
				e.KeyType, e.Presented, strings.Join(e.Known, "; "), lineWord(e.KnownAt))
		}
	case HostKeyRevoked:
		fmt.Fprintf(&b, ": host key revoked: the server presented %s %s, marked @revoked at %s; refusing to connect",
			e.KeyType, e.Presented, strings.Join(e.KnownAt, ", "))
	default:
		fmt.Fprintf(&b, ": host certificate rejected (%s %s): %v", e.KeyType, e.Presented, e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying knownhosts or certificate error.
func (e *HostKeyError) Unwrap() error { return e.Err }

// Is makes errors.Is match ErrHostKeyUnknown, ErrHostKeyChanged and
// ErrHostKeyRevoked by Kind.
func (e *HostKeyError) Is(target error) bool {
	switch target {
	case ErrHostKeyUnknown:
		return e.Kind == HostKeyUnknown
	case ErrHostKeyChanged:
		return e.Kind == HostKeyChanged
	case ErrHostKeyRevoked:
		return e.Kind == HostKeyRevoked
	}
	return false
}

// hopLabel renders "bastion b-1 (10.0.0.1:22)" or
// "host web-1 (10.1.0.2:22) via bastion b-1".
func hopLabel(hop, name, addr, via string) string {
	s := hop + " " + addr
	if name != "" && name != addr {
		s = hop + " " + name + " (" + addr + ")"
	}
	if via != "" {
		s += " via bastion " + via
	}
	return s
}

func lineWord(at []string) string {
	if len(at) == 1 {
		return "line " + at[0]
	}
	return "lines " + strings.Join(at, ", ")
}

// keyscanCommand suggests how to fetch the key, so the message is actionable.
func keyscanCommand(host, port, keyType string) string {
	args := []string{"ssh-keyscan"}
	if port != "22" {
		args = append(args, "-p", port)
	}
	if t := keyscanType(keyType); t != "" {
		args = append(args, "-t", t)
	}
	args = append(args, host, ">>", "<known_hosts file>")
	return strings.Join(args, " ")
}

func keyscanType(keyType string) string {
	keyType = strings.TrimSuffix(keyType, "-cert-v01@openssh.com")
	switch {
	case keyType == "ssh-ed25519":
		return "ed25519"
	case strings.HasPrefix(keyType, "ecdsa-sha2-"):
		return "ecdsa"
	case keyType == "ssh-rsa" || strings.HasPrefix(keyType, "rsa-sha2-"):
		return "rsa"
	}
	return ""
}

// formatKnown renders a known_hosts entry location for messages.
func formatKnown(file string, line int) string {
	return file + ":" + strconv.Itoa(line)
}
