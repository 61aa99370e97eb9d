package ec2

import "time"

// Retries in tests wait a millisecond, not a second: the tests count
// attempts, not wait.
func init() { maxRetryBackoff = time.Millisecond }

// SetClock makes s read the time from now (call before first use).
func SetClock(s *Source, now func() time.Time) { s.now = now }

// Waiting is how many callers wait for a listing right now.
func Waiting(s *Source) int { return int(s.waiting.Load()) }
