package catalog

import (
	"fmt"
	"testing"
	"time"

	"github.com/switchyard-io/switchyard/store"
)

// History keeps an instance's newest events, forgets the instances changed
// longest ago past its bound, and samples a service's counts once per
// slice of time over the last hour.
func TestHistoryIsBounded(t *testing.T) {
	counts := map[string][2]int{}
	h := NewHistory(func(ns, svc string) (int, int, bool) {
		c, ok := counts[svc]
		return c[0], c[1], ok
	})
	now := time.Now()
	ev := func(svc, id string, i int, kind store.EventKind, at time.Time) store.Event {
		return store.Event{Time: at, Index: uint64(i), Namespace: "default", Service: svc, ID: id, Kind: kind}
	}
	// One instance, more events than are kept: the newest stay, in order.
	counts["web"] = [2]int{1, 1}
	for i := range EventsPerInstance + 5 {
		kind := []store.EventKind{store.EventUnhealthy, store.EventHealthy}[i%2]
		h.Record([]store.Event{ev("web", "w1", i+1, kind, now.Add(time.Duration(i)*time.Millisecond))})
	}
	got := h.Instance("default", "web", "w1")
	if len(got) != EventsPerInstance || got[0].Index != 6 || got[len(got)-1].Index != uint64(EventsPerInstance+5) {
		t.Fatalf("kept %d events, indexes %d..%d; want the newest %d", len(got), got[0].Index, got[len(got)-1].Index, EventsPerInstance)
	}
	if got[0].ID != "w1" || got[0].Service != "web" || got[0].Kind != store.EventHealthy {
		t.Errorf("first kept event %+v", got[0])
	}
	// Past the bound on instances, the one changed longest ago goes.
	batch := make([]store.Event, 0, MaxInstancesWithHistory)
	for i := range MaxInstancesWithHistory {
		batch = append(batch, ev("big", fmt.Sprintf("b%d", i), 100+i, store.EventRegistered, now))
	}
	h.Record(batch)
	if n := len(h.Instance("default", "web", "w1")); n != 0 {
		t.Errorf("w1, changed longest ago, still has %d events past the bound", n)
	}
	if n := len(h.Instance("default", "big", fmt.Sprintf("b%d", MaxInstancesWithHistory-1))); n != 1 {
		t.Errorf("the newest instance has %d events, want 1", n)
	}

	// Samples: one per slice; the newest counts of a slice win; older than
	// an hour goes, but for the counts as the hour began.
	h2 := NewHistory(func(ns, svc string) (int, int, bool) { c := counts[svc]; return c[0], c[1], true })
	start := now.Add(-2 * time.Hour).Truncate(SampleEvery)
	counts["api"] = [2]int{3, 3}
	h2.Record([]store.Event{ev("api", "a1", 1, store.EventRegistered, start)})
	counts["api"] = [2]int{4, 4}
	h2.Record([]store.Event{ev("api", "a2", 2, store.EventRegistered, start.Add(time.Second))}) // same slice
	counts["api"] = [2]int{4, 2}
	at := now.Add(-10 * time.Minute)
	h2.Record([]store.Event{ev("api", "a1", 3, store.EventUnhealthy, at)})
	s := h2.Service("default", "api")
	if len(s) != 2 || s[0].Instances != 4 || s[0].Healthy != 4 || s[1].Healthy != 2 || !s[1].Time.Equal(at) {
		t.Fatalf("samples %+v: want the counts as the hour began (4 of 4) and the change 10 minutes ago (2 of 4)", s)
	}
	if d := now.Sub(s[0].Time); d < 59*time.Minute || d > 61*time.Minute {
		t.Errorf("the first sample stands at %v ago, want the hour's start", d)
	}
	if n := len(h2.Service("default", "nothing")); n != 0 {
		t.Errorf("a service never seen has %d samples", n)
	}
}
