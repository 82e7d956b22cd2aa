package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/client"
	"github.com/switchyard-io/switchyard/route"
	"github.com/switchyard-io/switchyard/store"
)

// topology gives the round-trip time between datacenters for ordering other
// regions: a static table from the configuration wins; otherwise, from this
// server's datacenter, the smallest gossip RTT to a live server of the other
// datacenter. RTTs between two other datacenters are unknown here.
type topology struct {
	s      *Server
	static route.RTTTable
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
func ParseRTTTable(s string) (route.RTTTable, error) {
	t := route.RTTTable{}
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

// rttMatrix gives the round-trip times between every pair of datacenters
// that has a live server: from this server's datacenter its own gossip
// RTTs, from each other datacenter those of one of its servers (asked over
// HTTP), and the configured table over both.
func (s *Server) rttMatrix(ctx context.Context) (wire.RTTMatrix, error) {
	s.rttMu.Lock()
	defer s.rttMu.Unlock() // one build at a time; the others take its answer
	if time.Since(s.rttAt) < 2*time.Second {
		return s.rttLast, nil
	}
	m := s.buildRTTMatrix(ctx)
	s.rttLast, s.rttAt = m, time.Now()
	return m, nil
}

func (s *Server) buildRTTMatrix(ctx context.Context) wire.RTTMatrix {
	own := s.cfg.Locality.Datacenter
	_, servers := s.node.Store().Servers()
	httpOf := map[string]string{}
	for _, srv := range servers {
		httpOf[srv.ID] = srv.HTTPAddr
	}
	askOf := map[string]string{} // datacenter -> a live server's HTTP address
	dcs := map[string]bool{}
	if own != "" {
		dcs[own] = true
	}
	for _, m := range s.pool.Members() {
		dc := m.Meta.Datacenter
		if dc == "" || !m.Live() {
			continue
		}
		dcs[dc] = true
		if addr := httpOf[m.Name]; addr != "" && dc != own && askOf[dc] == "" && !strings.Contains(addr, "/") {
			askOf[dc] = addr
		}
	}
	out := wire.RTTMatrix{Datacenters: slices.Sorted(maps.Keys(dcs)), RTTMs: map[string]map[string]float64{}}
	set := func(from, to string, d time.Duration) {
		if out.RTTMs[from] == nil {
			out.RTTMs[from] = map[string]float64{}
		}
		ms := float64(d.Microseconds()) / 1000
		if cur, ok := out.RTTMs[from][to]; !ok || ms < cur {
			out.RTTMs[from][to] = ms
		}
	}
	topo := &topology{s: s}
	for dc := range dcs {
		if d, ok := topo.RTT(own, dc); ok && own != "" {
			set(own, dc, d)
		}
	}
	type answer struct {
		dc string
		ms []wire.Member
	}
	answers := make(chan answer, len(askOf))
	for dc, addr := range askOf {
		go func() {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			var ms []wire.Member
			if c, err := client.NewAPI(s.apiURL(addr), s.apiClient()); err == nil {
				if ms, err = c.Members(actx); err != nil {
					s.logger.Debug("RTT matrix: a datacenter's server did not answer", "datacenter", dc, "err", err)
				}
			}
			answers <- answer{dc, ms}
		}()
	}
	for range askOf {
		a := <-answers
		if a.ms == nil {
			continue
		}
		set(a.dc, a.dc, 0)
		for _, m := range a.ms {
			if m.Locality.Datacenter != "" && m.Locality.Datacenter != a.dc && m.RTTMs > 0 && m.Status == "alive" {
				set(a.dc, m.Locality.Datacenter, time.Duration(m.RTTMs*float64(time.Millisecond)))
			}
		}
	}
	for from, row := range s.cfg.DatacenterRTT {
		for to, d := range row {
			if out.RTTMs[from] == nil {
				out.RTTMs[from] = map[string]float64{}
			}
			out.RTTMs[from][to] = float64(d.Microseconds()) / 1000
		}
	}
	return out
}
