package store

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// TestNewServiceNeverSeenHalfBuilt: a service created by its first
// registration is published with that instance in it. A reader racing the
// writer sees the service either absent or holding its instance, never
// empty at the creating index.
func TestNewServiceNeverSeenHalfBuilt(t *testing.T) {
	s := New()
	const n = 2000
	var done atomic.Bool
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for !done.Load() {
			for i := range n {
				v, err := s.Service(DefaultNamespace, fmt.Sprintf("s%d", i))
				if err == nil && v.Len() == 0 {
					errs <- fmt.Errorf("service s%d seen empty at index %d", i, v.Index)
					return
				}
				_, svcs, _ := s.Services(DefaultNamespace)
				for _, sv := range svcs {
					if sv.Len() == 0 {
						errs <- fmt.Errorf("service list shows %s empty at index %d", sv.Service.Name, sv.Index)
						return
					}
				}
				if done.Load() {
					return
				}
			}
		}
	}()
	for i := range n {
		mustApply(t, s, uint64(i+1), registerCmd(uint64(i+1), DefaultNamespace, fmt.Sprintf("s%d", i), "i1", persistent("10.0.0.1", 80)))
	}
	done.Store(true)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}
