package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks host keys against known_hosts and chooses, per hop, the
// host key algorithms to ask for.
type hostKeys struct {
	check  xssh.HostKeyCallback // knownhosts.New over every file
	caKeys []xssh.PublicKey     // keys of @cert-authority lines
	// caLines holds the "file:line" of @cert-authority lines: knownhosts
	// lists them in KeyError.Want along with plain host keys.
	caLines map[string]bool
	probe   xssh.PublicKey // a throwaway key no known_hosts can hold
}

// plain drops @cert-authority entries from a KeyError's Want.
func (hk *hostKeys) plain(want []knownhosts.KnownKey) []knownhosts.KnownKey {
	var keys []knownhosts.KnownKey
	for _, k := range want {
		if !hk.caLines[formatKnown(k.Filename, k.Line)] {
			keys = append(keys, k)
		}
	}
	return keys
}

func loadHostKeys(files []string) (*hostKeys, error) {
	check, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("load known_hosts: %w", err)
	}
	hk := &hostKeys{check: check, caLines: make(map[string]bool)}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("load known_hosts: %w", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "@cert-authority") {
				continue
			}
			_, _, key, _, _, err := xssh.ParseKnownHosts([]byte(line))
			if err != nil {
				return nil, fmt.Errorf("load known_hosts %s:%d: %w", f, i+1, err)
			}
			hk.caKeys = append(hk.caKeys, key)
			hk.caLines[formatKnown(f, i+1)] = true
		}
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate probe key: %w", err)
	}
	if hk.probe, err = xssh.NewPublicKey(pub); err != nil {
		return nil, fmt.Errorf("generate probe key: %w", err)
	}
	return hk, nil
}

// probeAddr stands in for the remote address: knownhosts needs one that
// parses, but prefers the hostname we pass, as we dial by name.
var probeAddr = &net.TCPAddr{IP: net.IPv4zero}

// algorithms returns the host key algorithms to request from addr, in
// preference order, or nil for the library default.
//
// Without this, x/crypto asks for its own preference order (ECDSA before
// Ed25519), a server holding both presents ECDSA, and a host whose
// known_hosts line is Ed25519 looks like a changed key. OpenSSH avoids this
// by preferring the algorithms of the keys it already knows for the host
// (order_hostkeyalgs in sshconnect2.c); so do we. knownhosts exposes the
// keys it holds for a host only through KeyError.Want, so we ask it about a
// throwaway key.
func (hk *hostKeys) algorithms(addr string) []string {
	var algos []string
	if hk.coveredByCA(addr) {
		// A CA can sign any key type: ask for certificates first.
		algos = append(algos,
			xssh.CertAlgoED25519v01,
			xssh.CertAlgoECDSA256v01, xssh.CertAlgoECDSA384v01, xssh.CertAlgoECDSA521v01,
			xssh.CertAlgoRSASHA512v01, xssh.CertAlgoRSASHA256v01)
	}
	var ke *knownhosts.KeyError
	if err := hk.check(addr, probeAddr, hk.probe); errors.As(err, &ke) {
		for _, k := range hk.plain(ke.Want) {
			for _, a := range algorithmsForKeyType(k.Key.Type()) {
				if !slices.Contains(algos, a) {
					algos = append(algos, a)
				}
			}
		}
	}
	if len(algos) == 0 {
		return nil
	}
	return algos
}

// coveredByCA reports whether an @cert-authority line matches addr. The
// matcher is unexported in knownhosts, so we present a certificate
// "signed" by each CA: the checker answers "no authorities for hostname"
// before looking at anything else when the CA does not cover the host, and
// some other complaint (here: expired) when it does.
// TestHostKeyAlgorithms guards this against a change in x/crypto.
func (hk *hostKeys) coveredByCA(addr string) bool {
	for _, ca := range hk.caKeys {
		cert := &xssh.Certificate{
			Key:          hk.probe,
			CertType:     xssh.HostCert,
			SignatureKey: ca,
			ValidBefore:  1, // expired: rejected before the (absent) signature is checked
			Signature:    &xssh.Signature{Format: ca.Type()},
		}
		err := hk.check(addr, probeAddr, cert)
		if err != nil && !strings.Contains(err.Error(), "no authorities for hostname") {
			return true
		}
	}
	return false
}

func algorithmsForKeyType(t string) []string {
	switch t {
	case xssh.KeyAlgoRSA:
		return []string{xssh.KeyAlgoRSASHA512, xssh.KeyAlgoRSASHA256, xssh.KeyAlgoRSA}
	default:
		return []string{t}
	}
}

// callback returns a HostKeyCallback for one hop that turns failures into
// a *HostKeyError and records it, because x/crypto may report the handshake
// failure with a different error.
func (hk *hostKeys) callback(h hop, record **HostKeyError) xssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key xssh.PublicKey) error {
		err := hk.check(hostname, remote, key)
		if err == nil {
			return nil
		}
		e := &HostKeyError{Hop: h.kind, Name: h.name, Addr: h.addr, Via: h.via, KeyType: key.Type(), Err: err}
		fp := key
		if cert, ok := key.(*xssh.Certificate); ok {
			fp = cert.Key
		}
		e.Presented = xssh.FingerprintSHA256(fp)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &re):
			e.Kind = HostKeyRevoked
			e.Known = []string{describeKnown(re.Revoked)}
			e.KnownAt = []string{formatKnown(re.Revoked.Filename, re.Revoked.Line)}
		case errors.As(err, &ke) && len(hk.plain(ke.Want)) == 0:
			// Includes a host covered only by a CA that presented a plain
			// key: no key of its own is known.
			e.Kind = HostKeyUnknown
		case errors.As(err, &ke):
			e.Kind = HostKeyChanged
			e.Known, e.KnownAt = describeWant(hk.plain(ke.Want))
		default:
			e.Kind = HostKeyBadCertificate
		}
		*record = e
		return e
	}
}

// mismatchedTypes builds the error for a server that offers none of the
// host key algorithms we asked for: known_hosts vouches for keys this
// server no longer has.
func (hk *hostKeys) mismatchedTypes(h hop, err error) *HostKeyError {
	e := &HostKeyError{Hop: h.kind, Name: h.name, Addr: h.addr, Via: h.via, Kind: HostKeyChanged, Err: err}
	var ke *knownhosts.KeyError
	if err := hk.check(h.addr, probeAddr, hk.probe); errors.As(err, &ke) {
		e.Known, e.KnownAt = describeWant(hk.plain(ke.Want))
	}
	return e
}

func describeWant(want []knownhosts.KnownKey) (known, at []string) {
	for _, k := range want {
		known = append(known, describeKnown(k))
		loc := formatKnown(k.Filename, k.Line)
		if !slices.Contains(at, loc) {
			at = append(at, loc)
		}
	}
	return known, at
}

func describeKnown(k knownhosts.KnownKey) string {
	return fmt.Sprintf("%s %s (%s)", k.Key.Type(), xssh.FingerprintSHA256(k.Key), formatKnown(k.Filename, k.Line))
}
