package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/firstlook/firstlook/evidence/store/s3/s3test"
)

// TestServeWithS3: bundles go to a real S3-compatible server (versitygw);
// the PagerDuty note links to the evidence with a presigned URL that opens
// it; with S3 down the next bundle waits in the spool and lands when S3 is
// back.
func TestServeWithS3(t *testing.T) {
	e := newEnv(t, "host-1")
	s3srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	bucket := s3srv.Bucket(t)
	cfg, _ := os.ReadFile(e.cfgPath)
	e.write("firstlook.yaml", string(cfg)+`evidence:
  s3:
    bucket: `+bucket+`
    prefix: prod
    endpoint: `+s3srv.Endpoint+`
    path_style: true
    region: us-east-1
    timeout: 3s
  spool:
    max_backoff: 500ms
`)
	e.serve()

	e.send("INCSTHREE", "load on host-1")
	var notes []pdNote
	deadline := time.Now().Add(30 * time.Second)
	for notes = e.notesFor("INCSTHREE"); len(notes) == 0 && time.Now().Before(deadline); notes = e.notesFor("INCSTHREE") {
		time.Sleep(100 * time.Millisecond)
	}
	if len(notes) != 1 {
		t.Fatalf("got %d notes, want 1", len(notes))
	}
	link := regexp.MustCompile(`Full evidence: (\S+)`).FindStringSubmatch(notes[0].Content)
	if link == nil || !strings.HasPrefix(link[1], s3srv.Endpoint+"/"+bucket+"/prod/pagerduty/INCSTHREE/") || !strings.Contains(link[1], "X-Amz-Signature=") {
		t.Fatalf("note links to %v, want a presigned URL into the bucket", link)
	}
	resp, err := http.Get(link[1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The link opens the bundle's evidence page (index.html), served by
	// S3 as HTML.
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(body), "host-1") || !strings.Contains(string(body), "INCSTHREE") {
		t.Fatalf("presigned link: got %d %s %.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if _, err := os.Stat(e.evidence); !os.IsNotExist(err) {
		t.Errorf("the local evidence directory was used with S3 configured")
	}

	// S3 down: the run is spooled, the note still goes out, and the
	// bundle lands in S3 once it is back.
	s3srv.Stop()
	e.send("INCSDOWN", "load on host-1")
	deadline = time.Now().Add(30 * time.Second)
	for len(e.notesFor("INCSDOWN")) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(e.notesFor("INCSDOWN")) != 1 {
		t.Fatal("no note for the run made while S3 was down")
	}
	s3srv.Restart()
	var prefix string
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, err := s3srv.Client().ListObjectsV2(context.Background(), listInput(bucket, "prod/pagerduty/INCSDOWN/"))
		if err == nil {
			for _, o := range out.Contents {
				if strings.HasSuffix(*o.Key, "/manifest.json") {
					prefix = *o.Key
				}
			}
		}
		if prefix != "" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if prefix == "" {
		t.Fatal("the spooled bundle never reached S3")
	}
}

func listInput(bucket, prefix string) *awss3.ListObjectsV2Input {
	return &awss3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
}
