package queue_test

import (
	"testing"

	"github.com/firstlook/firstlook/runner/queue"
)

func TestScratchDedupRestart(t *testing.T) {
	cfg := embeddedConfig(t)
	q := open(t, cfg)
	put(t, q, "a")
	put(t, q, "b")
	ack(t, next(t, q))
	q.Close()
	q = open(t, cfg)
	for _, id := range []string{"a", "b"} {
		dup, err := q.Put(testCtx(t, 5e9), trigger(id))
		t.Logf("%s: dup=%v err=%v", id, dup, err)
	}
	_ = queue.Key
}
