package inventory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/firstlook/firstlook/runner/inventory"
)

// sourceFunc is a Source whose Resolve and Select are functions.
type sourceFunc struct {
	resolve func(hint string) (inventory.Host, error)
	sel     func(group string) ([]inventory.Host, error)
}

func (s sourceFunc) Resolve(_ context.Context, hint string) (inventory.Host, error) {
	return s.resolve(hint)
}

func (s sourceFunc) Select(_ context.Context, group string, _ map[string]string) ([]inventory.Host, error) {
	return s.sel(group)
}

// cloud is a second source: it knows i-0123456789abcdef0, reports
// i-0aaaaaaaaaaaaaaaa as stopped and fails on "broken".
var cloud = sourceFunc{
	resolve: func(hint string) (inventory.Host, error) {
		switch hint {
		case "i-0123456789abcdef0", "web-1":
			return inventory.Host{Name: hint, Address: "10.9.0.1", Port: 22, User: "ec2-user"}, nil
		case "i-0aaaaaaaaaaaaaaaa":
			return inventory.Host{}, fmt.Errorf("ec2: instance %s is stopped: %w", hint, inventory.ErrUnknownHost)
		case "broken":
			return inventory.Host{}, errors.New("ec2: describe instances: RequestLimitExceeded")
		}
		return inventory.Host{}, fmt.Errorf("ec2: %q: %w", hint, inventory.ErrUnknownHost)
	},
	sel: func(group string) ([]inventory.Host, error) {
		if group == "broken" {
			return nil, errors.New("ec2: describe instances: UnauthorizedOperation")
		}
		return []inventory.Host{
			{Name: "web-1", Address: "10.9.0.1"},          // same name as a static host
			{Name: "i-0b", Address: "10.1.0.12"},          // same address as static web-2
			{Name: "i-0c", Address: "10.9.0.3", Port: 22}, // only in the cloud
		}, nil
	},
}

func TestChainResolve(t *testing.T) {
	static, err := inventory.Load("testdata/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chain := inventory.Chain{static, cloud}
	ctx := context.Background()
	tests := []struct {
		hint, wantAddr string
		unknown        bool   // the error wraps ErrUnknownHost
		wantErr        string // and contains this
	}{
		{hint: "web-1", wantAddr: "10.1.0.11"}, // static wins over the cloud's web-1
		{hint: "10.1.0.12", wantAddr: "10.1.0.12"},
		{hint: "i-0123456789abcdef0", wantAddr: "10.9.0.1"},
		{hint: "i-0aaaaaaaaaaaaaaaa", unknown: true, wantErr: `host "i-0aaaaaaaaaaaaaaaa": not in the inventory; ec2: instance i-0aaaaaaaaaaaaaaaa is stopped`},
		{hint: "web-9", unknown: true, wantErr: `ec2: "web-9": not in the inventory`},
		{hint: "broken", wantErr: "RequestLimitExceeded"},
	}
	for _, tc := range tests {
		t.Run(tc.hint, func(t *testing.T) {
			h, err := chain.Resolve(ctx, tc.hint)
			if tc.wantErr == "" {
				if err != nil || h.Address != tc.wantAddr {
					t.Fatalf("got %+v, %v; want address %s", h, err, tc.wantAddr)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got error %v, want one line containing %q", err, tc.wantErr)
			}
			if got := errors.Is(err, inventory.ErrUnknownHost); got != tc.unknown {
				t.Errorf("got errors.Is(ErrUnknownHost) %v, want %v (a failed lookup is not an unknown host)", got, tc.unknown)
			}
		})
	}
	if _, err := (inventory.Chain{}).Resolve(ctx, "web-1"); !errors.Is(err, inventory.ErrUnknownHost) {
		t.Errorf("empty chain: got %v, want ErrUnknownHost", err)
	}
}

func TestChainSelect(t *testing.T) {
	static, err := inventory.Load("testdata/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	chain := inventory.Chain{static, cloud}
	names := func(hs []inventory.Host) []string {
		var out []string
		for _, h := range hs {
			out = append(out, h.Name+"@"+h.Address)
		}
		return out
	}
	hs, err := chain.Select(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"web-1@10.1.0.11", "web-2@10.1.0.12", "db-1@fd00::21", "i-0c@10.9.0.3"}
	if got := names(hs); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v (static first, duplicates by name or address left out)", got, want)
	}
	hs, err = chain.Select(context.Background(), "broken", nil)
	if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Errorf("got error %v, want the failing source's error", err)
	}
	if len(hs) != 0 {
		t.Errorf("got %v, want no host in group broken", names(hs))
	}
}

func TestBastions(t *testing.T) {
	inv, err := inventory.Parse("inline", []byte(`
defaults: {user: ops}
bastions:
  - {name: jump-a, address: 192.0.2.1}
  - {name: jump-b, address: 192.0.2.2, port: 2222, user: jump}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := inv.Bastions()
	if len(b) != 2 || b["jump-a"].Addr() != "192.0.2.1:22" || b["jump-a"].User != "ops" || b["jump-b"].Addr() != "192.0.2.2:2222" {
		t.Errorf("got %v, want both bastions with defaults applied, even with no host using them", b)
	}
	delete(b, "jump-a")
	if inv.Bastions()["jump-a"] == nil {
		t.Error("Bastions returned the inventory's own map")
	}
}
