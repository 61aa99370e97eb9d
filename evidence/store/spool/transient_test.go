package spool_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/spool"
)

// s3Error builds the error chain the AWS SDK returns for an HTTP answer.
func s3Error(status int, code string) error {
	return fmt.Errorf("s3: put k: %w", &smithy.OperationError{
		ServiceID: "S3", OperationName: "PutObject",
		Err: &awshttp.ResponseError{
			RequestID: "req",
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
			},
		},
	})
}

// sendError builds the chain the AWS SDK returns for a request that got
// no answer: a response error with status 0 around the send error.
func sendError(err error) error {
	return fmt.Errorf("s3: put k: %w", &smithy.OperationError{
		ServiceID: "S3", OperationName: "PutObject",
		Err: &retry.MaxAttemptsError{Attempt: 3, Err: &awshttp.ResponseError{
			ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{}},
				Err: &smithyhttp.RequestSendError{
					Err: &url.Error{Op: "Put", URL: "http://127.0.0.1:1/b/k", Err: err},
				},
			},
		}},
	})
}

func TestTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"Nil", nil, false},
		// The server answered: 5xx, 408, 429 and throttling codes mean later.
		{"503SlowDown", s3Error(503, "SlowDown"), true},
		{"500InternalError", s3Error(500, "InternalError"), true},
		{"502", s3Error(502, ""), true},
		{"504", s3Error(504, "GatewayTimeout"), true},
		{"501NotImplemented", s3Error(501, "NotImplemented"), true},
		{"429", s3Error(429, "TooManyRequests"), true},
		{"408", s3Error(408, ""), true},
		{"400RequestTimeout", s3Error(400, "RequestTimeout"), true},
		{"400Throttling", s3Error(400, "Throttling"), true},
		{"403RequestTimeTooSkewed", s3Error(403, "RequestTimeTooSkewed"), true},
		{"409ConditionalRequestConflict", s3Error(409, "ConditionalRequestConflict"), true},
		// The server answered and refused: waiting will not help.
		{"403AccessDenied", s3Error(403, "AccessDenied"), false},
		{"403InvalidAccessKeyId", s3Error(403, "InvalidAccessKeyId"), false},
		{"403SignatureDoesNotMatch", s3Error(403, "SignatureDoesNotMatch"), false},
		{"404NoSuchBucket", s3Error(404, "NoSuchBucket"), false},
		{"400InvalidArgument", s3Error(400, "InvalidArgument"), false},
		{"400EntityTooLarge", s3Error(400, "EntityTooLarge"), false},
		{"412PreconditionFailed", s3Error(412, "PreconditionFailed"), false},
		// No answer.
		{"ConnectionRefused", sendError(refused), true},
		{"ConnectionReset", sendError(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"BareECONNRESET", syscall.ECONNRESET, true},
		{"NetworkUnreachable", syscall.ENETUNREACH, true},
		{"UnexpectedEOF", sendError(io.ErrUnexpectedEOF), true},
		{"ClosedBeforeResponse", sendError(io.EOF), true},
		{"DNSTemporary", sendError(&net.DNSError{Err: "server misbehaving", Name: "s3.internal", IsTemporary: true}), true},
		{"DNSTimeout", sendError(&net.DNSError{Err: "i/o timeout", Name: "s3.internal", IsTimeout: true}), true},
		{"DeadlineExceeded", fmt.Errorf("s3: put k: %w", &smithy.CanceledError{Err: context.DeadlineExceeded}), true},
		{"DeadlineExceededNoResponse", sendError(&smithy.CanceledError{Err: context.DeadlineExceeded}), true},
		{"NetTimeout", sendError(os.ErrDeadlineExceeded), true},
		// No answer, but for a reason that is configuration.
		{"NoSuchHost", sendError(&net.DNSError{Err: "no such host", Name: "s3.typo", IsNotFound: true}), false},
		{"UnknownCA", sendError(x509.UnknownAuthorityError{}), false},
		{"WrongHostCertificate", sendError(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "s3.internal"}), false},
		{"CertificateVerification", sendError(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false},
		// Not the network at all.
		{"Canceled", fmt.Errorf("s3: put k: %w", &smithy.CanceledError{Err: context.Canceled}), false},
		{"Exists", fmt.Errorf("s3: put k: %w", evidence.ErrExists), false},
		{"NotFound", fmt.Errorf("dir: get k: %w", evidence.ErrNotFound), false},
		{"InvalidKey", errors.New(`s3: invalid key "../x"`), false},
		{"DiskFull", &fs.PathError{Op: "write", Path: "/var/lib/firstlook/x", Err: syscall.ENOSPC}, false},
		{"BareEOF", io.EOF, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := spool.Transient(tc.err); got != tc.want {
				t.Fatalf("Transient(%v): got %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func x509UnknownAuthority() error { return x509.UnknownAuthorityError{} }
