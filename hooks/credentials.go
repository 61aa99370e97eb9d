package hooks

import (
	"crypto/subtle"
	"net/http"
)

// MatchAny reports whether got equals one of want, comparing every one in
// constant time so that the answer's timing says nothing about which came
// close.
func MatchAny(got string, want []string) bool {
	ok := 0
	for _, w := range want {
		ok |= subtle.ConstantTimeCompare([]byte(got), []byte(w))
	}
	return ok == 1 && got != ""
}

// BasicAuth is one accepted basic-auth username and password.
type BasicAuth struct {
	Username, Password string
}

// MatchBasic reports whether r carries basic-auth credentials at all, and
// whether they are one of creds, compared in constant time.
func MatchBasic(r *http.Request, creds []BasicAuth) (present, ok bool) {
	user, pw, present := r.BasicAuth()
	if !present {
		return false, false
	}
	match := 0
	for _, c := range creds {
		match |= subtle.ConstantTimeCompare([]byte(user), []byte(c.Username)) & subtle.ConstantTimeCompare([]byte(pw), []byte(c.Password))
	}
	return true, match == 1 && pw != ""
}

// CheckBasic reports whether r carries basic-auth credentials at all and,
// when it does, the 401 to answer if they are none of creds (nil when they
// are one of them).
func CheckBasic(r *http.Request, creds []BasicAuth) (present bool, err error) {
	present, ok := MatchBasic(r, creds)
	if present && !ok {
		return true, Errorf(http.StatusUnauthorized, "basic-auth credentials match none of the configured ones")
	}
	return present, nil
}
