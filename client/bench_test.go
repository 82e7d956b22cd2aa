package client

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/api/wire"
	"github.com/switchyard-io/switchyard/store"
)

// BenchmarkCachedLookupAndPick measures Lookup and Pick answered from the
// in-memory view (here loaded from a snapshot, no server), 10 instances.
//
//	go test ./client -run - -bench Cached -benchmem
func BenchmarkCachedLookupAndPick(b *testing.B) {
	s := &snapshot{WrittenAt: time.Now(), Namespace: "default", Services: map[string]*snapshotEntry{"orders": {}}}
	for k := range 10 {
		in := &store.Instance{ID: fmt.Sprintf("o-%d", k), Namespace: "default", Service: "orders", Address: "10.0.0.1", Port: 80, Weight: 100, Enabled: true, Healthy: true}
		s.Services["orders"].Instances = append(s.Services["orders"].Instances, wire.Instance{Instance: in})
	}
	dir := b.TempDir()
	if err := writeSnapshot(dir, s); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{CacheDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.Lookup(ctx, "orders"); err != nil {
		b.Fatal(err)
	}
	b.Run("Lookup", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Lookup(ctx, "orders"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Pick", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			in, err := c.Pick(ctx, "orders", PickOptions{})
			if err != nil {
				b.Fatal(err)
			}
			c.Done("orders", in, nil)
		}
	})
}
