package ssh_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/firstlook/firstlook/runner/ssh"
)

func TestHopError(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name    string
		err     *ssh.HopError
		wantMsg string
		is      []error
		isNot   []error
	}{
		{"bastion refused",
			&ssh.HopError{Hop: ssh.HopBastion, Name: "bastion-1", Addr: "10.0.0.1:22", User: "root", Op: ssh.OpDial, Err: refused},
			"bastion bastion-1 (10.0.0.1:22): dial: connection refused",
			[]error{ssh.ErrBastionUnreachable, syscall.ECONNREFUSED}, []error{ssh.ErrHostUnreachable, ssh.ErrAuthFailed}},
		{"host auth via bastion",
			&ssh.HopError{Hop: ssh.HopHost, Name: "web-1", Addr: "10.1.0.2:22", Via: "bastion-1", User: "root", Op: ssh.OpAuth, Err: errors.New("no supported methods remain")},
			"host web-1 (10.1.0.2:22) via bastion bastion-1: auth failed for user root: no supported methods remain",
			[]error{ssh.ErrAuthFailed}, []error{ssh.ErrBastionUnreachable, ssh.ErrHostUnreachable}},
		{"host handshake, no name",
			&ssh.HopError{Hop: ssh.HopHost, Addr: "10.1.0.2:22", Op: ssh.OpHandshake, Err: errors.New("EOF")},
			"host 10.1.0.2:22: handshake: EOF",
			[]error{ssh.ErrHostUnreachable}, []error{ssh.ErrBastionUnreachable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.wantMsg {
				t.Errorf("Error: got %q, want %q", got, tt.wantMsg)
			}
			for _, target := range tt.is {
				if !errors.Is(tt.err, target) {
					t.Errorf("errors.Is(%v): got false, want true", target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(tt.err, target) {
					t.Errorf("errors.Is(%v): got true, want false", target)
				}
			}
		})
	}
}
