package s3_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/s3"
	"github.com/firstlook/firstlook/evidence/store/s3/s3test"
	"github.com/firstlook/firstlook/evidence/store/storetest"
)

func newStore(t *testing.T, cfg s3.Config) *s3.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestContract(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	storetest.Run(t, func(t *testing.T) evidence.Store {
		return newStore(t, srv.Config(srv.Bucket(t)))
	})
}

// proxy sits between a Store and versitygw on loopback: it records every
// request and can answer some itself, to show what the store sends and to
// play a store that lacks a feature.
type proxy struct {
	URL string

	mu        sync.Mutex
	reqs      []*http.Request // clones, bodies not kept
	intercept func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = u.Scheme, u.Host
		r.Out.Host = r.In.Host // the SigV4 signature covers the Host the client used
	}}
	p := &proxy{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.reqs = append(p.reqs, r.Clone(context.Background()))
		icpt := p.intercept
		p.mu.Unlock()
		if icpt != nil && icpt(w, r, rp) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	p.URL = hs.URL
	return p
}

func (p *proxy) requests() []*http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*http.Request(nil), p.reqs...)
}

func (p *proxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

// puts returns the recorded PUTs of key (path-style: /bucket/key).
func (p *proxy) puts(bucket, key string) []*http.Request {
	var out []*http.Request
	for _, r := range p.requests() {
		if r.Method == http.MethodPut && r.URL.Path == "/"+bucket+"/"+key {
			out = append(out, r)
		}
	}
	return out
}

func TestWriteOnceIfNoneMatch(t *testing.T) {
	// versitygw v1.8.0 evaluates If-None-Match: * under a per-object lock
	// (backend/posix/objlock.go), so the conditional path is the one taken.
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	p := newProxy(t, srv.Endpoint)
	bucket := srv.Bucket(t)
	cfg := srv.Config(bucket)
	cfg.Endpoint = p.URL
	st := newStore(t, cfg)
	ctx := context.Background()

	if err := st.Put(ctx, "run/manifest.json", []byte("first")); err != nil {
		t.Fatal(err)
	}
	err := st.Put(ctx, "run/manifest.json", []byte("second"))
	if !errors.Is(err, evidence.ErrExists) {
		t.Fatalf("second put: got %v, want ErrExists", err)
	}
	if want := "s3: put run/manifest.json: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got error %q, want it to start with %q", err, want)
	}
	puts := p.puts(bucket, "run/manifest.json")
	if len(puts) != 2 {
		t.Fatalf("got %d PUTs, want 2", len(puts))
	}
	for _, r := range puts {
		if got := r.Header.Get("If-None-Match"); got != "*" {
			t.Errorf("got If-None-Match %q, want *", got)
		}
	}
	for _, r := range p.requests() {
		if r.Method == http.MethodHead {
			t.Errorf("got a HEAD %s; a store with conditional writes needs none", r.URL.Path)
		}
	}
	got, err := srv.Object(ctx, bucket, "run/manifest.json")
	if err != nil || string(got) != "first" {
		t.Fatalf("got %q, %v on the server, want %q", got, err, "first")
	}
}

// TestWriteOnceFallback plays stores without conditional writes: one that
// answers 501 NotImplemented and one that accepts the header and ignores
// it. New's probe must notice both, and Put must then check with HEAD.
func TestWriteOnceFallback(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	for _, tc := range []struct {
		name  string
		reply func(w http.ResponseWriter)
	}{
		{"NotImplemented", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotImplemented)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`)
		}},
		{"Ignored", func(w http.ResponseWriter) {
			w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
			w.WriteHeader(http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, srv.Endpoint)
			p.intercept = func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
				if r.Method != http.MethodPut || r.Header.Get("If-None-Match") == "" {
					return false
				}
				io.Copy(io.Discard, r.Body)
				tc.reply(w)
				return true
			}
			bucket := srv.Bucket(t)
			cfg := srv.Config(bucket)
			cfg.Endpoint = p.URL
			st := newStore(t, cfg)
			ctx := context.Background()
			p.reset()

			if err := st.Put(ctx, "k", []byte("first")); err != nil {
				t.Fatal(err)
			}
			if err := st.Put(ctx, "k", []byte("second")); !errors.Is(err, evidence.ErrExists) {
				t.Fatalf("second put: got %v, want ErrExists", err)
			}
			var methods []string
			for _, r := range p.requests() {
				methods = append(methods, r.Method)
				if r.Header.Get("If-None-Match") != "" {
					t.Errorf("got If-None-Match on %s after the probe, want none", r.Method)
				}
			}
			if got, want := strings.Join(methods, " "), "HEAD PUT HEAD"; got != want {
				t.Errorf("got requests %s, want %s", got, want)
			}
			got, err := srv.Object(ctx, bucket, "k")
			if err != nil || string(got) != "first" {
				t.Fatalf("got %q, %v on the server, want %q", got, err, "first")
			}
		})
	}
}

// TestRetriedPutThatLanded: the first attempt is stored but its answer is
// lost (the proxy says 500); the SDK retries, the server says 412, and the
// store must see that the object is its own.
func TestRetriedPutThatLanded(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	p := newProxy(t, srv.Endpoint)
	bucket := srv.Bucket(t)
	cfg := srv.Config(bucket)
	cfg.Endpoint = p.URL
	st := newStore(t, cfg)
	var once sync.Once
	p.intercept = func(w http.ResponseWriter, r *http.Request, forward http.Handler) bool {
		hit := false
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/lost") {
			once.Do(func() {
				hit = true
				forward.ServeHTTP(httptest.NewRecorder(), r)
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, `<Error><Code>InternalError</Code><Message>lost</Message></Error>`)
			})
		}
		return hit
	}
	ctx := context.Background()
	if err := st.Put(ctx, "lost", []byte("body")); err != nil {
		t.Fatalf("put whose first answer was lost: got %v, want nil", err)
	}
	if n := len(p.puts(bucket, "lost")); n != 2 {
		t.Fatalf("got %d PUT attempts, want 2", n)
	}
	if err := st.Put(ctx, "lost", []byte("body")); !errors.Is(err, evidence.ErrExists) {
		t.Fatalf("a real second put: got %v, want ErrExists", err)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	t.Setenv("AWS_MAX_ATTEMPTS", "10") // must not lift the bound
	p := newProxy(t, srv.Endpoint)
	bucket := srv.Bucket(t)
	cfg := srv.Config(bucket)
	cfg.Endpoint = p.URL
	st := newStore(t, cfg)
	p.intercept = func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
		return true
	}
	p.reset()
	err := st.Put(context.Background(), "k", []byte("x"))
	if err == nil || errors.Is(err, evidence.ErrExists) {
		t.Fatalf("got %v, want a SlowDown error", err)
	}
	if n := len(p.puts(bucket, "k")); n != 3 {
		t.Fatalf("got %d attempts, want 3", n)
	}
}

func TestServerSideEncryptionAndStorageClass(t *testing.T) {
	// versitygw's posix backend accepts the SSE and storage-class headers
	// and does not act on them, so the proxy records that they were sent
	// and the server's answer shows they were accepted.
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	for _, tc := range []struct {
		name   string
		sse    s3.SSE
		class  string
		header map[string]string
	}{
		{"AES256", s3.SSE{Type: "AES256"}, "", map[string]string{
			"X-Amz-Server-Side-Encryption": "AES256", "X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "",
		}},
		{"KMS", s3.SSE{Type: "aws:kms", KMSKeyID: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}, "STANDARD_IA", map[string]string{
			"X-Amz-Server-Side-Encryption":                "aws:kms",
			"X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
			"X-Amz-Storage-Class":                         "STANDARD_IA",
		}},
		{"None", s3.SSE{}, "", map[string]string{"X-Amz-Server-Side-Encryption": "", "X-Amz-Storage-Class": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProxy(t, srv.Endpoint)
			bucket := srv.Bucket(t)
			cfg := srv.Config(bucket)
			cfg.Endpoint, cfg.SSE, cfg.StorageClass = p.URL, tc.sse, tc.class
			st := newStore(t, cfg)
			ctx := context.Background()
			if err := st.Put(ctx, "enc", []byte("secret-ish")); err != nil {
				t.Fatal(err)
			}
			puts := p.puts(bucket, "enc")
			if len(puts) != 1 {
				t.Fatalf("got %d PUTs, want 1", len(puts))
			}
			for h, want := range tc.header {
				if got := puts[0].Header.Get(h); got != want {
					t.Errorf("got %s: %q, want %q", h, got, want)
				}
			}
			// The probe is a Put too: a bucket policy that denies
			// unencrypted writes must not fail it.
			for _, r := range p.puts(bucket, s3.ProbeKey) {
				if got, want := r.Header.Get("X-Amz-Server-Side-Encryption"), tc.sse.Type; got != want {
					t.Errorf("probe: got SSE %q, want %q", got, want)
				}
			}
			if got, err := st.Get(ctx, "enc"); err != nil || string(got) != "secret-ish" {
				t.Fatalf("got %q, %v, want the object back", got, err)
			}
		})
	}
}

func TestPrefixAndPathStyle(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	p := newProxy(t, srv.Endpoint)
	bucket := srv.Bucket(t)
	cfg := srv.Config(bucket)
	cfg.Endpoint, cfg.Prefix = p.URL, "/team/evidence" // normalised to team/evidence/
	st := newStore(t, cfg)
	ctx := context.Background()
	if err := st.Put(ctx, "pagerduty/Q1/run/manifest.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	got, err := srv.Object(ctx, bucket, "team/evidence/pagerduty/Q1/run/manifest.json")
	if err != nil || string(got) != "{}\n" {
		t.Fatalf("got %q, %v at the prefixed key, want the object", got, err)
	}
	puts := p.puts(bucket, "team/evidence/pagerduty/Q1/run/manifest.json")
	if len(puts) != 1 {
		t.Fatalf("got %d path-style PUTs to /%s/team/evidence/…, want 1", len(puts), bucket)
	}
	if h := puts[0].Host; strings.HasPrefix(h, bucket+".") {
		t.Errorf("got Host %q, want the endpoint's host (path style)", h)
	}
	if _, err := srv.Object(ctx, bucket, s3.ProbeKey); err == nil {
		t.Errorf("found the probe object outside the prefix")
	}
	if _, err := srv.Object(ctx, bucket, "team/evidence/"+s3.ProbeKey); err != nil {
		t.Errorf("probe object under the prefix: %v", err)
	}
	link, err := st.Link(ctx, "pagerduty/Q1/run/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(link); u.Path != "/"+bucket+"/team/evidence/pagerduty/Q1/run/manifest.json" {
		t.Errorf("got link path %q, want the prefixed path-style key", u.Path)
	}
}

func TestContentTypes(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	bucket := srv.Bucket(t)
	st := newStore(t, srv.Config(bucket))
	ctx := context.Background()
	for _, tc := range []struct {
		key  string
		body []byte
		want string
	}{
		{"r/manifest.json", []byte("{}\n"), "application/json"},
		{"r/steps/01-load.stdout", []byte("up 3 days\n"), "text/plain; charset=utf-8"},
		{"r/steps/01-load.stderr", []byte{0xff, 0xfe, 0}, "text/plain; charset=utf-8"},
		{"r/summary.md", []byte("# x\n"), "text/markdown; charset=utf-8"},
		{"r/artifacts/error.log.1", []byte("<html><script>alert(1)</script>"), "text/plain; charset=utf-8"},
		{"r/artifacts/core", []byte{0x7f, 'E', 'L', 'F', 0, 1, 2}, "application/octet-stream"},
		{"r/index.html", []byte("<!DOCTYPE html><title>page</title>"), "text/html; charset=utf-8"},
		{"r/artifacts/page.html", []byte("<!DOCTYPE html><script>alert(1)</script>"), "text/plain; charset=utf-8"},
	} {
		if err := st.Put(ctx, tc.key, tc.body); err != nil {
			t.Fatal(err)
		}
		out, err := srv.Client().HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(tc.key)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.ContentType); got != tc.want {
			t.Errorf("%s: got Content-Type %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestLinkPresigned(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	bucket := srv.Bucket(t)
	cfg := srv.Config(bucket)
	const expiry = 3 * time.Second
	cfg.LinkExpiry = expiry
	st := newStore(t, cfg)
	ctx := context.Background()
	body := []byte("load average: 9.99\n")
	if err := st.Put(ctx, "r/steps/01-load.stdout", body); err != nil {
		t.Fatal(err)
	}
	link, err := st.Link(ctx, "r/steps/01-load.stdout")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(link, s3test.SecretKey) {
		t.Fatal("the link contains the secret key")
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Query().Get("X-Amz-Expires"); got != "3" {
		t.Errorf("got X-Amz-Expires %q, want 3", got)
	}
	signed, err := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date"))
	if err != nil {
		t.Fatal(err)
	}

	// Plain net/http, no credentials: what a responder's browser does.
	status, got := fetch(t, link)
	if status != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("got %d %q, want 200 %q", status, got, body)
	}
	// Wait until the link is past its expiry by the server's clock
	// (signed is truncated to the second), then it must be refused.
	time.Sleep(time.Until(signed.Add(expiry + 1500*time.Millisecond)))
	if status, got := fetch(t, link); status != http.StatusForbidden {
		t.Fatalf("after expiry: got %d %q, want 403", status, got)
	}
}

func fetch(t *testing.T, link string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestCredentials(t *testing.T) {
	srv := s3test.Start(t)
	check := func(t *testing.T) {
		t.Helper()
		bucket := srv.Bucket(t)
		st := newStore(t, srv.Config(bucket))
		ctx := context.Background()
		if err := st.Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Get(ctx, "k"); err != nil || string(got) != "v" {
			t.Fatalf("got %q, %v, want %q", got, err, "v")
		}
	}
	t.Run("Environment", func(t *testing.T) {
		s3test.UseEnvCredentials(t)
		check(t)
	})
	t.Run("SharedCredentialsFile", func(t *testing.T) {
		s3test.IsolateAWSEnv(t)
		file := filepath.Join(t.TempDir(), "credentials")
		creds := "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n" +
			"[firstlook]\naws_access_key_id = " + s3test.AccessKey + "\naws_secret_access_key = " + s3test.SecretKey + "\n"
		if err := os.WriteFile(file, []byte(creds), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
		t.Setenv("AWS_PROFILE", "firstlook")
		check(t)
	})
	t.Run("WrongSecretFailsNew", func(t *testing.T) {
		s3test.IsolateAWSEnv(t)
		const wrong = "not-the-secret-7d1f0c2b"
		t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
		bucket := srv.Bucket(t)
		_, err := s3.New(context.Background(), srv.Config(bucket))
		if err == nil {
			t.Fatal("New with a wrong secret succeeded; the probe must show the credentials are refused")
		}
		if strings.Contains(err.Error(), wrong) {
			t.Fatalf("the error shows the secret: %v", err)
		}
	})
	t.Run("NoBucketFailsNew", func(t *testing.T) {
		s3test.UseEnvCredentials(t)
		_, err := s3.New(context.Background(), srv.Config("no-such-bucket"))
		if err == nil || !strings.Contains(err.Error(), "no-such-bucket") {
			t.Fatalf("got %v, want an error naming the missing bucket", err)
		}
	})
}

// TestUnreachableAtStart: New succeeds while the store is down, so that a
// process can start (and spool) during an outage; Puts fail until the store
// is back, then the deferred probe runs and they work.
func TestUnreachableAtStart(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	bucket := srv.Bucket(t)
	srv.Stop()
	st := newStore(t, srv.Config(bucket))
	ctx := context.Background()
	err := st.Put(ctx, "k", []byte("v"))
	if err == nil || errors.Is(err, evidence.ErrExists) {
		t.Fatalf("put to a stopped store: got %v, want a connection error", err)
	}
	if want := "s3: put k: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %q, want it to start with %q", err, want)
	}
	srv.Restart()
	if err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "k", []byte("w")); !errors.Is(err, evidence.ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
}

func TestInvalidKeys(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	st := newStore(t, srv.Config(srv.Bucket(t)))
	for _, key := range []string{"", "../x", "a/../../x", "/etc/passwd", "a//b", "a/", "./a"} {
		if err := st.Put(context.Background(), key, []byte("x")); err == nil || !strings.Contains(err.Error(), "invalid key") {
			t.Errorf("Put(%q): got %v, want an invalid key error", key, err)
		}
		if _, err := st.Link(context.Background(), key); err == nil {
			t.Errorf("Link(%q): got nil error, want an invalid key error", key)
		}
	}
}
