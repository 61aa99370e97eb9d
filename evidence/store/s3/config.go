package s3

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

const (
	// MaxLinkExpiry is the longest lifetime S3 accepts for a SigV4
	// presigned URL: seven days.
	// https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html
	MaxLinkExpiry = 7 * 24 * time.Hour
	// DefaultLinkExpiry is link_expiry when unset: the maximum, because a
	// link in an incident note is read long after the page.
	DefaultLinkExpiry = MaxLinkExpiry
	// DefaultTimeout is timeout when unset.
	DefaultTimeout = 30 * time.Second
)

// Server-side encryption types accepted in sse.type.
const (
	SSENone   = ""
	SSEAES256 = "AES256"
	SSEKMS    = "aws:kms"
)

// Config is the S3 store's configuration. Credentials are not part of it:
// they come from the AWS default chain (environment, shared config and
// credentials files, web identity, ECS, EC2 instance metadata).
type Config struct {
	// Bucket holds the evidence; required.
	Bucket string `yaml:"bucket"`
	// Prefix is prepended to every key, e.g. "firstlook/"; a missing
	// trailing slash is added and a leading one dropped. Default none.
	Prefix string `yaml:"prefix"`
	// Region is the bucket's region. Default: the AWS environment
	// (AWS_REGION, the shared config file); with an endpoint and no region
	// anywhere, us-east-1.
	Region string `yaml:"region"`
	// Endpoint is the base URL of an S3-compatible store, e.g.
	// "https://minio.internal:9000". Default: AWS S3.
	Endpoint string `yaml:"endpoint"`
	// PathStyle addresses the bucket in the path (endpoint/bucket/key)
	// instead of the host name; most S3-compatible stores need it.
	PathStyle bool `yaml:"path_style"`
	// SSE asks S3 to encrypt every object it stores.
	SSE SSE `yaml:"sse"`
	// StorageClass of every object, e.g. STANDARD_IA. Default: the
	// store's (STANDARD). Archive classes are refused because their
	// objects cannot be read through a link.
	StorageClass string `yaml:"storage_class"`
	// LinkExpiry is how long a presigned link works; default and maximum
	// 7 days (168h). With temporary credentials (an instance role, web
	// identity) a link also stops working when the session that signed it
	// expires.
	LinkExpiry time.Duration `yaml:"link_expiry"`
	// Timeout bounds one operation, retries included; default 30s. It is
	// what makes a store that hangs fail, so the spool can take over.
	Timeout time.Duration `yaml:"timeout"`
}

// SSE is the server-side encryption requested on every Put.
type SSE struct {
	// Type is "" (the bucket's default encryption), "AES256" (SSE-S3) or
	// "aws:kms" (SSE-KMS).
	Type string `yaml:"type"`
	// KMSKeyID is the KMS key (id, ARN or alias ARN) for "aws:kms";
	// empty means the AWS managed key aws/s3.
	KMSKeyID string `yaml:"kms_key_id"`
}

// readableClasses are the storage classes whose objects can be read at
// once; GLACIER and DEEP_ARCHIVE need a restore first, so a link to them
// would not open. A lifecycle rule is the way to archive old evidence.
var readableClasses = []string{"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY"}

// Validate reports a configuration that cannot work, naming the field.
func (c Config) Validate() error {
	var errs []error
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket: required"))
	} else if strings.ContainsAny(c.Bucket, "/ ") {
		errs = append(errs, fmt.Errorf("bucket: %q is not a bucket name", c.Bucket))
	}
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		for seg := range strings.SplitSeq(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				errs = append(errs, fmt.Errorf("prefix: %q has an empty, . or .. element", c.Prefix))
				break
			}
		}
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		switch {
		case err != nil:
			// url.Error repeats the URL, which may hold a password.
			errs = append(errs, errors.New("endpoint: not a URL; want http(s)://host[:port]"))
		case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
			errs = append(errs, fmt.Errorf("endpoint: %q: want http(s)://host[:port]", u.Redacted()))
		case u.User != nil:
			// A user:password in the URL would be a static credential
			// outside the chain, and would be printed with the config.
			errs = append(errs, errors.New("endpoint: must not carry credentials; use the AWS credential chain"))
		}
	}
	switch c.SSE.Type {
	case SSENone, SSEAES256:
		if c.SSE.KMSKeyID != "" {
			errs = append(errs, fmt.Errorf("sse.kms_key_id: only with sse.type %q", SSEKMS))
		}
	case SSEKMS:
	default:
		errs = append(errs, fmt.Errorf("sse.type: %q: want %q, %q or empty", c.SSE.Type, SSEAES256, SSEKMS))
	}
	if c.StorageClass != "" {
		ok := false
		for _, sc := range readableClasses {
			ok = ok || c.StorageClass == sc
		}
		if !ok {
			errs = append(errs, fmt.Errorf("storage_class: %q: want one of %s", c.StorageClass, strings.Join(readableClasses, ", ")))
		}
	}
	switch {
	case c.LinkExpiry < 0:
		errs = append(errs, fmt.Errorf("link_expiry: %s is negative", c.LinkExpiry))
	case c.LinkExpiry > 0 && c.LinkExpiry < time.Second:
		errs = append(errs, fmt.Errorf("link_expiry: %s is under a second", c.LinkExpiry))
	case c.LinkExpiry > MaxLinkExpiry:
		errs = append(errs, fmt.Errorf("link_expiry: %s is over S3's maximum of 168h (7 days)", c.LinkExpiry))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s is negative", c.Timeout))
	}
	return errors.Join(errs...)
}

// withDefaults returns c with defaults applied and the prefix normalised.
func (c Config) withDefaults() Config {
	c.LinkExpiry = cmp.Or(c.LinkExpiry, DefaultLinkExpiry)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	if p := strings.Trim(c.Prefix, "/"); p != "" {
		c.Prefix = p + "/"
	} else {
		c.Prefix = ""
	}
	return c
}
