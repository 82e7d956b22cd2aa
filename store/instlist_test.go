package store

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkList fails unless l holds exactly want (id → port), in id order, in
// chunks that are neither empty nor over chunkMax.
func checkList(t *testing.T, l *instList, want map[string]int) {
	t.Helper()
	if l.Len() != len(want) {
		t.Fatalf("Len %d, want %d", l.Len(), len(want))
	}
	ids := slices.Sorted(maps.Keys(want))
	got := l.appendTo(nil)
	if len(got) != len(ids) {
		t.Fatalf("%d instances listed, want %d", len(got), len(ids))
	}
	for i, in := range got {
		if in.ID != ids[i] || in.Port != want[in.ID] {
			t.Fatalf("instance %d is %s:%d, want %s:%d", i, in.ID, in.Port, ids[i], want[ids[i]])
		}
		if l.get(in.ID) != in {
			t.Fatalf("get(%s) does not find it", in.ID)
		}
	}
	n := 0
	for _, in := range got {
		if !in.Ephemeral && in.Check.Type == CheckHTTP {
			n++
		}
	}
	if l.probed != n {
		t.Fatalf("probed count %d, want %d", l.probed, n)
	}
	var top uint64
	for i, c := range l.chunks {
		if len(c.items) == 0 || len(c.items) > chunkMax {
			t.Fatalf("chunk %d holds %d instances", i, len(c.items))
		}
		if c.last != c.items[len(c.items)-1].ID {
			t.Fatalf("chunk %d: last %q, but its last item is %q", i, c.last, c.items[len(c.items)-1].ID)
		}
		for _, in := range c.items {
			if in.ModifyIndex > c.maxMod {
				t.Fatalf("chunk %d: maxMod %d, but %s has modify index %d", i, c.maxMod, in.ID, in.ModifyIndex)
			}
			top = max(top, in.ModifyIndex)
		}
	}
	// changedSince yields exactly the instances a filter of the whole
	// list keeps: just below the newest index and further back.
	for k := range uint64(6) {
		since := top - min(k, top)
		if k > 2 {
			since = top * (k - 2) / 4
		}
		var want, gotSince []string
		for _, in := range got {
			if in.ModifyIndex > since {
				want = append(want, in.ID)
			}
		}
		l.changedSince(since, func(in *Instance) bool { gotSince = append(gotSince, in.ID); return true })
		if !slices.Equal(gotSince, want) {
			t.Fatalf("changedSince(%d) = %v, want %v", since, gotSince, want)
		}
	}
	if l.get("absent") != nil {
		t.Fatal("get found an id never set")
	}
}

// TestInstListMatchesAModel runs random batches of sets and removals and
// checks each published list against a map, and that no later batch
// changed a list published before it.
func TestInstListMatchesAModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	type version struct {
		l    *instList
		want map[string]int
	}
	var versions []version
	cur := &instList{}
	want := map[string]int{}
	for batch := range 400 {
		next := &instList{chunks: slices.Clone(cur.chunks), n: cur.n, probed: cur.probed}
		e := listEdit{l: next, owned: map[*instChunk]bool{}}
		// Phases: grow well past several chunks, churn, then shrink.
		for range 1 + rng.IntN(60) {
			id := fmt.Sprintf("i-%05d", rng.IntN(3000))
			remove := rng.IntN(10) < 2
			if batch > 250 {
				remove = rng.IntN(10) < 8
			}
			if remove {
				e.remove(id)
				delete(want, id)
			} else {
				port := 1 + rng.IntN(65535)
				// Odd ports are persistent, one port in three has an
				// HTTP check: re-registering an id changes whether the
				// servers probe it.
				in := &Instance{ID: id, Port: port, Ephemeral: port%2 == 0, ModifyIndex: uint64(batch + 1)}
				if port%3 == 0 {
					in.Check = Check{Type: CheckHTTP, Target: "http://x/"}
				}
				e.set(in)
				want[id] = port
			}
		}
		checkList(t, next, want)
		versions = append(versions, version{next, maps.Clone(want)})
		cur = next
	}
	for i, v := range versions {
		t.Run(fmt.Sprintf("version-%d", i), func(t *testing.T) { checkList(t, v.l, v.want) })
	}
	if len(versions[200].want) < 5*chunkMax {
		t.Fatalf("the lists never grew past %d instances: the test does not split chunks", len(versions[200].want))
	}
}

// TestInstListRemovalsJoinSmallChunks: removing most instances leaves few
// chunks, not one per survivor.
func TestInstListRemovalsJoinSmallChunks(t *testing.T) {
	l := &instList{}
	e := listEdit{l: l, owned: map[*instChunk]bool{}}
	want := map[string]int{}
	for i := range 20 * chunkMax {
		id := fmt.Sprintf("i-%05d", i)
		e.set(&Instance{ID: id, Port: 1})
		want[id] = 1
	}
	for i := range 20 * chunkMax {
		if i%20 != 0 {
			id := fmt.Sprintf("i-%05d", i)
			e.remove(id)
			delete(want, id)
		}
	}
	checkList(t, l, want)
	if min := (len(want) + chunkMax/2 - 1) / (chunkMax / 2); len(l.chunks) > 2*min {
		t.Fatalf("%d instances in %d chunks; want at most %d", len(want), len(l.chunks), 2*min)
	}
}
