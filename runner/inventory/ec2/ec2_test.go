package ec2_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/firstlook/firstlook/runner/inventory"
	"github.com/firstlook/firstlook/runner/inventory/ec2"
	"github.com/firstlook/firstlook/runner/inventory/ec2/internal/ec2test"
)

const (
	vpcA    = "vpc-0aaaaaaaaaaaaaaa1"
	vpcB    = "vpc-0bbbbbbbbbbbbbbb2"
	subA1   = "subnet-0aaaaaaaaaaaaaa11" // in vpcA, no mapping of its own
	subA2   = "subnet-0aaaaaaaaaaaaaa12" // in vpcA, mapped to jump-b
	subA3   = "subnet-0aaaaaaaaaaaaaa13" // in vpcA, mapped to none
	subB1   = "subnet-0bbbbbbbbbbbbbb21" // in vpcB, which has no mapping
	idWeb1  = "i-0aaaaaaaaaaaa0001"
	idWeb2  = "i-0aaaaaaaaaaaa0002"
	idAPI1  = "i-0aaaaaaaaaaaa0003"
	idAPI2  = "i-0aaaaaaaaaaaa0004"
	idOld   = "i-0aaaaaaaaaaaa0005"
	idPub   = "i-0aaaaaaaaaaaa0006"
	idDev   = "i-0aaaaaaaaaaaa0007"
	idUbu   = "i-0aaaaaaaaaaaa0008"
	idSpace = "i-0aaaaaaaaaaaa0009"
	idBadU  = "i-0aaaaaaaaaaaa000a"
	idLocal = "i-0aaaaaaaaaaaa000b"
)

// fleet is the account the tests look at.
var fleet = []ec2test.Instance{
	{ID: idWeb1, PrivateIP: "10.0.1.11", PublicIP: "203.0.113.11", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "web-1", "env": "prod", "role": "web, api", "team": "sre"}},
	{ID: idWeb2, PrivateIP: "10.0.2.12", SubnetID: subA2, VpcID: vpcA, Tags: map[string]string{"Name": "web-2", "env": "prod", "role": "web"}},
	// An Auto Scaling group: every instance has the same Name.
	{ID: idAPI1, PrivateIP: "10.1.0.21", SubnetID: subB1, VpcID: vpcB, Tags: map[string]string{"Name": "api", "env": "prod", "role": "api"}},
	{ID: idAPI2, PrivateIP: "10.1.0.22", SubnetID: subB1, VpcID: vpcB, Tags: map[string]string{"Name": "api", "env": "prod", "role": "api"}},
	{ID: idOld, State: "stopped", PrivateIP: "10.0.1.99", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "old", "env": "prod"}},
	// No private address: only reachable from the internet, never by firstlook.
	{ID: idPub, PublicIP: "203.0.113.6", Tags: map[string]string{"Name": "pub", "env": "prod"}},
	{ID: idDev, PrivateIP: "10.0.1.70", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "dev-1", "env": "dev"}},
	{ID: idUbu, PrivateIP: "10.0.1.80", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "ubuntu-1", "env": "prod", "ssh_user": "ubuntu"}},
	{ID: idSpace, PrivateIP: "10.0.1.90", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "web server", "env": "prod"}},
	{ID: idBadU, PrivateIP: "10.0.1.91", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "bad-user", "env": "prod", "ssh_user": "root; id"}},
	{ID: idLocal, PrivateIP: "10.0.3.10", SubnetID: subA3, VpcID: vpcA, Tags: map[string]string{"Name": "local-1", "env": "prod"}},
}

// bastions are the static inventory's.
var bastions = map[string]*inventory.Bastion{
	"jump-a":       {Name: "jump-a", Address: "192.0.2.1", Port: 22, User: "jump"},
	"jump-b":       {Name: "jump-b", Address: "192.0.2.2", Port: 22, User: "jump"},
	"jump-default": {Name: "jump-default", Address: "192.0.2.9", Port: 22, User: "jump"},
}

func config(endpoint string) ec2.Config {
	return ec2.Config{
		Region:   ec2test.Region,
		Endpoint: endpoint,
		Filters:  map[string][]string{"tag:env": {"prod"}},
		Bastions: ec2.BastionsConfig{
			VPC:     map[string]string{vpcA: "jump-a"},
			Subnet:  map[string]string{subA2: "jump-b", subA3: "none"},
			Default: "jump-default",
		},
		User:           "ec2-user",
		UserTag:        "ssh_user",
		LabelsFromTags: []string{"env", "team"},
		GroupTag:       "role",
	}
}

// clock is a settable time for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup starts a fake holding fleet and a Source over it with a fake clock.
func setup(t *testing.T, edit ...func(*ec2.Config)) (*ec2.Source, *ec2test.Server, *clock) {
	t.Helper()
	ec2test.Setenv(t)
	srv := ec2test.New(t, fleet...)
	cfg := config(srv.URL)
	for _, e := range edit {
		e(&cfg)
	}
	src, err := ec2.New(context.Background(), cfg, bastions)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	ec2.SetClock(src, clk.now)
	return src, srv, clk
}

func bastionName(h inventory.Host) string {
	if h.Bastion == nil {
		return "(direct)"
	}
	return h.Bastion.Name
}

func TestResolve(t *testing.T) {
	src, srv, _ := setup(t)
	ctx := context.Background()
	tests := []struct {
		hint                      string
		name, addr, user, bastion string
		labels                    map[string]string
		groups                    []string
		unknown, ambiguous        bool
		wantErr                   string
	}{
		{hint: idWeb1, name: "web-1", addr: "10.0.1.11:22", user: "ec2-user", bastion: "jump-a",
			labels: map[string]string{"env": "prod", "team": "sre"}, groups: []string{"web", "api"}},
		{hint: "web-1", name: "web-1", addr: "10.0.1.11:22", user: "ec2-user", bastion: "jump-a"},
		{hint: "10.0.1.11", name: "web-1", addr: "10.0.1.11:22", user: "ec2-user", bastion: "jump-a"},
		{hint: " ::ffff:10.0.1.11 ", name: "web-1", addr: "10.0.1.11:22", user: "ec2-user", bastion: "jump-a"},
		// The subnet's bastion wins over the VPC's; none means direct.
		{hint: "web-2", name: "web-2", addr: "10.0.2.12:22", user: "ec2-user", bastion: "jump-b", labels: map[string]string{"env": "prod"}, groups: []string{"web"}},
		{hint: "local-1", name: "local-1", addr: "10.0.3.10:22", user: "ec2-user", bastion: "(direct)"},
		// An instance id in a shared name: the host is named by its id.
		{hint: idAPI1, name: idAPI1, addr: "10.1.0.21:22", user: "ec2-user", bastion: "jump-default"},
		{hint: "10.1.0.22", name: idAPI2, addr: "10.1.0.22:22", user: "ec2-user", bastion: "jump-default"},
		{hint: "ubuntu-1", name: "ubuntu-1", addr: "10.0.1.80:22", user: "ubuntu", bastion: "jump-a"},
		{hint: "web server", name: idSpace, addr: "10.0.1.90:22", user: "ec2-user", bastion: "jump-a"},

		{hint: "api", ambiguous: true, wantErr: `name "api" names more than one instance (` + idAPI1 + ", " + idAPI2 + ")"},
		{hint: "old", unknown: true, wantErr: idOld + " is stopped, not running"},
		{hint: idOld, unknown: true, wantErr: "is stopped"},
		{hint: "10.0.1.99", unknown: true, wantErr: "is stopped"},
		{hint: "dev-1", unknown: true, wantErr: `no instance matching tag:env=prod has name "dev-1"`},
		{hint: idPub, unknown: true, wantErr: "no private IPv4 address"},
		{hint: "pub", unknown: true, wantErr: "no private IPv4 address"},
		{hint: "203.0.113.11", unknown: true, wantErr: `private address "203.0.113.11"`}, // web-1's public address
		{hint: "bad-user", unknown: true, wantErr: `tag ssh_user "root; id" is not a user name`},
		{hint: "i-0ffffffffffffffff", unknown: true, wantErr: "no instance"},
		{hint: "web-9", unknown: true, wantErr: "no instance"},
		{hint: "WEB-1", unknown: true, wantErr: "no instance"}, // Name tags match exactly
		{hint: "web-*", unknown: true, wantErr: "no instance"},
		{hint: "*", unknown: true, wantErr: "no instance"},
		{hint: "fd00::1", unknown: true, wantErr: "names no instance"},
		{hint: "", unknown: true, wantErr: "names no instance"},
		{hint: "web-1\nweb-2", unknown: true, wantErr: "names no instance"},
		{hint: "web-1; rm -rf /", unknown: true, wantErr: "no instance"},
	}
	for _, tc := range tests {
		t.Run(tc.hint, func(t *testing.T) {
			h, err := src.Resolve(ctx, tc.hint)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %+v, %v; want an error containing %q", h, err, tc.wantErr)
				}
				if errors.Is(err, inventory.ErrUnknownHost) != tc.unknown || errors.Is(err, ec2.ErrAmbiguous) != tc.ambiguous {
					t.Errorf("got %v: ErrUnknownHost %v, ErrAmbiguous %v; want %v, %v", err, errors.Is(err, inventory.ErrUnknownHost), errors.Is(err, ec2.ErrAmbiguous), tc.unknown, tc.ambiguous)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Name != tc.name || h.Addr() != tc.addr || h.User != tc.user || bastionName(h) != tc.bastion {
				t.Errorf("got %s %s %s via %s, want %s %s %s via %s", h.Name, h.Addr(), h.User, bastionName(h), tc.name, tc.addr, tc.user, tc.bastion)
			}
			if tc.labels != nil && !mapsEqual(h.Labels, tc.labels) {
				t.Errorf("got labels %v, want %v", h.Labels, tc.labels)
			}
			if tc.groups != nil && !slices.Equal(h.Groups, tc.groups) {
				t.Errorf("got groups %v, want %v", h.Groups, tc.groups)
			}
		})
	}

	// One listing answered the hosts; each miss cost one lookup, and the
	// wildcard, IPv6 and malformed hints none.
	lookups := 0
	for _, c := range srv.Calls() {
		if c.Form.Get("Filter.2.Name") != "instance-state-name" {
			lookups++
			if v := c.Form.Get("Filter.2.Value.1"); strings.ContainsAny(v, "*?") {
				t.Errorf("a lookup sent the wildcard hint %q", v)
			}
		}
	}
	if srv.Lists()-lookups != 1 || lookups != 9 {
		t.Errorf("got %d listings and %d lookups, want 1 listing and 9 lookups (old, %s, 10.0.1.99, dev-1, 203.0.113.11, i-0fff…, web-9, WEB-1, web-1; rm…)", srv.Lists()-lookups, lookups, idOld)
	}

	// A miss is remembered until the next listing.
	before := len(srv.Calls())
	for range 3 {
		if _, err := src.Resolve(ctx, "old"); err == nil {
			t.Fatal("old resolved")
		}
	}
	if n := len(srv.Calls()); n != before {
		t.Errorf("got %d more requests for a hint already missed, want none", n-before)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestResolveNeverPublic(t *testing.T) {
	src, _, _ := setup(t)
	for _, hint := range []string{idWeb1, "web-1", "10.0.1.11"} {
		h, err := src.Resolve(context.Background(), hint)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(h.Address, "203.0.113.") || slices.Contains(h.Aliases, "203.0.113.11") {
			t.Errorf("%s: got %+v, which carries the public address", hint, h)
		}
	}
}

func TestResolveReturnsCopies(t *testing.T) {
	src, _, _ := setup(t)
	h, err := src.Resolve(context.Background(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	h.Labels["env"] = "changed"
	h.Groups[0] = "changed"
	again, _ := src.Resolve(context.Background(), "web-1")
	if again.Labels["env"] != "prod" || again.Groups[0] != "web" {
		t.Errorf("got %v %v: a caller's change reached the listing", again.Labels, again.Groups)
	}
}

func TestNewInstanceBetweenListings(t *testing.T) {
	src, srv, _ := setup(t)
	ctx := context.Background()
	if _, err := src.Resolve(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	// Launched after the listing, within the TTL.
	srv.SetInstances(append(slices.Clone(fleet), ec2test.Instance{ID: "i-0cccccccccccc0001", PrivateIP: "10.0.1.50", SubnetID: subA1, VpcID: vpcA, Tags: map[string]string{"Name": "web-new", "env": "prod"}})...)
	h, err := src.Resolve(ctx, "web-new")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "web-new" || h.Address != "10.0.1.50" || bastionName(h) != "jump-a" {
		t.Errorf("got %+v, want web-new at 10.0.1.50 via jump-a", h)
	}
	// The lookup carried the configured filters, and no state filter, so
	// that a stopped instance says it is stopped.
	last := srv.Calls()[len(srv.Calls())-1].Form
	if last.Get("Filter.1.Name") != "tag:env" || last.Get("Filter.2.Name") != "tag:Name" || last.Get("Filter.2.Value.1") != "web-new" || last.Get("Filter.3.Name") != "" {
		t.Errorf("got lookup %v, want tag:env then tag:Name=web-new", last)
	}

	// Two launched under one name since the listing: still ambiguous.
	srv.SetInstances(append(slices.Clone(fleet),
		ec2test.Instance{ID: "i-0cccccccccccc0002", PrivateIP: "10.0.1.51", Tags: map[string]string{"Name": "worker", "env": "prod"}},
		ec2test.Instance{ID: "i-0cccccccccccc0003", PrivateIP: "10.0.1.52", Tags: map[string]string{"Name": "worker", "env": "prod"}},
	)...)
	if _, err := src.Resolve(ctx, "worker"); !errors.Is(err, ec2.ErrAmbiguous) {
		t.Errorf("got %v, want ErrAmbiguous", err)
	}
}

func TestPagination(t *testing.T) {
	src, srv, _ := setup(t)
	srv.SetPageSize(2)
	hs, err := src.Select(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// 9 running prod instances over 5 pages of 2; 7 have a private
	// address and a sane user.
	if len(hs) != 7 {
		t.Errorf("got %d hosts %v, want 7", len(hs), names(hs))
	}
	calls := srv.Calls()
	if len(calls) != 5 || srv.Lists() != 1 {
		t.Fatalf("got %d requests (%d listings), want 5 pages of one listing", len(calls), srv.Lists())
	}
	for i, c := range calls {
		if c.Form.Get("MaxResults") != "1000" || (i > 0) != (c.Form.Get("NextToken") != "") {
			t.Errorf("page %d: got %v, want MaxResults=1000 and a NextToken after the first", i, c.Form)
		}
		if c.Form.Get("Filter.1.Name") != "tag:env" || c.Form.Get("Filter.1.Value.1") != "prod" || c.Form.Get("Filter.2.Name") != "instance-state-name" || c.Form.Get("Filter.2.Value.1") != "running" {
			t.Errorf("page %d: got filters %v, want tag:env=prod and instance-state-name=running", i, c.Form)
		}
	}
}

func names(hs []inventory.Host) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

func TestSelect(t *testing.T) {
	src, _, _ := setup(t)
	tests := []struct {
		group  string
		labels map[string]string
		want   []string
	}{
		{"", nil, []string{idAPI1, idAPI2, idSpace, "local-1", "ubuntu-1", "web-1", "web-2"}},
		{"web", nil, []string{"web-1", "web-2"}},
		{"api", nil, []string{idAPI1, idAPI2, "web-1"}},
		{"", map[string]string{"team": "sre"}, []string{"web-1"}},
		{"web", map[string]string{"env": "prod", "team": "sre"}, []string{"web-1"}},
		{"", map[string]string{"team": ""}, nil}, // a label must be present
		{"db", nil, nil},
		{"", map[string]string{"role": "web"}, nil}, // role is not among labels_from_tags
	}
	for _, tc := range tests {
		hs, err := src.Select(context.Background(), tc.group, tc.labels)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(hs); !slices.Equal(got, tc.want) {
			t.Errorf("Select(%q, %v): got %v, want %v", tc.group, tc.labels, got, tc.want)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	src, srv, clk := setup(t)
	ctx := context.Background()
	resolve := func() {
		t.Helper()
		if _, err := src.Resolve(ctx, "web-1"); err != nil {
			t.Fatal(err)
		}
	}
	resolve()
	clk.advance(59 * time.Second)
	resolve()
	if _, err := src.Select(ctx, "web", nil); err != nil {
		t.Fatal(err)
	}
	if n := srv.Lists(); n != 1 {
		t.Fatalf("within the TTL: got %d listings, want 1", n)
	}
	// web-1 is gone in the new listing, once the TTL is past.
	srv.SetInstances(fleet[1:]...)
	clk.advance(2 * time.Second)
	if _, err := src.Resolve(ctx, "web-1"); !errors.Is(err, inventory.ErrUnknownHost) {
		t.Errorf("got %v, want web-1 unknown after the next listing", err)
	}
	if n := srv.Lists(); n != 3 { // the listing, and the lookup of the miss
		t.Errorf("past the TTL: got %d listings and lookups, want 3", n)
	}
}

func TestRefreshShared(t *testing.T) {
	src, srv, _ := setup(t)
	arrived, release := srv.Hold()
	defer release()
	const callers = 8
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			hint := "web-1"
			if i%2 == 1 {
				hint = idWeb2
			}
			_, err := src.Resolve(context.Background(), hint)
			errs <- err
		})
	}
	<-arrived
	waitFor(t, func() bool { return ec2.Waiting(src) == callers })
	release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	// Count operations, not HTTP requests: on a loaded machine the SDK
	// has been seen retrying the one listing after its connection broke
	// (a CI run logged "use of closed network connection" and 2 requests);
	// a retry keeps the operation's invocation id.
	calls := srv.Calls()
	ops := map[string]bool{}
	for _, c := range calls {
		if c.Invocation == "" {
			t.Fatalf("a request without amz-sdk-invocation-id: %+v", c)
		}
		ops[c.Invocation] = true
	}
	if len(calls) > len(ops) {
		t.Logf("%d requests for %d operations: the SDK retried", len(calls), len(ops))
	}
	if len(ops) != 1 {
		t.Errorf("got %d listings (%d requests) for %d concurrent callers, want 1 shared listing", len(ops), len(calls), callers)
	}
}

// waitFor polls cond: it synchronises with goroutines, it times nothing
// (the deadline only turns a hang into a failure).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("the callers never queued for the listing")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRefreshOutlivesCaller(t *testing.T) {
	src, srv, _ := setup(t)
	arrived, release := srv.Hold()
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := src.Resolve(ctx, "web-1")
		first <- err
	}()
	<-arrived
	second := make(chan error, 1)
	go func() {
		_, err := src.Resolve(context.Background(), "web-2")
		second <- err
	}()
	waitFor(t, func() bool { return ec2.Waiting(src) == 2 })
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want the cancelled caller to return at once", err)
	}
	release()
	if err := <-second; err != nil {
		t.Errorf("got %v: the listing the first caller started must not die with it", err)
	}
}

func TestStaleOnError(t *testing.T) {
	src, srv, clk := setup(t, func(c *ec2.Config) { c.MaxStale = 10 * time.Minute })
	ctx := context.Background()
	if _, err := src.Resolve(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	// The refresh fails, retries included: the last listing serves.
	clk.advance(61 * time.Second)
	srv.Fail("RequestLimitExceeded", "RequestLimitExceeded", "RequestLimitExceeded")
	h, err := src.Resolve(ctx, "web-1")
	if err != nil || h.Address != "10.0.1.11" {
		t.Fatalf("got %+v, %v; want the stale web-1", h, err)
	}
	if n := srv.Lists(); n != 4 {
		t.Errorf("got %d requests, want the listing and 3 throttled attempts (the retryer is bounded)", n)
	}
	// No new attempt for a TTL after a failure.
	clk.advance(30 * time.Second)
	if _, err := src.Resolve(ctx, "web-2"); err != nil {
		t.Fatal(err)
	}
	if n := srv.Lists(); n != 4 {
		t.Errorf("got %d requests, want no new attempt within the TTL of a failure", n)
	}
	// Past max_stale with the API still failing: an error, not an unknown host.
	clk.advance(10 * time.Minute)
	srv.Fail("UnauthorizedOperation")
	_, err = src.Resolve(ctx, "web-1")
	if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") || !strings.Contains(err.Error(), "max_stale") || errors.Is(err, inventory.ErrUnknownHost) {
		t.Errorf("got %v, want the API error past max_stale", err)
	}
	// The API is back.
	clk.advance(61 * time.Second)
	if _, err := src.Resolve(ctx, "web-1"); err != nil {
		t.Errorf("got %v after the API recovered", err)
	}
}

func TestNoListing(t *testing.T) {
	src, srv, _ := setup(t)
	srv.Fail("UnauthorizedOperation")
	_, err := src.Resolve(context.Background(), "web-1")
	if err == nil || !strings.Contains(err.Error(), "UnauthorizedOperation") || !strings.Contains(err.Error(), "need ec2:DescribeInstances") || errors.Is(err, inventory.ErrUnknownHost) {
		t.Errorf("got %v, want the permission error, not an unknown host", err)
	}
	if n := srv.Lists(); n != 1 {
		t.Errorf("got %d attempts, want 1: UnauthorizedOperation is not retried", n)
	}
	if _, err := src.Select(context.Background(), "", nil); err != nil {
		t.Errorf("got %v: with no listing at all, the next call must try again", err)
	}
}

func TestRefresh(t *testing.T) {
	src, srv, _ := setup(t)
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := srv.Lists(); n != 2 {
		t.Errorf("got %d listings, want Refresh to list whatever the TTL", n)
	}
}

func TestSigning(t *testing.T) {
	tests := []struct {
		name string
		edit func(*testing.T, *ec2.Config)
		want string
	}{
		{"wrong region", func(_ *testing.T, c *ec2.Config) { c.Region = "us-east-1" }, "AuthFailure"},
		{"wrong secret", func(t *testing.T, _ *ec2.Config) { t.Setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret") }, "SignatureDoesNotMatch"},
		{"unknown key", func(t *testing.T, _ *ec2.Config) { t.Setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN000000000") }, "AuthFailure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ec2test.Setenv(t)
			srv := ec2test.New(t, fleet...)
			cfg := config(srv.URL)
			tc.edit(t, &cfg)
			src, err := ec2.New(context.Background(), cfg, bastions)
			if err != nil {
				t.Fatal(err)
			}
			err = src.Refresh(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "check the AWS credentials and region") {
				t.Errorf("got %v, want %s", err, tc.want)
			}
			if strings.Contains(err.Error(), ec2test.SecretAccessKey) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	ec2test.Setenv(t)
	tests := []struct {
		name string
		edit func(*ec2.Config)
		want string
	}{
		{"unknown vpc bastion", func(c *ec2.Config) { c.Bastions.VPC[vpcB] = "jump-z" }, `bastions.vpc.` + vpcB + `: "jump-z" is not among the inventory's bastions (jump-a, jump-b, jump-default)`},
		{"unknown subnet bastion", func(c *ec2.Config) { c.Bastions.Subnet[subB1] = "jump-z" }, `bastions.subnet.` + subB1 + `: "jump-z"`},
		{"unknown default bastion", func(c *ec2.Config) { c.Bastions.Default = "jump-z" }, `bastions.default: "jump-z"`},
		{"invalid config", func(c *ec2.Config) { c.User = "" }, "user: required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config("https://ec2.eu-west-1.amazonaws.com")
			tc.edit(&cfg)
			if _, err := ec2.New(context.Background(), cfg, bastions); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := ec2.New(context.Background(), ec2.Config{Region: "eu-west-1", User: "ec2-user"}, nil); err != nil {
		t.Errorf("a minimal configuration: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := ec2.Config{Region: "eu-west-1", User: "ec2-user"}
	tests := []struct {
		name string
		edit func(*ec2.Config)
		want string // empty: valid
	}{
		{"minimal", func(*ec2.Config) {}, ""},
		{"gov region", func(c *ec2.Config) { c.Region = "us-gov-west-1" }, ""},
		{"no region", func(c *ec2.Config) { c.Region = "" }, "region: required"},
		{"bad region", func(c *ec2.Config) { c.Region = "Ireland" }, `region: "Ireland" is not an AWS region name`},
		{"no user", func(c *ec2.Config) { c.User = "" }, "user: required"},
		{"https endpoint", func(c *ec2.Config) { c.Endpoint = "https://vpce-0a.ec2.eu-west-1.vpce.amazonaws.com" }, ""},
		{"loopback http", func(c *ec2.Config) { c.Endpoint = "http://127.0.0.1:4566" }, ""},
		{"remote http", func(c *ec2.Config) { c.Endpoint = "http://ec2.example.com" }, "endpoint: \"http://ec2.example.com\": use https"},
		{"endpoint without host", func(c *ec2.Config) { c.Endpoint = "https://" }, "has no host"},
		{"state filter", func(c *ec2.Config) { c.Filters = map[string][]string{"instance-state-name": {"stopped"}} }, "filters.instance-state-name: firstlook only uses running instances"},
		{"filter without values", func(c *ec2.Config) { c.Filters = map[string][]string{"tag:env": nil} }, "filters.tag:env: no values"},
		{"empty filter value", func(c *ec2.Config) { c.Filters = map[string][]string{"tag:env": {""}} }, "filters.tag:env: an empty value"},
		{"vpc map holds a subnet", func(c *ec2.Config) { c.Bastions.VPC = map[string]string{subA1: "jump-a"} }, "is not a VPC id"},
		{"subnet map holds a vpc", func(c *ec2.Config) { c.Bastions.Subnet = map[string]string{vpcA: "jump-a"} }, "is not a subnet id"},
		{"port", func(c *ec2.Config) { c.Port = 70000 }, "port: 70000 out of range"},
		{"label twice", func(c *ec2.Config) { c.LabelsFromTags = []string{"env", "env"} }, `labels_from_tags[1]: "env" is listed twice`},
		{"empty label", func(c *ec2.Config) { c.LabelsFromTags = []string{""} }, "labels_from_tags[0]: empty tag key"},
		{"negative ttl", func(c *ec2.Config) { c.CacheTTL = -time.Second }, "cache_ttl: -1s is negative"},
		{"stale shorter than ttl", func(c *ec2.Config) { c.CacheTTL, c.MaxStale = 5*time.Minute, time.Minute }, "max_stale: 1m0s is shorter than cache_ttl 5m0s"},
		{"negative timeout", func(c *ec2.Config) { c.Timeout = -time.Second }, "timeout: -1s is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	d := valid.WithDefaults()
	if d.Port != 22 || d.NameTag != "Name" || d.CacheTTL != time.Minute || d.MaxStale != 15*time.Minute || d.Timeout != 20*time.Second {
		t.Errorf("got defaults %+v", d)
	}
	if d := (ec2.Config{CacheTTL: time.Hour}).WithDefaults(); d.MaxStale != time.Hour {
		t.Errorf("got max_stale %s with a 1h TTL, want the TTL", d.MaxStale)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
region: eu-west-1
filters:
  tag:env: [prod]
  vpc-id: [vpc-0aaaaaaaaaaaaaaa1]
bastions:
  vpc: {vpc-0aaaaaaaaaaaaaaa1: jump-a}
  subnet: {subnet-0aaaaaaaaaaaaaa12: jump-b}
  default: jump-default
user: ec2-user
user_tag: ssh_user
port: 2222
name_tag: Hostname
labels_from_tags: [env, team]
group_tag: role
cache_ttl: 30s
max_stale: 5m
timeout: 10s
`
	var c ec2.Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.CacheTTL != 30*time.Second || c.MaxStale != 5*time.Minute || c.Timeout != 10*time.Second || c.Port != 2222 || c.NameTag != "Hostname" ||
		c.Bastions.Subnet[subA2] != "jump-b" || !slices.Equal(c.Filters["vpc-id"], []string{vpcA}) || c.GroupTag != "role" || c.UserTag != "ssh_user" {
		t.Errorf("got %+v", c)
	}
}

func TestNameTag(t *testing.T) {
	src, _, _ := setup(t, func(c *ec2.Config) { c.NameTag = "team" })
	h, err := src.Resolve(context.Background(), "sre")
	if err != nil {
		t.Fatal(err)
	}
	if h.Name != "sre" || h.Address != "10.0.1.11" || !slices.Contains(h.Aliases, idWeb1) {
		t.Errorf("got %+v, want web-1 named by its team tag", h)
	}
	if _, err := src.Resolve(context.Background(), "web-1"); !errors.Is(err, inventory.ErrUnknownHost) {
		t.Errorf("got %v, want Name no longer to name hosts", err)
	}
}
