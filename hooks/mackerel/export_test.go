package mackerel

import "encoding/json"

// WithStdlibJSON runs f with encoding/json as the notification decoder.
func WithStdlibJSON(f func()) {
	saved := unmarshal
	unmarshal = json.Unmarshal
	defer func() { unmarshal = saved }()
	f()
}
