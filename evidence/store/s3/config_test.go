package s3_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/evidence/store/s3"
)

func TestConfigYAML(t *testing.T) {
	const doc = `
bucket: evidence-prod
prefix: firstlook
region: eu-west-1
endpoint: https://minio.internal:9000
path_style: true
sse:
  type: aws:kms
  kms_key_id: alias/firstlook
storage_class: STANDARD_IA
link_expiry: 72h
timeout: 10s
`
	var got s3.Config
	if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := s3.Config{
		Bucket: "evidence-prod", Prefix: "firstlook", Region: "eu-west-1",
		Endpoint: "https://minio.internal:9000", PathStyle: true,
		SSE:          s3.SSE{Type: "aws:kms", KMSKeyID: "alias/firstlook"},
		StorageClass: "STANDARD_IA", LinkExpiry: 72 * time.Hour, Timeout: 10 * time.Second,
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Fatalf("got %v, want a valid config", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := s3.Config{Bucket: "b"}
	for _, tc := range []struct {
		name string
		edit func(*s3.Config)
		want string // "" for valid
	}{
		{"Minimal", func(*s3.Config) {}, ""},
		{"NoBucket", func(c *s3.Config) { c.Bucket = "" }, "bucket: required"},
		{"BucketWithSlash", func(c *s3.Config) { c.Bucket = "b/c" }, "bucket:"},
		{"PrefixSlashes", func(c *s3.Config) { c.Prefix = "/a/b/" }, ""},
		{"PrefixDotDot", func(c *s3.Config) { c.Prefix = "a/../b" }, "prefix:"},
		{"PrefixEmptyElement", func(c *s3.Config) { c.Prefix = "a//b" }, "prefix:"},
		{"EndpointHTTP", func(c *s3.Config) { c.Endpoint = "http://127.0.0.1:9000" }, ""},
		{"EndpointNoScheme", func(c *s3.Config) { c.Endpoint = "minio:9000" }, "endpoint:"},
		{"EndpointCredentials", func(c *s3.Config) { c.Endpoint = "https://AKIA:hunter2@minio" }, "endpoint: must not carry credentials"},
		{"SSEAES256", func(c *s3.Config) { c.SSE.Type = "AES256" }, ""},
		{"SSEKMSDefaultKey", func(c *s3.Config) { c.SSE.Type = "aws:kms" }, ""},
		{"SSEKMSKey", func(c *s3.Config) { c.SSE = s3.SSE{Type: "aws:kms", KMSKeyID: "alias/x"} }, ""},
		{"SSEUnknown", func(c *s3.Config) { c.SSE.Type = "aes256" }, "sse.type:"},
		{"KMSKeyWithoutKMS", func(c *s3.Config) { c.SSE = s3.SSE{Type: "AES256", KMSKeyID: "alias/x"} }, "sse.kms_key_id:"},
		{"KMSKeyAlone", func(c *s3.Config) { c.SSE.KMSKeyID = "alias/x" }, "sse.kms_key_id:"},
		{"StorageClass", func(c *s3.Config) { c.StorageClass = "INTELLIGENT_TIERING" }, ""},
		{"StorageClassArchive", func(c *s3.Config) { c.StorageClass = "GLACIER" }, "storage_class:"},
		{"LinkExpiryMax", func(c *s3.Config) { c.LinkExpiry = 7 * 24 * time.Hour }, ""},
		{"LinkExpiryOverMax", func(c *s3.Config) { c.LinkExpiry = 7*24*time.Hour + time.Second }, "link_expiry:"},
		{"LinkExpiryNegative", func(c *s3.Config) { c.LinkExpiry = -time.Second }, "link_expiry:"},
		{"LinkExpiryTiny", func(c *s3.Config) { c.LinkExpiry = time.Millisecond }, "link_expiry:"},
		{"TimeoutNegative", func(c *s3.Config) { c.Timeout = -time.Second }, "timeout:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("got %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the password: %v", err)
			}
			if tc.want != "" {
				if _, nerr := s3.New(context.Background(), c); nerr == nil {
					t.Fatal("New accepted a config that Validate refuses")
				}
			}
		})
	}
}

func TestRegionRequiredForAWS(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	_, err := s3.New(context.Background(), s3.Config{Bucket: "b"})
	if err == nil || !strings.Contains(err.Error(), "region") {
		t.Fatalf("got %v, want a region error", err)
	}
}
