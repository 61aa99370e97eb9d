package spool

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"

	"github.com/firstlook/firstlook/evidence"
)

// throttleCodes are S3 error codes that mean "later", whatever the status.
// https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
var throttleCodes = map[string]bool{
	"SlowDown":                   true,
	"Throttling":                 true,
	"ThrottlingException":        true,
	"RequestLimitExceeded":       true,
	"TooManyRequests":            true,
	"RequestTimeout":             true,
	"ServiceUnavailable":         true,
	"InternalError":              true,
	"RequestTimeTooSkewed":       true, // the SDK corrects its clock offset on the next call
	"OperationAborted":           true, // a conflicting operation on the bucket is in progress
	"ConditionalRequestConflict": true,
}

// Transient reports whether err means the remote store is unavailable for
// now (unreachable, timing out, overloaded, failing) rather than refusing
// the object: the errors for which Put spools and Run keeps retrying
// without reporting a problem with the object.
//
// Transient: timeouts (context.DeadlineExceeded, net timeouts), connection
// failures (*net.OpError: refused, reset, unreachable; unexpected EOF), DNS
// failures other than "no such host", HTTP 5xx, 408 and 429, and S3's
// throttling codes (SlowDown…). Not transient: evidence.ErrExists and
// ErrNotFound, cancellation, TLS certificate errors, "no such host", every
// other 4xx (access denied, no such bucket, bad request), and errors that
// come with no network or HTTP cause (an invalid key, a full local disk).
//
// It reads the HTTP status and error code through the methods the AWS SDK's
// errors have (HTTPStatusCode() int, ErrorCode() string), so any Store whose
// errors carry them is classified the same way.
func Transient(err error) bool {
	switch {
	case err == nil,
		errors.Is(err, evidence.ErrExists),
		errors.Is(err, evidence.ErrNotFound),
		errors.Is(err, context.Canceled):
		return false
	}
	// The SDK wraps failures that got no answer in a response error with
	// status 0; only a real status says the server answered.
	var st interface{ HTTPStatusCode() int }
	if errors.As(err, &st) && st.HTTPStatusCode() > 0 {
		c := st.HTTPStatusCode()
		if c >= 500 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests {
			return true
		}
		var ce interface{ ErrorCode() string }
		return errors.As(err, &ce) && throttleCodes[ce.ErrorCode()]
	}
	// Wrong certificates and hosts that do not exist are configuration,
	// not an outage; spooling would hide them.
	var (
		dnsErr      *net.DNSError
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
	)
	if (errors.As(err, &dnsErr) && dnsErr.IsNotFound) ||
		errors.As(err, &certErr) || errors.As(err, &unknownAuth) ||
		errors.As(err, &hostErr) || errors.As(err, &invalidCert) {
		return false
	}
	var (
		opErr  *net.OpError
		netErr net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return true
	case errors.As(err, &netErr) && netErr.Timeout():
		return true
	case errors.As(err, &opErr), errors.As(err, &dnsErr):
		return true
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return true
	case errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// A connection closed before any response: net/http reports a bare
	// io.EOF inside the *url.Error it returns.
	var ue interface {
		Timeout() bool
		Temporary() bool
	}
	return errors.As(err, &ue) && errors.Is(err, io.EOF)
}
