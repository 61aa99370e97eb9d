package ssh

import (
	"fmt"
	"net"
)

// Target is a host to run commands on. The runner builds it from its
// inventory; this package does not know where hosts come from.
type Target struct {
	Name string // for messages; defaults to Addr
	Addr string // host:port as known_hosts knows it; ":22" is added when the port is missing
	User string
	// Bastion is the jump host to go through; nil dials Addr directly.
	Bastion *Hop
}

// Hop is a bastion (jump host).
type Hop struct {
	Name string // for messages; defaults to Addr
	Addr string // host:port; ":22" is added when the port is missing
	User string
}

// hop is one resolved leg of a connection.
type hop struct {
	kind string // HopBastion or HopHost
	name string
	addr string
	user string
	via  string // bastion name for a host reached through one
}

func resolveHop(kind, name, addr, user, via string) (hop, error) {
	if addr == "" {
		return hop{}, fmt.Errorf("%s %s: empty address", kind, name)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return hop{}, fmt.Errorf("%s %s: bad address %q: %w", kind, name, addr, err)
		}
	}
	if name == "" {
		name = addr
	}
	if user == "" {
		return hop{}, fmt.Errorf("%s %s: empty user", kind, name)
	}
	return hop{kind: kind, name: name, addr: addr, user: user, via: via}, nil
}

// hops resolves the bastion (if any) and the host.
func (t Target) hops() (bastion *hop, host hop, err error) {
	via := ""
	if t.Bastion != nil {
		b, err := resolveHop(HopBastion, t.Bastion.Name, t.Bastion.Addr, t.Bastion.User, "")
		if err != nil {
			return nil, hop{}, err
		}
		bastion, via = &b, b.name
	}
	host, err = resolveHop(HopHost, t.Name, t.Addr, t.User, via)
	return bastion, host, err
}
