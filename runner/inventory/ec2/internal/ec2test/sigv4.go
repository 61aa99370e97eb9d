package ec2test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// verify checks the request's Signature Version 4 the way AWS does: the
// credential scope must name the fake's access key, region and the ec2
// service, the date must be within 15 minutes, and the signature must be
// the one the secret key gives over the headers the client signed
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv.html).
// A client with the wrong region, service, key or secret fails here.
func (s *Server) verify(r *http.Request, body []byte) (apiError, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return apiError{"MissingAuthenticationToken", "The request must contain either a valid (registered) AWS access key ID or X.509 certificate.", http.StatusUnauthorized}, false
	}
	algo, params, ok := strings.Cut(auth, " ")
	if !ok || algo != "AWS4-HMAC-SHA256" {
		return apiError{"IncompleteSignature", "Unsupported signing algorithm.", http.StatusBadRequest}, false
	}
	fields := map[string]string{}
	for p := range strings.SplitSeq(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		fields[k] = v
	}
	scope := strings.Split(fields["Credential"], "/")
	if len(scope) != 5 || fields["SignedHeaders"] == "" || fields["Signature"] == "" || scope[4] != "aws4_request" {
		return apiError{"IncompleteSignature", "Authorization header requires Credential, SignedHeaders and Signature.", http.StatusBadRequest}, false
	}
	if scope[0] != AccessKeyID {
		return apiError{"AuthFailure", "AWS was not able to validate the provided access credentials", http.StatusUnauthorized}, false
	}
	if scope[2] != Region || scope[3] != "ec2" {
		return apiError{"AuthFailure", "Credential should be scoped to a valid region and the ec2 service, not " + scope[2] + "/" + scope[3], http.StatusUnauthorized}, false
	}
	signed, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || scope[1] != signed.Format("20060102") {
		return apiError{"IncompleteSignature", "X-Amz-Date is missing or does not match the credential scope.", http.StatusBadRequest}, false
	}
	if d := s.now().Sub(signed); d > 15*time.Minute || d < -15*time.Minute {
		return apiError{"RequestExpired", "Request has expired.", http.StatusBadRequest}, false
	}

	// Sign a copy holding only what the client signed, then compare.
	cp, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	if err != nil {
		return apiError{"IncompleteSignature", err.Error(), http.StatusBadRequest}, false
	}
	for h := range strings.SplitSeq(fields["SignedHeaders"], ";") {
		switch h {
		case "host":
		case "content-length":
			cp.ContentLength = int64(len(body))
		default:
			cp.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: AccessKeyID, SecretAccessKey: SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, cp, hex.EncodeToString(sum[:]), "ec2", Region, signed); err != nil {
		return apiError{"IncompleteSignature", err.Error(), http.StatusBadRequest}, false
	}
	if want := cp.Header.Get("Authorization"); want != auth {
		return apiError{"SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.", http.StatusForbidden}, false
	}
	return apiError{}, true
}
