//go:build !unix

package spool

import "os"

// lockDir opens file; without flock two processes could share the spool,
// which is safe (write-once remote, byte comparison on ErrExists) but
// wasteful.
func lockDir(file string) (*os.File, error) {
	return os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
}
