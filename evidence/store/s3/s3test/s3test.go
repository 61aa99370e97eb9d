// Package s3test runs a real S3-compatible server for tests: versitygw
// with its posix backend, on 127.0.0.1, rooted in a temporary directory.
// The server can be stopped, paused and restarted on the same port and
// root, which is how the spool's tests take S3 away and bring it back.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/firstlook/firstlook/evidence/store/s3"
)

const (
	// EnvVersitygw names the versitygw binary; default /root/go/bin/versitygw,
	// then PATH.
	EnvVersitygw = "FIRSTLOOK_VERSITYGW"
	// EnvRequire, set to "1", turns skips for a missing versitygw into
	// failures, for CI where the integration tests must run.
	EnvRequire = "FIRSTLOOK_REQUIRE_INTEGRATION"

	// AccessKey and SecretKey are the server's root credentials.
	AccessKey = "FLTESTACCESSKEY0001"
	SecretKey = "fl-test-secret-5b7c1e0f9a2d4e6b8c3f"
	// Region is the server's region.
	Region = "us-east-1"

	defaultBinary = "/root/go/bin/versitygw"
	readyTimeout  = 15 * time.Second
	healthPath    = "/health"
)

// Binary returns the versitygw to run. When there is none it skips the
// test, saying why, or fails it under FIRSTLOOK_REQUIRE_INTEGRATION=1.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvVersitygw); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		missing(t, EnvVersitygw+"="+p+" does not exist")
	}
	if _, err := os.Stat(defaultBinary); err == nil {
		return defaultBinary
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	missing(t, "no versitygw in "+EnvVersitygw+", "+defaultBinary+" or PATH "+
		"(go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	return ""
}

func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("s3test: %s (%s=1)", why, EnvRequire)
	}
	t.Skip("s3test: " + why)
}

// IsolateAWSEnv points the AWS SDK of this test at nothing of the
// machine's: no shared config or credentials files, no instance metadata
// (which is not on loopback), and no AWS_* credentials or profile. Tests
// that call it cannot run in parallel (t.Setenv).
func IsolateAWSEnv(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "no-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "no-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_MAX_ATTEMPTS",
	} {
		t.Setenv(k, "")
	}
}

// UseEnvCredentials isolates the AWS environment and gives the server's
// credentials through AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
func UseEnvCredentials(t testing.TB) {
	t.Helper()
	IsolateAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
}

// Server is one running versitygw.
type Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:<port>.
	Endpoint string
	// Root is the posix backend's directory: one directory per bucket.
	Root string

	t    testing.TB
	bin  string
	addr string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

var buckets atomic.Int64

// Start runs versitygw on a free loopback port; t.Cleanup kills it.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{t: t, bin: bin, Root: filepath.Join(dir, "root"), log: filepath.Join(dir, "versitygw.log")}
	if err := os.MkdirAll(s.Root, 0o750); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	// A port found free may be taken before versitygw binds it, by
	// another test process: try a few.
	var err error
	for range 3 {
		var l net.Listener
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		s.addr = l.Addr().String()
		l.Close()
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoint = "http://" + s.addr
	return s
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin,
		"--port", s.addr,
		"--access", AccessKey, "--secret", SecretKey,
		"--region", Region,
		"--health", healthPath,
		"--quiet",
		"posix", s.Root)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the test process, even a killed one.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start versitygw: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := http.Get("http://" + s.addr + healthPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("versitygw on %s exited: %s", s.addr, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("versitygw on %s not ready after %s: %s", s.addr, readyTimeout, s.logTail())
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}

// PID is the running server's process id, or 0.
func (s *Server) PID() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills the server (SIGKILL, by pid) and waits for it; the port then
// refuses connections. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill() // SIGKILL also ends a paused (SIGSTOP) process
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and root.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Pause stops the server with SIGSTOP: the kernel still accepts
// connections, nothing answers them, as with a hung store.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatal(err)
	}
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatal(err)
	}
}

// Client is an SDK client for the server with its root credentials, for
// checking from the outside what a store did.
func (s *Server) Client() *awss3.Client {
	return awss3.New(awss3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// Bucket creates a new, empty bucket and returns its name.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	name := "fl-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(buckets.Add(1), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Config is an s3.Config for bucket on this server: the endpoint, path
// style and region. Credentials come from the environment; see
// UseEnvCredentials.
func (s *Server) Config(bucket string) s3.Config {
	return s3.Config{Bucket: bucket, Endpoint: s.Endpoint, PathStyle: true, Region: Region}
}

// Object reads bucket/key straight from the server, or returns an error
// wrapping the SDK's.
func (s *Server) Object(ctx context.Context, bucket, key string) ([]byte, error) {
	out, err := s.Client().GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(out.Body)
	return b.Bytes(), err
}
