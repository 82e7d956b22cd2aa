package raft

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
)

// BenchmarkApply measures registrations through Raft on a three-node
// in-process cluster at several concurrencies, sent to a follower so each
// write is forwarded. Throughput should grow with concurrency: concurrent
// writes share batch entries, disk syncs and replication rounds.
func BenchmarkApply(b *testing.B) {
	benchmarkApply(b, func(c *cluster, leader int) *Node { return c.nodes[followers(c, leader)[0]] })
}

// BenchmarkApplyLeader sends every write to the leader: no forwarding hop.
func BenchmarkApplyLeader(b *testing.B) {
	benchmarkApply(b, func(c *cluster, leader int) *Node { return c.nodes[leader] })
}

func benchmarkApply(b *testing.B, target func(c *cluster, leader int) *Node) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			c := newCluster(b, 3)
			n := target(c, c.waitLeader())
			var seq atomic.Int64
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("i-%d", seq.Add(1))
					if _, err := register(context.Background(), n, "default", "bench", id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
