package server

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/disaster"
	"github.com/switchyard-io/switchyard/store"
)

// topology gives the round-trip time between datacenters for ordering other
// regions: a static table from the configuration wins; otherwise, from this
// server's datacenter, the smallest gossip RTT to a live server of the other
// datacenter. RTTs between two other datacenters are unknown here.
type topology struct {
	s      *Server
	static disaster.RTTTable
}

func (t *topology) RTT(from, to string) (time.Duration, bool) {
	if from == "" || to == "" {
		return 0, false
	}
	if from == to {
		return 0, true
	}
	if d, ok := t.static.RTT(from, to); ok {
		return d, true
	}
	if from != t.s.cfg.Locality.Datacenter {
		return 0, false
	}
	best, found := time.Duration(0), false
	for _, m := range t.s.pool.Members() {
		if m.Meta.Datacenter != to || !m.Live() || m.RTT <= 0 {
			continue
		}
		if !found || m.RTT < best {
			best, found = m.RTT, true
		}
	}
	return best, found
}

// ParseRTTTable reads "dcA:dcB=80ms,dcA:dcC=120ms" (each pair one way; the
// other way is the same unless given too). Datacenter names are DNS labels,
// so they hold no colon.
func ParseRTTTable(s string) (disaster.RTTTable, error) {
	t := disaster.RTTTable{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		pair, dur, ok := strings.Cut(item, "=")
		from, to, ok2 := strings.Cut(pair, ":")
		if !ok || !ok2 || from == "" || to == "" {
			return nil, fmt.Errorf("datacenter RTT %q: use dcA:dcB=80ms", item)
		}
		for _, dc := range []string{from, to} {
			if err := store.ValidateName("datacenter", dc); err != nil {
				return nil, fmt.Errorf("datacenter RTT %q: %w", item, err)
			}
		}
		d, err := time.ParseDuration(dur)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("datacenter RTT %q: %q is no duration like 80ms", item, dur)
		}
		if t[from] == nil {
			t[from] = map[string]time.Duration{}
		}
		t[from][to] = d
	}
	return t, nil
}
