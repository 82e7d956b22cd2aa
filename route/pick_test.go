package route

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/switchyard-io/switchyard/store"
)

func pickerOf(weights ...int) (*Picker, []*store.Instance) {
	var all []*store.Instance
	for k, w := range weights {
		all = append(all, inst(fmt.Sprintf("i-%03d", k), "", "", "", w, true))
	}
	return NewPicker(Select(Input{Settings: settings, Instances: all})), all
}

func TestWeightedRandomShares(t *testing.T) {
	p, all := pickerOf(100, 300, 600, 1000, 50)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 100000
	counts := map[string]int{}
	for range n {
		c, err := p.Pick(PickOptions{Rand: rng.Uint64})
		if err != nil {
			t.Fatal(err)
		}
		counts[c.Instance.ID]++
	}
	total := 2050.0
	for _, i := range all {
		want := float64(i.Weight) / total
		got := float64(counts[i.ID]) / n
		if math.Abs(got-want) > 0.02*want+0.001 {
			t.Errorf("%s (weight %d): share %.4f, want %.4f ± 2%%", i.ID, i.Weight, got, want)
		}
	}
}

// Weights are integers with no rounding: 1 next to 10000 gets exactly
// 1/10001 of the random numbers, and one pick in each cycle of 10001.
func TestWeightsWithoutRoundingLoss(t *testing.T) {
	p, _ := pickerOf(1, 10000)
	light := 0
	for r := range uint64(10001) {
		if p.cands[p.weighted(r)].Instance.Weight == 1 {
			light++
		}
	}
	if light != 1 {
		t.Fatalf("weight 1 of 10001 took %d of 10001 random numbers", light)
	}
	counts := map[int]int{}
	for range 10001 {
		c, _ := p.Pick(PickOptions{Balancer: RoundRobin})
		counts[c.Instance.Weight]++
	}
	if counts[1] != 1 || counts[10000] != 10000 {
		t.Fatalf("round robin over one cycle: %v", counts)
	}
}

func TestSmoothRoundRobinExactAndSpread(t *testing.T) {
	p, all := pickerOf(5, 1, 1)
	var seq []string
	for range 7 {
		c, _ := p.Pick(PickOptions{Balancer: RoundRobin})
		seq = append(seq, c.Instance.ID)
	}
	// nginx's example: a a b a c a a for weights 5, 1, 1.
	want := []string{"i-000", "i-000", "i-001", "i-000", "i-002", "i-000", "i-000"}
	for k := range want {
		if seq[k] != want[k] {
			t.Fatalf("sequence %v, want %v", seq, want)
		}
	}
	// Exact in every cycle, for any weights.
	p, all = pickerOf(3, 7, 11, 1, 100)
	for cycle := range 5 {
		counts := map[string]int{}
		for range 122 {
			c, _ := p.Pick(PickOptions{Balancer: RoundRobin})
			counts[c.Instance.ID]++
		}
		for _, i := range all {
			if counts[i.ID] != i.Weight {
				t.Fatalf("cycle %d: %s picked %d times, weight %d", cycle, i.ID, counts[i.ID], i.Weight)
			}
		}
	}
}

func TestLeastLoadedPrefersTheIdle(t *testing.T) {
	p, _ := pickerOf(100, 100, 100, 100)
	load := map[string]int{"i-000": 50, "i-001": 50, "i-002": 50, "i-003": 0}
	rng := rand.New(rand.NewPCG(3, 4))
	idle := 0
	for range 1000 {
		c, err := p.Pick(PickOptions{Balancer: LeastLoaded, Rand: rng.Uint64, InFlight: func(id string) int { return load[id] }})
		if err != nil {
			t.Fatal(err)
		}
		if c.Instance.ID == "i-003" {
			idle++
		}
	}
	// Two draws of four: the idle one is among them with probability
	// 1 - (3/4)^2 = 7/16 (redraws when both are the same push it higher).
	if idle < 400 {
		t.Fatalf("the idle instance got %d of 1000 picks", idle)
	}
	// Load per unit of weight: 10 in flight on weight 1000 beats 2 on 100.
	// The light one wins only when every draw was it (it has 1/11 of
	// the weight, and equal draws are redrawn).
	p, _ = pickerOf(1000, 100)
	load = map[string]int{"i-000": 10, "i-001": 2}
	light := 0
	for range 1000 {
		c, _ := p.Pick(PickOptions{Balancer: LeastLoaded, Rand: rng.Uint64, InFlight: func(id string) int { return load[id] }})
		if c.Instance.ID == "i-001" {
			light++
		}
	}
	if light > 10 {
		t.Fatalf("2 in flight on weight 100 chosen %d of 1000 times over 10 on weight 1000", light)
	}
}

func keys(n int) []string {
	out := make([]string, n)
	for k := range out {
		out[k] = fmt.Sprintf("user-%d", k)
	}
	return out
}

func TestConsistentHashMovesOnlyItsShare(t *testing.T) {
	for _, n := range []int{3, 10, 50} {
		weights := make([]int, n)
		for k := range weights {
			weights[k] = 100
		}
		before, _ := pickerOf(weights...)
		after, _ := pickerOf(append(weights, 100)...)
		moved := 0
		ks := keys(10000)
		for _, k := range ks {
			a, _ := before.Pick(PickOptions{Balancer: ConsistentHash, Key: k})
			b, _ := after.Pick(PickOptions{Balancer: ConsistentHash, Key: k})
			if a.Instance.ID != b.Instance.ID {
				moved++
				if b.Instance.ID != fmt.Sprintf("i-%03d", n) {
					t.Fatalf("n=%d: key %s moved from %s to %s, not to the new instance", n, k, a.Instance.ID, b.Instance.ID)
				}
			}
		}
		limit := 1/float64(n+1) + 0.02
		if share := float64(moved) / 10000; share > limit {
			t.Errorf("n=%d: adding one instance moved %.3f of the keys, more than %.3f", n, share, limit)
		}
	}
	// Sticky: the same key, the same instance.
	p, _ := pickerOf(100, 200, 300)
	a, _ := p.Pick(PickOptions{Balancer: ConsistentHash, Key: "session-42"})
	for range 100 {
		if b, _ := p.Pick(PickOptions{Balancer: ConsistentHash, Key: "session-42"}); b.Instance.ID != a.Instance.ID {
			t.Fatal("consistent hash is not sticky")
		}
	}
}

func TestConsistentHashFollowsWeights(t *testing.T) {
	p, all := pickerOf(100, 300, 600)
	counts := map[string]int{}
	for _, k := range keys(30000) {
		c, _ := p.Pick(PickOptions{Balancer: ConsistentHash, Key: k})
		counts[c.Instance.ID]++
	}
	for _, i := range all {
		want := float64(i.Weight) / 1000
		if got := float64(counts[i.ID]) / 30000; math.Abs(got-want) > 0.02 {
			t.Errorf("%s weight %d: share %.3f, want %.3f", i.ID, i.Weight, got, want)
		}
	}
}

// With bounded load, 10,000 sticky keys assigned one after another (each
// staying in flight) leave no instance above (1+ε) × the mean, although
// plain rendezvous hashing would load some far more.
func TestConsistentHashBoundedLoad(t *testing.T) {
	const n, eps = 10, 0.25
	weights := make([]int, n)
	for k := range weights {
		weights[k] = 100
	}
	p, _ := pickerOf(weights...)
	load := map[string]int{}
	inFlight := func(id string) int { return load[id] }
	for _, k := range keys(10000) {
		c, err := p.Pick(PickOptions{Balancer: ConsistentHash, Key: k, InFlight: inFlight, LoadFactor: eps})
		if err != nil {
			t.Fatal(err)
		}
		load[c.Instance.ID]++
	}
	mean := 10000.0 / n
	for id, l := range load {
		if float64(l) > math.Ceil((1+eps)*mean) {
			t.Errorf("%s carries %d, more than (1+ε) × mean = %.0f", id, l, (1+eps)*mean)
		}
	}
}

func TestPickRejectsUnknownBalancer(t *testing.T) {
	p, _ := pickerOf(1)
	if _, err := p.Pick(PickOptions{Balancer: "fastest"}); !errors.Is(err, ErrUnknownBalancer) {
		t.Fatalf("unknown balancer: %v", err)
	}
	if _, err := p.Pick(PickOptions{}); err == nil {
		t.Fatal("weighted random without a random source")
	}
	for _, b := range store.Balancers {
		found := false
		for _, d := range Balancers {
			found = found || d == b
		}
		if !found {
			t.Errorf("store accepts balancer %q that route does not know", b)
		}
	}
}
