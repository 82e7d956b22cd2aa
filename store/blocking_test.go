package store

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// serviceQuery is a blocking query over one service. Each run stores the
// view it read in *got and then signals on ran (if not nil), so a test can
// tell when the waiter has computed its first answer and is waiting.
func serviceQuery(s *Store, ns, svc string, got **ServiceView, ran chan<- struct{}) QueryFunc {
	return func() (uint64, <-chan struct{}, error) {
		v, err := s.Service(ns, svc)
		if ran != nil {
			defer func() { ran <- struct{}{} }()
		}
		if err != nil {
			return 0, nil, err
		}
		*got = v
		return v.Index, v.WatchCh(), nil
	}
}

// waitCtx bounds a wait that must end by a write or a restore, so that a
// broken wake-up fails the test with a message instead of hanging it.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type blockResult struct {
	index uint64
	err   error
}

func TestBlockingMinIndexZeroReturnsAtOnce(t *testing.T) {
	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	runs := 0
	var view *ServiceView
	q := serviceQuery(s, DefaultNamespace, "web", &view, nil)
	ctx := waitCtx(t)
	idx, err := s.Blocking(ctx, 0, func() (uint64, <-chan struct{}, error) {
		runs++
		return q()
	})
	if err != nil || idx != 5 || runs != 1 || view == nil || view.Index != 5 {
		t.Fatalf("Blocking = %d, %v after %d runs (view %+v), want 5 after one run", idx, err, runs, view)
	}
	if ctx.Err() != nil {
		t.Fatalf("Blocking waited for the deadline instead of returning at once")
	}
}

func TestBlockingMinIndexZeroAnswerAtZero(t *testing.T) {
	// No server was ever recorded: the answer's index is 0. A first query
	// (minIndex 0) must still return it at once.
	s := New()
	ctx := waitCtx(t)
	runs := 0
	idx, err := s.Blocking(ctx, 0, func() (uint64, <-chan struct{}, error) {
		runs++
		idx, _ := s.Servers()
		_, _, ch := s.Namespaces()
		return idx, ch, nil
	})
	if err != nil || idx != 0 || runs != 1 {
		t.Fatalf("Blocking = %d, %v after %d runs, want 0 after one run", idx, err, runs)
	}
	if ctx.Err() != nil {
		t.Fatalf("Blocking waited for the deadline instead of returning at once")
	}
}

func TestBlockingReturnsAtOnceWhenIndexIsNewer(t *testing.T) {
	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	var view *ServiceView
	ctx := waitCtx(t)
	idx, err := s.Blocking(ctx, 4, serviceQuery(s, DefaultNamespace, "web", &view, nil))
	if err != nil || idx != 5 {
		t.Fatalf("Blocking = %d, %v, want 5", idx, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Blocking waited for the deadline instead of returning at once")
	}
}

func TestBlockingReturnsQueryError(t *testing.T) {
	s := New()
	var view *ServiceView
	ctx := waitCtx(t)
	idx, err := s.Blocking(ctx, 7, serviceQuery(s, DefaultNamespace, "web", &view, nil))
	if !errors.Is(err, ErrServiceNotFound) || idx != 0 {
		t.Fatalf("Blocking = %d, %v, want 0, ErrServiceNotFound", idx, err)
	}
}

func TestBlockingIndexWentBackwards(t *testing.T) {
	// A client holding an index from before a restore to an older snapshot
	// must get an answer at once, not wait for the catalog to catch up.
	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	var view *ServiceView
	ctx := waitCtx(t)
	idx, err := s.Blocking(ctx, 100, serviceQuery(s, DefaultNamespace, "web", &view, nil))
	if err != nil || idx != 5 {
		t.Fatalf("Blocking = %d, %v, want 5", idx, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Blocking waited for the deadline instead of returning at once")
	}
}

func TestBlockingWaitsForWrite(t *testing.T) {
	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	minIndex := mustService(t, s, DefaultNamespace, "web").Index

	ctx := waitCtx(t)
	ran := make(chan struct{}, 16)
	done := make(chan blockResult, 1)
	var view *ServiceView
	go func() {
		idx, err := s.Blocking(ctx, minIndex, serviceQuery(s, DefaultNamespace, "web", &view, ran))
		done <- blockResult{idx, err}
	}()

	// The first run computes an answer at minIndex: the waiter must now be
	// blocked, not returning.
	<-ran
	select {
	case r := <-done:
		t.Fatalf("Blocking returned %+v before any write", r)
	default:
	}

	// A write to another service must not wake it; a write to the watched
	// service must.
	mustApply(t, s, 6, registerCmd(6, DefaultNamespace, "api", "api-1", persistent("10.0.0.2", 80)))
	mustApply(t, s, 7, registerCmd(7, DefaultNamespace, "web", "web-2", persistent("10.0.0.3", 80)))

	r := <-done
	if r.err != nil || r.index <= minIndex || r.index != 7 {
		t.Fatalf("Blocking = %+v, want index 7 (> %d)", r, minIndex)
	}
	// Exactly one re-run: the first run was consumed above, the re-run after
	// the web write is still buffered. A wake-up by the api write would
	// have cost a third run.
	if n := len(ran); n != 1 {
		t.Fatalf("query re-ran %d times, want once", n)
	}
	// The closure holds the answer for the returned index.
	if view.Index != r.index || view.Instance("web-2") == nil {
		t.Fatalf("closure saw view at %d with %v, want the new instance", view.Index, instanceIDs(view))
	}
}

func TestBlockingServiceDeleted(t *testing.T) {
	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	ctx := waitCtx(t)
	ran := make(chan struct{}, 16)
	done := make(chan blockResult, 1)
	var view *ServiceView
	go func() {
		idx, err := s.Blocking(ctx, 5, serviceQuery(s, DefaultNamespace, "web", &view, ran))
		done <- blockResult{idx, err}
	}()
	<-ran
	mustApply(t, s, 6, deleteServiceCmd(DefaultNamespace, "web"))
	if r := <-done; !errors.Is(r.err, ErrServiceNotFound) {
		t.Fatalf("Blocking = %+v, want ErrServiceNotFound after the service was deleted", r)
	}
}

func TestBlockingTimesOut(t *testing.T) {
	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var view *ServiceView
	idx, err := s.Blocking(ctx, 5, serviceQuery(s, DefaultNamespace, "web", &view, nil))
	if err != nil || idx != 5 {
		t.Fatalf("Blocking = %d, %v, want the unchanged index 5 and no error", idx, err)
	}
	if ctx.Err() == nil {
		t.Fatalf("Blocking returned before the deadline")
	}
	if view == nil || view.Index != 5 {
		t.Fatalf("closure holds %+v, want the view at 5", view)
	}
}

func TestBlockingCancelled(t *testing.T) {
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{}, 16)
	done := make(chan blockResult, 1)
	go func() {
		idx, err := s.Blocking(ctx, 3, func() (uint64, <-chan struct{}, error) {
			defer func() { ran <- struct{}{} }()
			idx, _, ch := s.Namespaces()
			return idx + 2, ch, nil // pretend the answer is exactly at minIndex
		})
		done <- blockResult{idx, err}
	}()
	<-ran
	cancel()
	if r := <-done; r.err != nil || r.index != 3 {
		t.Fatalf("Blocking = %+v, want 3 and no error on cancel", r)
	}
}

func TestBlockingRestoreWakesWaiter(t *testing.T) {
	// A newer catalog, as a follower would receive from the leader.
	newer := New()
	mustApply(t, newer, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	mustApply(t, newer, 9, registerCmd(9, DefaultNamespace, "web", "web-2", persistent("10.0.0.2", 80)))
	var snap bytes.Buffer
	if _, err := newer.Snapshot().WriteTo(&snap); err != nil {
		t.Fatal(err)
	}

	s := New()
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "web-1", persistent("10.0.0.1", 80)))
	old := mustService(t, s, DefaultNamespace, "web")
	ctx := waitCtx(t)
	ran := make(chan struct{}, 16)
	done := make(chan blockResult, 1)
	var view *ServiceView
	go func() {
		idx, err := s.Blocking(ctx, 5, serviceQuery(s, DefaultNamespace, "web", &view, ran))
		done <- blockResult{idx, err}
	}()
	<-ran
	if err := s.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	// The restore does not touch the old view (it is a different tree):
	// only the abandon channel can have woken the waiter.
	if isClosed(old.WatchCh()) {
		t.Fatalf("restore closed a view channel of the abandoned catalog; this test would not prove AbandonCh wakes waiters")
	}
	r := <-done
	if r.err != nil || r.index != 9 {
		t.Fatalf("Blocking = %+v, want 9 after the restore", r)
	}
	if view.Instance("web-2") == nil {
		t.Fatalf("closure holds %v, want the restored instances", instanceIDs(view))
	}
}
