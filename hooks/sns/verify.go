package sns

import (
	"cmp"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1" // SignatureVersion 1 is SHA1withRSA; SNS still sends it by default.
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// snsHost is the only host a signing certificate or a SubscribeURL may
// come from: SNS's regional endpoint, in the commercial and China
// partitions. https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html
var snsHost = regexp.MustCompile(`^sns\.[a-z]{2}(-[a-z]+)+-[0-9]\.amazonaws\.com(\.cn)?$`)

// checkURL refuses anything but https://sns.<region>.amazonaws.com(.cn)/…
// with no port and no credentials.
func checkURL(field, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s is not a URL", field)
	case u.Scheme != "https":
		return nil, fmt.Errorf("%s %q is not https", field, raw)
	case u.User != nil || u.Port() != "" || !snsHost.MatchString(u.Host):
		return nil, fmt.Errorf("%s %q is not on an SNS endpoint (https://sns.<region>.amazonaws.com)", field, raw)
	}
	return u, nil
}

// stringToSign is the text SNS signs, its fields in the documented order
// for the message type; Subject only when the message has one.
func stringToSign(m *message) (string, error) {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	switch m.Type {
	case "Notification":
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
		add("Timestamp", m.Timestamp)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		add("Message", m.Message)
		add("MessageId", m.MessageID)
		add("SubscribeURL", m.SubscribeURL)
		add("Timestamp", m.Timestamp)
		add("Token", m.Token)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
	default:
		return "", fmt.Errorf("unknown message Type %q", m.Type)
	}
	return b.String(), nil
}

// verifySignature checks m's signature with cert's RSA key.
func verifySignature(m *message, cert *x509.Certificate) error {
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return errors.New("the Signature is not base64")
	}
	text, err := stringToSign(m)
	if err != nil {
		return err
	}
	key, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("signing certificate has no RSA key")
	}
	var h crypto.Hash
	switch m.SignatureVersion {
	case "1":
		h = crypto.SHA1
	case "2":
		h = crypto.SHA256
	default:
		return fmt.Errorf("unknown SignatureVersion %q (SNS uses 1 and 2)", m.SignatureVersion)
	}
	var digest []byte
	if h == crypto.SHA1 {
		d := sha1.Sum([]byte(text))
		digest = d[:]
	} else {
		d := sha256.Sum256([]byte(text))
		digest = d[:]
	}
	if err := rsa.VerifyPKCS1v15(key, h, digest, sig); err != nil {
		return errors.New("signature does not verify with the signing certificate")
	}
	return nil
}

// certCacheSize bounds the cache: SNS rotates its certificate rarely, and
// a flood of distinct (valid-looking) URLs must not grow memory.
const certCacheSize = 32

// certs fetches and caches signing certificates.
type certs struct {
	client *http.Client
	now    func() time.Time
	mu     sync.Mutex
	cache  map[string]*x509.Certificate
	// inflight has a fetch per URL under way: a burst of messages at
	// start makes one fetch, not one per message.
	inflight map[string]*fetch
}

type fetch struct {
	done chan struct{}
	cert *x509.Certificate
	err  error
}

// get returns the certificate at raw, which must be an SNS endpoint URL.
// A fetch that fails for a reason not the sender's is a *fetchError.
func (c *certs) get(ctx context.Context, raw string) (*x509.Certificate, error) {
	u, err := checkURL("SigningCertURL", raw)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Path, ".pem") {
		return nil, fmt.Errorf("SigningCertURL %q is not a .pem file", raw)
	}
	c.mu.Lock()
	cert := c.cache[raw]
	f := c.inflight[raw]
	if cert == nil && f == nil {
		f = &fetch{done: make(chan struct{})}
		if c.inflight == nil {
			c.inflight = map[string]*fetch{}
		}
		c.inflight[raw] = f
		c.mu.Unlock()
		// Not the request's context: others wait on this fetch.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cmp.Or(c.client.Timeout, 5*time.Second))
		f.cert, f.err = c.fetch(fctx, u)
		cancel()
		c.mu.Lock()
		delete(c.inflight, raw)
		if f.err == nil {
			if len(c.cache) >= certCacheSize {
				clear(c.cache)
			}
			c.cache[raw] = f.cert
		}
		close(f.done)
	}
	c.mu.Unlock()
	if cert == nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, &fetchError{ctx.Err()}
		}
		if f.err != nil {
			return nil, f.err
		}
		cert = f.cert
	}
	if now := c.now(); now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("signing certificate is not valid now (valid %s to %s)", cert.NotBefore.Format(time.DateOnly), cert.NotAfter.Format(time.DateOnly))
	}
	return cert, nil
}

// fetchError is a certificate that could not be fetched: SNS should retry.
type fetchError struct{ err error }

func (e *fetchError) Error() string { return "fetch signing certificate: " + e.err.Error() }
func (e *fetchError) Unwrap() error { return e.err }

func (c *certs) fetch(ctx context.Context, u *url.URL) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &fetchError{err}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, &fetchError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &fetchError{fmt.Errorf("%s: %s", u, resp.Status)}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, &fetchError{err}
	}
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s is not a PEM certificate", u)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse signing certificate %s: %v", u, err)
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, fmt.Errorf("signing certificate %s has no RSA key", u)
	}
	return cert, nil
}

// newClient is the production client: a timeout, no redirects (the URL
// was checked; where it redirects was not), TLS verified by the system
// roots.
func newClient() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirect refused")
		},
	}
}
