// Package snstest plays Amazon SNS for tests, entirely on loopback: a
// test CA, a TLS server that answers as sns.<region>.amazonaws.com (signing
// certificates and ConfirmSubscription), an HTTP client that reaches only
// it, and messages signed as SNS signs them (SignatureVersion 1 and 2).
package snstest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Region is the region the fake endpoint answers for (and eu-west-1, the
// region of the captured fixtures).
const Region = "us-east-1"

// CertURL is the signing certificate's URL, as SNS would send it.
const CertURL = "https://sns." + Region + ".amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"

// Paths of certificates that must be refused.
const (
	ExpiredCertURL  = "https://sns." + Region + ".amazonaws.com/expired.pem"
	ECDSACertURL    = "https://sns." + Region + ".amazonaws.com/ecdsa.pem"
	MissingCertURL  = "https://sns." + Region + ".amazonaws.com/missing.pem"
	RedirectCertURL = "https://sns." + Region + ".amazonaws.com/redirect.pem"
)

// AWS is the fake SNS endpoint.
type AWS struct {
	// Client reaches only the fake endpoint, whatever the URL's host:
	// no test contacts a non-loopback address.
	Client *http.Client
	key    *rsa.PrivateKey

	mu        sync.Mutex
	confirmed []string
	certGets  int
}

// New starts the fake endpoint for the test.
func New(t testing.TB) *AWS {
	t.Helper()
	caKey := must(t, func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "firstlook snstest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER := must(t, func() ([]byte, error) {
		return x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	})
	ca := must(t, func() (*x509.Certificate, error) { return x509.ParseCertificate(caDER) })
	issue := func(tmpl *x509.Certificate, pub any) []byte {
		return must(t, func() ([]byte, error) { return x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey) })
	}
	pemOf := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }

	a := &AWS{key: must(t, func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })}
	signing := pemOf(issue(&x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}, a.key.Public()))
	expired := pemOf(issue(&x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	}, a.key.Public()))
	ecKey := must(t, func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	ecCert := pemOf(issue(&x509.Certificate{
		SerialNumber: big.NewInt(4), Subject: pkix.Name{CommonName: "sns.amazonaws.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}, ecKey.Public()))
	tlsKey := must(t, func() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
	tlsDER := issue(&x509.Certificate{
		SerialNumber: big.NewInt(5), Subject: pkix.Name{CommonName: "sns." + Region + ".amazonaws.com"},
		DNSNames:  []string{"sns." + Region + ".amazonaws.com", "sns.eu-west-1.amazonaws.com", "sns.cn-north-1.amazonaws.com.cn"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, tlsKey.Public())

	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		switch {
		case r.URL.Path == "/" && r.URL.Query().Get("Action") == "ConfirmSubscription":
			a.confirmed = append(a.confirmed, r.Host+" "+r.URL.Query().Get("TopicArn"))
			_, _ = w.Write([]byte(`<ConfirmSubscriptionResponse/>`))
		case strings.HasPrefix(r.URL.Path, "/SimpleNotificationService-"):
			a.certGets++
			_, _ = w.Write(signing)
		case r.URL.Path == "/expired.pem":
			_, _ = w.Write(expired)
		case r.URL.Path == "/ecdsa.pem":
			_, _ = w.Write(ecCert)
		case r.URL.Path == "/redirect.pem":
			http.Redirect(w, r, "/SimpleNotificationService-0.pem", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tlsDER}, PrivateKey: tlsKey}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	roots := x509.NewCertPool()
	roots.AddCert(ca)
	addr := srv.Listener.Addr().String()
	a.Client = &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirect refused") },
	}
	return a
}

func must[T any](t testing.TB, f func() (T, error)) T {
	t.Helper()
	v, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// Confirmed returns the subscriptions confirmed so far ("host topic").
func (a *AWS) Confirmed() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.confirmed...)
}

// CertFetches is how many times the signing certificate was fetched.
func (a *AWS) CertFetches() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.certGets
}

// Message is an SNS HTTP(S) message. Subject is a pointer: present or
// not is part of what is signed.
type Message struct {
	Type             string  `json:"Type"`
	MessageID        string  `json:"MessageId"`
	Token            string  `json:"Token,omitempty"`
	TopicArn         string  `json:"TopicArn"`
	Subject          *string `json:"Subject,omitempty"`
	Message          string  `json:"Message"`
	SubscribeURL     string  `json:"SubscribeURL,omitempty"`
	Timestamp        string  `json:"Timestamp"`
	SignatureVersion string  `json:"SignatureVersion"`
	Signature        string  `json:"Signature"`
	SigningCertURL   string  `json:"SigningCertURL"`
	UnsubscribeURL   string  `json:"UnsubscribeURL,omitempty"`
}

// Sign sets m's Signature as SNS computes it for m.SignatureVersion ("1"
// SHA1withRSA, "2" SHA256withRSA; anything else signs as 2), with the
// fields in AWS's documented order for the message type.
func (a *AWS) Sign(tb testing.TB, m *Message) {
	tb.Helper()
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", m.Message)
	add("MessageId", m.MessageID)
	if m.Type == "Notification" {
		if m.Subject != nil {
			add("Subject", *m.Subject)
		}
	} else {
		add("SubscribeURL", m.SubscribeURL)
	}
	add("Timestamp", m.Timestamp)
	if m.Type != "Notification" {
		add("Token", m.Token)
	}
	add("TopicArn", m.TopicArn)
	add("Type", m.Type)
	var sig []byte
	var err error
	if m.SignatureVersion == "1" {
		d := sha1.Sum([]byte(b.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, a.key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(b.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, a.key, crypto.SHA256, d[:])
	}
	if err != nil {
		tb.Fatal(err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
}

// Notification returns a signed Notification of topic carrying message,
// stamped now.
func (a *AWS) Notification(tb testing.TB, topic, id, message string) *Message {
	tb.Helper()
	subject := "ALARM: test"
	m := &Message{
		Type: "Notification", MessageID: id, TopicArn: topic, Subject: &subject, Message: message,
		Timestamp: time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), SignatureVersion: "2", SigningCertURL: CertURL,
		UnsubscribeURL: "https://sns." + Region + ".amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + topic + ":sub",
	}
	a.Sign(tb, m)
	return m
}

// Body is m as SNS POSTs it.
func (m *Message) Body() []byte {
	b, _ := json.Marshal(m)
	return b
}

// Request returns the POST SNS makes for m, with its headers.
func Request(m *Message) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/sns", bytes.NewReader(m.Body()))
	r.Header.Set("Content-Type", "text/plain; charset=UTF-8")
	r.Header.Set("User-Agent", "Amazon Simple Notification Service Agent")
	r.Header.Set("x-amz-sns-message-type", m.Type)
	r.Header.Set("x-amz-sns-message-id", m.MessageID)
	r.Header.Set("x-amz-sns-topic-arn", m.TopicArn)
	return r
}

// Alarm returns a CloudWatch alarm Message for an EC2 instance's metric in
// the shape SNS delivers it (fixtures/webhooks/cloudwatch-sns).
func Alarm(name, state, instance, changed string) string {
	b, _ := json.Marshal(map[string]any{
		"AlarmName": name, "AlarmDescription": "", "AWSAccountId": "123456789012",
		"NewStateValue": state, "NewStateReason": "Threshold Crossed: 1 datapoint [99.0] was greater than the threshold (90.0).",
		"StateChangeTime": changed, "Region": "US East (N. Virginia)",
		"AlarmArn": "arn:aws:cloudwatch:" + Region + ":123456789012:alarm:" + name, "OldStateValue": "OK",
		"Trigger": map[string]any{
			"MetricName": "CPUUtilization", "Namespace": "AWS/EC2", "StatisticType": "Statistic", "Statistic": "AVERAGE",
			"Dimensions": []map[string]string{{"value": instance, "name": "InstanceId"}},
			"Period":     60, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 90.0,
		},
	})
	return string(b)
}

// RequestBody replaces r's body with body.
func RequestBody(r *http.Request, body []byte) *http.Request {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return r
}
