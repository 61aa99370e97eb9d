package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestSummarize: failing output is shown, passing output is not, skips are
// grouped by reason with the command to run them, and go test's package
// lines come last.
func TestSummarize(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"run","Package":"github.com/firstlook/firstlook/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Test":"TestOK","Output":"    a_test.go:3: chatter\n"}`,
		`{"Action":"pass","Package":"github.com/firstlook/firstlook/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Test":"TestSSH","Output":"    a_test.go:9: sshtest: not running as root\n"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Test":"TestSSH","Output":"--- SKIP: TestSSH (0.00s)\n"}`,
		`{"Action":"skip","Package":"github.com/firstlook/firstlook/a","Test":"TestSSH"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Test":"TestBad","Output":"    a_test.go:12: got 1, want 2\n"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}`,
		`{"Action":"fail","Package":"github.com/firstlook/firstlook/a","Test":"TestBad"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Output":"FAIL\n"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/a","Output":"FAIL\tgithub.com/firstlook/firstlook/a\t0.1s\n"}`,
		`{"Action":"fail","Package":"github.com/firstlook/firstlook/a"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/b","Test":"TestS3","Output":"    b_test.go:9: no versitygw\n"}`,
		`{"Action":"skip","Package":"github.com/firstlook/firstlook/b","Test":"TestS3"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/b","Test":"TestS3/sub","Output":"    b_test.go:9: no versitygw\n"}`,
		`{"Action":"skip","Package":"github.com/firstlook/firstlook/b","Test":"TestS3/sub"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/b","Output":"PASS\n"}`,
		`{"Action":"output","Package":"github.com/firstlook/firstlook/b","Output":"ok  \tgithub.com/firstlook/firstlook/b\t0.2s\n"}`,
		`{"Action":"pass","Package":"github.com/firstlook/firstlook/b"}`,
	}, "\n")
	var out bytes.Buffer
	var progress bytes.Buffer
	failed, err := summarize(strings.NewReader(in), &out, &progress, false)
	if err != nil || !failed {
		t.Fatalf("got failed=%v err=%v, want failed", failed, err)
	}
	want := `    a_test.go:12: got 1, want 2
--- FAIL: TestBad (0.00s)

3 tests skipped:
  sshtest: not running as root
    a.TestSSH
  no versitygw
    b.TestS3
To run them: sudo make test   (as root, make test also installs the Debian packages they need)

FAIL
FAIL	github.com/firstlook/firstlook/a	0.1s
ok  	github.com/firstlook/firstlook/b	0.2s
`
	if !strings.HasSuffix(want, progress.String()) {
		t.Errorf("progress %q is not the closing lines", progress.String())
	}
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
