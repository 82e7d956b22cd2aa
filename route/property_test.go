package route

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"pgregory.net/rapid"

	"github.com/switchyard-io/switchyard/store"
)

func genLocality(t *rapid.T, label string) store.Locality {
	return store.Locality{
		Region:     rapid.SampledFrom([]string{"", "eu", "us", "ap"}).Draw(t, label+".region"),
		Datacenter: rapid.SampledFrom([]string{"", "d1", "d2"}).Draw(t, label+".dc"),
		Unit:       rapid.SampledFrom([]string{"", "u1", "u2"}).Draw(t, label+".unit"),
	}
}

// Whatever the fleet, the caller and the settings: no disabled or weight-0
// instance is ever a candidate or picked, unhealthy ones only under
// protection, candidates come nearest level first, and every pick is a
// candidate.
func TestSelectProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		var all []*store.Instance
		for k := range n {
			l := genLocality(t, fmt.Sprint("i", k))
			all = append(all, &store.Instance{ID: fmt.Sprintf("i-%02d", k), Locality: l,
				Weight:  rapid.SampledFrom([]int{0, 1, 100, 10000}).Draw(t, "w"),
				Enabled: rapid.Bool().Draw(t, "enabled"), Healthy: rapid.Bool().Draw(t, "healthy")})
		}
		s := store.DefaultServiceSettings()
		s.MinHealthyRatio = rapid.Float64Range(0, 1).Draw(t, "ratio")
		s.ProtectThreshold = rapid.Float64Range(0, 1).Draw(t, "protect")
		caller := genLocality(t, "caller")
		topo := RTTTable{"d1": {"d2": 5}}
		sel := Select(Input{Caller: caller, Settings: s, Instances: all, Topology: topo})
		var total int64
		prev := Level(-1)
		for _, c := range sel.Candidates {
			i := c.Instance
			if !i.Enabled || i.Weight <= 0 {
				t.Fatalf("%s enabled=%v weight=%d is a candidate", i.ID, i.Enabled, i.Weight)
			}
			if !i.Healthy && !sel.Protected {
				t.Fatalf("unhealthy %s is a candidate without protection", i.ID)
			}
			if c.Level < prev {
				t.Fatalf("candidates out of level order: %v after %v", c.Level, prev)
			}
			prev = c.Level
			total += int64(i.Weight)
		}
		if total != sel.TotalWeight {
			t.Fatalf("total weight %d, candidates sum to %d", sel.TotalWeight, total)
		}
		// If any serving instance is healthy, there is a candidate.
		anyHealthy := false
		for _, i := range all {
			anyHealthy = anyHealthy || (i.Enabled && i.Weight > 0 && i.Healthy)
		}
		if anyHealthy && len(sel.Candidates) == 0 {
			t.Fatal("a healthy serving instance exists but nothing is a candidate")
		}
		p := NewPicker(sel)
		rng := rand.New(rand.NewPCG(uint64(n), 7))
		for _, b := range Balancers {
			c, err := p.Pick(PickOptions{Balancer: b, Rand: rng.Uint64, Key: "k", InFlight: func(string) int { return 1 }})
			if len(sel.Candidates) == 0 {
				if err != ErrNoCandidate {
					t.Fatalf("%s from nothing: %v", b, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, x := range sel.Candidates {
				found = found || x.Instance == c.Instance
			}
			if !found {
				t.Fatalf("%s picked %s, not a candidate", b, c.Instance.ID)
			}
		}
	})
}
