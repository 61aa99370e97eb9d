package pagerduty

import "encoding/json"

// WithStdlibJSON runs f with encoding/json as the webhook decoder.
func WithStdlibJSON(f func()) {
	saved := unmarshal
	unmarshal = json.Unmarshal
	defer func() { unmarshal = saved }()
	f()
}

// Verify checks an X-PagerDuty-Signature header value against body, as
// Authenticate does for each secret.
func Verify(secret, header string, body []byte) error {
	return newSigner(secret).verify(header, body)
}
