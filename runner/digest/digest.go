// Package digest is the shift handover digest: at configured times, and on
// /firstlook digest, firstlook posts to a channel what happened in the
// window: incidents opened per service and urgency (PagerDuty's REST
// API), the ones still open, time to acknowledge and to resolve (median
// and worst), the hosts with the most incidents, and the runs firstlook
// made, with how many could not run. Each with links.
//
// Several firstlook nodes share one JetStream: each scheduled slot is
// claimed with a create-only key in the shared state, so exactly one node
// posts it. A digest that cannot be made says so in the channel.
package digest

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// Config configures the digest.
type Config struct {
	// Channel is the channel id (C…) scheduled digests are posted to.
	Channel string `yaml:"channel"`
	// Times are the local times ("09:00", "21:00") a digest is posted.
	Times []string `yaml:"times"`
	// TimeZone is the IANA zone of Times (default UTC).
	TimeZone string `yaml:"time_zone"`
	// Window is how far back a scheduled digest looks (default 12h).
	Window time.Duration `yaml:"window"`
	// APIURL is PagerDuty's REST API (default https://api.pagerduty.com).
	APIURL string `yaml:"api_url"`
	// TopHosts is how many hosts the digest names (default 5).
	TopHosts int `yaml:"top_hosts"`
}

var (
	channelIDRE = regexp.MustCompile(`^[CG][A-Z0-9]{2,}$`)
	clockRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
)

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.TimeZone = cmp.Or(c.TimeZone, "UTC")
	c.Window = cmp.Or(c.Window, 12*time.Hour)
	c.APIURL = cmp.Or(c.APIURL, "https://api.pagerduty.com")
	c.TopHosts = cmp.Or(c.TopHosts, 5)
	return c
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if c.Channel != "" && !channelIDRE.MatchString(c.Channel) {
		return fmt.Errorf("channel: %q is not a channel id (C…)", c.Channel)
	}
	if len(c.Times) > 0 && c.Channel == "" {
		return errors.New("times: set channel too: scheduled digests need somewhere to go")
	}
	for i, t := range c.Times {
		if !clockRE.MatchString(t) {
			return fmt.Errorf("times[%d]: %q is not a time of day as HH:MM", i, t)
		}
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			return fmt.Errorf("time_zone: %q: %v", c.TimeZone, err)
		}
	}
	if c.Window < 0 || c.Window > 7*24*time.Hour {
		return fmt.Errorf("window: %s is not between 0 and a week", c.Window)
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return errors.New("api_url: not an http(s) URL with a host and without credentials")
		}
	}
	if c.TopHosts < 0 {
		return fmt.Errorf("top_hosts: %d is negative", c.TopHosts)
	}
	return nil
}

// NextSlot returns the first of times (HH:MM in loc) strictly after now.
func NextSlot(now time.Time, times []string, loc *time.Location) (time.Time, bool) {
	var best time.Time
	local := now.In(loc)
	for _, t := range times {
		var h, m int
		if _, err := fmt.Sscanf(t, "%d:%d", &h, &m); err != nil {
			continue
		}
		for d := 0; d < 2; d++ {
			c := time.Date(local.Year(), local.Month(), local.Day()+d, h, m, 0, 0, loc)
			if c.After(now) {
				if best.IsZero() || c.Before(best) {
					best = c
				}
				break
			}
		}
	}
	return best, !best.IsZero()
}

// Incident is what the digest needs of an incident.
type Incident struct {
	ID, Title, URL, Service, Urgency, Status string
	Number                                   uint
	CreatedAt                                time.Time
	// AckedAt is the first acknowledgement, ResolvedAt the resolution;
	// zero when it did not happen (yet).
	AckedAt, ResolvedAt time.Time
}

// Run is one firstlook run in the window.
type Run struct {
	Source, Incident, Host, Playbook string
	At                               time.Time
	// Outcome is ok, failed or not_started.
	Outcome string
	Link    string
}

// Figures are the digest's numbers.
type Figures struct {
	Since, Until time.Time
	Opened       int
	// ByService counts opened incidents per service and urgency, most
	// first.
	ByService []ServiceCount
	// StillOpen are the window's incidents not resolved, oldest first.
	StillOpen []Incident
	TTA, TTR  Stat
	// Hosts are the hosts firstlook ran on for the most incidents.
	Hosts []HostCount
	// Runs are firstlook's runs in the window, newest first; CouldNotRun
	// counts those that did not start.
	Runs        []Run
	Failed      int
	CouldNotRun int
}

// ServiceCount is the opened incidents of one service.
type ServiceCount struct {
	Service   string
	High, Low int
}

// HostCount is the incidents one host had runs for.
type HostCount struct {
	Host      string
	Incidents int
}

// Stat is a duration's median and worst over N incidents.
type Stat struct {
	N             int
	Median, Worst time.Duration
}

// Compute works out the figures of the incidents opened in [since, until)
// and the runs made in it.
func Compute(since, until time.Time, incidents []Incident, runs []Run, topHosts int) Figures {
	f := Figures{Since: since, Until: until}
	by := map[string]*ServiceCount{}
	var tta, ttr []time.Duration
	for _, inc := range incidents {
		if inc.CreatedAt.Before(since) || !inc.CreatedAt.Before(until) {
			continue
		}
		f.Opened++
		sc := by[inc.Service]
		if sc == nil {
			sc = &ServiceCount{Service: inc.Service}
			by[inc.Service] = sc
		}
		if inc.Urgency == "low" {
			sc.Low++
		} else {
			sc.High++
		}
		if !inc.AckedAt.IsZero() {
			tta = append(tta, inc.AckedAt.Sub(inc.CreatedAt))
		}
		if !inc.ResolvedAt.IsZero() {
			ttr = append(ttr, inc.ResolvedAt.Sub(inc.CreatedAt))
		} else {
			f.StillOpen = append(f.StillOpen, inc)
		}
	}
	for _, sc := range by {
		f.ByService = append(f.ByService, *sc)
	}
	slices.SortFunc(f.ByService, func(a, b ServiceCount) int {
		return cmp.Or(cmp.Compare(b.High+b.Low, a.High+a.Low), cmp.Compare(a.Service, b.Service))
	})
	slices.SortFunc(f.StillOpen, func(a, b Incident) int { return a.CreatedAt.Compare(b.CreatedAt) })
	f.TTA, f.TTR = stat(tta), stat(ttr)

	hostIncidents := map[string]map[string]bool{}
	for _, r := range runs {
		if r.At.Before(since) || !r.At.Before(until) {
			continue
		}
		f.Runs = append(f.Runs, r)
		switch r.Outcome {
		case "not_started":
			f.CouldNotRun++
		case "failed":
			f.Failed++
		}
		if r.Outcome == "not_started" || r.Host == "" || r.Source == "slack" {
			continue // manual runs are not incidents
		}
		if hostIncidents[r.Host] == nil {
			hostIncidents[r.Host] = map[string]bool{}
		}
		hostIncidents[r.Host][r.Source+"/"+r.Incident] = true
	}
	slices.SortFunc(f.Runs, func(a, b Run) int { return b.At.Compare(a.At) })
	for h, incs := range hostIncidents {
		f.Hosts = append(f.Hosts, HostCount{Host: h, Incidents: len(incs)})
	}
	slices.SortFunc(f.Hosts, func(a, b HostCount) int {
		return cmp.Or(cmp.Compare(b.Incidents, a.Incidents), cmp.Compare(a.Host, b.Host))
	})
	if len(f.Hosts) > topHosts {
		f.Hosts = f.Hosts[:topHosts]
	}
	return f
}

// stat is the median (the lower middle of an even count) and the worst.
func stat(ds []time.Duration) Stat {
	if len(ds) == 0 {
		return Stat{}
	}
	slices.Sort(ds)
	mid := len(ds) / 2
	median := ds[mid]
	if len(ds)%2 == 0 {
		median = (ds[mid-1] + ds[mid]) / 2
	}
	return Stat{N: len(ds), Median: median, Worst: ds[len(ds)-1]}
}

// discard is a logger for nil.
func logger(l *slog.Logger) *slog.Logger { return cmp.Or(l, slog.Default()) }
