package pagerduty

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strings"
	"sync"

	"github.com/PagerDuty/go-pagerduty/webhookv3"
)

// signer checks X-PagerDuty-Signature values for one secret. It computes
// what webhookv3.VerifySignature computes, HMAC-SHA256 of the body in
// lowercase hex after "v1=", and answers with the same errors on the same
// inputs (FuzzVerifyMatchesWebhookv3 holds it to that), without what
// VerifySignature costs on every webhook: reading the body again into a
// new, growing buffer (about 12 KB of garbage per delivery) and keying a
// new HMAC. Its keyed HMACs are reused.
type signer struct {
	macs sync.Pool // of hash.Hash keyed with the secret
}

func newSigner(secret string) *signer {
	key := []byte(secret)
	return &signer{macs: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// verify returns nil when one of header's v1= signatures is body's, and
// otherwise webhookv3's error for the same header and body:
// ErrMalformedHeader for a header without a well-formed v1= signature,
// ErrMalformedBody for an empty body, ErrNoValidSignatures else.
func (s *signer) verify(header string, body []byte) error {
	if header == "" {
		return webhookv3.ErrMalformedHeader
	}
	if len(body) == 0 {
		return webhookv3.ErrMalformedBody
	}
	mac := s.macs.Get().(hash.Hash)
	mac.Reset()
	mac.Write(body)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	s.macs.Put(mac)

	found := false
	for v := range strings.SplitSeq(header, ",") {
		h, ok := strings.CutPrefix(v, "v1=")
		if !ok {
			continue
		}
		sig, err := hex.DecodeString(h)
		if err != nil {
			continue
		}
		found = true
		if hmac.Equal(sig, sum[:]) {
			return nil
		}
	}
	if !found {
		return webhookv3.ErrMalformedHeader
	}
	return webhookv3.ErrNoValidSignatures
}
