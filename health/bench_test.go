package health

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// BenchmarkJudgeRound measures one round of the leader's judge over 100,000
// ephemeral instances in 100 services, all heartbeating (nothing to write):
// the fixed cost the leader pays every JudgeInterval.
//
//	go test ./health -run - -bench JudgeRound -benchtime 20x
func BenchmarkJudgeRound(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			st := store.New()
			clk := &clock{t: t0}
			live := NewLiveness(clk.now)
			idx := uint64(0)
			for s := range 100 {
				cmds := make([]*store.Command, 0, n/100)
				for i := range n / 100 {
					in := store.Instance{Address: "10.0.0.1", Port: 80, Weight: 1, Enabled: true, Ephemeral: true}
					id := fmt.Sprintf("i-%d", i)
					svc := fmt.Sprintf("svc-%d", s)
					cmds = append(cmds, &store.Command{Type: store.CommandRegister, Time: t0, Namespace: "default",
						Service: svc, ID: id, Instance: &in})
					live.Heard(Key{"default", svc, id})
				}
				idx++
				st.ApplyBatch(idx, cmds)
			}
			writes := 0
			j := NewJudge(JudgeConfig{Store: st, Liveness: live, Now: clk.now, IsLeader: func() bool { return true },
				SelfPreservation: DefaultSelfPreservation(),
				Apply:            func(context.Context, *store.Command) error { writes++; return nil }})
			ctx := context.Background()
			clk.add(time.Second)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := j.Round(ctx); err != nil {
					b.Fatal(err)
				}
			}
			if writes != 0 {
				b.Fatalf("%d writes with every instance alive", writes)
			}
		})
	}
}
