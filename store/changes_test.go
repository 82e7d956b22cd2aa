package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// applyChanges applies what Changes reported to the instances of an older
// view, as a client holding that view's list would.
func applyChanges(old map[string]*Instance, changed []*Instance, removed []string) map[string]*Instance {
	out := maps.Clone(old)
	for _, id := range removed {
		delete(out, id)
	}
	for _, in := range changed {
		out[in.ID] = in
	}
	return out
}

func instanceMap(v *ServiceView) map[string]*Instance {
	m := map[string]*Instance{}
	for in := range v.All {
		m[in.ID] = in
	}
	return m
}

// TestChangesRebuildEveryLaterView runs random batches of registrations
// (new, changed and identical), removals, health changes, patches and
// settings changes against one service, keeps every view published, and
// checks for each pair of views that the later one's Changes since the
// earlier one's index, applied to the earlier one's instances, give
// exactly the later one's (the very same instance values), and that
// Changes refuses exactly when the earlier index is below the later view's
// horizon. Few instances and many removals make the removal record fill
// and forget, so the horizon moves.
func TestChangesRebuildEveryLaterView(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			s := New()
			var views []*ServiceView
			index := uint64(0)
			forgotten := false
			for range 500 {
				index++
				var cmds []*Command
				for range 1 + rng.IntN(4) {
					id := fmt.Sprintf("i-%03d", rng.IntN(150))
					switch k := rng.IntN(10); {
					case k < 4:
						in := persistent(fmt.Sprintf("10.0.0.%d", rng.IntN(3)), 8080)
						cmds = append(cmds, registerCmd(index, DefaultNamespace, "web", id, in))
					case k < 7:
						cmds = append(cmds, deregisterCmd(DefaultNamespace, "web", id))
					case k < 8:
						cmds = append(cmds, &Command{Type: CommandSetHealth, Time: at(index),
							Health: []HealthChange{{Namespace: DefaultNamespace, Service: "web", ID: id, Healthy: rng.IntN(2) == 0}}})
					case k < 9:
						w := rng.IntN(3) * 50
						cmds = append(cmds, &Command{Type: CommandPatchInstance, Time: at(index), Namespace: DefaultNamespace,
							Service: "web", ID: id, Patch: &InstancePatch{Weight: &w}})
					default:
						set := DefaultServiceSettings()
						set.MinHealthyRatio = float64(rng.IntN(3)) / 4
						cmds = append(cmds, putServiceCmd(DefaultNamespace, "web", set))
					}
				}
				s.ApplyBatch(index, cmds)
				v, err := s.Service(DefaultNamespace, "web")
				if err != nil {
					continue // nothing registered yet
				}
				if len(v.removals()) > maxRemovals(v.Len()) {
					t.Fatalf("index %d: %d removals kept for %d instances, the bound is %d", index, len(v.removals()), v.Len(), maxRemovals(v.Len()))
				}
				if v.Horizon() > v.Service.CreateIndex {
					forgotten = true
				}
				if len(views) == 0 || views[len(views)-1] != v {
					views = append(views, v)
				}
			}
			if !forgotten {
				t.Fatal("the removal record never filled: the horizon never moved, so the test checks no refusal")
			}
			refused, told := 0, 0
			for j, nv := range views {
				want := instanceMap(nv)
				// The 30 views before it, and every 20th further back.
				var older []*ServiceView
				for k := range j + 1 {
					if k >= j-30 || k%20 == 0 {
						older = append(older, views[k])
					}
				}
				for _, ov := range older {
					changed, removed, ok := nv.Changes(ov.Index)
					if ok != (ov.Index >= nv.Horizon()) {
						t.Fatalf("view %d since %d: ok %v, horizon %d", nv.Index, ov.Index, ok, nv.Horizon())
					}
					if !ok {
						refused++
						continue
					}
					told++
					if !slices.IsSortedFunc(changed, func(a, b *Instance) int { return cmpString(a.ID, b.ID) }) || !slices.IsSorted(removed) {
						t.Fatalf("view %d since %d: not in id order", nv.Index, ov.Index)
					}
					got := applyChanges(instanceMap(ov), changed, removed)
					if !maps.Equal(got, want) {
						t.Fatalf("view %d since %d: changes rebuild %v, the view holds %v", nv.Index, ov.Index,
							slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
					}
					for _, id := range removed {
						if nv.Instance(id) != nil {
							t.Fatalf("view %d since %d: %s reported removed but present", nv.Index, ov.Index, id)
						}
					}
				}
				if _, _, ok := nv.Changes(nv.Index + 1); ok {
					t.Fatalf("view %d: Changes of a later index answered", nv.Index)
				}
			}
			if refused == 0 || told == 0 {
				t.Fatalf("%d pairs told, %d refused: want both", told, refused)
			}
		})
	}
}

// A changed instance is reported; an identical re-registration is not;
// a removed one is, once, even when removed, registered and removed
// again; and one registered again is a change, not a removal.
func TestChangesOfOneService(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "a", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, registerCmd(2, DefaultNamespace, "web", "b", persistent("10.0.0.2", 80)))
	mustApply(t, s, 3, registerCmd(3, DefaultNamespace, "web", "c", persistent("10.0.0.3", 80)))
	base := mustService(t, s, DefaultNamespace, "web").Index
	mustApply(t, s, 4, registerCmd(4, DefaultNamespace, "web", "a", persistent("10.0.0.1", 80))) // identical
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "b", persistent("10.0.0.9", 80)))
	mustApply(t, s, 6, deregisterCmd(DefaultNamespace, "web", "c"))
	mustApply(t, s, 7, registerCmd(7, DefaultNamespace, "web", "c", persistent("10.0.0.3", 80)))
	mustApply(t, s, 8, deregisterCmd(DefaultNamespace, "web", "c"))
	mustApply(t, s, 9, registerCmd(9, DefaultNamespace, "web", "d", persistent("10.0.0.4", 80)))
	mustApply(t, s, 10, deregisterCmd(DefaultNamespace, "web", "d"))
	mustApply(t, s, 11, registerCmd(11, DefaultNamespace, "web", "d", persistent("10.0.0.5", 80)))
	v := mustService(t, s, DefaultNamespace, "web")
	changed, removed, ok := v.Changes(base)
	var ids []string
	for _, in := range changed {
		ids = append(ids, in.ID)
	}
	if !ok || !slices.Equal(ids, []string{"b", "d"}) || !slices.Equal(removed, []string{"c"}) {
		t.Fatalf("since %d: changed %v removed %v ok %v; want [b d] [c] true", base, ids, removed, ok)
	}
	if changed, removed, ok := v.Changes(v.Index); !ok || len(changed)+len(removed) != 0 {
		t.Fatalf("since its own index: %d changed, %v removed, ok %v", len(changed), removed, ok)
	}
	if _, _, ok := v.Changes(0); ok {
		t.Fatal("Changes since before the service existed answered")
	}
}

// The removal record holds at most maxRemovals entries: past that, the
// oldest are forgotten and the horizon moves to the last one forgotten,
// so a watcher that far behind is told to take the full list.
func TestChangesForgetOldRemovals(t *testing.T) {
	s := New()
	index := uint64(0)
	n := MinRemovalsKept + 10
	for i := range n {
		index++
		mustApply(t, s, index, registerCmd(index, DefaultNamespace, "web", fmt.Sprintf("i-%03d", i), persistent("10.0.0.1", 80)))
	}
	start := index
	for i := range n {
		index++
		mustApply(t, s, index, deregisterCmd(DefaultNamespace, "web", fmt.Sprintf("i-%03d", i)))
	}
	v := mustService(t, s, DefaultNamespace, "web")
	// n removals at start+1 … start+n; the record keeps the last 64.
	if len(v.removals()) != MinRemovalsKept || v.Horizon() != start+uint64(n-MinRemovalsKept) {
		t.Fatalf("%d removals kept, horizon %d; want %d and %d", len(v.removals()), v.Horizon(), MinRemovalsKept, start+uint64(n-MinRemovalsKept))
	}
	if _, _, ok := v.Changes(v.Horizon() - 1); ok {
		t.Fatal("answered since an index whose removal is forgotten")
	}
	_, removed, ok := v.Changes(v.Horizon())
	if !ok || len(removed) != MinRemovalsKept {
		t.Fatalf("since the horizon: %d removed, ok %v; want %d", len(removed), ok, MinRemovalsKept)
	}
	// The ids are copies: nothing of the registration commands is kept.
	for _, r := range v.removals() {
		if v.Instance(r.id) != nil {
			t.Fatalf("%s is both removed and present", r.id)
		}
	}
}

// A restored catalog tells changes only from the snapshot's index on, and
// a service deleted and created again only from its new creation.
func TestChangesAfterRestoreAndRecreation(t *testing.T) {
	s := New()
	mustApply(t, s, 1, registerCmd(1, DefaultNamespace, "web", "a", persistent("10.0.0.1", 80)))
	mustApply(t, s, 2, registerCmd(2, DefaultNamespace, "web", "b", persistent("10.0.0.2", 80)))
	mustApply(t, s, 3, registerCmd(3, DefaultNamespace, "other", "x", persistent("10.0.0.3", 80)))
	var buf bytes.Buffer
	if _, err := s.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	mustApply(t, r, 4, deregisterCmd(DefaultNamespace, "web", "a"))
	v := mustService(t, r, DefaultNamespace, "web")
	if _, _, ok := v.Changes(2); ok {
		t.Fatal("a restored view answered since an index before its snapshot's")
	}
	if _, removed, ok := v.Changes(3); !ok || !slices.Equal(removed, []string{"a"}) {
		t.Fatalf("since the snapshot's index: removed %v ok %v", removed, ok)
	}

	mustApply(t, s, 4, deleteServiceCmd(DefaultNamespace, "web"))
	mustApply(t, s, 5, registerCmd(5, DefaultNamespace, "web", "a", persistent("10.0.0.1", 80)))
	if _, _, ok := mustService(t, s, DefaultNamespace, "web").Changes(2); ok {
		t.Fatal("a service created again answered since an index of the one deleted")
	}
}
