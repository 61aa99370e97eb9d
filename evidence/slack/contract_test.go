package slack_test

import (
	"testing"
	"time"

	"github.com/firstlook/firstlook/evidence/sinktest"
	"github.com/firstlook/firstlook/evidence/slack"
	"github.com/firstlook/firstlook/evidence/slack/slacktest"
)

// TestContract runs the sink contract against slacktest, the publisher
// making the incident's channel as in production.
func TestContract(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Backend {
		srv := newServer(t)
		p, _ := newPublisher(t, srv, slack.Config{}, slacktest.Token)
		return sinktest.Backend{
			Publisher: p,
			Posts:     func(*testing.T) int { return srv.Posts() },
			Attempts:  func(*testing.T) int { return srv.Calls("chat.postMessage") },
			Fail: func(t *testing.T, f sinktest.Failure) {
				switch f {
				case sinktest.Permanent:
					srv.Fail("chat.postMessage", "posting_to_channel_denied", 1)
				case sinktest.Retryable:
					srv.RateLimit("chat.postMessage", 1, 3*time.Second)
				case sinktest.Lost:
					srv.Lose("chat.postMessage", 1)
				default:
					t.Fatalf("failure %s not supported", f)
				}
			},
		}
	})
}
