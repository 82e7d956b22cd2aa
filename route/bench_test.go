package route

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/switchyard-io/switchyard/store"
)

// BenchmarkPick measures one pick from a prepared Picker, per balancer,
// over 100 and 10,000 candidates; BenchmarkSelect the selection itself
// (done once per catalog change and caller locality, then memoised).
//
//	go test ./route -run - -bench . -benchmem
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{100, 10000} {
		var all []*store.Instance
		for k := range n {
			all = append(all, inst(fmt.Sprintf("i-%05d", k), "eu", "d1", "u1", 1+k%200, true))
		}
		p := NewPicker(Select(Input{Settings: settings, Instances: all}))
		rng := rand.New(rand.NewPCG(1, 2))
		inFlight := func(string) int { return 0 }
		for _, bal := range Balancers {
			b.Run(fmt.Sprintf("%s/n=%d", bal, n), func(b *testing.B) {
				o := PickOptions{Balancer: bal, Rand: rng.Uint64, Key: "session-42"}
				if bal == LeastLoaded {
					o.InFlight = inFlight
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := p.Pick(o); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkSelect(b *testing.B) {
	for _, n := range []int{100, 10000} {
		var all []*store.Instance
		regions := []string{"eu", "us", "ap"}
		for k := range n {
			all = append(all, inst(fmt.Sprintf("i-%05d", k), regions[k%3], fmt.Sprintf("d%d", k%6), fmt.Sprintf("u%d", k%12), 100, k%5 != 0))
		}
		caller := store.Locality{Region: "eu", Datacenter: "d0", Unit: "u0"}
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Select(Input{Caller: caller, Settings: settings, Instances: all})
			}
		})
	}
}
