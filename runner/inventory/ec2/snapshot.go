package ec2

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/firstlook/firstlook/runner/inventory"
)

// snapshot is one listing of the running instances that match the
// filters, indexed the ways a hint can name them.
type snapshot struct {
	at      time.Time
	entries []entry // ordered by host name
	byID    map[string]int
	byIP    map[string]int
	byName  map[string][]int // Name tag → entries carrying it

	mu     sync.Mutex
	misses map[string]error // hints looked up since and not found
}

// entry is one listed instance: its host, or why it cannot be one.
type entry struct {
	id, name string // instance id, Name tag
	host     inventory.Host
	err      error
}

func (s *Source) build(at time.Time, list []instance) *snapshot {
	names := map[string]int{}
	for _, in := range list {
		if n := in.tags[s.cfg.NameTag]; n != "" {
			names[n]++
		}
	}
	snap := &snapshot{at: at, byID: map[string]int{}, byIP: map[string]int{}, byName: map[string][]int{}, misses: map[string]error{}}
	for _, in := range list {
		if in.state != string(types.InstanceStateNameRunning) || in.id == "" {
			continue // the filter asked for running ones; be sure
		}
		name := in.tags[s.cfg.NameTag]
		h, err := s.host(in, names[name] == 1)
		snap.entries = append(snap.entries, entry{id: in.id, name: name, host: h, err: err})
	}
	slices.SortFunc(snap.entries, func(a, b entry) int {
		return cmp.Or(cmp.Compare(a.host.Name, b.host.Name), cmp.Compare(a.id, b.id))
	})
	for i, e := range snap.entries {
		snap.byID[e.id] = i
		if e.err == nil {
			snap.byIP[e.host.Address] = i
		}
		if e.name != "" {
			snap.byName[e.name] = append(snap.byName[e.name], i)
		}
	}
	return snap
}

func (snap *snapshot) miss(hint string) (error, bool) {
	snap.mu.Lock()
	defer snap.mu.Unlock()
	err, ok := snap.misses[hint]
	return err, ok
}

// remember records a hint the lookup did not find, until the next
// listing: alert text is attacker-controlled, and must not turn into one
// API request per mention.
func (snap *snapshot) remember(hint string, err error) {
	snap.mu.Lock()
	defer snap.mu.Unlock()
	snap.misses[hint] = err
}

// current returns a listing young enough to use: the cached one within
// CacheTTL, else a new one. When the new one fails, the cached one serves
// until it is MaxStale old, and no new attempt is made for a CacheTTL;
// with no listing at all, every call tries again.
func (s *Source) current(ctx context.Context) (*snapshot, error) {
	now := s.now()
	s.mu.Lock()
	cur, failedAt, lastErr := s.cur, s.failedAt, s.lastErr
	s.mu.Unlock()
	if cur != nil {
		if now.Sub(cur.at) < s.cfg.CacheTTL {
			return cur, nil
		}
		if !failedAt.IsZero() && now.Sub(failedAt) < s.cfg.CacheTTL {
			return s.stale(cur, now, lastErr)
		}
	}
	snap, err := s.refresh(ctx)
	if err == nil {
		return snap, nil
	}
	if cur == nil {
		return nil, err
	}
	return s.stale(cur, now, err)
}

func (s *Source) stale(cur *snapshot, now time.Time, err error) (*snapshot, error) {
	if age := now.Sub(cur.at); age > s.cfg.MaxStale {
		return nil, fmt.Errorf("%w (the last listing is %s old, past max_stale %s)", err, age.Round(time.Second), s.cfg.MaxStale)
	}
	return cur, nil
}

// refresh makes a new listing, or waits for the one under way. The
// listing runs under its own deadline, detached from the caller that
// started it: a caller that gives up does not fail the others waiting on
// the same listing, and the listing ends by Timeout whatever happens.
func (s *Source) refresh(ctx context.Context) (*snapshot, error) {
	ch := s.flight.DoChan("list", func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		defer cancel()
		at := s.now()
		list, err := s.list(lctx, s.filters(types.Filter{Name: aws.String("instance-state-name"), Values: []string{string(types.InstanceStateNameRunning)}}))
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.failedAt, s.lastErr = s.now(), err
			return nil, err
		}
		s.cur, s.failedAt, s.lastErr = s.build(at, list), time.Time{}, nil
		return s.cur, nil
	})
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*snapshot), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("ec2: list instances: %w", ctx.Err())
	}
}

// filters returns the configured filters, in a stable order, and extra.
func (s *Source) filters(extra ...types.Filter) []types.Filter {
	var out []types.Filter
	for _, name := range sortedKeys(s.cfg.Filters) {
		out = append(out, types.Filter{Name: aws.String(name), Values: s.cfg.Filters[name]})
	}
	return append(out, extra...)
}

// list pages through DescribeInstances.
func (s *Source) list(ctx context.Context, filters []types.Filter) ([]instance, error) {
	p := ec2.NewDescribeInstancesPaginator(s.client, &ec2.DescribeInstancesInput{Filters: filters}, func(o *ec2.DescribeInstancesPaginatorOptions) {
		o.Limit = 1000 // the most EC2 returns in a page
	})
	var out []instance
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, describeError(err)
		}
		for _, r := range page.Reservations {
			for _, in := range r.Instances {
				out = append(out, fromAPI(in))
			}
		}
	}
	return out, nil
}
