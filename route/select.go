// Package route decides where traffic goes: which instances of a service
// a caller may use, nearest first, spilling over to farther ones when the
// near ones are not healthy enough, and which one of them to pick. It is
// pure (no I/O, no clock; randomness comes from the caller) and is the one
// implementation behind the HTTP API, the DNS server and the Go SDK, so that
// every way of asking gives the same answer.
package route

import (
	"cmp"
	"slices"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// Level says how near an instance is to the caller. Lower is nearer.
type Level int

// Levels, nearest first. Other regions each form a level of their own,
// LevelRegion+1, +2, … in order of round-trip time from the caller's
// datacenter; LevelAnywhere (instances that state no locality, or a caller
// that states none) comes last.
const (
	LevelUnit       Level = 0
	LevelDatacenter Level = 1
	LevelRegion     Level = 2
	LevelAnywhere   Level = 1 << 20
)

// Name is the level's name in answers: unit, datacenter, region,
// region+1 (the nearest other region), region+2, …, anywhere.
func (l Level) Name() string {
	switch {
	case l == LevelUnit:
		return "unit"
	case l == LevelDatacenter:
		return "datacenter"
	case l == LevelRegion:
		return "region"
	case l == LevelAnywhere:
		return "anywhere"
	}
	return "region+" + itoa(int(l-LevelRegion))
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Topology knows the round-trip times between datacenters. Nil, or a pair it
// does not know, orders other regions by name.
type Topology interface {
	// RTT returns the round-trip time between two datacenters.
	RTT(fromDatacenter, toDatacenter string) (time.Duration, bool)
}

// RTTTable is a static Topology: RTT[a][b] is the time from a to b (the
// reverse direction is used when only it is given).
type RTTTable map[string]map[string]time.Duration

// RTT implements Topology.
func (t RTTTable) RTT(from, to string) (time.Duration, bool) {
	if from == to {
		return 0, true
	}
	if d, ok := t[from][to]; ok {
		return d, true
	}
	d, ok := t[to][from]
	return d, ok
}

// Candidate is an instance that may receive the caller's traffic.
type Candidate struct {
	Instance *store.Instance
	Level    Level
}

// Selection is the answer of Select.
type Selection struct {
	// Candidates are the instances that may receive traffic, nearest level
	// first, by id within a level. Disabled instances and instances of
	// weight 0 are never among them; unhealthy ones only when Protected.
	Candidates []Candidate
	// Levels are the levels that make up the chosen scope, nearest first:
	// one when the nearest level could serve alone, more after spill-over.
	Levels []Level
	// Regions name, for each of Levels, the region of another-region level
	// (region+1, region+2, …) and are "" for the others: which region a
	// level stands for moves with the round-trip times, so the scope is
	// known only with them (see Scope).
	Regions []string
	// Protected: fewer than the service's protect threshold of the scope's
	// instances are healthy, so every enabled instance of the scope is a
	// candidate, unhealthy ones included.
	Protected bool
	// TotalWeight is the sum of the candidates' weights.
	TotalWeight int64
}

// Input is what Select decides from.
type Input struct {
	// Caller is where the caller runs; empty: no preference.
	Caller   store.Locality
	Settings store.ServiceSettings
	// Instances of the service, in any order.
	Instances []*store.Instance
	Topology  Topology
}

// Select orders a service's instances by nearness to the caller and picks
// the scope traffic should go to.
//
// Levels: same unit, same datacenter, same region, then the other regions
// nearest first (by the RTT from the caller's datacenter to the region's
// nearest datacenter), then instances that state no locality. Levels
// without serving instances (enabled, weight > 0) do not count. The nearest
// level serves alone while at least min_healthy_ratio of its serving
// instances are healthy and one of them is; otherwise the next level joins
// it (spill-over), and so on, until a level that could serve alone has
// joined. The scope is every level up to that one: the healthy instances
// left in the nearer levels keep their share. If no level qualifies, the
// scope is all of them. The protect threshold then applies to the scope.
func Select(in Input) Selection {
	levels := group(in)
	var sel Selection
	end, protected := scopeOf(levels, in.Settings)
	scope := levels[:end]
	sel.Protected = protected
	n := 0
	for _, lv := range scope {
		sel.Levels = append(sel.Levels, lv.level)
		sel.Regions = append(sel.Regions, lv.region)
		n += len(lv.serving)
	}
	sel.Candidates = make([]Candidate, 0, n)
	for _, lv := range scope {
		for _, i := range lv.serving {
			if i.Healthy || sel.Protected {
				sel.Candidates = append(sel.Candidates, Candidate{Instance: i, Level: lv.level})
				sel.TotalWeight += int64(i.Weight)
			}
		}
	}
	return sel
}

// scopeOf says how many of levels (nearest first) make up the scope: the
// nearest levels up to the first that could serve alone (at least
// min_healthy_ratio of its serving instances healthy, and one of them), or
// all of them. protected: fewer than the protect threshold of the scope's
// serving instances are healthy.
func scopeOf(levels []level, st store.ServiceSettings) (end int, protected bool) {
	enabled, healthy := 0, 0
	for end < len(levels) {
		lv := levels[end]
		enabled += lv.enabled
		healthy += lv.healthy
		end++
		if lv.healthy > 0 && float64(lv.healthy) >= st.MinHealthyRatio*float64(lv.enabled) {
			break
		}
	}
	t := st.ProtectThreshold
	return end, t > 0 && enabled > 0 && float64(healthy) < t*float64(enabled)
}

// level is the instances of one level.
type level struct {
	level   Level
	region  string            // of another-region level, else ""
	serving []*store.Instance // enabled, weight > 0, by id
	enabled int               // len(serving)
	healthy int               // healthy among serving
}

// group sorts the serving instances into levels, nearest first, dropping
// empty levels.
func group(in Input) []level {
	c := in.Caller
	byLevel := map[Level]*level{}
	// Other regions: the nearest datacenter of each decides its rank.
	type regionRank struct {
		region string
		rtt    time.Duration
		known  bool
	}
	var regions []regionRank
	regionIdx := map[string]int{}
	for _, i := range in.Instances {
		if !i.Enabled || i.Weight <= 0 {
			continue
		}
		l := i.Locality
		if c.Region == "" || l.Region == "" || l.Region == c.Region {
			continue
		}
		rtt, known := time.Duration(0), false
		if in.Topology != nil && c.Datacenter != "" {
			rtt, known = in.Topology.RTT(c.Datacenter, l.Datacenter)
		}
		k, seen := regionIdx[l.Region]
		if !seen {
			regionIdx[l.Region] = len(regions)
			regions = append(regions, regionRank{region: l.Region, rtt: rtt, known: known})
			continue
		}
		r := &regions[k]
		if known && (!r.known || rtt < r.rtt) {
			r.rtt, r.known = rtt, true
		}
	}
	slices.SortFunc(regions, func(a, b regionRank) int {
		switch {
		case a.known != b.known:
			if a.known {
				return -1
			}
			return 1
		case a.known && a.rtt != b.rtt:
			return cmp.Compare(a.rtt, b.rtt)
		}
		return cmp.Compare(a.region, b.region)
	})
	rank := make(map[string]Level, len(regions))
	for k, r := range regions {
		rank[r.region] = LevelRegion + 1 + Level(k)
	}
	for _, i := range in.Instances {
		if !i.Enabled || i.Weight <= 0 {
			continue
		}
		lv := levelOf(c, i.Locality, rank)
		g := byLevel[lv]
		if g == nil {
			g = &level{level: lv}
			if lv > LevelRegion && lv < LevelAnywhere {
				g.region = i.Locality.Region
			}
			byLevel[lv] = g
		}
		g.serving = append(g.serving, i)
		g.enabled++
		if i.Healthy {
			g.healthy++
		}
	}
	out := make([]level, 0, len(byLevel))
	for _, g := range byLevel {
		slices.SortFunc(g.serving, func(a, b *store.Instance) int { return cmp.Compare(a.ID, b.ID) })
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b level) int { return cmp.Compare(a.level, b.level) })
	return out
}

func levelOf(c, l store.Locality, rank map[string]Level) Level {
	switch {
	case c.Region == "" || l.Region == "":
		return LevelAnywhere
	case l.Region != c.Region:
		return rank[l.Region]
	case c.Datacenter == "" || l.Datacenter != c.Datacenter:
		return LevelRegion
	case c.Unit == "" || l.Unit != c.Unit:
		return LevelDatacenter
	}
	return LevelUnit
}
