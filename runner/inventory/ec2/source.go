// Package ec2 finds inventory hosts among running EC2 instances: an
// incident that names an instance id, its Name tag or its private address
// resolves to the instance's private address, the login user and the
// bastion of its subnet or VPC. Never a public address: firstlook reaches
// instances through the bastions of the static inventory.
//
// It lists the instances with DescribeInstances (paginated) and keeps the
// listing for Config.CacheTTL; callers that need a new listing at the same
// time share one request. When a refresh fails, the last good listing is
// used for up to Config.MaxStale. A hint that the listing does not hold
// (an instance launched since, or one that is stopped) is looked up on its
// own, so the answer says why; misses are remembered until the next
// listing.
//
// The only permission it needs is ec2:DescribeInstances (which supports no
// resource-level restriction, so Resource is "*"):
//
//	{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
//	  "Action": "ec2:DescribeInstances", "Resource": "*"}]}
package ec2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/singleflight"

	"github.com/firstlook/firstlook/runner/inventory"
)

// ErrAmbiguous is returned when a Name tag names more than one running
// instance: firstlook refuses to pick one.
var ErrAmbiguous = errors.New("names more than one instance")

// Source is an inventory source over EC2.
type Source struct {
	cfg      Config
	client   ec2.DescribeInstancesAPIClient
	vpc      map[string]*inventory.Bastion
	subnet   map[string]*inventory.Bastion
	fallback *inventory.Bastion
	now      func() time.Time

	flight  singleflight.Group
	waiting atomic.Int32 // callers waiting for a listing, for tests

	mu       sync.Mutex
	cur      *snapshot
	failedAt time.Time // of the last failed refresh, zero after a success
	lastErr  error
}

var _ inventory.Source = (*Source)(nil)

// maxRetryBackoff caps the SDK retryer's wait between attempts.
var maxRetryBackoff = time.Second

// New returns a Source for c. bastions are the static inventory's
// (inventory.Inventory.Bastions); c.Bastions names them, and a name that
// is not among them is a configuration error. Credentials come from the
// AWS SDK's default chain; nothing is requested until the first lookup or
// Refresh.
func New(ctx context.Context, c Config, bastions map[string]*inventory.Bastion) (*Source, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("ec2: %w", err)
	}
	s := &Source{cfg: c, vpc: map[string]*inventory.Bastion{}, subnet: map[string]*inventory.Bastion{}, now: time.Now}
	var errs []error
	bastion := func(key, name string) *inventory.Bastion {
		if name == "none" {
			return nil
		}
		b := bastions[name]
		if b == nil {
			errs = append(errs, fmt.Errorf("bastions.%s: %q is not among the inventory's bastions (%s)", key, name, strings.Join(sortedKeys(bastions), ", ")))
		}
		return b
	}
	for _, id := range sortedKeys(c.Bastions.VPC) {
		s.vpc[id] = bastion("vpc."+id, c.Bastions.VPC[id])
	}
	for _, id := range sortedKeys(c.Bastions.Subnet) {
		s.subnet[id] = bastion("subnet."+id, c.Bastions.Subnet[id])
	}
	if c.Bastions.Default != "" {
		s.fallback = bastion("default", c.Bastions.Default)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("ec2: %w", err)
	}

	awsCfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(c.Region),
		// The SDK's standard retryer waits up to 20 s between attempts.
		// A listing runs while an incident waits for its evidence and
		// holds every caller that needs the inventory, and a failed one
		// costs little (the last listing keeps serving): retry throttling
		// (RequestLimitExceeded) and 5xx twice, at most 1 s apart, and
		// let Timeout bound the whole.
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = maxRetryBackoff
			})
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("ec2: load AWS configuration: %w", err)
	}
	s.client = ec2.NewFromConfig(awsCfg, func(o *ec2.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	return s, nil
}

// Refresh lists the instances now, whatever the listing's age. Run at
// startup, it reports a missing permission or a wrong region at once
// rather than at the first incident.
func (s *Source) Refresh(ctx context.Context) error {
	_, err := s.refresh(ctx)
	return err
}

type hintKind int

const (
	byID hintKind = iota
	byIP
	byName
)

func (k hintKind) String() string {
	return [...]string{"instance id", "private address", "name"}[k]
}

var (
	instanceID = regexp.MustCompile(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	// hostName is what a Name tag must look like to name the host; any
	// other value still resolves, but the host is named by its id.
	hostName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)
	userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$`)
)

// classify says what a hint is; ok is false for hints that cannot name
// an instance (IPv6, empty, too long).
func classify(hint string) (kind hintKind, key string, ok bool) {
	switch {
	case instanceID.MatchString(hint):
		return byID, hint, true
	case hint == "" || len(hint) > 255 || strings.ContainsFunc(hint, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return 0, "", false
	}
	if a, err := netip.ParseAddr(hint); err == nil {
		if a = a.Unmap(); a.Is4() {
			return byIP, a.String(), true
		}
		return 0, "", false
	}
	return byName, hint, true
}

// Resolve returns the running instance hint names: its instance id, its
// Name tag (exactly) or its private IPv4 address. A hint that names no
// running instance matching the filters is an error wrapping
// inventory.ErrUnknownHost, saying why; a Name shared by several running
// instances is an error wrapping ErrAmbiguous.
func (s *Source) Resolve(ctx context.Context, hint string) (inventory.Host, error) {
	kind, key, ok := classify(strings.TrimSpace(hint))
	if !ok {
		return inventory.Host{}, fmt.Errorf("ec2: %q names no instance: %w", hint, inventory.ErrUnknownHost)
	}
	snap, err := s.current(ctx)
	if err != nil {
		return inventory.Host{}, err
	}
	var found []int
	switch kind {
	case byID:
		if i, ok := snap.byID[key]; ok {
			found = []int{i}
		}
	case byIP:
		if i, ok := snap.byIP[key]; ok {
			found = []int{i}
		}
	case byName:
		found = snap.byName[key]
	}
	switch len(found) {
	case 0:
	case 1:
		e := snap.entries[found[0]]
		if e.err != nil {
			return inventory.Host{}, e.err
		}
		return clone(e.host), nil
	default:
		ids := make([]string, len(found))
		for i, j := range found {
			ids[i] = snap.entries[j].id
		}
		return inventory.Host{}, ambiguous(key, ids)
	}
	if err, ok := snap.miss(key); ok {
		return inventory.Host{}, err
	}
	h, err := s.lookup(ctx, kind, key, snap)
	if errors.Is(err, inventory.ErrUnknownHost) || errors.Is(err, ErrAmbiguous) {
		snap.remember(key, err)
	}
	return h, err
}

// lookup asks EC2 about one hint the listing does not hold, in any state,
// so that the answer can say the instance is stopped rather than unknown.
func (s *Source) lookup(ctx context.Context, kind hintKind, key string, snap *snapshot) (inventory.Host, error) {
	var name string
	switch kind {
	case byID:
		name = "instance-id"
	case byIP:
		name = "private-ip-address"
	case byName:
		// EC2 reads * and ? in filter values as wildcards; a hint is
		// matched exactly, so a wildcard hint is only looked for in the
		// listing.
		if strings.ContainsAny(key, `*?\`) {
			return inventory.Host{}, s.notFound(kind, key)
		}
		name = "tag:" + s.cfg.NameTag
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	list, err := s.list(ctx, s.filters(types.Filter{Name: aws.String(name), Values: []string{key}}))
	if err != nil {
		return inventory.Host{}, err
	}
	var running, other []instance
	for _, in := range list {
		if !(kind == byID && in.id == key || kind == byIP && in.privateIP == key || kind == byName && in.tags[s.cfg.NameTag] == key) {
			continue // what a filter matched loosely: the hint must be exact
		}
		if in.state == string(types.InstanceStateNameRunning) {
			running = append(running, in)
		} else {
			other = append(other, in)
		}
	}
	switch {
	case len(running) == 1:
		in := running[0]
		_, taken := snap.byName[in.tags[s.cfg.NameTag]]
		return s.host(in, !taken)
	case len(running) > 1:
		ids := make([]string, len(running))
		for i, in := range running {
			ids[i] = in.id
		}
		return inventory.Host{}, ambiguous(key, ids)
	case len(other) > 0:
		states := make([]string, len(other))
		for i, in := range other {
			states[i] = in.id + " is " + in.state
		}
		return inventory.Host{}, fmt.Errorf("ec2: %s %q: %s, not running: %w", kind, key, strings.Join(states, ", "), inventory.ErrUnknownHost)
	}
	return inventory.Host{}, s.notFound(kind, key)
}

func (s *Source) notFound(kind hintKind, key string) error {
	where := ""
	if len(s.cfg.Filters) > 0 {
		var fs []string
		for _, k := range sortedKeys(s.cfg.Filters) {
			fs = append(fs, k+"="+strings.Join(s.cfg.Filters[k], ","))
		}
		where = " matching " + strings.Join(fs, " ")
	}
	return fmt.Errorf("ec2: no instance%s has %s %q: %w", where, kind, key, inventory.ErrUnknownHost)
}

func ambiguous(name string, ids []string) error {
	slices.Sort(ids)
	return fmt.Errorf("ec2: name %q %w (%s): name one by instance id or private address", name, ErrAmbiguous, strings.Join(ids, ", "))
}

// Select returns the listed instances in group (when not empty) that
// carry every label in labels, ordered by name.
func (s *Source) Select(ctx context.Context, group string, labels map[string]string) ([]inventory.Host, error) {
	snap, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	var out []inventory.Host
	for _, e := range snap.entries {
		if e.err != nil || (group != "" && !slices.Contains(e.host.Groups, group)) {
			continue
		}
		match := true
		for k, v := range labels {
			if got, ok := e.host.Labels[k]; !ok || got != v {
				match = false
				break
			}
		}
		if match {
			out = append(out, clone(e.host))
		}
	}
	return out, nil
}

// instance is what firstlook uses of an EC2 instance.
type instance struct {
	id, state, privateIP, subnet, vpc string
	tags                              map[string]string
}

func fromAPI(in types.Instance) instance {
	out := instance{
		id:        aws.ToString(in.InstanceId),
		privateIP: aws.ToString(in.PrivateIpAddress),
		subnet:    aws.ToString(in.SubnetId),
		vpc:       aws.ToString(in.VpcId),
		tags:      map[string]string{},
	}
	if in.State != nil {
		out.state = string(in.State.Name)
	}
	for _, t := range in.Tags {
		out.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return out
}

// host makes an instance a host; uniqueName says no other listed instance
// carries its Name tag, which may then name the host.
func (s *Source) host(in instance, uniqueName bool) (inventory.Host, error) {
	if in.privateIP == "" {
		return inventory.Host{}, fmt.Errorf("ec2: instance %s has no private IPv4 address (firstlook reaches instances at their private address, through a bastion): %w", in.id, inventory.ErrUnknownHost)
	}
	h := inventory.Host{Name: in.id, Address: in.privateIP, Port: s.cfg.Port, User: s.cfg.User, Aliases: []string{in.id}}
	if name := in.tags[s.cfg.NameTag]; name != "" {
		if uniqueName && hostName.MatchString(name) {
			h.Name = name
		} else {
			h.Aliases = append(h.Aliases, name)
		}
	}
	if u, ok := in.tags[s.cfg.UserTag]; ok && s.cfg.UserTag != "" {
		if !userName.MatchString(u) {
			return inventory.Host{}, fmt.Errorf("ec2: instance %s: tag %s %q is not a user name: %w", in.id, s.cfg.UserTag, u, inventory.ErrUnknownHost)
		}
		h.User = u
	}
	for _, k := range s.cfg.LabelsFromTags {
		if v, ok := in.tags[k]; ok {
			if h.Labels == nil {
				h.Labels = map[string]string{}
			}
			h.Labels[k] = v
		}
	}
	if s.cfg.GroupTag != "" {
		for g := range strings.SplitSeq(in.tags[s.cfg.GroupTag], ",") {
			if g = strings.TrimSpace(g); g != "" && !slices.Contains(h.Groups, g) {
				h.Groups = append(h.Groups, g)
			}
		}
	}
	h.Bastion = s.bastion(in)
	return h, nil
}

// bastion is the subnet's bastion, else the VPC's, else the default.
func (s *Source) bastion(in instance) *inventory.Bastion {
	if b, ok := s.subnet[in.subnet]; ok {
		return b
	}
	if b, ok := s.vpc[in.vpc]; ok {
		return b
	}
	return s.fallback
}

// clone copies a host's maps and slices: callers may change what they get
// without changing the listing.
func clone(h inventory.Host) inventory.Host {
	h.Labels = maps.Clone(h.Labels)
	h.Groups = slices.Clone(h.Groups)
	h.Aliases = slices.Clone(h.Aliases)
	return h
}

// describeError adds what to do to the errors an operator can fix.
func describeError(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "UnauthorizedOperation":
			return fmt.Errorf("ec2: describe instances: %w (the credentials need ec2:DescribeInstances)", err)
		case "AuthFailure", "SignatureDoesNotMatch", "InvalidClientTokenId":
			return fmt.Errorf("ec2: describe instances: %w (check the AWS credentials and region)", err)
		}
	}
	return fmt.Errorf("ec2: describe instances: %w", err)
}
