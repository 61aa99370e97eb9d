package queue

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"
)

// The mirror forgets a finished id after the window, as the bucket's TTL
// does, both when asked and when it sweeps; and a delete or purge seen by
// the watch is forgotten at once.
func TestDeliveriesMirrorWindow(t *testing.T) {
	d := newDeliveries(nil, time.Hour, nil) // kv unused while ready
	d.setReady(true)
	ctx := context.Background()
	now := time.Now()
	d.remember(sha256.Sum256([]byte("fresh")), now.Add(-59*time.Minute))
	d.remember(sha256.Sum256([]byte("stale")), now.Add(-61*time.Minute))
	for id, want := range map[string]bool{"fresh": true, "stale": false, "never": false} {
		if got, err := d.finished(ctx, id); err != nil || got != want {
			t.Errorf("finished(%s): got (%v, %v), want (%v, nil)", id, got, err, want)
		}
	}
	d.expire(now)
	if len(d.done) != 1 {
		t.Errorf("after expire: %d ids kept, want 1", len(d.done))
	}
	// A later record of the same id moves its time forward, never back.
	sum := sha256.Sum256([]byte("fresh"))
	d.remember(sum, now.Add(-2*time.Hour))
	if got := d.done[sum]; !got.Equal(now.Add(-59 * time.Minute)) {
		t.Errorf("an older record moved the time back to %v", got)
	}
	d.forget(sum)
	if got, _ := d.finished(ctx, "fresh"); got {
		t.Errorf("finished after forget: got true")
	}
}
