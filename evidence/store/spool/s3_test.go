package spool_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence"
	"github.com/firstlook/firstlook/evidence/store/s3"
	"github.com/firstlook/firstlook/evidence/store/s3/s3test"
	"github.com/firstlook/firstlook/evidence/store/spool"
	"github.com/firstlook/firstlook/evidence/store/storetest"
)

// The crash test runs the test binary again as a firstlook process that
// spools a bundle and is then killed; these variables tell it what to do.
const (
	helperDir      = "FIRSTLOOK_SPOOL_HELPER_DIR"
	helperEndpoint = "FIRSTLOOK_SPOOL_HELPER_ENDPOINT"
	helperBucket   = "FIRSTLOOK_SPOOL_HELPER_BUCKET"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperDir) != "" {
		os.Exit(crashHelper())
	}
	os.Exit(m.Run())
}

// crashHelper is the process that crashes: with S3 down it writes a bundle
// through a spool, says so on stdout, and waits to be killed.
func crashHelper() int {
	ctx := context.Background()
	cfg := s3.Config{Bucket: os.Getenv(helperBucket), Endpoint: os.Getenv(helperEndpoint), PathStyle: true, Region: s3test.Region}
	remote, err := s3.New(ctx, cfg)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	sp, err := spool.New(spool.Config{Dir: os.Getenv(helperDir)}, remote, nil)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	if _, err := evidence.Write(ctx, sp, bundle("crash-host")); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("spooled", sp.Pending())
	time.Sleep(time.Hour) // killed long before
	return 0
}

// s3Remote starts versitygw and returns it, a fresh bucket and an s3.Store
// on it. Operations time out after timeout.
func s3Remote(t *testing.T, timeout time.Duration) (*s3test.Server, string, *s3.Store) {
	t.Helper()
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	bucket := srv.Bucket(t)
	cfg := srv.Config(bucket)
	cfg.Timeout = timeout
	st, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, bucket, st
}

func TestContractOverS3(t *testing.T) {
	srv := s3test.Start(t)
	s3test.UseEnvCredentials(t)
	storetest.Run(t, func(t *testing.T) evidence.Store {
		st, err := s3.New(context.Background(), srv.Config(srv.Bucket(t)))
		if err != nil {
			t.Fatal(err)
		}
		return open(t, filepath.Join(t.TempDir(), "spool"), st, nil)
	})
}

// checkBundle asserts that the remote holds every object of b, byte for
// byte, under prefix.
func checkBundle(t *testing.T, srv *s3test.Server, bucket, prefix string, b *evidence.Bundle, remote evidence.Store) {
	t.Helper()
	ctx := context.Background()
	for name, body := range b.Files {
		got, err := srv.Object(ctx, bucket, prefix+name)
		if err != nil || !bytes.Equal(got, body) {
			t.Errorf("%s: got %q, %v on S3, want %q", name, got, err, body)
		}
	}
	back, err := evidence.Read(ctx, remote, prefix)
	if err != nil {
		t.Fatalf("read the bundle back from S3: %v", err)
	}
	if back.Manifest.RunID != b.Manifest.RunID || len(back.Files) != len(b.Files) {
		t.Fatalf("got manifest %+v with %d files, want run %s with %d", back.Manifest, len(back.Files), b.Manifest.RunID, len(b.Files))
	}
}

func TestS3OutageKillRestart(t *testing.T) {
	srv, bucket, remote := s3Remote(t, 10*time.Second)
	var logs logBuffer
	spoolDir := filepath.Join(t.TempDir(), "spool")
	s := open(t, spoolDir, remote, logs.logger())
	ctx := context.Background()

	srv.Stop()
	// What the remote says while it is down is what the spool acts on.
	if err := remote.Put(ctx, "probe/x", []byte("x")); !spool.Transient(err) {
		t.Fatalf("put to a stopped versitygw: got %v, which Transient calls permanent", err)
	}
	b := bundle("web-1")
	prefix, err := evidence.Write(ctx, s, b)
	if err != nil {
		t.Fatalf("write while S3 is down: got %v, want nil", err)
	}
	if n := s.Pending(); n != 4 {
		t.Fatalf("got %d pending, want 4 (two outputs, the page, the manifest)", n)
	}
	if files, _ := os.ReadDir(filepath.Join(spoolDir, "queue")); len(files) != 4 {
		t.Fatalf("got %d files in the spool, want 4", len(files))
	}
	link, err := s.Link(ctx, prefix+evidence.ManifestFile)
	if err != nil {
		t.Fatalf("link while S3 is down: %v", err)
	}

	srv.Restart()
	if status, _ := get(t, link); status != http.StatusNotFound {
		t.Fatalf("link before the upload: got %d, want 404", status)
	}
	run(t, s)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	checkBundle(t, srv, bucket, prefix, b, remote)
	if status, body := get(t, link); status != http.StatusOK || !bytes.Contains(body, []byte(b.Manifest.RunID)) {
		t.Fatalf("link after the upload: got %d %q, want 200 and the manifest", status, body)
	}
	if st := s.Stats(); st.Uploaded != 4 || st.Conflicts != 0 || st.Offline {
		t.Fatalf("got %+v, want 4 uploaded, no conflicts, online", st)
	}
	// Write-once still holds through the spool once S3 is back.
	if _, err := evidence.Write(ctx, s, b); !errors.Is(err, evidence.ErrExists) {
		t.Fatalf("second write of the run: got %v, want ErrExists", err)
	}
	out := logs.String()
	for _, secret := range []string{s3test.SecretKey, "X-Amz-Signature"} {
		if strings.Contains(out, secret) {
			t.Fatalf("the log shows %q:\n%s", secret, out)
		}
	}
}

// TestS3Hung: a stopped (SIGSTOP) server accepts connections and answers
// nothing; the s3 timeout must end the Put so that the spool takes over.
func TestS3Hung(t *testing.T) {
	srv, bucket, remote := s3Remote(t, 2*time.Second)
	s := open(t, filepath.Join(t.TempDir(), "spool"), remote, nil)
	ctx := context.Background()
	srv.Pause()
	b := bundle("db-1")
	prefix, err := evidence.Write(ctx, s, b)
	if err != nil {
		srv.Resume()
		t.Fatalf("write to a hung S3: got %v, want nil", err)
	}
	if n := s.Pending(); n != 4 {
		t.Fatalf("got %d pending, want 4 (two outputs, the page, the manifest)", n)
	}
	srv.Resume()
	run(t, s)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	checkBundle(t, srv, bucket, prefix, b, remote)
	// The first, timed-out Put may have landed once the server resumed;
	// it then counts as uploaded, never as a conflict.
	if st := s.Stats(); st.Conflicts != 0 || st.Uploaded != 4 {
		t.Fatalf("got %+v, want 4 uploaded and no conflicts", st)
	}
}

// TestS3CrashedProcess: a process spools a bundle while S3 is down and is
// killed; the next one, on the same directory, uploads what it left.
func TestS3CrashedProcess(t *testing.T) {
	srv, bucket, remote := s3Remote(t, 10*time.Second)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	srv.Stop()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperDir+"="+spoolDir, helperEndpoint+"="+srv.Endpoint, helperBucket+"="+bucket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "spooled ") {
		t.Fatalf("helper said %q, %v, want spooled <n>", line, err)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "spooled "))); n != 4 {
		t.Fatalf("helper spooled %d objects, want 4", n)
	}
	if _, err := spool.New(spool.Config{Dir: spoolDir}, remote, nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("New while the helper runs: got %v, want an in-use error", err)
	}
	// The crash: SIGKILL, no cleanup of any kind.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	srv.Restart()
	b := bundle("crash-host")
	prefix := evidence.Prefix(b.Manifest)
	// As if the helper had uploaded one file and died before removing it
	// from the spool: the upload must count it, not fail or overwrite.
	var first string
	for name := range b.Files {
		first = name
		break
	}
	if err := remote.Put(context.Background(), prefix+first, b.Files[first]); err != nil {
		t.Fatal(err)
	}

	s := open(t, spoolDir, remote, nil)
	if n := s.Pending(); n != 4 {
		t.Fatalf("got %d pending after the crash, want 4", n)
	}
	run(t, s)
	waitFor(t, "the spool to drain", func() bool { return s.Pending() == 0 })
	checkBundle(t, srv, bucket, prefix, b, remote)
	if st := s.Stats(); st.Uploaded != 4 || st.Conflicts != 0 {
		t.Fatalf("got %+v, want 4 uploaded and no conflicts", st)
	}
}

func get(t *testing.T, link string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
