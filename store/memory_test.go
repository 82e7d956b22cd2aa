package store

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkMemoryPerInstance fills a store with instances the way a
// registry of many services holds them (100 per service, a locality, two
// tags, two metadata entries, a TTL check) and reports the live heap they
// take per instance, after a garbage collection, beyond the empty store,
// and the rate of the last tenth of the registrations over the first's
// (1: the catalog's size costs a write nothing):
//
//	go test ./store -run '^$' -bench MemoryPerInstance -benchtime 1x
func BenchmarkMemoryPerInstance(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			var perInstance, lastOverFirst float64
			for range b.N {
				perInstance, lastOverFirst = memoryPerInstance(b, n)
			}
			b.ReportMetric(perInstance, "B/instance")
			b.ReportMetric(lastOverFirst, "last/first-tenth-rate")
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func memoryPerInstance(b *testing.B, n int) (perInstance, lastOverFirst float64) {
	before := liveHeap()
	st, lastOverFirst := fillForBenchmark(b, n)
	after := liveHeap()
	runtime.KeepAlive(st)
	return float64(after-before) / float64(n), lastOverFirst
}

// fillForBenchmark registers n instances, 100 per service, and returns the
// store and the last tenth's registration rate over the first tenth's.
func fillForBenchmark(b *testing.B, n int) (*Store, float64) {
	st := New()
	at := time.Unix(1_700_000_000, 0)
	tenth := n / 10
	var start time.Time
	var first, last time.Duration
	for i := range n {
		switch i {
		case 0, n - tenth:
			start = time.Now()
		case tenth:
			first = time.Since(start)
		}
		svc, id := fmt.Sprintf("svc-%05d", i/100), fmt.Sprintf("i-%07d", i)
		in := &Instance{
			Namespace: DefaultNamespace, Service: svc, ID: id,
			Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), Port: 8080, Weight: 100, Enabled: true, Ephemeral: true,
			Locality: Locality{Region: "eu", Datacenter: "eu-west-1", Unit: fmt.Sprintf("u%d", i%4)},
			Tags:     []string{"v2", "canary"},
			Metadata: map[string]string{"version": "2.4.1", "zone": "eu-west-1a"},
			Check:    Check{Type: "ttl"},
		}
		if err := in.Normalize(); err != nil {
			b.Fatal(err)
		}
		_, err := st.Apply(uint64(i+1), &Command{Type: CommandRegister, Namespace: DefaultNamespace,
			Service: svc, ID: id, Time: at, Instance: in})
		if err != nil {
			b.Fatal(err)
		}
	}
	last = time.Since(start)
	return st, first.Seconds() / last.Seconds()
}

// BenchmarkSnapshot writes a catalog of 100,000 instances as a snapshot
// and restores it, the work of a Raft snapshot's persist and of a new
// follower's install or a restart, per instance:
//
//	go test ./store -run '^$' -bench Snapshot -benchtime 3x
func BenchmarkSnapshot(b *testing.B) {
	const n = 100_000
	st, _ := fillForBenchmark(b, n)
	var buf bytes.Buffer
	if _, err := st.Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	b.Run("write", func(b *testing.B) {
		for range b.N {
			buf.Reset()
			if _, err := st.Snapshot().WriteTo(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/instance")
		b.ReportMetric(float64(buf.Len())/n, "bytes/instance")
	})
	b.Run("restore", func(b *testing.B) {
		for range b.N {
			if err := New().Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/instance")
	})
}
