package api

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Catch-ups for unknown tokens: one that began after a request arrived
// answers for it, a later request gets a new one, and a crowd arriving
// together shares a few.
func TestTokenCatchUpCoalesces(t *testing.T) {
	var reads atomic.Int32
	read := func(ctx context.Context) error {
		reads.Add(1)
		return nil
	}
	cu := newTokenCatchUp(20 * time.Millisecond)
	ctx := context.Background()

	if err := cu.wait(ctx, time.Now(), read); err != nil || reads.Load() != 1 {
		t.Fatalf("first unknown token: err %v, %d reads, want one", err, reads.Load())
	}
	// Arrived before the last read began: covered by it.
	if err := cu.wait(ctx, cu.last.Add(-time.Millisecond), read); err != nil || reads.Load() != 1 {
		t.Fatalf("covered request: err %v, %d reads, want still one", err, reads.Load())
	}
	// Arrived after it: a new read, after the interval.
	start := time.Now()
	if err := cu.wait(ctx, time.Now(), read); err != nil || reads.Load() != 2 {
		t.Fatalf("later request: err %v, %d reads, want two", err, reads.Load())
	}
	if took := time.Since(start); took < 10*time.Millisecond {
		t.Fatalf("the second read started %v after the first, before the interval", took)
	}

	// 200 requests arriving together: a handful of reads, every one answered.
	reads.Store(0)
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cu.wait(ctx, time.Now(), read); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := reads.Load(); n < 1 || n > 20 {
		t.Fatalf("200 concurrent unknown tokens made %d reads", n)
	}
	t.Logf("200 concurrent unknown tokens made %d reads", reads.Load())

	// A caller that gives up while waiting for its turn gets its own error.
	cu.sem <- struct{}{}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := cu.wait(cctx, time.Now(), read); err == nil {
		t.Fatal("a caller that gave up got no error")
	}
	<-cu.sem
}
