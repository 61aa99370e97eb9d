package ssh

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// loadIdentity parses one private key file.
func loadIdentity(path string) (xssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load identity file: %w", err)
	}
	signer, err := xssh.ParsePrivateKey(data)
	var pm *xssh.PassphraseMissingError
	if errors.As(err, &pm) {
		// We run unattended and cannot prompt; the agent is the place for
		// protected keys.
		return nil, fmt.Errorf("load identity file %s: the key is passphrase-protected and firstlook cannot prompt for it; load it into ssh-agent (ssh-add %s), set agent: true, and remove it from identity_files", path, path)
	}
	if err != nil {
		return nil, fmt.Errorf("load identity file %s: %w", path, err)
	}
	return signer, nil
}

// auth is the credential set for one handshake.
type auth struct {
	signers  []xssh.Signer
	agentErr error     // why the agent's keys are missing, if they are
	closer   io.Closer // the agent connection, held open for the handshake
}

func (a *auth) close() {
	if a.closer != nil {
		a.closer.Close()
	}
}

// authFor collects the signers for one handshake. The agent is dialled per
// handshake, as OpenSSH does per process: a long-lived agent connection
// would outlive an agent restart and fail every later dial.
func (d *Dialer) authFor(timeout time.Duration) *auth {
	a := &auth{}
	if d.agentSock != "" {
		conn, err := net.DialTimeout("unix", d.agentSock, timeout)
		if err != nil {
			a.agentErr = fmt.Errorf("agent: %w", err)
		} else {
			signers, err := agent.NewClient(conn).Signers()
			if err != nil {
				conn.Close()
				a.agentErr = fmt.Errorf("agent: list keys: %w", err)
			} else {
				a.signers = signers
				a.closer = conn
				if len(signers) == 0 {
					a.agentErr = errors.New("agent holds no keys")
				}
			}
		}
	}
	a.signers = append(a.signers, d.signers...)
	return a
}
