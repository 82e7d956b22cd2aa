package store

import (
	"slices"
	"strings"
)

// changeLog is what a service view remembers beyond its instances so that
// it can tell what changed since an older index (Changes): the last
// removals, oldest first, and the horizon, the oldest index since which it
// can tell every change. Immutable once its view is published. A view
// without one (no removal yet) has its service's creation as horizon.
type changeLog struct {
	removed []removal
	horizon uint64
}

// removal is one instance leaving its service: its id and the log index
// of the command that removed it.
type removal struct {
	id    string
	index uint64
}

// MinRemovalsKept is the least number of removals a service view
// remembers; a larger service remembers up to half its instance count
// (maxRemovals).
const MinRemovalsKept = 64

// maxRemovals is how many removals a view of n instances remembers. A
// delta is worth asking for while it is much smaller than the full
// answer; past n/2 removals behind, a full answer is not much larger, so
// remembering more would cost memory for little. The floor keeps a small
// service that shrank able to answer its watchers with deltas.
func maxRemovals(n int) int { return max(MinRemovalsKept, n/2) }

// removals returns the view's remembered removals, oldest first.
func (v *ServiceView) removals() []removal {
	if v.changes == nil {
		return nil
	}
	return v.changes.removed
}

// recordRemoval notes, on a pending view, that the instance id left the
// service at index, and forgets the oldest removals past maxRemovals: the
// horizon then moves to the last one forgotten.
//
// The removals are a slice whose backing array successive views share: a
// view appends past the end of the one it replaces, which no older view
// reads (each sees only its own length), and the views of one service
// follow one another in a single line (one writer, each new view built
// from the last), so no two views ever append at the same place.
func (v *ServiceView) recordRemoval(id string, index uint64) {
	next := &changeLog{horizon: v.Horizon()}
	// A copy of the id: the instance's points into the arena of the
	// command that registered it, which would otherwise stay alive.
	next.removed = append(v.removals(), removal{id: strings.Clone(id), index: index})
	if over := len(next.removed) - maxRemovals(v.list.Len()); over > 0 {
		// Not cleared: older views still read these entries.
		next.horizon = max(next.horizon, next.removed[over-1].index)
		next.removed = next.removed[over:]
	}
	v.changes = next
}

// Horizon is the oldest index since which the view can tell every change
// to its instances (Changes): the index that created the service, that
// of the snapshot it was restored from, or that of the last removal it
// has forgotten, whichever is latest.
func (v *ServiceView) Horizon() uint64 {
	if v.changes == nil {
		return v.Service.CreateIndex
	}
	return v.changes.horizon
}

// Changes tells what happened to the service's instances after index
// since: the instances registered or changed since (ModifyIndex above
// since: registered, re-registered differently, patched, or turned
// healthy or unhealthy), in id order, and the ids of instances removed
// since and not registered again, in id order. Applied to the instances
// of the view whose Index was since, they give exactly this view's.
//
// ok is false when the view cannot tell: since is below Horizon (removals
// that far back are forgotten, or the service did not exist, or the
// catalog was restored from a snapshot since) or above Index (an index of
// a newer or another history). The caller then needs the full list.
func (v *ServiceView) Changes(since uint64) (changed []*Instance, removed []string, ok bool) {
	if since < v.Horizon() || since > v.Index {
		return nil, nil, false
	}
	v.list.changedSince(since, func(in *Instance) bool {
		changed = append(changed, in)
		return true
	})
	rs := v.removals()
	from, _ := slices.BinarySearchFunc(rs, since, func(r removal, since uint64) int {
		if r.index <= since {
			return -1
		}
		return 1
	})
	for _, r := range rs[from:] {
		if v.list.get(r.id) == nil {
			removed = append(removed, r.id)
		}
	}
	slices.Sort(removed)
	return changed, slices.Compact(removed), true
}
