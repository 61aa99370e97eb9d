package pagerduty

import "encoding/json"

// WithStdlibJSON runs f with encoding/json as the webhook decoder.
func WithStdlibJSON(f func()) {
	saved := unmarshal
	unmarshal = json.Unmarshal
	defer func() { unmarshal = saved }()
	f()
}
