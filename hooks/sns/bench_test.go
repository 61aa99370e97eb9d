package sns_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/firstlook/firstlook/hooks"
	"github.com/firstlook/firstlook/hooks/hookstest"
	"github.com/firstlook/firstlook/hooks/sns/snstest"
)

// BenchmarkHandler is the intake's own cost per SNS message: verify (the
// certificate cached), parse, answer, with a queue that stores nothing.
func BenchmarkHandler(b *testing.B) {
	aws := snstest.New(b)
	src := newSource(b, aws, nil)
	var msgs []*snstest.Message
	for i := range 64 {
		msgs = append(msgs, alarm(aws, b, "m-"+strconv.Itoa(i), "ALARM"))
	}
	h := hooks.NewHandler(src, hooks.Options{Queue: &hookstest.Queue{}})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, snstest.Request(msgs[i%len(msgs)]))
		i++
	}
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}
