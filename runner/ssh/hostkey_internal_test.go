package ssh

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func newPub(t *testing.T, kind string) xssh.PublicKey {
	t.Helper()
	var key any
	var err error
	switch kind {
	case "ed25519":
		key, _, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		var k *ecdsa.PrivateKey
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err == nil {
			key = &k.PublicKey
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := xssh.NewPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func writeKnownHosts(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func authorized(k xssh.PublicKey) string {
	return strings.TrimSpace(string(xssh.MarshalAuthorizedKey(k)))
}

// TestHostKeyAlgorithms also guards coveredByCA's reading of x/crypto's
// error message.
func TestHostKeyAlgorithms(t *testing.T) {
	ed, ec, ca := newPub(t, "ed25519"), newPub(t, "ecdsa"), newPub(t, "ed25519")
	file := writeKnownHosts(t,
		knownhosts.Line([]string{"10.0.0.1:22"}, ed),
		knownhosts.Line([]string{"10.0.0.2:22"}, ed),
		knownhosts.Line([]string{"10.0.0.2:22"}, ec),
		knownhosts.Line([]string{"[10.0.0.3]:2222"}, ec),
		"@cert-authority *.example.com "+authorized(ca),
		knownhosts.Line([]string{"db.example.com:22"}, ed),
	)
	hk, err := loadHostKeys([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	certs := []string{xssh.CertAlgoED25519v01, xssh.CertAlgoECDSA256v01, xssh.CertAlgoECDSA384v01, xssh.CertAlgoECDSA521v01, xssh.CertAlgoRSASHA512v01, xssh.CertAlgoRSASHA256v01}
	tests := []struct {
		addr string
		want []string
	}{
		{"10.0.0.1:22", []string{xssh.KeyAlgoED25519}},
		{"10.0.0.2:22", []string{xssh.KeyAlgoED25519, xssh.KeyAlgoECDSA256}},
		{"10.0.0.3:2222", []string{xssh.KeyAlgoECDSA256}},
		{"10.0.0.3:22", nil}, // unknown: library default
		{"web.example.com:22", certs},
		{"db.example.com:22", append(slices.Clone(certs), xssh.KeyAlgoED25519)},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if got := hk.algorithms(tt.addr); !slices.Equal(got, tt.want) {
				t.Errorf("algorithms(%s): got %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestHostKeyCallbackErrors(t *testing.T) {
	known, other, revoked := newPub(t, "ed25519"), newPub(t, "ed25519"), newPub(t, "ed25519")
	file := writeKnownHosts(t,
		knownhosts.Line([]string{"10.0.0.1:22"}, known),
		"@revoked * "+authorized(revoked),
	)
	hk, err := loadHostKeys([]string{file})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		addr     string
		key      xssh.PublicKey
		want     error
		wantKind HostKeyKind
		wantMsg  []string
	}{
		{"known", "10.0.0.1:22", known, nil, "", nil},
		{"changed", "10.0.0.1:22", other, ErrHostKeyChanged, HostKeyChanged,
			[]string{"host web-1 (10.0.0.1:22) via bastion b-1: host key changed", xssh.FingerprintSHA256(other), xssh.FingerprintSHA256(known), "possible man-in-the-middle, or the host was rebuilt", "update known_hosts line " + file + ":1"}},
		{"unknown", "10.0.0.9:22", other, ErrHostKeyUnknown, HostKeyUnknown,
			[]string{"host key unknown", "ssh-keyscan -t ed25519 10.0.0.9 >> <known_hosts file>", "verify this fingerprint", "run it on bastion b-1"}},
		{"revoked", "10.0.0.1:22", revoked, ErrHostKeyRevoked, HostKeyRevoked,
			[]string{"host key revoked", file + ":2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recorded *HostKeyError
			h := hop{kind: HopHost, name: "web-1", addr: tt.addr, user: "root", via: "b-1"}
			err := hk.callback(h, &recorded)(tt.addr, probeAddr, tt.key)
			if tt.want == nil {
				if err != nil || recorded != nil {
					t.Fatalf("callback: got %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || recorded == nil || recorded.Kind != tt.wantKind {
				t.Fatalf("callback: got %v (%+v), want %v", err, recorded, tt.want)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message: got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}
