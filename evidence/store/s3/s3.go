// Package s3 is the evidence store on Amazon S3 or an S3-compatible server
// (MinIO, Ceph RGW, versitygw…). Objects are written once: a Put sends
// If-None-Match: * so the server itself refuses a second write of a key,
// and links are presigned GET URLs, so people read evidence without AWS
// credentials of their own.
//
// Credentials come only from the AWS default chain; they are never part of
// the configuration, never logged, and this package logs nothing.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/firstlook/firstlook/evidence"
)

// ProbeKey is the object, under the prefix, that New writes to learn
// whether the store honours If-None-Match. Evidence keys never start with
// a dot, so it cannot collide with one.
const ProbeKey = ".firstlook/write-once-probe"

var probeBody = []byte("firstlook writes this object with If-None-Match: * to learn whether the store refuses a second write of a key.\n")

// writeMode is how Put keeps an object write-once.
type writeMode int

const (
	modeUnknown     writeMode = iota // not learned yet: the store was unreachable
	modeConditional                  // If-None-Match: *, the server decides atomically
	modeCheck                        // HeadObject, then PutObject
)

// Store keeps evidence objects in one bucket under one prefix.
type Store struct {
	cfg     Config
	client  *awss3.Client
	presign *awss3.PresignClient

	mu   sync.Mutex
	mode writeMode // guarded by mu
}

var _ evidence.Store = (*Store)(nil)

// Retry bounds. The SDK's defaults (3 attempts, backoff up to 20 s, and a
// client-wide retry quota that a long outage drains, after which calls fail
// with "retry quota exceeded" even once the store is back) suit a program
// with nowhere else to put its data. Ours has one: the spool keeps an
// object on local disk when S3 is down and uploads it later, so the SDK only
// needs to ride out a blip, and must give up quickly enough that a runner
// is not held for minutes by a store that is gone (compare litestream's
// newTransportRetryer).
const (
	maxAttempts = 3
	maxBackoff  = 2 * time.Second
	dialTimeout = 5 * time.Second
)

func newRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.MaxBackoff = maxBackoff
		o.RateLimiter = ratelimit.None
		// S3 answers 409 ConditionalRequestConflict while another
		// conditional write of the key is in flight and asks for a retry;
		// the retry then gets 412 or succeeds.
		// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
		o.Retryables = append(o.Retryables, retry.RetryableErrorCode{Codes: map[string]struct{}{"ConditionalRequestConflict": {}}})
	})
}

// New returns a Store for cfg. It loads credentials and region from the
// AWS default chain and writes ProbeKey to learn whether the store refuses
// a second write by itself (If-None-Match: *). New fails when the store
// answers that the bucket, the credentials or the permissions are wrong;
// when the store cannot be reached it succeeds, and the first Put probes
// again, so that a process can start (and spool) during an outage.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
			d.Timeout = dialTimeout
		})),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	if awsCfg.Region == "" {
		if cfg.Endpoint == "" {
			return nil, errors.New("s3: region: set it in the config or the AWS environment (AWS_REGION)")
		}
		// S3-compatible stores mostly ignore the region but SigV4 needs one.
		awsCfg.Region = "us-east-1"
	}
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		o.UsePathStyle = cfg.PathStyle
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.Retryer = newRetryer()
		// AWS_MAX_ATTEMPTS or max_attempts in ~/.aws/config would wrap
		// the retryer above and undo its bound.
		o.RetryMaxAttempts = 0
	})
	s := &Store{cfg: cfg, client: client, presign: awss3.NewPresignClient(client)}
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := s.writeMode(pctx); err != nil && refused(err) {
		return nil, fmt.Errorf("s3: probe bucket %s: %w", cfg.Bucket, err)
	}
	return s, nil
}

// writeMode returns how Put keeps objects write-once, probing the store
// the first time it is reachable.
func (s *Store) writeMode(ctx context.Context) (writeMode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mode != modeUnknown {
		return s.mode, nil
	}
	key := s.cfg.Prefix + ProbeKey
	// Two conditional writes of the same key: a store that honours the
	// header refuses one of them (the first, when an earlier process
	// wrote the probe); one that ignores it accepts both. The probe
	// object stays: it is tiny, identical on every run, and removing it
	// would need s3:DeleteObject, which the store otherwise never uses.
	for range 2 {
		_, err := s.putObject(ctx, key, probeBody, true)
		switch {
		case err == nil:
			continue
		case status(err) == http.StatusPreconditionFailed:
			s.mode = modeConditional
		case notImplemented(err):
			s.mode = modeCheck
		default:
			return modeUnknown, err
		}
		return s.mode, nil
	}
	s.mode = modeCheck
	return s.mode, nil
}

// Put writes body under key once. With If-None-Match the server refuses a
// second write atomically (412 → evidence.ErrExists); on a store without
// conditional writes Put checks with HeadObject first.
func (s *Store) Put(ctx context.Context, key string, body []byte) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	mode, err := s.writeMode(ctx)
	if err != nil {
		return fmt.Errorf("s3: put %s: probe write-once support: %w", k, err)
	}
	if mode == modeCheck {
		// HeadObject then PutObject is racy: two writers of one key can
		// both see it missing and the later one replaces the earlier.
		// That is acceptable here because a key names one run (start
		// time, host, playbook) and the queue's claims already keep two
		// workers from doing the same run; the check still stops the
		// common case, a retried or replayed run writing its manifest
		// again. Stores with conditional writes never take this path.
		_, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(k)})
		switch {
		case err == nil:
			return fmt.Errorf("s3: put %s: %w", k, evidence.ErrExists)
		case !notFound(err):
			return fmt.Errorf("s3: put %s: check existence: %w", k, err)
		}
		if _, err := s.putObject(ctx, k, body, false); err != nil {
			return fmt.Errorf("s3: put %s: %w", k, err)
		}
		return nil
	}
	attempts, err := s.putObject(ctx, k, body, true)
	if status(err) == http.StatusPreconditionFailed {
		// When an earlier attempt of this very call timed out after the
		// server stored the object, the retry is refused; the stored
		// bytes being ours tells that apart from a real second write.
		if attempts > 1 {
			if got, gerr := s.get(ctx, k); gerr == nil && bytes.Equal(got, body) {
				return nil
			}
		}
		return fmt.Errorf("s3: put %s: %w", k, evidence.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", k, err)
	}
	return nil
}

// putObject sends one PutObject with the configured encryption, storage
// class and content type, and reports how many attempts the SDK made.
func (s *Store) putObject(ctx context.Context, k string, body []byte, ifNoneMatch bool) (int, error) {
	in := &awss3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(k),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String(contentType(k, body)),
	}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if s.cfg.SSE.Type != SSENone {
		in.ServerSideEncryption = types.ServerSideEncryption(s.cfg.SSE.Type)
		if s.cfg.SSE.KMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(s.cfg.SSE.KMSKeyID)
		}
	}
	if s.cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(s.cfg.StorageClass)
	}
	attempts := 0
	_, err := s.client.PutObject(ctx, in, countAttempts(&attempts))
	return attempts, err
}

// countAttempts counts the attempts of one operation: a middleware after
// the retry loop runs once per attempt.
func countAttempts(n *int) func(*awss3.Options) {
	return func(o *awss3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("firstlookCountAttempts",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					*n++
					return next.HandleFinalize(ctx, in)
				}), "Retry", middleware.After)
		})
	}
}

// Get returns the object under key, or evidence.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	b, err := s.get(ctx, k)
	if notFound(err) {
		return nil, fmt.Errorf("s3: get %s: %w", k, evidence.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("s3: get %s: %w", k, err)
	}
	return b, nil
}

func (s *Store) get(ctx context.Context, k string) ([]byte, error) {
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// Link returns a presigned GET URL for key that works for
// Config.LinkExpiry. Presigning is local: the URL is returned whether or
// not the object exists yet, and opens it once it does. The URL carries a
// signature; never log it.
func (s *Store) Link(ctx context.Context, key string) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := s.presign.PresignGetObject(ctx,
		&awss3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(k)},
		awss3.WithPresignExpires(s.cfg.LinkExpiry))
	if err != nil {
		return "", fmt.Errorf("s3: link %s: %w", k, err)
	}
	return req.URL, nil
}

// objectKey checks key against the evidence.Store rules (a relative,
// slash-separated path without empty, . or .. elements) and prepends the
// prefix. S3 itself would take anything, but a key that the local stores
// refuse must not work here either, or a config change would break it.
func (s *Store) objectKey(key string) (string, error) {
	if err := evidence.ValidKey(key); err != nil {
		return "", fmt.Errorf("s3: %w", err)
	}
	return s.cfg.Prefix + key, nil
}

// contentType is the Content-Type an object is stored with, so that a link
// opens in a browser the right way: JSON as JSON; step outputs, logs and
// any other text as UTF-8 plain text (never HTML, but for the page: evidence holds what a
// host printed, which an attacker may control); the rest as bytes.
func contentType(key string, body []byte) string {
	if path.Base(key) == evidence.PageFile {
		// The bundle's page, which firstlook writes itself with every
		// value escaped (evidence.Page): the one object served as HTML, so
		// that the "Full evidence" link opens a page, not its source.
		return "text/html; charset=utf-8"
	}
	switch path.Ext(key) {
	case ".json":
		return "application/json"
	case ".stdout", ".stderr", ".txt", ".log":
		return "text/plain; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	}
	if strings.HasPrefix(http.DetectContentType(body), "text/") {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// status is the HTTP status of the response err came from, or 0.
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func notFound(err error) bool {
	if err == nil {
		return false
	}
	c := code(err)
	return status(err) == http.StatusNotFound || c == "NoSuchKey" || c == "NotFound"
}

func notImplemented(err error) bool {
	return status(err) == http.StatusNotImplemented || code(err) == "NotImplemented"
}

// refused reports whether the store answered and refused the request for
// a reason that waiting will not fix (no such bucket, bad credentials,
// access denied), as opposed to being unreachable, slow or overloaded.
func refused(err error) bool {
	st := status(err)
	if st < 400 || st >= 500 {
		return false
	}
	switch st {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	switch code(err) {
	case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed":
		return false
	}
	return true
}
