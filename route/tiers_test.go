package route

import (
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/switchyard-io/switchyard/store"
)

// Whatever the fleet, the caller and the settings: the first tier's usable
// instances are exactly Select's candidates, in Select's order; every
// serving instance is in exactly one tier, none that does not serve is in
// any; no tier is empty; tiers and their levels come nearest first; beyond
// the first, an instance is usable exactly when it is healthy.
func TestTiersProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		var all []*store.Instance
		for k := range n {
			all = append(all, &store.Instance{ID: fmt.Sprintf("i-%02d", k), Locality: genLocality(t, fmt.Sprint("i", k)),
				Weight:  rapid.SampledFrom([]int{0, 1, 100}).Draw(t, "w"),
				Enabled: rapid.Bool().Draw(t, "enabled"), Healthy: rapid.Bool().Draw(t, "healthy")})
		}
		s := store.DefaultServiceSettings()
		s.MinHealthyRatio = rapid.Float64Range(0, 1).Draw(t, "ratio")
		s.ProtectThreshold = rapid.Float64Range(0, 1).Draw(t, "protect")
		in := Input{Caller: genLocality(t, "caller"), Settings: s, Instances: all, Topology: RTTTable{"d1": {"d2": 5}}}
		sel, tiers := Select(in), Tiers(in)

		var firstUsable []string
		seen := map[string]int{}
		prev := Level(-1)
		for k, tr := range tiers {
			if len(tr.Instances) == 0 || len(tr.Instances) != len(tr.Usable) || len(tr.Levels) == 0 {
				t.Fatalf("tier %d: %d instances, %d usable flags, %d levels", k, len(tr.Instances), len(tr.Usable), len(tr.Levels))
			}
			for _, l := range tr.Levels {
				if l <= prev {
					t.Fatalf("tier %d: level %v after %v", k, l, prev)
				}
				prev = l
			}
			if k > 0 && len(tr.Levels) != 1 {
				t.Fatalf("tier %d beyond the scope holds levels %v", k, tr.Levels)
			}
			for j, i := range tr.Instances {
				seen[i.ID]++
				if k == 0 && tr.Usable[j] {
					firstUsable = append(firstUsable, i.ID)
				}
				if k > 0 && tr.Usable[j] != i.Healthy {
					t.Fatalf("tier %d: %s healthy=%v usable=%v", k, i.ID, i.Healthy, tr.Usable[j])
				}
			}
		}
		var cands []string
		for _, c := range sel.Candidates {
			cands = append(cands, c.Instance.ID)
		}
		if !slices.Equal(firstUsable, cands) {
			t.Fatalf("first tier's usable %v, Select's candidates %v", firstUsable, cands)
		}
		if len(tiers) > 0 && !slices.Equal(tiers[0].Levels, sel.Levels) {
			t.Fatalf("first tier's levels %v, Select's %v", tiers[0].Levels, sel.Levels)
		}
		for _, i := range all {
			want := 0
			if i.Enabled && i.Weight > 0 {
				want = 1
			}
			if seen[i.ID] != want {
				t.Fatalf("%s (enabled=%v weight=%d) in %d tiers", i.ID, i.Enabled, i.Weight, seen[i.ID])
			}
		}
	})
}
